"""The safety layer between a policy and the arm's bus, on top of LeRobot's own `max_relative_target`.

Every command the deploy loop sends passes `SafetyLayer.filter` first. It works in LeRobot's units (degrees
for the five arm joints, 0-100 for the gripper), on the six servo targets of one control step:

1. a target that is not a finite number stops the episode (`SafetyStop`): nothing sane can be sent;
2. the change since the previous command is limited by acceleration, then by velocity and by the per-step
   limit (the two bounds on how far a target may move in one period);
3. targets are clipped to the joint limits (the calibrated range less a margin, within the model's range);
4. the tool point of the commanded pose (forward kinematics of our model) must be inside the workspace box:
   if not, the command is pulled back along the step towards the previous one until it is;
5. a gripper that closes and stops moving holds a squeeze of at most `gripper_stall_squeeze` units.

The previous command always satisfies 3 and 4, so 3, 4 and the per-step limit hold for every command that
leaves the layer, whatever the policy asks (the property tests check this on the emulated servos' bus).
Health checks (temperature, load, stale readings, missed deadlines) stop the episode with `SafetyStop`.
Every change the layer makes is an `Intervention`: the deploy loop writes them to safety.jsonl.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from robosmith.errors import RobosmithError
from robosmith.robot.kinematics import ToolKinematics
from robosmith.robot.so101 import JOINT_NAMES
from robosmith.robot.so101 import joint_limits as model_joint_limits
from robosmith.robot.units import LEROBOT_JOINT_NAMES, TICKS_PER_TURN, MotorCalibration, from_lerobot, to_lerobot
from robosmith.task.spec import SafetyLimits

GRIPPER = len(JOINT_NAMES) - 1


class SafetyStop(RobosmithError, RuntimeError):
    """The episode must stop now: the arm holds its position, then torque goes off."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(f"safety stop ({limit}): {message}")
        self.limit = limit


@dataclass(frozen=True)
class Intervention:
    limit: str  # which rule changed the command
    joint: str | None  # the motor (None: the whole pose)
    requested: float | list[float] | None  # what was asked (LeRobot units; the tool point in m for workspace)
    sent: float | list[float] | None  # what went out instead
    by: float  # how much it changed, in the rule's units

    def as_dict(self) -> dict:
        return asdict(self)


def joint_limits(calibration: dict[str, MotorCalibration] | None, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) in LeRobot units: the model's joint range, within the calibrated range when a calibration
    is given, the arm joints `margin` degrees clear of both ends."""
    low, high = (to_lerobot(torch.tensor(v, dtype=torch.float64)).numpy() for v in model_joint_limits())
    if calibration:
        for i, name in enumerate(JOINT_NAMES[:GRIPPER]):
            c = calibration[name]
            half = (c.range_max - c.range_min) * 360.0 / (TICKS_PER_TURN - 1) / 2  # LeRobot's degrees: 0 mid-range
            low[i], high[i] = max(low[i], -half), min(high[i], half)
    low[:GRIPPER] += margin
    high[:GRIPPER] -= margin
    low[GRIPPER], high[GRIPPER] = max(low[GRIPPER], 0.0), min(high[GRIPPER], 100.0)
    return low, high


class SafetyLayer:
    """Filters one arm's commands step by step; `reset` at every episode start."""

    def __init__(self, limits: SafetyLimits, control_hz: float, low: np.ndarray, high: np.ndarray,
                 tool_position: Callable[[np.ndarray], np.ndarray]) -> None:
        self.limits, self.dt = limits, 1.0 / control_hz
        self.low, self.high = np.asarray(low, float), np.asarray(high, float)
        self.tool_position = tool_position  # LeRobot units (6,) -> tool point (3,) m
        self.box_low, self.box_high = np.asarray(limits.workspace_low), np.asarray(limits.workspace_high)
        self.previous = np.zeros(6)
        self.velocity = np.zeros(6)
        self._stall_steps = 0
        self._gripper_seen = 0.0
        self._load_steps = 0
        self._hot_reads = 0

    @classmethod
    def for_arm(cls, limits: SafetyLimits, control_hz: float,
                calibration: dict[str, MotorCalibration] | None = None) -> SafetyLayer:
        fk = ToolKinematics()
        low, high = joint_limits(calibration, limits.joint_margin)
        return cls(limits, control_hz, low, high,
                   lambda v: fk.position(from_lerobot(torch.as_tensor(v, dtype=torch.float64)).numpy()))

    # ------------------------------------------------------------------------------------------- episodes
    def reset(self, present: np.ndarray) -> None:
        """Start an episode from the arm's reading (after the move to the start pose): the first reference."""
        self.previous = np.clip(np.asarray(present, float), self.low, self.high)
        self.velocity = np.zeros(6)
        self._stall_steps, self._gripper_seen, self._load_steps = 0, float(present[GRIPPER]), 0
        self._hot_reads = 0

    def inside(self, command: np.ndarray) -> bool:
        p = self.tool_position(command)
        return bool(np.all(p >= self.box_low) and np.all(p <= self.box_high))

    def _box_excess(self, command: np.ndarray) -> float:
        p = self.tool_position(command)
        return float(np.maximum(self.box_low - p, 0).sum() + np.maximum(p - self.box_high, 0).sum())

    # ---------------------------------------------------------------------------------------------- filter
    def filter(self, target: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, list[Intervention]]:
        """The command to send for a policy's `target` (6,) when the arm reads `present` (6,)."""
        target = np.asarray(target, float)
        bad = [LEROBOT_JOINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(target))]
        if bad:
            raise SafetyStop("non_finite", f"the policy asked for {target[~np.isfinite(target)].tolist()} on "
                                           f"{', '.join(bad)}")
        lim, dt, out = self.limits, self.dt, []
        command = target.copy()
        # 5. gripper: a closing that stalls squeezes no harder than the limit allows (then 2-4 apply to it too)
        command[GRIPPER] = self._gripper(command[GRIPPER], float(present[GRIPPER]), out)

        # 2. how far each target may move this period: acceleration, then velocity and the per-step limit
        step = command - self.previous
        reach = min(lim.max_step, lim.max_velocity * dt)
        lo = np.maximum(self.velocity * dt - lim.max_acceleration * dt * dt, -reach)
        hi = np.minimum(self.velocity * dt + lim.max_acceleration * dt * dt, reach)
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        limited = np.clip(step, lo, hi)
        for i in np.flatnonzero(np.abs(limited - step) > 1e-9):
            rule = "max_step" if abs(step[i]) > reach else "max_acceleration"
            out.append(Intervention(rule, LEROBOT_JOINT_NAMES[i], float(command[i]),
                                    float(self.previous[i] + limited[i]), float(abs(step[i] - limited[i]))))
        command = self.previous + limited

        # 3. joint limits
        clipped = np.clip(command, self.low, self.high)
        for i in np.flatnonzero(np.abs(clipped - command) > 1e-6):  # not the rounding of degrees to radians and back
            out.append(Intervention("joint_limit", LEROBOT_JOINT_NAMES[i], float(command[i]), float(clipped[i]),
                                    float(abs(command[i] - clipped[i]))))
        command = clipped

        # 4. workspace: back along the step until the tool point is inside (the previous command is)
        command = self._workspace(command, out)

        self.velocity = (command - self.previous) / dt
        self.previous = command
        return command, out

    def _gripper(self, target: float, present: float, out: list[Intervention]) -> float:
        lim = self.limits
        closing = target < present - 1.0
        if closing and present > self._gripper_seen - 0.5:  # asked to close further, and no progress
            self._stall_steps += 1
        else:
            self._stall_steps = 0
        self._gripper_seen = min(self._gripper_seen, present) if closing else present
        if self._stall_steps >= lim.gripper_stall_steps and target < present - lim.gripper_stall_squeeze:
            held = present - lim.gripper_stall_squeeze
            out.append(Intervention("gripper_stall", LEROBOT_JOINT_NAMES[GRIPPER], target, held, held - target))
            return held
        return target

    def _workspace(self, command: np.ndarray, out: list[Intervention]) -> np.ndarray:
        if self.inside(command):
            return command
        requested = self.tool_position(command).tolist()
        previous_inside = self.inside(self.previous)
        # Bisection on the fraction of this step kept: the previous command (fraction 0) is the fallback.
        keep_lo, keep_hi = 0.0, 1.0
        for _ in range(12):
            mid = (keep_lo + keep_hi) / 2
            candidate = self.previous + mid * (command - self.previous)
            ok = self.inside(candidate) if previous_inside else (
                self._box_excess(candidate) <= self._box_excess(self.previous))
            keep_lo, keep_hi = (mid, keep_hi) if ok else (keep_lo, mid)
        pulled = self.previous + keep_lo * (command - self.previous)
        pulled[GRIPPER] = command[GRIPPER]  # the gripper does not move the tool point
        out.append(Intervention("workspace", None, requested, self.tool_position(pulled).tolist(),
                                float(math.dist(requested, self.tool_position(pulled)))))
        return pulled

    # --------------------------------------------------------------------------------------------- health
    def check_health(self, temperature: np.ndarray | None, load: np.ndarray | None) -> None:
        """Servo temperature (°C) and load (% of rated torque, signed) read from the bus; stop when over."""
        lim = self.limits
        # Two reads in a row: a servo that is hot stays hot, a corrupted status packet does not.
        hot = temperature is not None and float(np.max(temperature)) > lim.max_temperature
        self._hot_reads = self._hot_reads + 1 if hot else 0
        if self._hot_reads >= 2:
            i = int(np.argmax(temperature))
            raise SafetyStop("temperature", f"{LEROBOT_JOINT_NAMES[i]} at {float(temperature[i]):.0f} °C "
                                            f"(limit {lim.max_temperature:g})")
        if load is not None:
            over = np.abs(load) > lim.max_load
            self._load_steps = self._load_steps + 1 if over.any() else 0
            if self._load_steps >= lim.max_load_steps:
                i = int(np.argmax(np.abs(load)))
                raise SafetyStop("load", f"{LEROBOT_JOINT_NAMES[i]} at {abs(float(load[i])):.0f}% for "
                                         f"{self._load_steps} steps (limit {lim.max_load:g}%)")

    def check_timing(self, observation_age: float, missed_in_a_row: int) -> None:
        """The watchdog: a reading older than `stale_observation` s, or too many late periods in a row."""
        lim = self.limits
        if observation_age > lim.stale_observation:
            raise SafetyStop("stale_observation", f"the last reading is {observation_age:.2f} s old "
                                                  f"(limit {lim.stale_observation:g} s)")
        if missed_in_a_row > lim.max_missed_deadlines:
            raise SafetyStop("missed_deadlines", f"{missed_in_a_row} control periods in a row ran late "
                                                 f"(limit {lim.max_missed_deadlines})")

    def start_path(self, present: np.ndarray, start: np.ndarray, control_hz: float) -> list[np.ndarray]:
        """Commands that move the arm slowly (`start_speed` per s) from `present` to the start pose."""
        present, start = np.asarray(present, float), np.clip(np.asarray(start, float), self.low, self.high)
        steps = max(1, math.ceil(float(np.max(np.abs(start - present))) / (self.limits.start_speed / control_hz)))
        return [present + (start - present) * (k / steps) for k in range(1, steps + 1)]

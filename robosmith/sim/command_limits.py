"""The command rules of a task's `safety:` limits, on N arms at once: what every servo target must satisfy.

The deploy loop's safety layer (robosmith.deploy.safety) applies them to each command it sends the arm; the
simulator applies the same rules to every step of training and evaluation (`safety.in_simulation`), so a
policy learns inside the limits it meets on the arm. Trained without them, a lift policy commanded poses
3-14 cm below the table, the arm's layer pulled them back, and 2 of 10 deployed episodes agreed with eval.

Units are LeRobot's (degrees for the five arm joints, 0-100 for the gripper). The rules, in order:

1. a gripper that closes and stops moving holds a squeeze of at most `gripper_stall_squeeze` units;
2. the change since the previous command is limited by acceleration, then by velocity and the per-step limit;
3. targets are clipped to the joint limits;
4. the tool point of the commanded pose (forward kinematics) must be inside the workspace box: if not, the
   command is pulled back along the step to where the step first leaves the box (to 1/256 of the step).

The previous command always satisfies 3 and 4, so 3, 4 and the per-step limit hold for every command that
leaves, whatever was asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from robosmith.robot.kinematics import ToolKinematics
from robosmith.robot.so101 import JOINT_NAMES
from robosmith.robot.so101 import joint_limits as model_joint_limits
from robosmith.robot.units import LEROBOT_JOINT_NAMES, TICKS_PER_TURN, MotorCalibration, to_lerobot
from robosmith.task.spec import SafetyLimits

GRIPPER = len(JOINT_NAMES) - 1
# The workspace pull-back tries GRID fractions of the step, then GRID within the bracket where it first fails,
# LEVELS times: the fraction to keep to 1/256. Each level is one forward-kinematics call over every arm pulled
# back; a call costs ~60 us plus ~0.27 us per pose, so 4 x 4 (16 poses an arm) beats 16 x 2 (32) by 0.5 ms a
# step at 512 environments under random actions, and a bisection (2 x 8) by its eight calls' overhead.
GRID, LEVELS = 4, 4


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


def model_tool_positions() -> Callable[[np.ndarray], np.ndarray]:
    """(K, 6) LeRobot units -> (K, 3) tool points in m, by our model's forward kinematics.

    The five arm joints are degrees (`from_lerobot` is a plain conversion for them); the gripper does not move
    the tool point, so its 0-100 value is passed through unread. Plain numpy: this runs several times per step.
    """
    fk = ToolKinematics()
    return lambda values: fk.positions(np.radians(np.asarray(values, dtype=float)))


class CommandLimits:
    """The rules for N arms; `reset` the arms that start an episode, `apply` once per control step."""

    def __init__(self, limits: SafetyLimits, control_hz: float, low: np.ndarray, high: np.ndarray,
                 tool_positions: Callable[[np.ndarray], np.ndarray], num_arms: int = 1) -> None:
        self.limits, self.dt = limits, 1.0 / control_hz
        self.low, self.high = np.asarray(low, float), np.asarray(high, float)
        self.tool_positions = tool_positions
        self.box_low, self.box_high = np.asarray(limits.workspace_low), np.asarray(limits.workspace_high)
        self.previous = np.zeros((num_arms, 6))
        self.velocity = np.zeros((num_arms, 6))
        self._stall_steps = np.zeros(num_arms, dtype=np.int64)
        self._gripper_seen = np.zeros(num_arms)

    def reset(self, ids: np.ndarray, present: np.ndarray) -> None:
        """Arms `ids` start an episode from their readings `present` (K, 6): the first reference."""
        present = np.asarray(present, float)
        self.previous[ids] = np.clip(present, self.low, self.high)
        self.velocity[ids] = 0.0
        self._stall_steps[ids] = 0
        self._gripper_seen[ids] = present[:, GRIPPER]

    def inside(self, commands: np.ndarray) -> np.ndarray:
        """(K,) whether the tool points of (K, 6) commands are in the workspace box."""
        return self._box_excess(self.tool_positions(commands)) == 0

    def _box_excess(self, points: np.ndarray) -> np.ndarray:
        """(K,) how far (summed over the axes, m) tool points (K, 3) are outside the box."""
        return np.maximum(self.box_low - points, 0).sum(axis=1) + np.maximum(points - self.box_high, 0).sum(axis=1)

    def apply(self, target: np.ndarray, present: np.ndarray,
              log: list[list[Intervention]] | None = None) -> np.ndarray:
        """The commands (N, 6) to send for targets (N, 6) when the arms read `present` (N, 6); with `log`
        (one list per arm), what each rule changed is appended to it."""
        lim, dt = self.limits, self.dt
        command = np.array(target, dtype=float)
        present = np.asarray(present, float)
        command[:, GRIPPER] = self._gripper(command[:, GRIPPER], present[:, GRIPPER], log)

        step = command - self.previous
        reach = min(lim.max_step, lim.max_velocity * dt)
        lo = np.maximum(self.velocity * dt - lim.max_acceleration * dt * dt, -reach)
        hi = np.minimum(self.velocity * dt + lim.max_acceleration * dt * dt, reach)
        limited = np.clip(step, np.minimum(lo, hi), np.maximum(lo, hi))
        if log is not None:
            for arm, i in zip(*np.nonzero(np.abs(limited - step) > 1e-9), strict=True):
                rule = "max_step" if abs(step[arm, i]) > reach else "max_acceleration"
                log[arm].append(Intervention(rule, LEROBOT_JOINT_NAMES[i], float(command[arm, i]),
                                             float(self.previous[arm, i] + limited[arm, i]),
                                             float(abs(step[arm, i] - limited[arm, i]))))
        command = self.previous + limited

        clipped = np.clip(command, self.low, self.high)
        if log is not None:  # 1e-6: not the rounding of degrees to radians and back
            for arm, i in zip(*np.nonzero(np.abs(clipped - command) > 1e-6), strict=True):
                log[arm].append(Intervention("joint_limit", LEROBOT_JOINT_NAMES[i], float(command[arm, i]),
                                             float(clipped[arm, i]), float(abs(command[arm, i] - clipped[arm, i]))))
        command = self._workspace(clipped, log)

        self.velocity = (command - self.previous) / dt
        self.previous = command
        return command

    def _gripper(self, target: np.ndarray, present: np.ndarray, log: list[list[Intervention]] | None) -> np.ndarray:
        lim = self.limits
        closing = target < present - 1.0
        stalled = closing & (present > self._gripper_seen - 0.5)  # asked to close further, and no progress
        self._stall_steps = np.where(stalled, self._stall_steps + 1, 0)
        self._gripper_seen = np.where(closing, np.minimum(self._gripper_seen, present), present)
        held = present - lim.gripper_stall_squeeze
        squeezing = (self._stall_steps >= lim.gripper_stall_steps) & (target < held)
        if log is not None:
            for arm in np.flatnonzero(squeezing):
                log[arm].append(Intervention("gripper_stall", LEROBOT_JOINT_NAMES[GRIPPER], float(target[arm]),
                                             float(held[arm]), float(held[arm] - target[arm])))
        return np.where(squeezing, held, target)

    def _workspace(self, command: np.ndarray, log: list[list[Intervention]] | None) -> np.ndarray:
        points = self.tool_positions(command)
        arms = np.flatnonzero(self._box_excess(points) > 0)
        if not arms.size:
            return command
        wanted, previous = command[arms], self.previous[arms]
        step = wanted - previous
        # The largest fraction of the step up to which every pose tried is acceptable: inside the box, or, for a
        # previous command outside (only at an episode's start), no further out than it. Fraction 0 of the
        # first grid is the previous command itself, which gives its own excess.
        keep, width, previous_excess = np.zeros(len(arms)), 1.0, None
        for level in range(LEVELS):
            width /= GRID
            first = 0 if level == 0 else 1
            fractions = np.minimum(keep[:, None] + width * np.arange(first, GRID + 1), 1.0)
            poses = previous[:, None, :] + fractions[:, :, None] * step[:, None, :]
            excess = self._box_excess(self.tool_positions(poses.reshape(-1, 6))).reshape(fractions.shape)
            if previous_excess is None:
                previous_excess, excess = excess[:, :1], excess[:, 1:]
            ok = np.where(previous_excess == 0, excess == 0, excess <= previous_excess)
            keep = np.minimum(keep + width * np.cumprod(ok, axis=1).sum(axis=1), 1.0)
        pulled = previous + keep[:, None] * step
        pulled[:, GRIPPER] = wanted[:, GRIPPER]  # the gripper does not move the tool point
        if log is not None:
            requested, sent = points[arms], self.tool_positions(pulled)
            for row, arm in enumerate(arms):
                log[arm].append(Intervention("workspace", None, requested[row].tolist(), sent[row].tolist(),
                                             float(math.dist(requested[row], sent[row]))))
        command = command.copy()
        command[arms] = pulled
        return command

"""The safety layer between a policy and the arm's bus, on top of LeRobot's own `max_relative_target`.

Every command the deploy loop sends passes `SafetyLayer.filter` first. It works in LeRobot's units (degrees
for the five arm joints, 0-100 for the gripper), on the six servo targets of one control step: a target that
is not a finite number stops the episode (`SafetyStop`: nothing sane can be sent); then the task's command
rules (robosmith.sim.command_limits, the ones the simulator trained the policy under): gripper stall,
acceleration, velocity and per-step limits, joint limits, the workspace box. Whatever the policy asks, every
command that leaves the layer is inside the joint limits, the per-step limit and the workspace (the property
tests check this on the emulated servos' bus).
Health checks (temperature, load, stale readings, missed deadlines) stop the episode with `SafetyStop`.
Every change the layer makes is an `Intervention`: the deploy loop writes them to safety.jsonl.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from robosmith.errors import RobosmithError
from robosmith.robot.units import LEROBOT_JOINT_NAMES, MotorCalibration
from robosmith.sim.command_limits import CommandLimits, Intervention, joint_limits, model_tool_positions
from robosmith.task.spec import SafetyLimits

__all__ = ["Intervention", "SafetyLayer", "SafetyStop", "joint_limits"]


class SafetyStop(RobosmithError, RuntimeError):
    """The episode must stop now: the arm holds its position, then torque goes off."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(f"safety stop ({limit}): {message}")
        self.limit = limit


class SafetyLayer:
    """Filters one arm's commands step by step; `reset` at every episode start."""

    def __init__(self, limits: SafetyLimits, control_hz: float, low: np.ndarray, high: np.ndarray,
                 tool_positions: Callable[[np.ndarray], np.ndarray]) -> None:
        self.limits = limits
        self.rules = CommandLimits(limits, control_hz, low, high, tool_positions, num_arms=1)
        self.low, self.high = self.rules.low, self.rules.high
        self._load_steps = 0
        self._hot_reads = 0

    @classmethod
    def for_arm(cls, limits: SafetyLimits, control_hz: float,
                calibration: dict[str, MotorCalibration] | None = None) -> SafetyLayer:
        low, high = joint_limits(calibration, limits.joint_margin)
        return cls(limits, control_hz, low, high, model_tool_positions())

    def reset(self, present: np.ndarray) -> None:
        """Start an episode from the arm's reading (after the move to the start pose): the first reference."""
        self.rules.reset(np.array([0]), np.asarray(present, float)[None])
        self._load_steps = self._hot_reads = 0

    def inside(self, command: np.ndarray) -> bool:
        return bool(self.rules.inside(np.asarray(command, float)[None])[0])

    def filter(self, target: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, list[Intervention]]:
        """The command to send for a policy's `target` (6,) when the arm reads `present` (6,)."""
        target = np.asarray(target, float)
        bad = [LEROBOT_JOINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(target))]
        if bad:
            raise SafetyStop("non_finite", f"the policy asked for {target[~np.isfinite(target)].tolist()} on "
                                           f"{', '.join(bad)}")
        log: list[list[Intervention]] = [[]]
        command = self.rules.apply(target[None], np.asarray(present, float)[None], log)
        return command[0], log[0]

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

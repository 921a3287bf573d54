"""The one place where our joint radians meet LeRobot's SO-101 units.

LeRobot's SO-101 follower (`use_degrees=True`) reports the five arm joints in degrees with zero at the
middle of the calibrated range and the gripper as 0 (closed) to 100 (open) over its calibrated range. Our
MuJoCo model is TheRobotStudio's `so101_new_calib`, whose joint zero is that same calibration middle, so the
arm joints are a plain radian-degree conversion; the gripper maps its joint range linearly onto 0-100.
"""

from __future__ import annotations

import math

import torch

from robosmith.robot.so101 import JOINT_NAMES

# Names of the six values in LeRobot's SO-101 observation.state and action vectors.
LEROBOT_JOINT_NAMES: tuple[str, ...] = tuple(f"{name}.pos" for name in JOINT_NAMES)
# The gripper joint range of so101_new_calib in rad (closed, open); tests check it against the model.
GRIPPER_RANGE: tuple[float, float] = (-0.17453298, 1.7453292)


def to_lerobot(joint_rad: torch.Tensor) -> torch.Tensor:
    """(..., 6) joint positions in rad → LeRobot units (degrees ×5, gripper 0-100)."""
    lo, hi = GRIPPER_RANGE
    arm = joint_rad[..., :5] * (180.0 / math.pi)
    gripper = (joint_rad[..., 5:] - lo) * (100.0 / (hi - lo))
    return torch.cat([arm, gripper], dim=-1)


def from_lerobot(values: torch.Tensor) -> torch.Tensor:
    """(..., 6) LeRobot units → joint positions in rad; the inverse of `to_lerobot`."""
    lo, hi = GRIPPER_RANGE
    arm = values[..., :5] * (math.pi / 180.0)
    gripper = lo + values[..., 5:] * ((hi - lo) / 100.0)
    return torch.cat([arm, gripper], dim=-1)

"""The one place where our joint radians meet LeRobot's SO-101 units.

LeRobot's SO-101 follower (`use_degrees=True`) reports the five arm joints in degrees with zero at the
middle of the calibrated range and the gripper as 0 (closed) to 100 (open) over its calibrated range. Our
MuJoCo model is TheRobotStudio's `so101_new_calib`, whose joint zero is that same calibration middle, so the
arm joints are a plain radian-degree conversion; the gripper maps its joint range linearly onto 0-100.

Older recordings (and `use_degrees=False`) hold the arm joints in range mode: -100..100 over each joint's
calibrated range. Turning those into degrees needs the arm's calibration file (`<id>.json`, as LeRobot writes
it: `id`, `drive_mode`, `homing_offset`, `range_min`, `range_max` in raw ticks per motor).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from robosmith.errors import RobosmithError
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


# ------------------------------------------------------------------------------------------ range mode
TICKS_PER_TURN = 4096  # STS3215 encoder resolution; LeRobot's degrees are (raw - middle) * 360 / 4095


class CalibrationError(RobosmithError, ValueError):
    """A calibration file that cannot be read (one line, names the file and the field)."""


@dataclass(frozen=True)
class MotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


def load_calibration(path: Path) -> dict[str, MotorCalibration]:
    """LeRobot's calibration file of an SO-101 (`~/.cache/huggingface/lerobot/calibration/robots/.../<id>.json`)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CalibrationError(f"{path}: not a readable calibration file ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise CalibrationError(f"{path}: a calibration file maps motor names to their calibration")
    out = {}
    for joint in JOINT_NAMES:
        entry = raw.get(joint)
        if not isinstance(entry, dict):
            raise CalibrationError(f"{path}: {joint}: missing; the file names {', '.join(raw) or 'no motor'}")
        for key in ("id", "drive_mode", "homing_offset", "range_min", "range_max"):
            if not isinstance(entry.get(key), int) or isinstance(entry.get(key), bool):
                raise CalibrationError(f"{path}: {joint}.{key}: must be a whole number, got {entry.get(key)!r}")
        if entry["range_max"] <= entry["range_min"]:
            raise CalibrationError(f"{path}: {joint}: range_max must be above range_min")
        out[joint] = MotorCalibration(**{k: entry[k] for k in ("id", "drive_mode", "homing_offset", "range_min",
                                                                "range_max")})
    return out


def _span_degrees(calibration: dict[str, MotorCalibration]) -> torch.Tensor:
    """Degrees covered by each arm joint's calibrated range, signed by its drive mode."""
    return torch.tensor([(c.range_max - c.range_min) * 360.0 / (TICKS_PER_TURN - 1) * (-1 if c.drive_mode else 1)
                         for c in (calibration[j] for j in JOINT_NAMES[:5])])


def range_to_degrees(values: torch.Tensor, calibration: dict[str, MotorCalibration]) -> torch.Tensor:
    """(..., 6) range-mode values (arm -100..100, gripper 0..100) → degrees mode (the gripper is the same)."""
    arm = values[..., :5] / 200.0 * _span_degrees(calibration)
    return torch.cat([arm, values[..., 5:]], dim=-1)


def degrees_to_range(values: torch.Tensor, calibration: dict[str, MotorCalibration]) -> torch.Tensor:
    """The inverse of `range_to_degrees`."""
    arm = values[..., :5] * 200.0 / _span_degrees(calibration)
    return torch.cat([arm, values[..., 5:]], dim=-1)

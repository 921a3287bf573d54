"""LeRobot's SO-101 units: range mode to degrees through the arm's calibration file, checked against LeRobot's
own Feetech bus normalization (no bus is opened: the bus object only converts)."""

from __future__ import annotations

import json

import pytest
import torch

from robosmith.robot.so101 import JOINT_NAMES
from robosmith.robot.units import CalibrationError, degrees_to_range, load_calibration, range_to_degrees

# As `lerobot-calibrate` writes it for a follower (raw ticks; wrist_roll over the full turn).
CALIBRATION = {
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1410, "range_min": 758, "range_max": 3292},
    "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": 1049, "range_min": 869, "range_max": 3325},
    "elbow_flex": {"id": 3, "drive_mode": 1, "homing_offset": 1050, "range_min": 872, "range_max": 3049},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": 1030, "range_min": 833, "range_max": 3254},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": -1430, "range_min": 0, "range_max": 4095},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 1350, "range_min": 2023, "range_max": 3429},
}


@pytest.fixture()
def calibration_file(tmp_path):
    path = tmp_path / "my_follower.json"
    path.write_text(json.dumps(CALIBRATION, indent=4))
    return path


def _lerobot_bus(norm_mode):
    from lerobot.motors import Motor, MotorCalibration, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    motors = {name: Motor(CALIBRATION[name]["id"], "sts3215",
                          MotorNormMode.RANGE_0_100 if name == "gripper" else norm_mode) for name in JOINT_NAMES}
    calibration = {name: MotorCalibration(**CALIBRATION[name]) for name in JOINT_NAMES}
    return FeetechMotorsBus(port="/dev/null", motors=motors, calibration=calibration)


def test_range_mode_becomes_the_degrees_lerobot_reports_for_the_same_ticks(calibration_file):
    from lerobot.motors import MotorNormMode

    calibration = load_calibration(calibration_file)
    degrees_bus, range_bus = _lerobot_bus(MotorNormMode.DEGREES), _lerobot_bus(MotorNormMode.RANGE_M100_100)
    for fraction in (0.1, 0.5, 0.73, 0.95):
        raw = {CALIBRATION[j]["id"]: int(CALIBRATION[j]["range_min"] + fraction * (CALIBRATION[j]["range_max"]
                                                                                    - CALIBRATION[j]["range_min"]))
               for j in JOINT_NAMES}
        in_range = torch.tensor([range_bus._normalize(raw)[CALIBRATION[j]["id"]] for j in JOINT_NAMES])
        in_degrees = torch.tensor([degrees_bus._normalize(raw)[CALIBRATION[j]["id"]] for j in JOINT_NAMES])
        torch.testing.assert_close(range_to_degrees(in_range, calibration), in_degrees, atol=1e-3, rtol=0)
        torch.testing.assert_close(degrees_to_range(in_degrees, calibration), in_range, atol=1e-3, rtol=0)


@pytest.mark.parametrize("change, field", [
    (lambda c: c.pop("wrist_flex"), "wrist_flex: missing"),
    (lambda c: c["gripper"].update(range_min="2023"), "gripper.range_min: must be a whole number"),
    (lambda c: c["elbow_flex"].update(range_max=10), "elbow_flex: range_max must be above range_min"),
])
def test_bad_calibration_files_get_one_line_naming_the_field(tmp_path, change, field):
    raw = json.loads(json.dumps(CALIBRATION))
    change(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(CalibrationError, match=f"^{path}: {field}"):
        load_calibration(path)

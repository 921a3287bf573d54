"""Timing and recovery of `robosmith gap` and `robosmith sysid` on a real-size recording made with a hidden arm.

    python scripts/sim2real_bench.py [--out DIR] [--episodes 4] [--frames 375]

Records `--episodes` lift demonstrations of `--frames` frames each at 30 fps (1500 frames by default, the
size of a short real session) with a hidden physics (half the kp, 3 control steps of lag, a few degrees of
calibration offsets), in range mode with a calibration file and without videos, as an older LeRobot would
have recorded a real arm; then times the gap report and system identification on it, and prints what sysid
recovered against what was hidden.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robosmith.bc.collect import collect
from robosmith.bc.demonstrator import DemoStyle
from robosmith.task import load_task
from robosmith.task.spec import with_robot_params

HIDDEN_ARM = {"actuator_kp": 9.0, "joint_damping": 0.8}
HIDDEN_EFFECTS = {"action_delay_steps": 3, "joint_zero_offset": (0.03, -0.04, 0.02, 0.03, -0.02, 0.0)}
CALIBRATION = {name: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 650, "range_max": 3450}
               for i, name in enumerate(["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll",
                                         "gripper"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=375)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sim2real-bench-"))
    calibration = out / "follower.json"
    out.mkdir(parents=True, exist_ok=True)
    calibration.write_text(json.dumps(CALIBRATION))
    hidden = with_robot_params(load_task("so101_lift"), {**HIDDEN_ARM, **HIDDEN_EFFECTS})
    task = dataclasses.replace(hidden, episode_length=args.frames)
    dataset = out / "recording"
    collect(task, dataset, args.episodes, style=DemoStyle(), with_images=False, progress=False,
            calibration=calibration)
    (dataset / "robosmith_collect.json").unlink()  # a real recording says nothing of how it was made
    figures = {"episodes": args.episodes, "frames": args.episodes * args.frames, "hidden": {**HIDDEN_ARM,
                                                                                              **HIDDEN_EFFECTS}}
    common = ["--units", "range", "--calibration", str(calibration)]
    for name, cmd in (
        ("gap", ["gap", str(dataset), *common, "--out", str(out / "gap")]),
        ("sysid", ["sysid", str(dataset), *common, "--out", str(out / "sysid" / "arm.yaml"), "--no-progress"]),
    ):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "robosmith.cli", *cmd], check=True, stdout=subprocess.DEVNULL)
        figures[f"{name}_s"] = round(time.monotonic() - started, 1)
    report = json.loads((out / "sysid" / "sysid.json").read_text())
    figures.update(fitted=report["params"], val_rmse_before_deg=report["val_rmse_before_deg"],
                   val_rmse_after_deg=report["val_rmse_after_deg"], trade_offs=report["trade_offs"],
                   lag_ms=json.loads((out / "gap" / "gap.json").read_text())["lag_ms"], folder=str(out))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How far the refinement on a recording brings a camera that PnP placed off (sim against sim).

A lift dataset is recorded from the scene's front camera (the hidden truth). Each trial starts the refinement
(`robosmith camera refine`) from that camera moved by --offset-m and turned by --offset-deg in a random
direction (what a board placed by hand leaves) and scores the result against the truth: the pose error, and
the error on the table plane over the workspace, which is what a cube estimate inherits.

    python scripts/camera_fit_bench.py [--trials 3] [--frames 12] [--size 320x240] [--data DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from robosmith.bc.collect import collect
from robosmith.perception.camera import nominal_camera
from robosmith.sim2real.camera_fit import fit_camera_to_dataset, perturbed, table_error_m
from robosmith.sim2real.dataset import load_dataset
from robosmith.sim2real.video_gap import ArmRenderer
from robosmith.task import load_task


def pose_error(a, b) -> tuple[float, float]:
    """(mm, deg) between two cameras' poses."""
    rel = a.rotation.T @ b.rotation
    return (1000 * float(np.linalg.norm(np.subtract(a.pos, b.pos))),
            float(np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--offset-m", type=float, default=0.01)
    parser.add_argument("--offset-deg", type=float, default=1.0)
    parser.add_argument("--episodes", type=int, default=8, help="episodes recorded (the frames spread over them)")
    parser.add_argument("--median", action="store_true", help="no background photo: the median of the frames")
    parser.add_argument("--data", type=Path, help="where the recording is kept (made there if missing)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    task = load_task("so101_lift")
    full = nominal_camera(task.scene)
    s = width / full.width
    truth = dataclasses.replace(full, width=width, height=height, fx=full.fx * s, fy=full.fy * s,
                                cx=(full.cx + 0.5) * s - 0.5, cy=(full.cy + 0.5) * s - 0.5)
    root = args.data or Path(tempfile.mkdtemp()) / "lift"
    if not (root / "meta").is_dir():
        collect(task, root, episodes=args.episodes, batch_envs=min(args.episodes, 4), seed=3, progress=False,
                image_size=(height, width))
    data = load_dataset(root, None, units="degrees")
    arm = ArmRenderer(task.scene, truth)
    background = None if args.median else arm.background()  # the photo of the scene without the arm
    arm.close()
    rng = np.random.default_rng(0)
    rows = []
    for trial in range(args.trials):
        direction = rng.normal(size=6)
        delta = np.concatenate([direction[:3] / np.linalg.norm(direction[:3]) * args.offset_m,
                                direction[3:] / np.linalg.norm(direction[3:]) * np.radians(args.offset_deg)])
        start = perturbed(truth, delta)
        t0 = time.perf_counter()
        fit = fit_camera_to_dataset(data, start, background, args.frames)
        row = {"trial": trial, "seconds": time.perf_counter() - t0, **fit.as_dict()}
        (row["pos_mm_before"], row["deg_before"]), (row["pos_mm_after"], row["deg_after"]) = (
            pose_error(start, truth), pose_error(fit.camera, truth))
        row["table_mm_before"], row["table_mm_after"] = (1000 * table_error_m(start, truth),
                                                         1000 * table_error_m(fit.camera, truth))
        rows.append(row)
        print(f"trial {trial}: pose {row['pos_mm_before']:.1f} mm {row['deg_before']:.2f} deg -> "
              f"{row['pos_mm_after']:.1f} mm {row['deg_after']:.2f} deg; on the table {row['table_mm_before']:.1f} "
              f"-> {row['table_mm_after']:.1f} mm; outline distance {fit.chamfer_px_before:.2f} -> "
              f"{fit.chamfer_px_after:.2f} px, IoU {fit.iou_before:.3f} -> {fit.iou_after:.3f}; "
              f"{fit.evaluations} evaluations, {row['seconds']:.0f} s", flush=True)
    summary = {"size": args.size, "frames": args.frames, "trials": args.trials,
               "background": "median of the frames" if args.median else "photo"}
    for key in ("pos_mm_after", "deg_after", "table_mm_before", "table_mm_after", "seconds"):
        summary[key + "_mean"] = round(float(np.mean([r[key] for r in rows])), 2)
        summary[key + "_max"] = round(float(np.max([r[key] for r in rows])), 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

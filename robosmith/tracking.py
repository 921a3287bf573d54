"""Experiment tracking with wandb: offline (files in the run folder) unless a key is set.

Set WANDB_API_KEY to sync to wandb, WANDB_MODE=disabled to switch tracking off. Tracking never decides
anything: metrics.jsonl and the run folder stay the record the code reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Tracker:
    def __init__(self, run: Any | None) -> None:
        self.run = run

    def log(self, values: dict, step: int) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in values.items() if isinstance(v, (int, float))}, step=step)

    def configure(self, config: dict) -> None:
        if self.run is not None:
            self.run.config.update(config, allow_val_change=True)

    def summarize(self, values: dict, video: Path | None = None) -> None:
        """A finished evaluation: its figures in the run's summary (under `eval/`), its video beside the curves."""
        if self.run is None:
            return
        import wandb

        self.run.summary.update({f"eval/{k}": v for k, v in values.items() if isinstance(v, (int, float))})
        if video is not None and video.is_file():
            self.run.log({"eval/video": wandb.Video(str(video), format="mp4")})

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def start_tracking(run_dir: Path, name: str, config: dict, group: str | None = None) -> Tracker:
    os.environ.setdefault("WANDB_SILENT", "true")  # no banners in the middle of our progress output
    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    if mode == "disabled":
        return Tracker(None)
    import wandb

    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "robosmith"), name=name, group=group, config=config,
        dir=str(run_dir), mode=mode, reinit="create_new",
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
    )
    return Tracker(run)

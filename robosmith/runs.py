"""Run folders: `runs/<id>/`, one per training run or agent run, holding everything needed to look back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from robosmith import RUNS_DIR


class RunError(FileNotFoundError):
    """A run folder or checkpoint that is not there (one line, names the path)."""


def new_run_dir(name: str, root: Path | None = None) -> Path:
    root = Path(root) if root else RUNS_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (f"{stamp}-{name}" if i == 0 else f"{stamp}-{name}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {root}")


def resolve_run(run: str | Path) -> Path:
    """A run given as a path, or as a folder name under runs/."""
    path = Path(run)
    if not path.is_dir() and (RUNS_DIR / str(run)).is_dir():
        path = RUNS_DIR / str(run)
    if not path.is_dir():
        raise RunError(f"{run}: no such run folder")
    if not (path / "config.json").is_file():
        raise RunError(f"{path}: not a training run (no config.json)")
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write atomically, so a killed process never leaves half a file behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl, skipping a last line cut short by a kill."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def reward_body_from(source: Path) -> str:
    """A reward body from a file, a training run (its reward.py) or an agent run (its best candidate)."""
    if source.is_file():
        return source.read_text()
    if (source / "summary.json").is_file():
        best = json.loads((source / "summary.json").read_text()).get("best")
        if not best:
            raise RunError(f"{source}/summary.json: best: the run has no trained candidate yet")
        return best["code"]
    if (source / "config.json").is_file():
        config = json.loads((source / "config.json").read_text())
        return (source / config.get("reward_file", "reward.py")).read_text()
    raise RunError(f"{source}: not a reward file, a training run or an agent run")

"""`robosmith curves`: learning curves of training runs in one picture, training success against minutes.

The figure a user looks at to choose a training budget: each run's training success (episodes that ended in
each iteration, smoothed over `SMOOTH` iterations) against wall-clock minutes, and its final evaluation as a
dot with its 95% interval where the run has an eval.json. A run trained in stages (`train.curriculum`) also
shows each earlier stage's own success, dashed, and a dotted line where it moved on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robosmith.runs import RunError, TrainingRun, read_metrics

SMOOTH = 10  # iterations in the moving average of the training success


def learning_curve(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(minutes, smoothed training success) of a run folder; a clear error when it has no metrics."""
    path = TrainingRun(run).metrics
    if not path.is_file():
        raise RunError(f"{path}: no metrics here (not a training run?)")
    rows = [r for r in read_metrics(path) if r.get("success_rate") is not None]
    if not rows:
        raise RunError(f"{path}: success_rate: no episode has ended yet")
    minutes = np.array([r["wall_s"] for r in rows]) / 60.0
    success = np.array([r["success_rate"] for r in rows], dtype=float)
    # Trailing mean over the last SMOOTH iterations (fewer at the start): the curve never looks ahead.
    total = np.concatenate([[0.0], np.cumsum(success)])
    end = np.arange(1, len(success) + 1)
    start = np.maximum(end - SMOOTH, 0)
    return minutes, (total[end] - total[start]) / (end - start)


def stage_curves(run: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, minutes, the stage's own success) of each stage before the last that a run trained in
    (`curriculum_stage` rows), in order; the last stage's success is the task's. None without a curriculum."""
    rows = [r for r in read_metrics(TrainingRun(run).metrics) if r.get("curriculum_stage") is not None]
    config = TrainingRun(run).config
    names = [s["name"] for s in json.loads(config.read_text()).get("curriculum", [])] if config.is_file() else []
    stages: dict[int, list[dict]] = {}
    for r in rows:
        if not names or r["curriculum_stage"] < len(names) - 1:
            stages.setdefault(r["curriculum_stage"], []).append(r)
    return [(names[k] if k < len(names) else f"stage {k}", np.array([r["wall_s"] for r in part]) / 60.0,
             np.array([np.nan if r["stage_success"] is None else r["stage_success"] for r in part], dtype=float))
            for k, part in sorted(stages.items())]


def plot_curves(runs: list[Path], out: Path, labels: list[str] | None = None, title: str | None = None) -> Path:
    """Write the learning curves of `runs` (and their evaluations) to `out` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or [run.name for run in runs]
    if len(labels) != len(runs):
        raise RunError(f"--label: {len(labels)} labels for {len(runs)} runs")
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for run, label, color in zip(runs, labels, plt.cm.tab10.colors, strict=False):
        minutes, success = learning_curve(run)
        name = label
        evaluation = TrainingRun(run).evaluation
        if evaluation.is_file():
            result = json.loads(evaluation.read_text())
            low, high = result["ci95"]
            rate = result["success_rate"]
            # max(0, ...): files written before wilson_interval pinned 100% to 1.0 hold 0.99999...
            ax.errorbar([minutes[-1]], [rate], yerr=[[max(0.0, rate - low)], [max(0.0, high - rate)]], fmt="o",
                        color=color, capsize=3)
            label = f"{label}: eval {rate:.0%} ({result['episodes']} episodes)"
        ax.plot(minutes, success, color=color, label=label)
        for stage, stage_minutes, stage_success in stage_curves(run):
            ax.plot(stage_minutes, stage_success, color=color, linestyle="--", linewidth=1,
                    label=f"{name}: {stage} stage's own success")
            if stage_minutes[-1] < minutes[-1]:  # it moved on
                ax.axvline(stage_minutes[-1], color=color, linestyle=":", linewidth=1)
    ax.set_xlabel("training wall-clock (min)")
    ax.set_ylabel(f"training success ({SMOOTH}-iteration mean)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "learning curves", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

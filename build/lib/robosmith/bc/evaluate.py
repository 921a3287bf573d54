"""`robosmith bc eval`: a LeRobot policy (or its finetuned version) rolled out in our simulation."""

from __future__ import annotations

import time
from pathlib import Path

from robosmith.bc.policy import ResidualPolicy, load
from robosmith.runs import TrainingRun, write_json
from robosmith.task import TaskSpec
from robosmith.train.evaluate import evaluate
from robosmith.train.policy import PolicyError


def evaluate_bc(
    checkpoint: Path,
    task: TaskSpec,
    out_dir: Path,
    episodes: int = 100,
    seed: int = 12345,
    video_episodes: int = 4,
    progress: bool = True,
) -> dict:
    """Success rate with a 95% CI over `episodes` fresh episodes; writes eval.json and eval.mp4 to out_dir."""
    started = time.monotonic()
    policy = load(checkpoint, task)
    if policy is None:
        raise PolicyError(f"{checkpoint}: no LeRobot policy here (looked for config.json and model.safetensors)")
    result = evaluate(policy, task, out_dir, episodes, seed, video_episodes, progress)
    result.update(
        policy=str(checkpoint),
        kind="bc+residual" if isinstance(policy, ResidualPolicy) else "bc",
        seed=seed,
        wall_s=round(time.monotonic() - started, 1),
    )
    write_json(TrainingRun(out_dir).evaluation, result)
    return result

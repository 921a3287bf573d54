"""`robosmith bc eval`: a LeRobot policy (or its finetuned version) rolled out in our simulation."""

from __future__ import annotations

import time
from pathlib import Path

from robosmith.bc.policy import ResidualPolicy, load
from robosmith.bc.straying import StrayMeter, demonstration_figures
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
    demonstrations: Path | None = None,
    temporal_ensemble: float | None = None,
) -> dict:
    """Success rate with a 95% CI over `episodes` fresh episodes; writes eval.json and eval.mp4 to out_dir.

    eval.json's "straying" says how far the policy strays from its demonstrations (robosmith.bc.straying): the
    finetuned policy's actions against its BC policy's, the tool's path against the demonstrations' (the
    dataset named, else the one the BC policy was trained on where its folder says). `temporal_ensemble`: ACT's
    chunks ensembled with this coefficient (robosmith.bc.policy.LeRobotPolicy).
    """
    started = time.monotonic()
    policy = load(checkpoint, task, temporal_ensemble)
    if policy is None:
        raise PolicyError(f"{checkpoint}: no LeRobot policy here (looked for config.json and model.safetensors)")
    meter = StrayMeter(policy)
    result = evaluate(meter, task, out_dir, episodes, seed, video_episodes, progress, on_step=meter.record_step)
    result.update(
        policy=str(checkpoint),
        kind="bc+residual" if isinstance(policy, ResidualPolicy) else "bc",
        seed=seed,
        temporal_ensemble=(policy.base if isinstance(policy, ResidualPolicy) else policy).temporal_ensemble,
        wall_s=round(time.monotonic() - started, 1),
        straying=meter.figures(task.action_scale, demonstration_figures(checkpoint, demonstrations)),
    )
    write_json(TrainingRun(out_dir).evaluation, result)
    return result

"""`robosmith bc eval`: a LeRobot policy (or its finetuned version) rolled out in our simulation."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from robosmith.bc.policy import ResidualPolicy, load_policy
from robosmith.reward import compile_reward
from robosmith.runs import write_json
from robosmith.task import TaskSpec
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import evaluate_policy


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
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)  # diffusion policies sample noise
    policy = load_policy(checkpoint, task)
    # The reward only feeds the return in the figures; success is the task's own check.
    env = TaskEnv(task, compile_reward(task.reference_reward_body()), episodes, seed=seed, auto_reset=False)
    policy.reset()
    try:
        result = evaluate_policy(env, policy.act, out_dir, video_episodes, progress)
    finally:
        policy.close()
    result.update(
        policy=str(checkpoint),
        kind="bc+residual" if isinstance(policy, ResidualPolicy) else "bc",
        seed=seed,
        wall_s=round(time.monotonic() - started, 1),
    )
    write_json(out_dir / "eval.json", result)
    return result

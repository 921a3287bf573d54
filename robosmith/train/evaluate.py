"""Evaluation: success rate over N episodes with a confidence interval, and a video of a few of them."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from robosmith.reward import RewardFn, compile_reward
from robosmith.runs import RunError, write_json
from robosmith.sim.render import SceneRenderer, write_video
from robosmith.train.env import TaskEnv
from robosmith.train.ppo import build_actor, load_run


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate; sound near 0% and 100%, unlike the normal approximation."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def evaluate_run(
    run_dir: Path,
    episodes: int = 100,
    video_episodes: int = 4,
    seed: int = 12345,
    progress: bool = True,
    reward_loader: Callable[[str], RewardFn] = compile_reward,
    threads: int = 0,
) -> dict:
    """Roll the run's deterministic policy out for `episodes` fresh episodes; writes eval.json and eval.mp4."""
    if (run_dir / "residual.json").is_file():  # robosmith.bc's finetune folders: a residual needs its BC policy
        raise RunError(f"{run_dir}: a finetuned BC policy; evaluate it with `robosmith bc eval`")
    task, reward_body, cfg, checkpoint = load_run(run_dir)
    env = TaskEnv(task, reward_loader(reward_body), episodes, seed=seed, auto_reset=False, nthread=threads)
    actor = build_actor(env.get_observations(), env.num_actions, cfg, checkpoint["actor_state_dict"])
    result = evaluate_policy(env, lambda e: actor(e.get_observations()), run_dir, video_episodes, progress)
    result.update(iteration=checkpoint["iteration"], env_steps=checkpoint["env_steps"], seed=seed)
    write_json(run_dir / "eval.json", result)
    return result


def evaluate_policy(
    env: TaskEnv,
    act: Callable[[TaskEnv], torch.Tensor],
    out_dir: Path,
    video_episodes: int = 4,
    progress: bool = True,
) -> dict:
    """Every environment of `env` (made with auto_reset=False) plays one episode with `act`; success with CI.

    Writes out_dir/eval.mp4 with the first `video_episodes` episodes one after another; returns the figures
    (the caller adds what it knows about the policy and writes eval.json).
    """
    task, episodes = env.task, env.num_envs
    shown = min(video_episodes, episodes)
    renderer = SceneRenderer(task.scene) if shown else None
    frames: list[list[np.ndarray]] = [[] for _ in range(shown)]

    def snap() -> None:
        goal = env.state.goal_pos
        for i in range(shown):
            g = None if goal is None else goal[i].numpy()
            frames[i].append(renderer.render(env.sim.qpos_of(i), g))

    if renderer:
        snap()
    with torch.inference_mode():
        for _ in tqdm(range(task.episode_length), desc=f"eval {task.name}", unit="step", disable=not progress):
            env.step(act(env))
            if renderer:
                snap()
    stats = env.pop_stats()
    env.close()
    successes = int(sum(stats.successes))
    low, high = wilson_interval(successes, episodes)
    result = {
        "task": task.name,
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "ci95": [low, high],
        "unstable_episodes": stats.unstable_resets,
        "mean_return": float(np.mean(stats.returns)) if stats.returns else None,
    }
    if renderer:
        renderer.close()
        video = write_video([f for ep in frames for f in ep], out_dir / "eval.mp4", fps=task.control_hz)
        result["video"] = video.name
    return result

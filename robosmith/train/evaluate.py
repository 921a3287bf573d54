"""Evaluation: success rate over N episodes with a confidence interval, and a video of a few of them.

Any policy of the interface (RL, BC, BC+RL) is evaluated the same way: every environment plays one episode
from a fresh initial state, the policy acting on the observations it declared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from robosmith.contract.metrics import eval_result, wilson_interval
from robosmith.reward.load import load_reward
from robosmith.runs import RunError, TrainingRun, write_json
from robosmith.sim.render import SceneRenderer, write_video
from robosmith.task.spec import TaskSpec, with_robot_params
from robosmith.train.env import TaskEnv
from robosmith.train.policy import Observation, Policy, PolicySpec, RLPolicy, load_policy

Observer = Callable[[TaskEnv, PolicySpec], Observation]

__all__ = ["evaluate", "evaluate_policy", "evaluate_run", "play_episodes", "wilson_interval"]


def evaluate_run(run_dir: Path, episodes: int = 100, video_episodes: int = 4, seed: int = 12345,
                 progress: bool = True, threads: int = 0, robot_params: dict | None = None) -> dict:
    """Roll the run's deterministic policy out for `episodes` fresh episodes; writes eval.json and eval.mp4.
    `robot_params` (registry name -> value) evaluates on that arm instead of the one the run trained on."""
    if TrainingRun(run_dir).residual.is_file():  # a finetune folder: the residual needs its BC policy
        raise RunError(f"{run_dir}: a finetuned BC policy; evaluate it with `robosmith bc eval`")
    policy = RLPolicy(run_dir)
    task = with_robot_params(policy.task, robot_params) if robot_params else policy.task
    result = evaluate(policy, task, run_dir, episodes, seed, video_episodes, progress, threads,
                      reward_body=policy.reward_body)
    result.update(iteration=policy.iteration, env_steps=policy.env_steps, seed=seed)
    if robot_params:
        result["robot_params"] = robot_params
    write_json(TrainingRun(run_dir).evaluation, result)
    return result


def evaluate(policy: Policy, task: TaskSpec, out_dir: Path, episodes: int = 100, seed: int = 12345,
             video_episodes: int = 4, progress: bool = True, threads: int = 0, reward_body: str | None = None,
             observe: Observer | None = None, on_step: Callable[[TaskEnv], None] | None = None) -> dict:
    """Success of `policy` on `task` over `episodes` fresh episodes, eval.mp4 in out_dir; the figures.

    The reward (the policy's own, else the task's reference) only feeds the mean return; success is the task's
    own check. `observe` replaces the environment's observations (e.g. objects seen by a camera); `on_step(env)`
    runs after every control step (e.g. to record the tool's path).
    """
    torch.manual_seed(seed)  # policies that sample (diffusion) draw the same noise for the same seed
    env = TaskEnv(task, load_reward(reward_body or task.reference_reward_body()), episodes, seed=seed,
                  auto_reset=False, nthread=threads)
    try:
        return evaluate_policy(env, policy, out_dir, video_episodes, progress, observe, on_step)
    finally:
        policy.close()


def evaluate_path(path: Path, task: TaskSpec, out_dir: Path, **kwargs) -> dict:
    """Evaluate whatever policy is stored at `path` (see `load_policy`)."""
    return evaluate(load_policy(path, task), task, out_dir, **kwargs)


def evaluate_policy(env: TaskEnv, policy: Policy, out_dir: Path, video_episodes: int = 4,
                    progress: bool = True, observe: Observer | None = None,
                    on_step: Callable[[TaskEnv], None] | None = None) -> dict:
    """Every environment of `env` (made with auto_reset=False) plays one episode with `policy`; success with CI.

    Writes out_dir/eval.mp4 with the first `video_episodes` episodes one after another; returns the figures
    (the caller adds what it knows about the policy and writes eval.json).
    """
    task, episodes = env.task, env.num_envs
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = min(video_episodes, episodes)
    renderer = SceneRenderer(task.scene) if shown else None
    frames: list[list[np.ndarray]] = [[] for _ in range(shown)]

    def snap() -> None:
        goal = env.state.goal_pos
        for i in range(shown):
            g = None if goal is None else goal[i].numpy()
            frames[i].append(renderer.render(env.sim.qpos_of(i), g))

    def record() -> None:  # the start of the episodes, then every control step
        if renderer:
            snap()
        if on_step is not None:
            on_step(env)

    record()
    play_episodes(env, policy, progress, record, observe)
    recorder = env.recorder
    env.close()
    episodes_ended = int(recorder.episodes)
    result = eval_result(task.name, episodes, int(recorder.successes), int(recorder.unstable),
                         float(recorder.return_sum) / episodes_ended if episodes_ended else None)
    if renderer:
        renderer.close()
        video = write_video([f for ep in frames for f in ep], TrainingRun(out_dir).video, fps=task.control_hz)
        result["video"] = video.name
    return result


def play_episodes(env: TaskEnv, policy: Policy, progress: bool = True, on_step: Callable[[], None] | None = None,
                  observe: Observer | None = None) -> torch.Tensor:
    """Every environment of `env` (made with auto_reset=False) plays one episode with `policy`; returns each
    environment's outcome (1 success, 0 failure, -1 not ended). `on_step` runs after every control step;
    `observe(env, spec)`, where given, makes the observations instead of `env.observation(spec)`."""
    observe = observe or (lambda e, spec: e.observation(spec))
    env.recorder.keep_outcomes = True
    policy.reset()
    with torch.inference_mode():
        for _ in tqdm(range(env.task.episode_length), desc=f"eval {env.task.name}", unit="step", disable=not progress):
            env.step(policy.act(observe(env, policy.spec)))
            if on_step is not None:
                on_step()
    return env.recorder.outcomes.clone()

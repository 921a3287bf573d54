"""Throughput of the batched environment against raw MuJoCo stepping of the same compiled model.

One "env step" is one control period of one environment (`substeps` physics steps). The raw baselines
step the very model `TaskEnv` steps, at the same substeps, with nothing else: no sensors read back into
torch, no observations, no reward, no resets. Measurements alternate and the best of each is kept, so the
ratio is taken under the same load.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import mujoco
import mujoco.rollout
import numpy as np
import torch

from robosmith.contract.reward_call import call_reward
from robosmith.reward.load import load_reward
from robosmith.sim.batched_env import STATE_SPEC
from robosmith.task import TaskSpec
from robosmith.train.env import TaskEnv


def machine() -> str:
    """The CPU a figure was measured on, as the results table names it."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def run_bench(
    task: TaskSpec, num_envs: int = 256, control_steps: int = 100, repeats: int = 5, randomize: bool = False
) -> dict:
    torch.set_num_threads(1)
    env = TaskEnv(task, load_reward(task.reference_reward_body()), num_envs, seed=0)
    model, substeps, nthread = env.sim.model, env.sim.substeps, env.sim.nthread
    gen = torch.Generator().manual_seed(0)
    actions = [torch.rand(num_envs, 6, generator=gen) * 2 - 1 for _ in range(control_steps)]

    state0 = env.sim._state.copy()
    targets = np.zeros((num_envs, control_steps, model.nu))

    def batched() -> float:
        env.sim.reset(np.arange(num_envs))
        env.sim._state[:] = state0
        t = time.perf_counter()
        for i, a in enumerate(actions):
            env.step(a)  # returns the observations the policy reads next, as rsl-rl's runner takes them
            targets[:, i] = env.sim.target
        return num_envs * control_steps / (time.perf_counter() - t)

    # Raw: the same initial states and the same joint targets (so the same motions and contacts), all physics
    # steps in one native rollout call.
    datas = [mujoco.MjData(model) for _ in range(nthread)]
    pool = mujoco.rollout.Rollout(nthread=nthread)
    batched()
    ctrl = np.repeat(targets, substeps, axis=1)

    def raw_rollout() -> float:
        t = time.perf_counter()
        pool.rollout([model] * num_envs, datas, state0, control=ctrl, nstep=substeps * control_steps, skip_checks=True)
        return num_envs * control_steps / (time.perf_counter() - t)

    def raw_mj_step() -> float:
        # Single-threaded mj_step over a few environments, Python loop: the naive way.
        d = mujoco.MjData(model)
        k = max(1, num_envs // 16)
        t = time.perf_counter()
        for _ in range(k):
            mujoco.mj_setState(model, d, state0[0], STATE_SPEC)
            for i in range(substeps * control_steps):
                d.ctrl[:] = ctrl[0, i]
                mujoco.mj_step(model, d)
        return k * control_steps / (time.perf_counter() - t)

    # The reward's guard (a copy of the state, version counters, the output check) against calling it bare, on
    # the same state: its cost per control step, as a fraction of a guarded env step.
    reward_fn, state = env.reward_fn, env.state

    def reward_calls(call) -> float:
        t = time.perf_counter()
        for _ in range(control_steps):
            call()
        return (time.perf_counter() - t) / control_steps

    best = {"batched": 0.0, "raw_rollout": 0.0, "raw_mj_step_1thread": 0.0}
    guard_s = float("inf")
    for _ in range(repeats):
        best["batched"] = max(best["batched"], batched())
        best["raw_rollout"] = max(best["raw_rollout"], raw_rollout())
        best["raw_mj_step_1thread"] = max(best["raw_mj_step_1thread"], raw_mj_step())
        guarded = reward_calls(lambda: call_reward(reward_fn, state))
        guard_s = min(guard_s, guarded - reward_calls(lambda: reward_fn(state)))
    pool.close()
    env.close()
    step_s = num_envs / best["batched"]
    out = {
        "task": task.name,
        "num_envs": num_envs,
        "substeps": substeps,
        "timestep_s": model.opt.timestep,
        "threads": nthread,
        "batched_env_steps_per_s": round(best["batched"]),
        "raw_rollout_env_steps_per_s": round(best["raw_rollout"]),
        "raw_mj_step_1thread_env_steps_per_s": round(best["raw_mj_step_1thread"]),
        "ratio_batched_to_raw_rollout": round(best["batched"] / best["raw_rollout"], 3),
        "reward_guard_us_per_step": round(1e6 * max(guard_s, 0.0), 1),
        "reward_guard_fraction_of_step": round(max(guard_s, 0.0) / step_s, 4),
        "machine": machine(),
        "mujoco": mujoco.__version__,
    }
    if randomize:
        out.update(randomization_bench(task, num_envs, repeats))
    return out


def randomization_bench(task: TaskSpec, num_envs: int, repeats: int = 3) -> dict:
    """Env steps/s over two whole episodes (so every environment resets and draws its world) with the task's
    domain randomization against without, alternating, best of each."""
    envs = {randomize: TaskEnv(task, load_reward(task.reference_reward_body()), num_envs, seed=0, randomize=randomize)
            for randomize in (False, True)}
    gen = torch.Generator().manual_seed(1)
    actions = [torch.rand(num_envs, 6, generator=gen) * 2 - 1 for _ in range(2 * task.episode_length)]

    def episodes(env: TaskEnv) -> float:
        t = time.perf_counter()
        env.sim.reset(np.arange(num_envs))
        for a in actions:
            env.step(a)
        return num_envs * len(actions) / (time.perf_counter() - t)

    best = {False: 0.0, True: 0.0}
    for _ in range(repeats):
        for randomize, env in envs.items():
            best[randomize] = max(best[randomize], episodes(env))
    for env in envs.values():
        env.close()
    return {
        "randomized_parameters": [p.name for p in task.domain_randomization],
        "nominal_env_steps_per_s_with_resets": round(best[False]),
        "randomized_env_steps_per_s_with_resets": round(best[True]),
        "ratio_randomized_to_nominal": round(best[True] / best[False], 3),
    }


def training_bench(
    task: TaskSpec, backend: str, num_envs: int, minutes: float, out_dir: Path, engine_python: str | None = None,
    eval_episodes: int = 100,
) -> dict:
    """Train the task's reference reward on a backend for `minutes`: throughput and time to the success target.

    env steps/s is the median over iterations after the first three (the engines compile kernels and warm up
    caches first); the time to target is the wall-clock time of the first iteration whose finished episodes
    reached the task's success target (training statistics, exploration noise included), then the policy is
    evaluated on fresh episodes.
    """
    from robosmith.engines.export import ExportOptions, export_package
    from robosmith.engines.launch import engine_command, isaaclab_version, train_package
    from robosmith.runs import TrainingRun, read_metrics
    from robosmith.train.evaluate import evaluate_run
    from robosmith.train.ppo import TrainSettings, train

    body = task.reference_reward_body()
    # Nominal worlds on every backend (exports do not randomize unless asked): the same task everywhere.
    settings = TrainSettings.from_task(task, num_envs=num_envs, max_minutes=minutes, max_iterations=1_000_000,
                                       eval_episodes=eval_episodes, randomize=False)
    run_dir = Path(out_dir) / backend
    started = time.monotonic()
    if backend == "cpu":
        train(task, body, run_dir, settings, progress=False)
        evaluation = evaluate_run(run_dir, episodes=eval_episodes, video_episodes=0, progress=False)
        device = machine()
    else:
        command = engine_command(backend, engine_python)
        version = isaaclab_version(command) if backend == "isaaclab" else "3.0"
        package = export_package(task, body, run_dir, ExportOptions(backend, version))
        with TrainingRun(run_dir).train_log.open("w") as log:
            _, evaluation = train_package(command, package, run_dir, num_envs, settings.max_iterations, minutes,
                                          eval_episodes, 0, settings.seed, log=log)
        device = evaluation.get("device", backend)
    rows = read_metrics(TrainingRun(run_dir).metrics)
    steady = rows[3:] or rows
    reached = next((r for r in rows if (r.get("success_rate") or 0.0) >= task.success_target), None)
    return {
        "task": task.name,
        "backend": backend,
        "device": device,
        "num_envs": num_envs,
        "iterations": len(rows),
        "env_steps": rows[-1]["env_steps"] if rows else 0,
        "env_steps_per_s": round(float(np.median([r["env_steps_per_s"] for r in steady]))) if rows else 0,
        "success_target": task.success_target,
        "time_to_target_s": reached["wall_s"] if reached else None,
        "env_steps_to_target": reached["env_steps"] if reached else None,
        "eval_success_rate": evaluation["success_rate"],
        "eval_ci95": evaluation["ci95"],
        "wall_s": round(time.monotonic() - started, 1),
    }

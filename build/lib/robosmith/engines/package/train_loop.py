"""robosmith's training loop around the engine's rsl-rl runner: time limit, metrics.jsonl, checkpoints, eval.json.

The engine's own `OnPolicyRunner` does the PPO; this loop asks it for one iteration at a time so that a run
stops on its time limit, writes one metrics row per iteration (robosmith's contract) and saves an atomic
checkpoint every minute, so a killed run keeps what it learned. Rows and eval.json are built by the contract's
code, the same as robosmith's CPU trainer. Copied verbatim by robosmith into every exported package.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .contract.io import CHECKPOINT_FILE, EVAL_FILE, EVAL_STATES_FILE, METRICS_FILE, write_json
from .contract.metrics import EpisodeRecorder, eval_result, metrics_row
from .task_info import TASK

CHECKPOINT_EVERY_S = 60.0


def _action_std(runner) -> float | None:
    policy = runner.alg.get_policy() if hasattr(runner.alg, "get_policy") else getattr(runner.alg, "policy", None)
    for name in ("output_std", "action_std"):
        std = getattr(policy, name, None)
        if isinstance(std, torch.Tensor):
            return float(std.detach().mean())
    return None


def _save(runner, run_dir: Path) -> None:
    path = run_dir / CHECKPOINT_FILE
    tmp = path.with_suffix(".tmp")
    runner.save(str(tmp))
    os.replace(tmp, path)


def train_and_evaluate(
    env, recorder: EpisodeRecorder, state_of: Callable, make_runner: Callable, args, backend: str
) -> dict:
    """Train on `env` (an rsl-rl VecEnv) for args.max_iterations or args.max_minutes, then evaluate."""
    run_dir = Path(args.run_dir)
    (run_dir / CHECKPOINT_FILE).parent.mkdir(parents=True, exist_ok=True)
    runner = make_runner(env, args.device)
    losses: dict = {}
    learn_s = [0.0]
    update = runner.alg.update

    def update_and_keep_losses():
        started = time.monotonic()
        out = update()
        learn_s[0] = time.monotonic() - started
        losses.clear()
        losses.update(out if isinstance(out, dict) else {})
        return out

    runner.alg.update = update_and_keep_losses

    started = time.monotonic()
    deadline = started + 60.0 * args.max_minutes
    last_checkpoint, total_steps, row = started, 0, {}
    with (run_dir / METRICS_FILE).open("a") as metrics:
        for iteration in range(args.max_iterations):
            t0 = time.monotonic()
            # Staggered episode starts on the first iteration keep resets spread over every iteration.
            runner.learn(num_learning_iterations=1, init_at_random_ep_len=iteration == 0)
            t1 = time.monotonic()
            stats = recorder.summary()
            recorder.clear()
            steps = env.num_envs * TASK["steps_per_iteration"]
            total_steps += steps
            row = metrics_row(iteration, total_steps, t1 - started, steps, t1 - t0 - learn_s[0], learn_s[0], stats,
                              _action_std(runner), losses, backend=backend)
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            now = time.monotonic()
            done = now >= deadline or iteration == args.max_iterations - 1
            if now - last_checkpoint >= CHECKPOINT_EVERY_S or done:
                _save(runner, run_dir)
                last_checkpoint = now
            if done:
                break
    result = evaluate(env, recorder, state_of, runner, args)
    result.update(iteration=row.get("iteration"), env_steps=total_steps, backend=backend)
    write_json(run_dir / EVAL_FILE, result)
    return result


def evaluate(env, recorder: EpisodeRecorder, state_of: Callable, runner, args) -> dict:
    """args.eval_episodes fresh episodes of the deterministic policy, in rounds of env.num_envs.

    The first round's first args.video_episodes episodes are kept as states (eval_states.npz: joint angles,
    cube pose, goal) that robosmith renders into eval.mp4 with the same cameras as its CPU backend.
    """
    policy = runner.get_inference_policy(device=args.device)
    outcomes, frames = [], []
    return_sum, ended = 0.0, 0
    shown = min(args.video_episodes, env.num_envs)
    rounds = math.ceil(args.eval_episodes / env.num_envs)
    with torch.inference_mode():
        for round_ in range(rounds):
            env.unwrapped.reset()
            recorder.clear()
            recorder.returns.zero_()
            recorder.outcomes.fill_(-1)
            recorder.keep_outcomes = True
            obs = env.get_observations()
            # Frames from the first state to the one before the last step: the engine resets finished
            # environments inside its step, so the very last state is never seen here.
            for _ in range(TASK["episode_length"]):
                if round_ == 0 and shown:
                    frames.append(_frame(state_of(env.unwrapped), shown))
                obs, _, _, _ = env.step(policy(obs))
            outcomes.append(recorder.outcomes.clone())
            return_sum += float(recorder.return_sum)
            ended += int(recorder.episodes)
    recorder.keep_outcomes = False
    if frames:
        stacked = {k: np.stack([f[k] for f in frames], axis=1) for k in frames[0]}  # (episode, step, ...)
        np.savez_compressed(Path(args.run_dir) / EVAL_STATES_FILE, **stacked)
    outcome = torch.cat(outcomes)[: args.eval_episodes]
    episodes = int((outcome >= 0).sum())
    result = eval_result(TASK["name"], episodes, int((outcome == 1).sum()), 0, return_sum / max(ended, 1))
    result.update(seed=args.seed, device=torch.cuda.get_device_name(args.device)
                  if str(args.device).startswith("cuda") else "cpu")
    return result


def _frame(s, shown: int) -> dict:
    """What rendering one step needs, for the first `shown` environments, as numpy arrays."""
    out = {"joint_pos": s.joint_pos[:shown]}
    for name in ("object_pos", "object_quat", "goal_pos"):
        if getattr(s, name) is not None:
            out[name] = getattr(s, name)[:shown]
    return {k: v.detach().float().cpu().numpy() for k, v in out.items()}


def add_arguments(parser) -> None:
    parser.add_argument("--run-dir", required=True, help="where metrics.jsonl, checkpoints/ and eval.json go")
    parser.add_argument("--num-envs", type=int, default=TASK["num_envs"])
    parser.add_argument("--max-iterations", type=int, default=TASK["max_iterations"])
    parser.add_argument("--max-minutes", type=float, default=TASK["max_minutes"])
    parser.add_argument("--eval-episodes", type=int, default=TASK["eval_episodes"])
    parser.add_argument("--seed", type=int, default=TASK["seed"])
    parser.add_argument("--video-episodes", type=int, default=2, help="evaluation episodes kept for eval.mp4")
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")

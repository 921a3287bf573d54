"""PPO training of one reward on one task, with rsl-rl's PPO, in a loop you can read top to bottom.

We drive rsl-rl's `PPO` ourselves rather than through its `OnPolicyRunner` so that a run stops on a time
limit, writes metrics.jsonl as it goes (the agent reads that file, never stdout), and shows a progress bar.
A run folder (robosmith.runs.TrainingRun) holds: config.json, reward.py, metrics.jsonl, checkpoints/, eval.json,
eval.mp4.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rsl_rl.algorithms import PPO
from rsl_rl.env import VecEnv
from rsl_rl.models import MLPModel
from tensordict import TensorDict
from tqdm import tqdm

from robosmith.contract.metrics import metrics_row
from robosmith.errors import ConfigError
from robosmith.reward.load import RewardFn, load_reward
from robosmith.runs import RunError, TrainingRun, write_json
from robosmith.task import TaskSpec, task_from_dict
from robosmith.tracking import Tracker, start_tracking
from robosmith.train.curriculum import Curriculum
from robosmith.train.env import TaskEnv
from robosmith.train.widening import Widening

CHECKPOINT_EVERY_S = 60.0
ALGOS = ("ppo", "sac")


@dataclass
class TrainSettings:
    """What one training run does; defaults come from the task's `train` section."""

    num_envs: int
    steps_per_iteration: int
    max_iterations: int
    max_minutes: float
    seed: int
    eval_episodes: int
    video_episodes: int = 4
    # Sample the task's domain_randomization per environment at every reset (`robosmith train` does by default;
    # settings saved before randomization existed mean the nominal world).
    randomize: bool = False
    algo: str = "ppo"  # or "sac" (robosmith.train.sac): the same run folder, metrics, checkpoints and policy

    @staticmethod
    def from_task(task: TaskSpec, **overrides: float | int | str | None) -> TrainSettings:
        t = task.train.for_world(bool(overrides.get("randomize")))
        algo = overrides.pop("algo", None) or "ppo"
        if algo not in ALGOS:
            raise ConfigError(f"algo {algo!r}: one of {', '.join(ALGOS)}")
        settings = TrainSettings(
            num_envs=t.sac.num_envs if algo == "sac" else t.num_envs,
            steps_per_iteration=t.steps_per_iteration,
            max_iterations=t.max_iterations,
            max_minutes=t.max_minutes,
            seed=t.seed,
            eval_episodes=t.eval_episodes,
            algo=algo,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, type(getattr(settings, key))(value))
        for key in ("num_envs", "steps_per_iteration", "max_iterations", "eval_episodes"):
            if getattr(settings, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(settings, key)}")
        if settings.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be > 0, got {settings.max_minutes}")
        return settings


def rsl_config(task: TaskSpec, steps_per_iteration: int) -> dict:
    """The configuration dict rsl-rl's PPO.construct_algorithm expects."""
    t = task.train
    model = {
        "class_name": "MLPModel",
        "hidden_dims": list(t.hidden_dims),
        "activation": "elu",
        "obs_normalization": True,
    }
    return {
        "algorithm": {"class_name": "PPO", **dataclasses.asdict(t.ppo)},
        "actor": {
            **model,
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": t.init_noise_std},
        },
        "critic": dict(model),
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "num_steps_per_env": steps_per_iteration,
        "multi_gpu": None,
    }


def build_ppo(env: TaskEnv, cfg: dict) -> PPO:
    with contextlib.redirect_stdout(io.StringIO()):  # rsl-rl prints the networks; the run folder has the config
        return PPO.construct_algorithm(env.get_observations(), env, cfg, "cpu")


def build_actor(obs: TensorDict, num_actions: int, cfg: dict, state_dict: dict) -> MLPModel:
    """The trained policy network alone, for evaluation and export; `obs` gives the input sizes."""
    actor_cfg = {k: v for k, v in cfg["actor"].items() if k != "class_name"}
    actor = MLPModel(obs, cfg["obs_groups"], "actor", num_actions, **actor_cfg)
    actor.load_state_dict(state_dict)
    return actor.eval()


def train(
    task: TaskSpec,
    reward_body: str,
    run_dir: Path,
    settings: TrainSettings,
    progress: bool = True,
    reward_loader: Callable[[str], RewardFn] = load_reward,
    threads: int | None = None,
    tracking_group: str | None = None,
    make_env: Callable[[TaskEnv], VecEnv] | None = None,
    stagger: bool = True,
    init_policy: Callable[[PPO], None] | None = None,
    tracker: Tracker | None = None,
) -> dict:
    """Train a policy for `task` with `reward_body`; returns the final metrics row. `settings.algo` "sac" trains
    with SAC instead (robosmith.train.sac), into the same kind of run folder.

    `reward_loader` turns the body into a function (the one checked loader unless a test says otherwise).
    `make_env` wraps the task's environment (finetuning a BC policy trains a residual on top of it);
    `stagger=False` keeps all episodes in lockstep instead of spreading their starts (a BC policy's action
    queue is shared by all environments). `init_policy` may change the freshly built networks. `tracker`: an
    experiment-tracking run the caller opened (and finishes, after logging the evaluation to it); else one of
    its own, in `tracking_group`.
    """
    if settings.algo == "sac":
        if make_env is not None or init_policy is not None:
            raise ConfigError("a residual on a BC policy trains with PPO only")
        from robosmith.train.sac import train_sac

        return train_sac(task, reward_body, run_dir, settings, progress, reward_loader, threads, tracking_group,
                         stagger, tracker)
    cfg = rsl_config(task, settings.steps_per_iteration)
    config, env = start_run(task, reward_body, run_dir, settings, {"rsl_rl": cfg}, reward_loader, threads, stagger)
    if make_env is not None:
        env = make_env(env)
    ppo = build_ppo(env, cfg)
    if init_policy is not None:
        init_policy(ppo)
    ppo.train_mode()

    total_steps = 0
    row: dict = {}
    obs = env.get_observations()
    with IterationLog(run_dir, task, reward_body, settings, config, tracking_group, progress, "", tracker) as log:
        started = log.started
        for iteration in range(settings.max_iterations):
            t0 = time.monotonic()
            with torch.inference_mode():
                for _ in range(settings.steps_per_iteration):
                    actions = ppo.act(obs)
                    obs, rewards, dones, extras = env.step(actions)
                    ppo.process_env_step(obs, rewards, dones, extras)
                ppo.compute_returns(obs)
            t1 = time.monotonic()
            losses = ppo.update()
            t2 = time.monotonic()

            steps, summary = env.pop_stats()
            total_steps += steps
            row = metrics_row(iteration, total_steps, t2 - started, steps, t1 - t0, t2 - t1, summary,
                              float(ppo.get_policy().output_std.detach().mean()), losses)
            if log.record(row, functools.partial(save_checkpoint, run_dir, ppo, cfg)):
                break
    env.close()
    return row


def start_run(task: TaskSpec, reward_body: str, run_dir: Path, settings: TrainSettings, algorithm: dict,
              reward_loader: Callable[[str], RewardFn], threads: int | None, stagger: bool) -> tuple[dict, TaskEnv]:
    """What every trainer does first: threads and seed, the run folder (reward.py; config.json with the task, the
    settings and `algorithm`, the algorithm's own configuration under its name), the environments."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(settings.seed)
    run = TrainingRun(run_dir)
    run.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    run.reward.write_text(reward_body)
    config = {
        "task": task.to_dict(), "settings": dataclasses.asdict(settings), **algorithm,
        "reward_file": TrainingRun.reward,
        # The ranges this run sampled (none: the nominal world only).
        "randomization": [p.as_dict() for p in task.domain_randomization] if settings.randomize else [],
    }
    curriculum = Curriculum.for_run(task, reward_body)
    config["curriculum"] = curriculum.as_config() if curriculum else []  # the stages this run trained in
    widening = Widening.for_run(task, settings.randomize)
    config["widening"] = widening.as_config() if widening else None  # None: the whole ranges from the start
    write_json(run.config, config)
    env = TaskEnv(task, reward_loader(reward_body), settings.num_envs, seed=settings.seed, nthread=threads,
                  randomize=settings.randomize, curriculum=curriculum, widening=widening)
    if stagger:
        # Staggered episode starts keep resets (and success statistics) spread over every iteration.
        env.episode_length_buf = torch.randint(0, task.episode_length, (settings.num_envs,), generator=env.noise_gen)
    return config, env


class IterationLog:
    """What every trainer does after an iteration: the metrics row into metrics.jsonl and the tracker, the
    progress bar, a checkpoint every minute, at the last iteration and when time is up (then `record` says stop)."""

    def __init__(self, run_dir: Path, task: TaskSpec, reward_body: str, settings: TrainSettings, config: dict,
                 tracking_group: str | None, progress: bool, label: str, tracker: Tracker | None = None) -> None:
        self.run, self.max_iterations = TrainingRun(run_dir), settings.max_iterations
        tracked = {"task": task.name, **config, "reward_code": reward_body}
        self.own_tracker = tracker is None
        if tracker is None:
            tracker = start_tracking(run_dir, f"{task.name}/{run_dir.name}", tracked, tracking_group)
        else:
            tracker.configure(tracked)
        self.tracker = tracker
        self.bar = tqdm(total=settings.max_iterations, desc=f"train {task.name}{label}", unit="it",
                        disable=not progress)
        self.started = self.last_checkpoint = time.monotonic()
        self.deadline = self.started + 60.0 * settings.max_minutes

    def __enter__(self) -> IterationLog:
        self.metrics = self.run.metrics.open("a")
        return self

    def __exit__(self, *exc: object) -> None:
        self.metrics.close()
        self.bar.close()
        if self.own_tracker:
            self.tracker.finish()

    def record(self, row: dict, save: Callable[[int, int], object]) -> bool:
        """Log one iteration's row and checkpoint when due (`save(iteration, env_steps)`); True when the time
        is up."""
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()
        self.tracker.log(row, step=row["iteration"])
        self.bar.update(1)
        if row["success_rate"] is not None:
            self.bar.set_postfix(success=f"{row['success_rate']:.2f}", reward=f"{row['mean_reward']:.3f}")
        now = time.monotonic()
        out_of_time = now >= self.deadline
        if (now - self.last_checkpoint >= CHECKPOINT_EVERY_S or out_of_time
                or row["iteration"] == self.max_iterations - 1):
            save(row["iteration"], row["env_steps"])
            self.last_checkpoint = now
        return out_of_time


def save_checkpoint(run_dir: Path, ppo: PPO, cfg: dict, iteration: int, env_steps: int) -> Path:
    path = TrainingRun(run_dir).checkpoint
    tmp = path.with_suffix(".tmp")
    torch.save({**ppo.save(), "iteration": iteration, "env_steps": env_steps, "rsl_rl": cfg}, tmp)
    tmp.replace(path)  # atomic: a kill mid-write keeps the previous checkpoint
    return path


def load_run(run_dir: Path) -> tuple[TaskSpec, str, dict, dict]:
    """(task, reward body, rsl-rl or SAC config, checkpoint) of a finished or interrupted run."""
    run = TrainingRun(run_dir)
    ckpt_path = run.checkpoint
    if not ckpt_path.is_file():
        raise RunError(f"{run_dir}: no checkpoint ({TrainingRun.checkpoint}); the run stopped before its first save")
    config = json.loads(run.config.read_text())
    task = task_from_dict(config["task"], run.config)
    reward_body = (run_dir / config["reward_file"]).read_text()
    checkpoint = torch.load(ckpt_path, weights_only=False, map_location="cpu")
    return task, reward_body, checkpoint.get("rsl_rl") or checkpoint["sac"], checkpoint

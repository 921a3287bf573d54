"""`robosmith finetune`: improve a behaviour-cloned policy with reinforcement learning in simulation.

Method: residual RL. The BC policy stays frozen and proposes an action at every step; PPO (the same rsl-rl
PPO and training loop as `robosmith train`) learns a small correction added to it:

    action = bc_action + scale * residual(task observations, bc_action)

Why this and not PPO on the BC network's own weights: ACT and diffusion policies predict chunks of
actions from normalized inputs with a training objective (L1 / denoising) that has no log-likelihood PPO
could use, and fine-tuning them directly with policy gradients tends to wreck what they learned before the
critic is any good. A residual keeps the demonstrations' behaviour as the starting point (its output
layer starts at zero, so iteration 0's mean action is the BC policy's), explores near it (the residual is
scaled by `ResidualSettings.scale`), and needs no change to the BC model; this is the recipe of residual
policy learning (Silver et al. 2018; Johannink et al. 2019) and of Policy Decorator (Yuan et al. 2024) for
large imitation policies.

The output folder holds the BC policy's LeRobot folder unchanged (`pretrained_model/`), the residual's
run (config.json, metrics.jsonl, checkpoints/) and residual.json; `load_policy` runs it like a BC policy.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rsl_rl.algorithms import PPO
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from robosmith.bc.policy import (
    LEROBOT_MODEL,
    RESIDUAL_FILE,
    LeRobotPolicy,
    check_temporal_ensemble,
    compose,
    find_pretrained_model,
    residual_input,
)
from robosmith.errors import ConfigError
from robosmith.reward.load import RewardFn, load_reward
from robosmith.runs import write_json
from robosmith.task import TaskSpec
from robosmith.train.env import TaskEnv
from robosmith.train.policy import PolicyError
from robosmith.train.ppo import TrainSettings, train


@dataclass
class ResidualSettings:
    scale: float = 0.1  # residual output 1 moves a joint by scale x the task's action_scale (0.15 rad on lift)
    init_noise_std: float = 0.5  # PPO's initial exploration noise on the residual, before scaling
    # Reward minus stray_penalty x mean |a - a_BC| (action units) per step: keeps the finetuned policy near the
    # demonstrated behaviour (0: off). The metrics carry `action_deviation` either way.
    stray_penalty: float = 0.0
    # ACT's chunks ensembled at every step with this coefficient (robosmith.bc.policy.LeRobotPolicy); None: the
    # policy plays its chunks as trained. The finetuned policy keeps it (residual.json).
    temporal_ensemble: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise ConfigError(f"residual scale must be in (0, 1], got {self.scale}")
        if self.init_noise_std <= 0:
            raise ConfigError(f"init_noise_std must be > 0, got {self.init_noise_std}")
        if self.stray_penalty < 0:
            raise ConfigError(f"stray_penalty must be >= 0, got {self.stray_penalty}")
        check_temporal_ensemble(self.temporal_ensemble)


class ResidualEnv(VecEnv):
    """The task's environments seen through the frozen BC policy: actions are corrections to its actions."""

    def __init__(self, env: TaskEnv, base: LeRobotPolicy, residual_scale: float, stray_penalty: float = 0.0) -> None:
        self.env, self.base, self.scale, self.stray_penalty = env, base, residual_scale, stray_penalty
        self._deviation_sum, self._deviation_steps = 0.0, 0
        self.num_envs, self.num_actions = env.num_envs, env.num_actions
        self.max_episode_length, self.device, self.cfg = env.max_episode_length, env.device, env.cfg
        self.base.reset()
        self._observe()

    def _observe(self) -> None:
        """The observation of the current state, and the BC policy's action on it."""
        self.observation = self.env.observation(self.base.spec)
        self.base_action = self.base.act(self.observation)

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.episode_length_buf = value

    def get_observations(self) -> TensorDict:
        return residual_input(self.env.task, self.observation, self.base_action)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        action = compose(self.base_action, actions, self.scale)
        _, reward, dones, extras = self.env.step(action)
        deviation = (action - self.base_action).abs().mean(-1)
        self._deviation_sum += float(deviation.sum())
        self._deviation_steps += deviation.numel()
        if self.stray_penalty:
            reward = reward - self.stray_penalty * deviation
        if self.base.resets_per_environment:
            if bool(dones.any()):
                self.base.reset(dones.nonzero().flatten())
        elif bool(extras["time_outs"].any()):
            # Episodes run in lockstep: the BC policy's action queue starts afresh with the new episodes. An
            # environment reset alone after its physics diverged (rare, counted in the metrics) plays on with
            # the others' queue until the next common episode start.
            self.base.reset()
        self._observe()
        return self.get_observations(), reward, dones, extras

    def pop_stats(self) -> tuple[int, dict]:
        steps, summary = self.env.pop_stats()
        deviation = self._deviation_sum / max(self._deviation_steps, 1)
        summary["action_deviation"] = deviation  # mean |a - a_BC|
        if self.stray_penalty:
            summary["reward/stray_penalty"] = -self.stray_penalty * deviation
        self._deviation_sum, self._deviation_steps = 0.0, 0
        return steps, summary

    def close(self) -> None:
        self.env.close()


def zero_residual_output(ppo: PPO) -> None:
    """Start the residual at exactly zero so iteration 0 behaves like the BC policy."""
    last = [m for m in ppo.get_policy().mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)


def finetune(
    bc_checkpoint: Path,
    task: TaskSpec,
    out_dir: Path,
    settings: TrainSettings,
    residual: ResidualSettings | None = None,
    reward_body: str | None = None,
    reward_loader: Callable[[str], RewardFn] = load_reward,
    progress: bool = True,
) -> dict:
    """Train a residual on top of the BC policy at `bc_checkpoint`; returns the last metrics row."""
    residual = residual or ResidualSettings()
    if (bc_checkpoint / RESIDUAL_FILE).is_file():
        raise PolicyError(f"{bc_checkpoint}: already a finetuned policy; finetune its BC policy instead")
    source = find_pretrained_model(bc_checkpoint)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: already exists; choose a new --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, out_dir / LEROBOT_MODEL)
    write_json(out_dir / RESIDUAL_FILE, {"bc_checkpoint": str(source), "task": task.name, **asdict(residual)})
    base = LeRobotPolicy(out_dir / LEROBOT_MODEL, task, residual.temporal_ensemble)
    # The whole reward from the start: the BC policy already does the task, and a first stage paying only its
    # early terms (pick and place: lifting) would train it away from putting the cube down.
    task = dataclasses.replace(task, train=dataclasses.replace(task.train, init_noise_std=residual.init_noise_std,
                                                               curriculum=()))
    return train(
        task,
        reward_body or task.reference_reward_body(),
        out_dir,
        settings,
        progress=progress,
        reward_loader=reward_loader,
        make_env=lambda env: ResidualEnv(env, base, residual.scale, residual.stray_penalty),
        # Staggered episodes keep every phase of the task in each iteration's batch; in lockstep, an iteration
        # of 24 steps sees one phase only (all reaching, or all lifting) and PPO's update for it disturbs the rest.
        stagger=base.resets_per_environment,
        init_policy=zero_residual_output,
    )

"""A task on the batched simulator, as the vectorized environment rsl-rl trains on.

`TaskEnv` adds to `BatchedEnv` what a task defines: the reward, the success check at the end of each
episode, episode time limits and the policy's observation vector. It also keeps the episode statistics
that metrics.jsonl and eval.json report, so the trainer never has to parse anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from robosmith.reward import RewardFn
from robosmith.sim.batched_env import BatchedEnv
from robosmith.sim.state import FIELD_DOCS, SimState
from robosmith.task import TaskSpec, eval_success


def observation_dim(task: TaskSpec) -> int:
    return sum(int(np.prod(FIELD_DOCS[name][0])) or 1 for name in task.observations)


@dataclass
class EpisodeStats:
    """What happened since the last `pop_stats`: finished episodes and per-step reward sums."""

    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    reward_sum: float = 0.0
    component_sums: dict[str, float] = field(default_factory=dict)
    steps: int = 0  # environment steps (num_envs per control step)
    unstable_resets: int = 0
    nonfinite_rewards: int = 0

    def summary(self) -> dict[str, float | int | None]:
        n = max(self.steps, 1)
        out: dict[str, float | int | None] = {
            "mean_reward": self.reward_sum / n,
            "success_rate": float(np.mean(self.successes)) if self.successes else None,
            "episode_length": float(np.mean(self.lengths)) if self.lengths else None,
            "episode_return": float(np.mean(self.returns)) if self.returns else None,
            "episodes": len(self.successes),
            "unstable_resets": self.unstable_resets,
            "nonfinite_rewards": self.nonfinite_rewards,
        }
        out.update({f"reward/{k}": v / n for k, v in self.component_sums.items()})
        return out


class TaskEnv(VecEnv):
    """N environments of one task with one reward function.

    auto_reset=False leaves finished environments as they are (evaluation runs each environment for
    exactly one episode and reads the final states).
    """

    def __init__(
        self,
        task: TaskSpec,
        reward_fn: RewardFn,
        num_envs: int,
        seed: int = 0,
        auto_reset: bool = True,
        nthread: int = 0,
    ) -> None:
        self.task, self.reward_fn, self.auto_reset = task, reward_fn, auto_reset
        cfg = task.env_config(num_envs, seed)
        cfg.nthread = nthread
        self.sim = BatchedEnv(task.scene, cfg, task.reset, task.has_goal)
        self.num_envs = num_envs
        self.num_actions = 6
        self.max_episode_length = task.episode_length
        self.device = "cpu"
        self.cfg = {"task": task.name}
        self.state: SimState = self.sim.state()
        self.noise_gen = torch.Generator().manual_seed(seed + 1)
        self._return = torch.zeros(num_envs)
        self.stats = EpisodeStats()

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.sim.episode_step

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.sim.episode_step[:] = value

    # ------------------------------------------------------------------------------------ observations
    def observe(self, s: SimState) -> torch.Tensor:
        parts = []
        for name in self.task.observations:
            value = getattr(s, name)
            if name == "episode_step":
                value = (value.float() / self.max_episode_length).unsqueeze(1)
            std = self.task.obs_noise.get(name, 0.0)
            if std > 0:
                value = value + std * torch.randn(value.shape, generator=self.noise_gen)
            parts.append(value.float())
        return torch.cat(parts, dim=1)

    def get_observations(self) -> TensorDict:
        return TensorDict({"policy": self.observe(self.state)}, batch_size=[self.num_envs])

    # --------------------------------------------------------------------------------------------- step
    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        s, unstable = self.sim.step(actions)
        reward, components = self.reward_fn(s)
        finite = torch.isfinite(reward)
        if not bool(finite.all()):
            # A reward that is not finite would poison PPO's statistics; zero it and count it.
            self.stats.nonfinite_rewards += int((~finite).sum())
            reward = torch.where(finite, reward, torch.zeros_like(reward))
        reward = torch.where(unstable, torch.zeros_like(reward), reward.float())

        self._return += reward
        self.stats.steps += self.num_envs
        self.stats.reward_sum += float(reward.sum())
        for name, value in components.items():
            value = torch.nan_to_num(torch.as_tensor(value, dtype=torch.float32), 0.0, 0.0, 0.0)
            self.stats.component_sums[name] = self.stats.component_sums.get(name, 0.0) + float(value.sum())
        self.stats.unstable_resets += int(unstable.sum())

        time_out = (s.episode_step >= self.max_episode_length) & ~unstable
        if bool(time_out.any()):
            ids = torch.nonzero(time_out).squeeze(1)
            success = eval_success(self.task.success, s.index(ids))
            self.stats.successes.extend(bool(x) for x in success)
            self.stats.lengths.extend(int(x) for x in s.episode_step[ids])
            self.stats.returns.extend(float(x) for x in self._return[ids])
        dones = time_out | unstable
        self._return[dones] = 0.0
        if self.auto_reset and bool(time_out.any()):
            self.sim.reset(torch.nonzero(time_out).squeeze(1).numpy())
            s = self.sim.state()
        self.state = s
        extras = {"time_outs": time_out.float()}
        return self.get_observations(), reward, dones, extras

    def pop_stats(self) -> EpisodeStats:
        stats, self.stats = self.stats, EpisodeStats()
        return stats

    def close(self) -> None:
        self.sim.close()

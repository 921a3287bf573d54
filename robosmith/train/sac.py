"""SAC training of one reward on one task, with skrl's SAC, in a loop you can read top to bottom.

The same contract as PPO (robosmith.train.ppo): the task's batched environments, a wall-clock limit, one
metrics.jsonl row per iteration (`steps_per_iteration` control steps of every environment), an atomic checkpoint
every minute and at the end, and a deterministic policy (the Gaussian's mean) that `RLPolicy` loads for
evaluation, robustness, RAPP and deployment. We drive skrl's agent ourselves (act, record, update) instead of its
trainer, for the time limit and the metrics.

Episodes end by time-out only (a truncation: the critic bootstraps through it) or by an unstable simulation (a
termination).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium
import torch
from skrl.agents.torch.sac import SAC, SAC_CFG
from skrl.memories.torch import RandomMemory
from skrl.models.torch import DeterministicMixin, GaussianMixin, Model
from skrl.resources.preprocessors.torch import RunningStandardScaler
from tensordict import TensorDict
from torch import nn

from robosmith.contract.metrics import metrics_row
from robosmith.contract.observations import observation_size
from robosmith.reward.load import RewardFn, load_reward
from robosmith.runs import TrainingRun
from robosmith.task import TaskSpec
from robosmith.tracking import Tracker
from robosmith.train.ppo import IterationLog, start_run

NUM_ACTIONS = 6
LOG_STD_BOUNDS = (-5.0, 2.0)  # the policy's log standard deviation is clipped to these in skrl
LOSSES = {"Loss / Critic loss": "critic", "Loss / Policy loss": "policy", "Loss / Entropy loss": "entropy",
          "Coefficient / Entropy coefficient": "entropy_coefficient"}


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ELU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, outputs))


class GaussianActor(GaussianMixin, Model):
    """A mean in [-1, 1] (tanh) and a learned log standard deviation per joint; samples are clipped to [-1, 1],
    the range the environment clamps actions to."""

    def __init__(self, obs_size: int, hidden: tuple[int, ...]) -> None:
        Model.__init__(self, observation_space=gymnasium.spaces.Box(-float("inf"), float("inf"), (obs_size,)),
                       action_space=action_space(), device="cpu")
        GaussianMixin.__init__(self, clip_actions=True, clip_log_std=True, min_log_std=LOG_STD_BOUNDS[0],
                               max_log_std=LOG_STD_BOUNDS[1])
        self.net = mlp(obs_size, hidden, NUM_ACTIONS)
        self.log_std = nn.Parameter(torch.full((NUM_ACTIONS,), -0.5))

    def compute(self, inputs: dict, role: str = "") -> tuple[torch.Tensor, dict]:
        return torch.tanh(self.net(inputs["observations"])), {"log_std": self.log_std}


class QCritic(DeterministicMixin, Model):
    def __init__(self, obs_size: int, hidden: tuple[int, ...]) -> None:
        Model.__init__(self, observation_space=gymnasium.spaces.Box(-float("inf"), float("inf"), (obs_size,)),
                       action_space=action_space(), device="cpu")
        DeterministicMixin.__init__(self)
        self.net = mlp(obs_size + NUM_ACTIONS, hidden, 1)

    def compute(self, inputs: dict, role: str = "") -> tuple[torch.Tensor, dict]:
        return self.net(torch.cat([inputs["observations"], inputs["taken_actions"]], dim=-1)), {}


class SACActor(nn.Module):
    """The trained policy alone, deterministic: normalized observation -> the Gaussian's mean. Called like
    PPO's actor, with a TensorDict holding `policy`."""

    def __init__(self, obs_size: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.scaler = RunningStandardScaler(obs_size, device="cpu")
        self.policy = GaussianActor(obs_size, hidden)

    def forward(self, obs: TensorDict) -> torch.Tensor:
        mean, _ = self.policy.compute({"observations": self.scaler(obs["policy"])})
        return mean


def action_space() -> gymnasium.spaces.Box:
    return gymnasium.spaces.Box(-1.0, 1.0, (NUM_ACTIONS,))


def build_sac_actor(obs_size: int, cfg: dict, checkpoint: dict) -> SACActor:
    actor = SACActor(obs_size, tuple(cfg["hidden_dims"]))
    actor.policy.load_state_dict(checkpoint["policy"])
    actor.scaler.load_state_dict(checkpoint["observation_preprocessor"])
    return actor.eval()


def build_agent(obs_size: int, cfg: dict, num_envs: int) -> SAC:
    hidden = tuple(cfg["hidden_dims"])
    models = {"policy": GaussianActor(obs_size, hidden), "critic_1": QCritic(obs_size, hidden),
              "critic_2": QCritic(obs_size, hidden), "target_critic_1": QCritic(obs_size, hidden),
              "target_critic_2": QCritic(obs_size, hidden)}
    memory = RandomMemory(memory_size=max(1, cfg["replay_size"] // num_envs), num_envs=num_envs, device="cpu")
    agent_cfg = SAC_CFG(
        gradient_steps=cfg["gradient_steps"], batch_size=cfg["batch_size"], discount_factor=cfg["gamma"],
        polyak=cfg["polyak"], learning_rate=cfg["learning_rate"], learning_starts=cfg["learning_starts"],
        initial_entropy_value=cfg["initial_entropy"], observation_preprocessor=RunningStandardScaler,
        observation_preprocessor_kwargs={"size": obs_size, "device": "cpu"},
    )
    agent_cfg.experiment.write_interval = 0  # no TensorBoard, no skrl checkpoints: metrics.jsonl and ours
    agent_cfg.experiment.checkpoint_interval = 0
    agent = SAC(models=models, memory=memory, observation_space=models["policy"].observation_space,
                action_space=action_space(), device="cpu", cfg=agent_cfg)
    agent.init()
    agent.write_interval = 1 << 62  # now (no writer was made) skrl records its losses for us, and never writes them
    return agent


def train_sac(
    task: TaskSpec, reward_body: str, run_dir: Path, settings, progress: bool = True,
    reward_loader: Callable[[str], RewardFn] | None = None, threads: int | None = None,
    tracking_group: str | None = None, stagger: bool = True, tracker: Tracker | None = None,
) -> dict:
    """SAC's counterpart of `robosmith.train.ppo.train`; returns the final metrics row."""
    cfg = dataclasses.asdict(task.train.sac)
    config, env = start_run(task, reward_body, run_dir, settings, {"sac": cfg}, reward_loader or load_reward, threads,
                            stagger)
    obs_size = observation_size(task.observations)
    agent = build_agent(obs_size, cfg, settings.num_envs)
    agent.enable_training_mode(True)

    total_steps, timestep, row = 0, 0, {}
    obs = env.get_observations()["policy"]
    with IterationLog(run_dir, task, reward_body, settings, config, tracking_group, progress, " (sac)",
                      tracker) as log:
        started = log.started
        for iteration in range(settings.max_iterations):
            collect_s = learn_s = 0.0
            for _ in range(settings.steps_per_iteration):
                t0 = time.monotonic()
                with torch.no_grad():
                    actions, _ = agent.act(obs, None, timestep=timestep, timesteps=1 << 40)
                next_obs, rewards, dones, extras = env.step(actions)
                next_obs = next_obs["policy"]
                truncated = extras["time_outs"].bool()
                agent.record_transition(
                    observations=obs, states=None, actions=actions, rewards=rewards[:, None],
                    next_observations=next_obs, next_states=None, terminated=(dones & ~truncated)[:, None],
                    truncated=truncated[:, None], infos=extras, timestep=timestep, timesteps=1 << 40,
                )
                t1 = time.monotonic()
                agent.post_interaction(timestep=timestep, timesteps=1 << 40)  # the gradient steps
                learn_s += time.monotonic() - t1
                collect_s += t1 - t0
                obs, timestep = next_obs, timestep + 1

            steps, summary = env.pop_stats()
            total_steps += steps
            losses = {name: sum(values) / len(values) for key, name in LOSSES.items()
                      if (values := [float(v) for v in agent.tracking_data.get(key, [])])}
            agent.tracking_data.clear()  # skrl appends every update; we keep the iteration's means only
            row = metrics_row(iteration, total_steps, time.monotonic() - started, steps, collect_s, learn_s, summary,
                              float(agent.policy.log_std.detach().clamp(*LOG_STD_BOUNDS).exp().mean()), losses)
            if log.record(row, functools.partial(save_checkpoint, run_dir, agent, cfg)):
                break
    env.close()
    return row


def save_checkpoint(run_dir: Path, agent: SAC, cfg: dict, iteration: int, env_steps: int) -> Path:
    path = TrainingRun(run_dir).checkpoint
    tmp = path.with_suffix(".tmp")
    torch.save({"policy": agent.policy.state_dict(),
                "observation_preprocessor": agent._observation_preprocessor.state_dict(),
                "critic_1": agent.critic_1.state_dict(), "critic_2": agent.critic_2.state_dict(),
                "iteration": iteration, "env_steps": env_steps, "sac": cfg}, tmp)
    tmp.replace(path)  # atomic: a kill mid-write keeps the previous checkpoint
    return path

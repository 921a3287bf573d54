"""A trained LeRobot policy acting in our simulator, optionally with the residual that `finetune` trained.

Both kinds of checkpoint load through `load_policy` and act the same way (`reset`, then `act` once per
control step for all environments), so evaluation and finetuning never care which one they hold.
LeRobot's policies keep action chunks and observation history for the whole batch; our rollouts keep every
environment's episode in lockstep, so `reset` at the shared episode start is all they need.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

from robosmith.bc.features import (
    CAMERAS,
    ENV_STATE,
    camera_renderer,
    environment_state_names,
    image_key,
    observation_batch,
)
from robosmith.bc.units import from_lerobot
from robosmith.task import TaskSpec
from robosmith.train.env import TaskEnv, observation_dim

LEROBOT_MODEL = "pretrained_model"  # LeRobot's name for a checkpoint's policy folder
RESIDUAL_FILE = "residual.json"  # marks a finetuned policy folder


class PolicyError(ValueError):
    pass


def find_pretrained_model(path: Path) -> Path:
    """The LeRobot policy folder inside any of the folders a user may point at.

    Accepts a `pretrained_model` folder itself, a lerobot-train output folder (its last checkpoint),
    a `robosmith bc train` folder or a `robosmith finetune` folder.
    """
    candidates = [
        path,
        path / LEROBOT_MODEL,
        path / "checkpoints" / "last" / LEROBOT_MODEL,
        path / "lerobot" / "checkpoints" / "last" / LEROBOT_MODEL,
    ]
    for candidate in candidates:
        if (candidate / "config.json").is_file() and (candidate / "model.safetensors").is_file():
            return candidate
    raise PolicyError(f"{path}: no LeRobot policy here (looked for config.json and model.safetensors)")


class LeRobotPolicy:
    """A LeRobot policy (ACT, diffusion) with its pre- and post-processors, producing env actions."""

    def __init__(self, path: Path, task: TaskSpec) -> None:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        self.path = find_pretrained_model(path)
        self.task = task
        config = PreTrainedConfig.from_pretrained(self.path)
        expected = len(environment_state_names(task))
        got = config.input_features[ENV_STATE].shape[0] if ENV_STATE in config.input_features else None
        if got != expected:
            raise PolicyError(
                f"{self.path / 'config.json'}: input_features: {ENV_STATE} has {got} values, "
                f"task {task.name} provides {expected}: the policy was trained for another task"
            )
        # Rollouts run on the CPU; a checkpoint trained on a GPU keeps "cuda" in its processors otherwise.
        config.device = "cpu"
        self.policy = get_policy_class(config.type).from_pretrained(self.path, config=config)
        self.policy.eval()
        self.preprocess, self.postprocess = make_pre_post_processors(
            config, pretrained_path=str(self.path), preprocessor_overrides={"device_processor": {"device": "cpu"}}
        )
        self.cameras = [c for c in CAMERAS if image_key(c) in config.input_features]
        self.renderer = camera_renderer(task) if self.cameras else None

    def reset(self) -> None:
        self.policy.reset()

    def _images(self, env: TaskEnv) -> dict[str, np.ndarray]:
        goal = env.state.goal_pos
        images = {}
        for camera in self.cameras:
            images[camera] = np.stack([
                self.renderer.render(env.sim.qpos_of(i), None if goal is None else goal[i].numpy(), camera)
                for i in range(env.num_envs)
            ])
        return images

    @torch.no_grad()
    def joint_targets(self, env: TaskEnv) -> torch.Tensor:
        """(N, 6) joint targets in rad for the current state of every environment."""
        batch = observation_batch(self.task, env.state, self._images(env) if self.cameras else None)
        action = self.postprocess(self.policy.select_action(self.preprocess(batch)))
        return from_lerobot(action.float().cpu())

    def act(self, env: TaskEnv) -> torch.Tensor:
        return env.sim.action_for_targets(self.joint_targets(env).numpy())

    def close(self) -> None:
        if self.renderer:
            self.renderer.close()


def residual_observation(env: TaskEnv, base_action: torch.Tensor) -> TensorDict:
    """What the residual policy sees: the task's observations and the action the BC policy proposes."""
    obs = torch.cat([env.observe(env.state), base_action], dim=1)
    return TensorDict({"policy": obs}, batch_size=[env.num_envs])


def compose(base_action: torch.Tensor, residual: torch.Tensor, scale: float) -> torch.Tensor:
    """The finetuned action: the BC action plus the residual scaled by `scale`, within the action range.

    The residual itself is not clipped: PPO's Gaussian may learn means beyond 1, i.e. corrections larger than
    `scale`. On so101_lift it did, and clipping the trained residual to [-1, 1] cost 22 points of success.
    """
    return (base_action + scale * residual).clamp(-1.0, 1.0)


class ResidualPolicy:
    """A finetuned policy: the frozen BC policy's action plus a small learned correction."""

    def __init__(self, path: Path, task: TaskSpec) -> None:
        from robosmith.train.ppo import build_actor, load_run

        info = json.loads((path / RESIDUAL_FILE).read_text())
        if info.get("task") != task.name:
            raise PolicyError(f"{path / RESIDUAL_FILE}: task: the residual was trained on {info.get('task')}, "
                              f"not {task.name}")
        self.scale = float(info["scale"])
        self.base = LeRobotPolicy(path / LEROBOT_MODEL, task)
        _, _, cfg, checkpoint = load_run(path)
        sizes = TensorDict({"policy": torch.zeros(1, observation_dim(task) + 6)}, batch_size=[1])
        self.actor = build_actor(sizes, 6, cfg, checkpoint["actor_state_dict"])

    def reset(self) -> None:
        self.base.reset()

    @torch.no_grad()
    def act(self, env: TaskEnv) -> torch.Tensor:
        base = self.base.act(env)
        return compose(base, self.actor(residual_observation(env, base)), self.scale)

    def close(self) -> None:
        self.base.close()


def load_policy(path: Path, task: TaskSpec) -> LeRobotPolicy | ResidualPolicy:
    if (path / RESIDUAL_FILE).is_file():
        return ResidualPolicy(path, task)
    return LeRobotPolicy(path, task)

"""LeRobot policies behind robosmith's policy interface, optionally with the residual `finetune` trained.

Both kinds act like any policy of the interface (robosmith.train.policy): `reset`, then `act` on an
Observation once per control step, returning actions in [-1, 1]; they register `load` under the
`robosmith.policies` entry-point group, so `load_policy` finds them without the training code importing
LeRobot. LeRobot's policies keep action chunks and observation history for the whole batch; an ACT policy
playing its chunks (no temporal ensembling) keeps one chunk per environment here instead, so environments may
restart at different steps (`reset(env_ids)`, `resets_per_environment`). The others restart together.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tensordict import TensorDict

from robosmith.bc.features import (
    CAMERAS,
    ENV_STATE,
    environment_state_fields,
    environment_state_names,
    observation_batch,
)
from robosmith.contract.observations import observation_fields, observation_size, observation_vector
from robosmith.errors import ConfigError
from robosmith.robot.units import from_lerobot
from robosmith.runs import TrainingRun
from robosmith.sim2real.dataset import image_key
from robosmith.task import TaskSpec
from robosmith.train.policy import Observation, PolicyError, PolicySpec

LEROBOT_MODEL = "pretrained_model"  # LeRobot's name for a checkpoint's policy folder
RESIDUAL_FILE = TrainingRun.residual  # marks a finetuned policy folder


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


def check_temporal_ensemble(coeff: float | None) -> None:
    """A temporal-ensembling coefficient is a decay rate: negative values would weight the newest chunks least."""
    if coeff is not None and coeff < 0:
        raise ConfigError(f"temporal_ensemble must be >= 0, got {coeff}")


class LeRobotPolicy:
    """A LeRobot policy (ACT, diffusion) with its pre- and post-processors, producing actions of the task.

    `temporal_ensemble`: ACT only; predict a chunk at every step and act on the exponentially weighted mean of
    all chunks' predictions for this step (weights exp(-coeff * i), i = 0 the oldest; ACT's paper uses 0.01),
    instead of playing `n_action_steps` of one chunk open-loop.
    """

    def __init__(self, path: Path, task: TaskSpec, temporal_ensemble: float | None = None) -> None:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        check_temporal_ensemble(temporal_ensemble)
        self.path = find_pretrained_model(path)
        self.task = task
        config = PreTrainedConfig.from_pretrained(self.path)
        expected = len(environment_state_names(task))
        got = config.input_features[ENV_STATE].shape[0] if ENV_STATE in config.input_features else None
        if got != expected:
            raise PolicyError(
                f"{self.path / 'config.json'}: input_features: {ENV_STATE} has {got} values, "
                f"task {task.name} provides {expected}: the policy was trained for another task (or, on "
                f"pick-and-place, before the relative positions joined its state: train it again)"
            )
        # Rollouts run on the CPU; a checkpoint trained on a GPU keeps "cuda" in its processors otherwise.
        config.device = "cpu"
        if temporal_ensemble is not None:
            if config.type != "act":
                raise PolicyError(f"{self.path / 'config.json'}: type: temporal ensembling is for ACT policies, "
                                  f"this one is {config.type}")
            config.temporal_ensemble_coeff, config.n_action_steps = temporal_ensemble, 1
        self.temporal_ensemble = temporal_ensemble
        self.policy = get_policy_class(config.type).from_pretrained(self.path, config=config)
        self.policy.eval()
        self.preprocess, self.postprocess = make_pre_post_processors(
            config, pretrained_path=str(self.path), preprocessor_overrides={"device_processor": {"device": "cpu"}}
        )
        # Images at the size the policy was trained on: (channels, height, width) in its config.
        cameras = {c: tuple(config.input_features[image_key(c)].shape[1:]) for c in CAMERAS
                   if image_key(c) in config.input_features}
        fields = ("joint_pos",) + environment_state_fields(task)
        self.spec = PolicySpec("bc", task.name, task.description, fields, task.control_hz, cameras)
        self.action_map = task.action_map()
        # ACT's chunks, played per environment: what LeRobot's select_action does for the whole batch at once.
        self.resets_per_environment = config.type == "act" and temporal_ensemble is None
        self.n_action_steps = config.n_action_steps
        self._chunks: torch.Tensor | None = None  # (N, n_action_steps, 6) normalized actions
        self._played = torch.zeros(0, dtype=torch.long)  # (N,) actions of its chunk each environment has played

    def reset(self, env_ids: torch.Tensor | None = None) -> None:
        """Start new episodes: all environments, or (`resets_per_environment` only) those in `env_ids`."""
        if env_ids is None:
            self.policy.reset()
            self._chunks = None
        elif not self.resets_per_environment:
            raise PolicyError(f"{self.path}: a {self.policy.config.type} policy restarts all environments together")
        elif self._chunks is not None:
            self._played[env_ids] = self.n_action_steps  # a fresh chunk at their next step

    @torch.no_grad()
    def joint_targets(self, observation: Observation) -> torch.Tensor:
        """(N, 6) joint targets in rad for the observed state of every environment."""
        batch = observation_batch(self.task, observation.state, observation.images)
        if self.resets_per_environment:
            action = self._next_actions(batch)
        else:
            action = self.policy.select_action(self.preprocess(batch))
        return from_lerobot(self.postprocess(action).float().cpu())

    def _next_actions(self, batch: dict) -> torch.Tensor:
        """Each environment's next normalized action; a new chunk for those that played theirs."""
        n = len(batch["task"])
        if self._chunks is None or self._chunks.shape[0] != n:
            self._chunks = torch.zeros(n, self.n_action_steps, self.policy.config.action_feature.shape[0])
            self._played = torch.full((n,), self.n_action_steps, dtype=torch.long)
        due = (self._played >= self.n_action_steps).nonzero().flatten()
        if len(due):
            rows = due.tolist()
            sub = {k: [v[i] for i in rows] if isinstance(v, list) else v[due] for k, v in batch.items()}
            chunk = self.policy.predict_action_chunk(self.preprocess(sub))[:, : self.n_action_steps]
            self._chunks[due], self._played[due] = chunk.to(self._chunks.dtype), 0
        action = self._chunks[torch.arange(n), self._played]
        self._played += 1
        return action

    def act(self, observation: Observation) -> torch.Tensor:
        return self.action_map.actions_for(self.joint_targets(observation), observation.servo_targets)

    def close(self) -> None:
        pass


def residual_input(task: TaskSpec, observation: Observation, base_action: torch.Tensor) -> TensorDict:
    """What the residual policy sees: the task's observations and the action the BC policy proposes."""
    obs = torch.cat([observation_vector(observation.state, task.observations, task.episode_length), base_action], 1)
    return TensorDict({"policy": obs}, batch_size=[obs.shape[0]])


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
        self.task, self.scale = task, float(info["scale"])
        # The BC policy acts as it did while the residual trained on it.
        self.base = LeRobotPolicy(path / LEROBOT_MODEL, task, info.get("temporal_ensemble"))
        fields = tuple(dict.fromkeys(self.base.spec.state_fields + observation_fields(task.observations)))
        self.spec = PolicySpec("bc+residual", task.name, task.description, fields, task.control_hz,
                               self.base.spec.cameras)
        _, _, cfg, checkpoint = load_run(path)
        sizes = TensorDict({"policy": torch.zeros(1, observation_size(task.observations) + 6)}, batch_size=[1])
        self.actor = build_actor(sizes, 6, cfg, checkpoint["actor_state_dict"])
        self.last_base_action: torch.Tensor | None = None  # what the BC policy proposed at the last step

    def reset(self, env_ids: torch.Tensor | None = None) -> None:
        self.base.reset(env_ids)

    @torch.no_grad()
    def act(self, observation: Observation) -> torch.Tensor:
        base = self.last_base_action = self.base.act(observation)
        return compose(base, self.actor(residual_input(self.task, observation, base)), self.scale)

    def close(self) -> None:
        self.base.close()


def load(path: Path, task: TaskSpec, temporal_ensemble: float | None = None) -> LeRobotPolicy | ResidualPolicy | None:
    """The `robosmith.policies` entry point: a finetuned folder, a LeRobot policy folder, or None.

    `temporal_ensemble` (see LeRobotPolicy) applies to a BC policy; a finetuned one keeps what it trained with.
    """
    if (path / RESIDUAL_FILE).is_file():
        if temporal_ensemble is not None:
            raise PolicyError(f"{path / RESIDUAL_FILE}: a finetuned policy's BC policy acts as it did in training "
                              "(finetune --temporal-ensemble); it cannot be changed at evaluation")
        return ResidualPolicy(path, task)
    try:
        find_pretrained_model(path)
    except PolicyError:
        return None
    return LeRobotPolicy(path, task, temporal_ensemble)

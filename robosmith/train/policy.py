"""The policy interface: what every trained policy is to the code that runs it, in simulation or on the arm.

A policy declares what it needs (`PolicySpec`: the SimState fields it reads, its cameras and their image
sizes, its control rate, the task string) and acts on a batch of observations:

    policy.reset()                      # at a common episode start (or `reset(env_ids)` for some)
    action = policy.act(observation)    # (N, 6) actions in [-1, 1], the contract's action space

The caller turns actions into servo targets with the task's `ActionMap` (robosmith.contract.actions): the
simulator here, the deploy loop on the real arm. Observations are built by contract code from a SimState, so
a policy sees the same numbers wherever it runs; fields the real arm cannot measure come from perception.

Policies are loaded from folders by `load_policy`: RL runs here; other kinds (behaviour cloning with LeRobot,
its residual RL) register a loader under the `robosmith.policies` entry-point group, so this module never
imports their libraries.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tensordict import TensorDict

from robosmith.contract.observations import observation_fields, observation_size, observation_vector
from robosmith.contract.state import SimState
from robosmith.errors import RobosmithError
from robosmith.runs import RunError, TrainingRun
from robosmith.task.spec import TaskSpec

ENTRY_POINT_GROUP = "robosmith.policies"


class PolicyError(RobosmithError, ValueError):
    """A policy that cannot be loaded or cannot run here (one line, names the file and the field)."""


@dataclass(frozen=True)
class PolicySpec:
    kind: str  # "rl", "bc", "bc+residual", ...
    task: str  # the task it was trained for
    instruction: str  # the task string language-conditioned policies read
    state_fields: tuple[str, ...]  # the SimState fields it reads
    control_hz: float
    cameras: dict[str, tuple[int, int]] = field(default_factory=dict)  # camera -> (height, width)


@dataclass
class Observation:
    """One control step of N environments (or of the one real arm, N = 1), as a policy receives it."""

    state: SimState  # fields the source cannot provide are None
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # camera -> (N, H, W, 3) uint8
    servo_targets: torch.Tensor | None = None  # (N, 6) rad: the targets in force (for delta actions)


class Policy(Protocol):
    spec: PolicySpec

    def reset(self, env_ids: torch.Tensor | None = None) -> None: ...

    def act(self, observation: Observation) -> torch.Tensor: ...

    def close(self) -> None: ...


def missing_fields(spec: PolicySpec, state: SimState) -> list[str]:
    """The fields the policy reads that this state lacks (on the real arm: what nothing measures)."""
    return [name for name in spec.state_fields if getattr(state, name, None) is None]


class RLPolicy:
    """The actor of a PPO or SAC run (`robosmith train`, a candidate of the loop): deterministic, its mean action."""

    def __init__(self, run_dir: Path, task: TaskSpec | None = None) -> None:
        from robosmith.train.ppo import build_actor, load_run

        saved_task, self.reward_body, cfg, checkpoint = load_run(run_dir)
        self.task = task or saved_task
        if self.task.name != saved_task.name or self.task.observations != saved_task.observations:
            raise PolicyError(f"{TrainingRun(run_dir).config}: task: the policy was trained on {saved_task.name}, "
                              f"not {self.task.name}")
        self.spec = PolicySpec("rl", saved_task.name, saved_task.description,
                               observation_fields(saved_task.observations), saved_task.control_hz)
        self.iteration, self.env_steps = checkpoint["iteration"], checkpoint["env_steps"]
        size = observation_size(saved_task.observations)
        if "sac" in checkpoint:
            from robosmith.train.sac import build_sac_actor

            self.actor = build_sac_actor(size, cfg, checkpoint)
        else:
            sizes = TensorDict({"policy": torch.zeros(1, size)}, batch_size=[1])
            self.actor = build_actor(sizes, 6, cfg, checkpoint["actor_state_dict"])

    def reset(self, env_ids: torch.Tensor | None = None) -> None:
        pass  # an MLP keeps no memory between steps

    @torch.no_grad()
    def act(self, observation: Observation) -> torch.Tensor:
        obs = observation_vector(observation.state, self.task.observations, self.task.episode_length)
        return self.actor(TensorDict({"policy": obs}, batch_size=[obs.shape[0]]))

    def close(self) -> None:
        pass


PolicyLoader = Callable[[Path, TaskSpec], "Policy | None"]


def _loaders() -> list[PolicyLoader]:
    """Loaders registered by other packages (entry points); each returns None for folders not its own."""
    return [ep.load() for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]


def load_policy(path: Path, task: TaskSpec) -> Policy:
    """The policy stored at `path`, for `task`: an RL run, or any kind a registered loader recognises."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such policy folder")
    run = TrainingRun(path)
    if run.config.is_file() and not run.residual.is_file():
        config = json.loads(run.config.read_text())
        if "rsl_rl" in config or "sac" in config:
            return RLPolicy(path, task)
    for loader in _loaders():
        policy = loader(path, task)
        if policy is not None:
            return policy
    kinds = ", ".join(["an RL run", *(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))])
    raise PolicyError(f"{path}: not a policy robosmith knows ({kinds})")

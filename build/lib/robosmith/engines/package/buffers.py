"""What robosmith keeps per environment object beside the engine's own state: goal points, episode statistics,
and the indices of the bodies, joints and sites SimState reads (looked up by name once, not every step).
Copied verbatim by robosmith into every exported package."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from .contract.metrics import EpisodeRecorder

_GOALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RECORDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_INDICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def goal_pos(env) -> torch.Tensor:
    """Each environment's goal point, (N, 3) in its own frame; sampled by `terms.reset_objects`."""
    if env not in _GOALS:
        _GOALS[env] = torch.zeros(env.num_envs, 3, device=env.device)
    return _GOALS[env]


def recorder(env) -> EpisodeRecorder:
    if env not in _RECORDERS:
        _RECORDERS[env] = EpisodeRecorder(env.num_envs, env.device)
    return _RECORDERS[env]


def indices(env, key: str, find: Callable[[], object]):
    """`find()` the first time `key` is asked for on this env, the remembered answer afterwards."""
    per_env = _INDICES.setdefault(env, {})
    if key not in per_env:
        per_env[key] = find()
    return per_env[key]

"""A policy's observation vector, built from a SimState the same way in simulation, in an exported engine
package and on the real arm.

The task names the SimState fields its policy sees, in order, and may add relative positions
(`RELATIVE_OBSERVATIONS`: `object_to_goal`, ...); `episode_step` enters as the fraction of the episode gone.
Gaussian noise of a per-field standard deviation models sensors (and, on the real arm, the perception estimates
the policy will get); a relative position is computed from the noisy fields, as it would be on the arm.
Part of robosmith's contract: torch only, copied verbatim into every exported engine package.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .state import FIELD_DOCS, SimState

# Observation name -> (from field, to field, doc): the vector `to - from`, world axes. A goal-conditioned policy
# reads "where is the goal from the cube" directly instead of learning to subtract two absolute positions whose
# scales differ (the cube moves over centimetres, the goal over decimetres).
RELATIVE_OBSERVATIONS: dict[str, tuple[str, str, str]] = {
    "ee_to_object": ("ee_pos", "object_pos", "m, world axes; from the tool point to the cube's centre"),
    "ee_to_goal": ("ee_pos", "goal_pos", "m, world axes; from the tool point to the goal"),
    "object_to_goal": ("object_pos", "goal_pos", "m, world axes; from the cube's centre to the goal"),
}
OBSERVATION_DOCS: dict[str, tuple[tuple[int, ...], str]] = {
    **FIELD_DOCS, **{name: ((3,), doc) for name, (_, _, doc) in RELATIVE_OBSERVATIONS.items()}}


def observation_fields(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The SimState fields these observations read, in order of first use (what a source must provide)."""
    fields = []
    for name in names:
        fields += RELATIVE_OBSERVATIONS[name][:2] if name in RELATIVE_OBSERVATIONS else (name,)
    return tuple(dict.fromkeys(fields))


def observation_size(names: tuple[str, ...] | list[str]) -> int:
    """Length of the observation vector of these observations."""
    return sum(math.prod(OBSERVATION_DOCS[name][0]) or 1 for name in names)


def sensed_state(
    s: SimState,
    noise: dict[str, float | torch.Tensor],
    generator: torch.Generator | None = None,
    joint_offset: torch.Tensor | None = None,
) -> SimState:
    """The state as a policy's sensors report it: joint positions read through the calibration error
    (`joint_offset`, (N, 6) rad, added) and Gaussian noise of a standard deviation per field, one number or one
    per environment (N,). Fields without noise are the state's own tensors.

    `generator` makes the noise reproducible (a CPU generator for tensors on the CPU; None draws from the
    device's default stream).
    """
    changed = {}
    if joint_offset is not None:
        changed["joint_pos"] = s.joint_pos + joint_offset
    for name, std in noise.items():
        std = torch.as_tensor(std, dtype=torch.float32, device=s.joint_pos.device)
        if not bool((std > 0).any()):
            continue
        value = changed.get(name, getattr(s, name))
        if value is None:
            raise ValueError(f"noise on {name!r}: this SimState has no such field (not measured here)")
        if std.ndim == 1:
            std = std.reshape(-1, *([1] * (value.ndim - 1)))
        changed[name] = value + std * torch.randn(value.shape, generator=generator, device=value.device)
    return dataclasses.replace(s, **changed) if changed else s


def observation_vector(
    s: SimState,
    names: tuple[str, ...] | list[str],
    episode_length: int,
    noise: dict[str, float] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(N, observation_size(names)) float32: the named observations of `s` side by side, through
    `sensed_state`'s noise when `noise` gives a standard deviation per SimState field."""
    read = observation_fields(names)
    if noise:
        s = sensed_state(s, {k: v for k, v in noise.items() if k in read}, generator)
    for name in read:
        if getattr(s, name) is None:
            raise ValueError(f"observation {name!r}: this SimState has no such field (not measured here)")
    parts = []
    for name in names:
        if name in RELATIVE_OBSERVATIONS:
            origin, target, _ = RELATIVE_OBSERVATIONS[name]
            parts.append((getattr(s, target) - getattr(s, origin)).float())
            continue
        value = getattr(s, name)
        if name == "episode_step":
            value = (value.float() / episode_length).unsqueeze(1)
        parts.append(value.float())
    return torch.cat(parts, dim=1)

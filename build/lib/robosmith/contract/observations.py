"""A policy's observation vector, built from a SimState the same way in simulation, in an exported engine
package and on the real arm.

The task names the SimState fields its policy sees, in order; `episode_step` enters as the fraction of the
episode gone. Gaussian noise of a per-field standard deviation models sensors (and, on the real arm, the
perception estimates the policy will get).
Part of robosmith's contract: torch only, copied verbatim into every exported engine package.
"""

from __future__ import annotations

import math

import torch

from .state import FIELD_DOCS, SimState


def observation_size(names: tuple[str, ...] | list[str]) -> int:
    """Length of the observation vector of these fields."""
    return sum(math.prod(FIELD_DOCS[name][0]) or 1 for name in names)


def observation_vector(
    s: SimState,
    names: tuple[str, ...] | list[str],
    episode_length: int,
    noise: dict[str, float] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(N, observation_size(names)) float32: the named fields of `s` side by side.

    `noise` gives a standard deviation per field; `generator` makes it reproducible (a CPU generator for
    tensors on the CPU; None draws from the device's default stream).
    """
    parts = []
    for name in names:
        value = getattr(s, name)
        if value is None:
            raise ValueError(f"observation {name!r}: this SimState has no such field (not measured here)")
        if name == "episode_step":
            value = (value.float() / episode_length).unsqueeze(1)
        std = (noise or {}).get(name, 0.0)
        if std > 0:
            value = value + std * torch.randn(value.shape, generator=generator, device=value.device)
        parts.append(value.float())
    return torch.cat(parts, dim=1)

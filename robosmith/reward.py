"""Rewards as code: the body `compute_reward(s) -> (total, components)` and the term lists that render to it.

A task's reference reward is a list of named terms. Each term is a torch expression over the SimState `s`
with its parameters written as `{name}` fields, so searches (people, the offline proposer) can vary weights
and parameters while the body that trains stays plain code an LLM or a person can read and edit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from robosmith.sim.state import SimState

RewardFn = Callable[[SimState], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class RewardTerm:
    name: str
    weight: float
    expr: str  # torch expression over `s`, one value per environment; `{param}` fields come from params
    params: dict[str, float] = field(default_factory=dict)

    def rendered_expr(self) -> str:
        return self.expr.format(**{k: repr(float(v)) for k, v in self.params.items()})


def terms_to_body(terms: tuple[RewardTerm, ...] | list[RewardTerm]) -> str:
    """Source of `compute_reward` for a weighted sum of terms; components are the weighted terms."""
    lines = ["def compute_reward(s):", "    components = {}"]
    for term in terms:
        lines.append(f"    components[{term.name!r}] = {float(term.weight)!r} * ({term.rendered_expr()})")
    lines.append("    total = sum(components.values())")
    lines.append("    return total, components")
    return "\n".join(lines) + "\n"


def compile_reward(body: str) -> RewardFn:
    """Turn trusted reward source (ours, or already validated) into a callable.

    Code from an LLM must pass the agent's validation first: this function executes what it is given.
    """
    namespace: dict = {"torch": torch, "math": math}
    exec(compile(body, "<reward>", "exec"), namespace)  # noqa: S102
    fn = namespace.get("compute_reward")
    if not callable(fn):
        raise ValueError("reward code defines no function compute_reward(s)")
    return fn

"""Rewards as code: the body `compute_reward(s) -> (total, components)` and the term lists that render to it.

A task's reference reward is a list of named terms. Each term is a torch expression over the SimState `s`
with its parameters written as `{name}` fields, so searches (people, the offline proposer) can vary weights
and parameters while the body that trains stays plain code an LLM or a person can read and edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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

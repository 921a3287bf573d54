"""Calling a reward on the state of a step, on every backend: the reward sees a copy, and whatever it writes
into that copy is caught.

Success checks, time-outs and the next observations read the real state, which the reward never holds, so no
reward can change what training and evaluation measure. A write into the copy (an in-place operation on an
alias of a field: `x = s.ee_pos[:, 2]; x -= 0.1`, item assignment, `out=`) still fails the call: such a
reward would compute on values it changed itself. Writes are seen through torch's version counters, which
every in-place operation on a tensor or any of its views advances. The output is checked too: one finite-
typed float per environment, components with short identifier names.
Part of robosmith's contract: torch only, copied verbatim into every exported engine package.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .state import SimState

MAX_COMPONENTS = 32
MAX_COMPONENT_NAME_CHARS = 40


class RewardContractError(ValueError):
    """A reward broke the contract at run time; `rule` names the broken rule, the message says how."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule


def call_reward(fn: Callable, s: SimState) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total, components) of `fn` on a copy of `s`, or RewardContractError."""
    # Trainers collect under torch.inference_mode, whose tensors keep no version counter: the copy is made
    # outside it (and without autograd), so writes into it are counted.
    with torch.inference_mode(False), torch.no_grad():
        view = s.clone()
        fields = {name: t for name, t in vars(view).items() if t is not None}
        versions = {name: t._version for name, t in fields.items()}
        out = fn(view)
    for name, t in fields.items():
        if t._version != versions[name] or getattr(view, name) is not t:
            raise RewardContractError("state-write", f"compute_reward changed s.{name} in place; compute on copies "
                                                     f"(e.g. x = s.{name}.clone()) and leave s unchanged")
    return check_output(out, s.num_envs)


def check_output(out: object, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total, components) if a reward's return value keeps the contract, else RewardContractError."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise RewardContractError("output", "compute_reward must return a tuple (total, components)")
    total, components = out
    if not isinstance(total, torch.Tensor) or total.shape != (n,):
        shape = tuple(total.shape) if isinstance(total, torch.Tensor) else type(total).__name__
        raise RewardContractError("output", f"total must be a tensor of shape ({n},), one value per environment; "
                                            f"got {shape}")
    if not total.dtype.is_floating_point:
        raise RewardContractError("output", f"total must be a floating-point tensor, got {total.dtype}")
    if not isinstance(components, dict):
        raise RewardContractError("output", f"components must be a dict of name -> tensor, got "
                                            f"{type(components).__name__}")
    if len(components) > MAX_COMPONENTS:
        raise RewardContractError("components", f"at most {MAX_COMPONENTS} components, got {len(components)}")
    for name, value in components.items():
        # Names go into logs, metrics, prompts and the report: short identifiers only.
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_COMPONENT_NAME_CHARS:
            raise RewardContractError("components", f"component names must be identifiers of at most "
                                                    f"{MAX_COMPONENT_NAME_CHARS} characters (letters, digits, _)")
        if not isinstance(value, torch.Tensor) or value.shape != (n,) or not value.dtype.is_floating_point:
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise RewardContractError("components", f"component {name!r} must be a float tensor of shape ({n},); "
                                                    f"got {got}")
    return total, components

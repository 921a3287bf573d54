"""The one loader of reward code: the checked syntax tree is compiled and run with torch, math, F and a few
builtins, nothing else.

Every reward that trains, ours or an LLM's, and every expression of a task file (its success check) comes in
through here; nothing else executes such code. What is compiled is the tree the static check approved (its
annotations and harmless imports already taken away), never the source text again.
"""

from __future__ import annotations

import ast
import builtins
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812 - the name LLMs use for it

from robosmith.contract.state import SimState
from robosmith.reward.check import ALLOWED_BUILTINS, RewardRejected, check_expression, check_static

RewardFn = Callable[[SimState], tuple[torch.Tensor, dict[str, torch.Tensor]]]
SuccessFn = Callable[[SimState], torch.Tensor]


def _import_for_torch_only(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
    """Torch's C++ side imports its own helper modules through the running frame's builtins (the reward's);
    the reward itself can never reach this name (underscore names are rejected statically)."""
    if level == 0 and (name == "torch" or name.startswith("torch.")):
        return builtins.__import__(name, globals, locals, fromlist, level)
    raise ImportError(f"import of {name} is not allowed in a reward")


SAFE_BUILTINS: dict[str, object] = {
    "__import__": _import_for_torch_only, **{name: getattr(builtins, name) for name in ALLOWED_BUILTINS},
}


def _run(tree: ast.Module, name: str, filename: str) -> Callable:
    namespace: dict = {"__builtins__": dict(SAFE_BUILTINS), "torch": torch, "math": math, "F": F}
    exec(compile(tree, filename, "exec"), namespace)  # noqa: S102 - a checked tree, restricted builtins
    fn = namespace.get(name)
    if not callable(fn):
        raise RewardRejected("static", f"structure: {name} is not a function")
    return fn


def load_reward(code: str) -> RewardFn:
    """The compute_reward function of code that passes the static check."""
    return _run(check_static(code), "compute_reward", "<reward>")


def load_success(expr: str) -> SuccessFn:
    """A task's success expression as a function of the state: (N,) bool."""
    fn = _run(check_expression(expr, "success"), "success", "<success>")

    def success(s: SimState) -> torch.Tensor:
        return torch.as_tensor(fn(s)).to(torch.bool).reshape(-1)

    return success

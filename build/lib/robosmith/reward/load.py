"""The one loader of reward code: checked statically, then executed with torch, math and a few builtins.

Every reward that trains, ours or an LLM's, comes in through `load_reward`; nothing else executes reward code.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable

import torch

from robosmith.contract.state import SimState
from robosmith.reward.check import ALLOWED_BUILTINS, RewardRejected, check_static

RewardFn = Callable[[SimState], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def _import_for_torch_only(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
    """Torch's C++ side imports its own helper modules through the running frame's builtins (the reward's);
    the reward itself can never reach this name (underscore names are rejected statically)."""
    if level == 0 and (name == "torch" or name.startswith("torch.")):
        return builtins.__import__(name, globals, locals, fromlist, level)
    raise ImportError(f"import of {name} is not allowed in a reward")


SAFE_BUILTINS: dict[str, object] = {
    "__import__": _import_for_torch_only, **{name: getattr(builtins, name) for name in ALLOWED_BUILTINS},
}


def load_reward(code: str) -> RewardFn:
    """The compute_reward function of code that passes check_static, bound to torch, math and safe builtins."""
    check_static(code)
    namespace: dict = {"__builtins__": dict(SAFE_BUILTINS), "torch": torch, "math": math}
    exec(compile(code, "<reward>", "exec"), namespace)  # noqa: S102 - checked above, restricted builtins
    fn = namespace["compute_reward"]
    if not callable(fn):
        raise RewardRejected("static", "compute_reward is not a function")
    return fn



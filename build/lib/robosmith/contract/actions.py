"""Policy actions to servo targets: the one mapping the simulator, the exported engines and the real arm use.

An action is one number per joint in [-1, 1] (LeRobot order, gripper last). In "absolute" mode the target
is `home + scale * action`; in "delta" mode it is the previous target plus `scale * action`. Targets are
clipped to the joint limits of the model, in radians. The arithmetic is float64 so that a target written to
a simulator or a servo bus is the same number everywhere.
Part of robosmith's contract: torch only, copied verbatim into every exported engine package.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ACTION_MODES = ("absolute", "delta")


@dataclass(frozen=True)
class ActionMap:
    mode: str  # "absolute" or "delta"
    scale: float  # rad per unit of action
    home: tuple[float, ...]  # rad, the absolute mode's centre (and the start pose), clipped to the limits
    low: tuple[float, ...]  # rad, lower joint limits
    high: tuple[float, ...]  # rad, upper joint limits

    def __post_init__(self) -> None:
        if self.mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be 'delta' or 'absolute', got {self.mode!r}")
        if not len(self.home) == len(self.low) == len(self.high):
            raise ValueError("home, low and high need one value per joint")
        clipped = tuple(min(max(h, lo), hi) for h, lo, hi in zip(self.home, self.low, self.high, strict=True))
        object.__setattr__(self, "home", clipped)

    def _limits(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kw = {"dtype": torch.float64, "device": like.device}
        return torch.tensor(self.home, **kw), torch.tensor(self.low, **kw), torch.tensor(self.high, **kw)

    def targets(self, action: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """(N, J) servo targets in rad for actions (N, J); `previous` holds the targets before (delta mode).

        Actions outside [-1, 1] are clamped first; NaN actions are the caller's to refuse.
        """
        a = torch.clamp(action.detach().to(torch.float32), -1.0, 1.0).to(torch.float64)
        home, low, high = self._limits(a)
        base = previous.to(torch.float64) if self.mode == "delta" else home
        return torch.clamp(base + self.scale * a, low, high)

    def actions_for(self, targets: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """(N, J) actions in [-1, 1] that bring the servo targets as near to `targets` (rad) as allowed.

        Policies that speak in joint targets (scripted demonstrators, LeRobot policies) act through this.
        """
        targets = targets.to(torch.float64)
        home, _, _ = self._limits(targets)
        base = previous.to(torch.float64) if self.mode == "delta" else home
        return ((targets - base) / self.scale).to(torch.float32).clamp(-1.0, 1.0)

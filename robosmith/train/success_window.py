"""Training success over the last iterations, counted from the episodes that end in them: what a curriculum's
stage (`robosmith.train.curriculum`) and widening ranges (`robosmith.train.widening`) wait on to move on."""

from __future__ import annotations

from collections import deque

import torch

WINDOW = 10  # iterations over which success is measured before training may move on


class SuccessWindow:
    """Successes and ended episodes of the current iteration, and of the last `WINDOW` iterations."""

    def __init__(self) -> None:
        self.iterations: deque[tuple[int, int]] = deque(maxlen=WINDOW)  # (successes, episodes) per iteration
        self.successes = torch.zeros((), dtype=torch.long)
        self.episodes = torch.zeros((), dtype=torch.long)

    def record(self, ok: torch.Tensor, ended: torch.Tensor) -> None:
        """Count the episodes that end at this step and those of them that succeeded."""
        self.successes += (ok & ended).sum()
        self.episodes += ended.sum()

    def end_iteration(self) -> float | None:
        """Close the iteration; the success rate over the window so far (None while no episode has ended)."""
        self.iterations.append((int(self.successes), int(self.episodes)))
        self.successes.zero_()
        self.episodes.zero_()
        episodes = sum(n for _, n in self.iterations)
        return sum(k for k, _ in self.iterations) / episodes if episodes else None

    @property
    def full(self) -> bool:
        return len(self.iterations) == WINDOW

    def clear(self) -> None:
        """Start over: what comes next is judged on its own episodes."""
        self.iterations.clear()

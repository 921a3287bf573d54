"""Widening randomization ranges while training: a task file's `train.randomized.widen_from` below 1.

Training starts in worlds near the nominal one (`widen_from` of each range's width around its nominal value)
and the ranges grow by `widen_step` each time the training success over the last `WINDOW` iterations reaches
`widen_at`, until they are whole. The policy first learns the task, then to hold it in ever more different
worlds: under lift's whole ranges from the start, training success was 5% at 17 min where the nominal world
had 71% (README).
"""

from __future__ import annotations

from collections import deque

from robosmith.task.spec import TaskSpec
from robosmith.train.curriculum import WINDOW


class Widening:
    """How much of each randomization range a run draws from (`width`), and when it grows (`end_iteration`)."""

    def __init__(self, start: float, step: float, at_success: float) -> None:
        self.start, self.width, self.step, self.at_success = start, start, step, at_success
        self.window: deque[tuple[int, int]] = deque(maxlen=WINDOW)  # (successes, episodes) per iteration

    @staticmethod
    def for_run(task: TaskSpec, randomize: bool) -> Widening | None:
        """The task's widening where the run randomizes the world and the task's ranges start narrower."""
        r = task.train.randomized
        if not randomize or not task.domain_randomization or r.widen_from >= 1.0:
            return None
        return Widening(r.widen_from, r.widen_step, r.widen_at)

    def end_iteration(self, successes: int, episodes: int) -> float:
        """Count an iteration's ended episodes; widen the ranges if the last full window succeeded often enough.
        Returns the width the next iteration draws from."""
        self.window.append((successes, episodes))
        total = sum(n for _, n in self.window)
        full = len(self.window) == WINDOW and total > 0
        if self.width < 1.0 and full and sum(k for k, _ in self.window) / total >= self.at_success:
            self.width = min(1.0, self.width + self.step)
            self.window.clear()  # judge the wider worlds on their own episodes
        return self.width

    def as_config(self) -> dict:
        return {"widen_from": self.start, "widen_step": self.step, "widen_at": self.at_success}

"""Widening randomization ranges while training: a task file's `train.randomized.widen_from` below 1.

Training starts in worlds near the nominal one (`widen_from` of each range's width around its nominal value)
and the ranges grow by `widen_step` each time the training success over the last ten iterations reaches
`widen_at`, until they are whole. The policy first learns the task, then to hold it in ever more different
worlds: under lift's whole ranges from the start, training success was 5% at 17 min where the nominal world
had 71% (README).
"""

from __future__ import annotations

import torch

from robosmith.task.spec import TaskSpec
from robosmith.train.success_window import SuccessWindow


class Widening:
    """How much of each randomization range a run draws from (`width`), and when it grows (`end_iteration`)."""

    def __init__(self, start: float, step: float, at_success: float) -> None:
        self.start, self.step, self.at_success = start, step, at_success
        self.steps = 0  # how many times the ranges have grown
        # Only episodes whose world was drawn at the current width count: after a step, worlds drawn narrower
        # go on until their episodes end, and they must not carry the wider ranges on their success.
        self.window = SuccessWindow()

    @staticmethod
    def for_run(task: TaskSpec, randomize: bool) -> Widening | None:
        """The task's widening where the run randomizes the world and the task's ranges start narrower."""
        r = task.train.randomized
        if not randomize or not task.domain_randomization or r.widen_from >= 1.0:
            return None
        return Widening(r.widen_from, r.widen_step, r.widen_at)

    @property
    def width(self) -> float:
        # Counted in steps, not summed: ten steps of 0.1 from 0 make exactly 1.
        return min(1.0, round(self.start + self.steps * self.step, 9))

    def record(self, ok: torch.Tensor, ended: torch.Tensor, drawn_width: torch.Tensor) -> None:
        """Count the episodes that end at this step in worlds drawn at the current width."""
        self.window.record(ok, ended & (drawn_width == self.width))

    def end_iteration(self) -> dict:
        """The iteration's `randomization_width` (the width it drew from) and `widening_success` (over the window
        at that width) for metrics.jsonl; then widens the ranges if a full window succeeded often enough."""
        rate = self.window.end_iteration()
        row = {"randomization_width": self.width, "widening_success": rate}
        if self.width < 1.0 and self.window.full and rate is not None and rate >= self.at_success:
            self.steps += 1
            self.window.clear()
        return row

    def as_config(self) -> dict:
        return {"widen_from": self.start, "widen_step": self.step, "widen_at": self.at_success}

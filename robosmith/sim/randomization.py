"""Domain randomization on the CPU backend: every environment draws its own world at each of its resets.

A randomization is a tuple of `DRParam` ranges over registry names (the task's `domain_randomization`
section, or a `--dr` file of the same schema). Each reset draws, per environment, one value per parameter
uniformly in its range (or in its logarithm, `distribution: log_uniform`; per joint where the registry entry is
per joint; whole numbers for integer entries such as `action_delay_steps`) from a generator of its own, so runs
are reproducible and a run without randomization draws exactly the random numbers it drew before randomization
existed.
"""

from __future__ import annotations

import math

import numpy as np

from robosmith.robot.params import PARAMS
from robosmith.robot.so101 import JOINT_NAMES
from robosmith.task.spec import DRParam


class Randomizer:
    """Draws values of a randomization's parameters for k environments at a time."""

    def __init__(self, ranges: tuple[DRParam, ...], seed: int) -> None:
        self.ranges = ranges
        # A stream apart from the resets' own (seed, 1): turning randomization on changes nothing else.
        self.rng = np.random.default_rng([seed, 1])
        self.width = 1.0  # the fraction of each range drawn from, around its nominal value (widening ranges)

    def bounds(self, p: DRParam) -> tuple[float, float]:
        """The part of `p`'s range drawn from now: `width` of the way from the nominal value to each bound (of the
        logarithm's way for log-uniform ranges)."""
        w = self.width
        if p.distribution == "log_uniform":
            return p.nominal * (p.low / p.nominal) ** w, p.nominal * (p.high / p.nominal) ** w
        return p.nominal - w * (p.nominal - p.low), p.nominal + w * (p.high - p.nominal)

    def sample(self, k: int) -> dict[str, np.ndarray]:
        """{name: (k,) or, for per-joint entries, (k, 6)} values within each range."""
        out = {}
        for p in self.ranges:
            entry = PARAMS[p.name]
            shape = (k, len(JOINT_NAMES)) if entry.per_joint else (k,)
            low, high = self.bounds(p)
            if entry.integer:
                out[p.name] = self._whole_numbers(p, shape)
            elif p.distribution == "log_uniform":
                out[p.name] = np.clip(np.exp(self.rng.uniform(math.log(low), math.log(high), size=shape)), low, high)
            else:
                out[p.name] = self.rng.uniform(low, high, size=shape)
        return out

    def _whole_numbers(self, p: DRParam, shape: tuple[int, ...]) -> np.ndarray:
        """Whole numbers of `p`'s range, each as likely at the whole width. Narrowed (widening ranges), the range of
        whole numbers widened by half a step each side is drawn from and rounded, so the share of worlds at the
        next number (one more step of lag) grows with the width instead of jumping."""
        first, last = math.ceil(p.low), math.floor(p.high)
        if last < first:  # no whole number in the range: the one nearest its nominal value
            return np.full(shape, float(round(p.nominal)))
        if self.width >= 1.0:  # the draw of runs without widening, unchanged: their seeds draw what they drew
            return self.rng.integers(first, last + 1, size=shape).astype(float)
        w = self.width
        low, high = p.nominal - w * (p.nominal - first), p.nominal + w * (last - p.nominal)
        drawn = np.rint(self.rng.uniform(low - 0.5 * w, high + 0.5 * w, size=shape))
        return np.clip(drawn, first, last) + 0.0  # + 0.0: no -0.0 from a draw just below zero


def sample_statistics(samples: dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    """Per parameter: how many values were drawn and their mean, std, min and max (metrics.jsonl keeps these)."""
    out = {}
    for name, chunks in samples.items():
        if not chunks:
            continue
        values = np.concatenate([c.reshape(-1) for c in chunks])
        out[name] = {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
                     "min": float(values.min()), "max": float(values.max())}
    return out

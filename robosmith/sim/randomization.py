"""Domain randomization on the CPU backend: every environment draws its own world at each of its resets.

A randomization is a tuple of `DRParam` ranges over registry names (the task's `domain_randomization`
section, or a `--dr` file of the same schema). Each reset draws, per environment, one value per parameter
uniformly in its range (per joint where the registry entry is per joint; whole numbers for integer entries
such as `action_delay_steps`) from a generator of its own, so runs are reproducible and a run without
randomization draws exactly the random numbers it drew before randomization existed.
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
        """The part of `p`'s range drawn from now: `width` of the way from the nominal value to each bound."""
        return p.nominal - self.width * (p.nominal - p.low), p.nominal + self.width * (p.high - p.nominal)

    def sample(self, k: int) -> dict[str, np.ndarray]:
        """{name: (k,) or, for per-joint entries, (k, 6)} values within each range."""
        out = {}
        for p in self.ranges:
            entry = PARAMS[p.name]
            shape = (k, len(JOINT_NAMES)) if entry.per_joint else (k,)
            low, high = self.bounds(p)
            if entry.integer:
                # Whole numbers: the range widened by half a step each side, drawn and rounded. At the whole
                # width each whole number of the range is as likely; while widening, the share of worlds at
                # the next number (one more step of lag) grows with the width instead of jumping.
                half = 0.5 * self.width
                drawn = np.rint(self.rng.uniform(low - half, high + half, size=shape))
                out[p.name] = np.clip(drawn, math.ceil(p.low), math.floor(p.high))
            else:
                out[p.name] = self.rng.uniform(low, high, size=shape)
        return out


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

"""Reflection: what the last iteration's training curves say, as statistics and as text for the next prompt.

For each candidate: every reward component's curve sampled at a few points with its min, mean and max, the
success rate and episode length; then the advice Eureka gives its LLM. The same statistics guide the
offline proposer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robosmith.runs import CandidateFolder, read_metrics

CURVE_POINTS = 10
MAX_REASON_CHARS = 300  # per candidate: a reason comes from what the candidate did, and goes to the next prompt
MAX_REFLECTION_CHARS = 8000


def curve_stats(rows: list[dict], key: str, points: int = CURVE_POINTS) -> dict | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return None
    idx = np.unique(np.linspace(0, len(values) - 1, min(points, len(values))).round().astype(int))
    return {
        "samples": [round(float(values[i]), 4) for i in idx],
        "min": float(np.min(values)),
        "mean": float(np.mean(values)),
        "max": float(np.max(values)),
    }


def candidate_stats(folder: Path) -> dict[str, dict]:
    """Curves of success rate, episode length and every reward component of one trained candidate."""
    path = CandidateFolder(folder).metrics
    rows = read_metrics(path) if path.is_file() else []
    keys = ["success_rate", "episode_length"] + sorted({k for r in rows for k in r if k.startswith("reward/")})
    out = {}
    for key in keys:
        stats = curve_stats(rows, key)
        if stats is not None:
            out[key.removeprefix("reward/")] = stats
    return out


def _fmt(stats: dict) -> str:
    samples = ", ".join(f"{v:.3g}" for v in stats["samples"])
    return f"[{samples}]  min {stats['min']:.3g}, mean {stats['mean']:.3g}, max {stats['max']:.3g}"


def reflection_text(candidates: list[dict]) -> str:
    """The feedback section of the next prompt, covering every candidate of the iteration."""
    lines = []
    for c in candidates:
        head = f"Candidate {c['id']}"
        if c["status"] == "rejected":
            lines.append(f"{head} was rejected before training: {c['reason'][:MAX_REASON_CHARS]}")
            continue
        if c["status"] != "ok":
            lines.append(f"{head} failed during training ({c['status']}): {c['reason'][:MAX_REASON_CHARS]}")
            continue
        lines.append(
            f"{head}: evaluation success {100 * c['success_rate']:.0f}% over {c['eval_episodes']} episodes, "
            f"{c['env_steps']} environment steps. Curves over training (sampled at {CURVE_POINTS} points):"
        )
        for name, stats in c.get("stats", {}).items():
            lines.append(f"  {name}: {_fmt(stats)}")
    text = "\n".join(lines)
    return text if len(text) <= MAX_REFLECTION_CHARS else text[:MAX_REFLECTION_CHARS] + "\n(cut short)"

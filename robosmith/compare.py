"""`robosmith compare A B`: the gain of one policy over another, from their results, with a 95% interval.

A and B are result files or the folders that hold them: `eval.json` (`robosmith eval`, `bc eval`, in a run
folder or its `eval/`) or `deploy.json` (`robosmith deploy`, on the arm or `--sim`). The same numbers for
simulation and for the real arm: successes out of episodes, each rate with its Wilson interval, the difference
B - A with Newcombe's hybrid score interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robosmith.contract.metrics import difference_interval, wilson_interval
from robosmith.errors import RobosmithError

RESULT_FILES = ("deploy.json", "eval.json", "eval/eval.json")


class CompareError(RobosmithError, ValueError):
    """A path that holds no result (one line)."""


@dataclass(frozen=True)
class Outcome:
    path: Path
    task: str
    where: str  # "simulation", "simulated arm (deploy --sim)" or "real arm"
    successes: int
    episodes: int


def read_outcome(path: Path) -> Outcome:
    path = Path(path)
    if path.is_dir():
        found = next((path / name for name in RESULT_FILES if (path / name).is_file()), None)
        if found is None:
            raise CompareError(f"{path}: holds none of {', '.join(RESULT_FILES)}")
        path = found
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CompareError(f"{path}: not a readable result file ({type(e).__name__})") from None
    if isinstance(data.get("episodes"), list):  # deploy.json
        runs = data["episodes"]
        where = "simulated arm (deploy --sim)" if data.get("sim") else "real arm"
        return Outcome(path, str(data.get("task")), where, sum(bool(e.get("success")) for e in runs), len(runs))
    if isinstance(data.get("successes"), int) and isinstance(data.get("episodes"), int):  # eval.json
        return Outcome(path, str(data.get("task")), "simulation", data["successes"], data["episodes"])
    raise CompareError(f"{path}: neither an eval.json (successes, episodes) nor a deploy.json (episodes list)")


def compare(a: Path, b: Path) -> dict:
    first, second = read_outcome(a), read_outcome(b)
    if first.task != second.task:
        raise CompareError(f"{first.path} is {first.task}, {second.path} is {second.task}: not the same task")
    if not first.episodes or not second.episodes:
        raise CompareError(f"{first.path if not first.episodes else second.path}: no episodes")
    gain, low, high = difference_interval(first.successes, first.episodes, second.successes, second.episodes)
    side = lambda o: {"path": str(o.path), "where": o.where, "successes": o.successes,  # noqa: E731
                      "episodes": o.episodes, "success_rate": o.successes / o.episodes,
                      "ci95": list(wilson_interval(o.successes, o.episodes))}
    return {"task": first.task, "a": side(first), "b": side(second), "gain": gain, "gain_ci95": [low, high],
            "significant": low > 0 or high < 0}

"""Human review of an iteration: each candidate as a diff against the best reward, beside its figures.

The same decisions work from a terminal (`robosmith review RUN`, interactive) and from scripts
(`--approve ID`, `--reject --comment`, `--edit ID --file F`); both resume the paused langgraph graph.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from robosmith.agent.loop import RewardLoop
from robosmith.agent.randomization import parse_ranges
from robosmith.errors import RobosmithError
from robosmith.reward.check import check_static
from robosmith.runs import CandidateFolder, read_metrics


class ReviewError(RobosmithError, ValueError):
    """A decision that cannot apply to the paused iteration (one line)."""


def _colour(line: str, enabled: bool) -> str:
    if not enabled:
        return line
    if line.startswith("+") and not line.startswith("+++"):
        return f"\033[32m{line}\033[0m"
    if line.startswith("-") and not line.startswith("---"):
        return f"\033[31m{line}\033[0m"
    if line.startswith("@@"):
        return f"\033[36m{line}\033[0m"
    return line


def in_randomization(state: dict) -> bool:
    return state.get("phase") == "randomization"


def records_of(loop: RewardLoop, state: dict) -> list[dict]:
    """The paused iteration's candidates, in whichever phase the loop paused."""
    return loop.randomization.iteration_records(state) if in_randomization(state) else loop.iteration_records(state)


def editable_file(loop: RewardLoop, state: dict, candidate: str) -> Path | None:
    """What a reviewer edits of a candidate: its reward body, or in the randomization phase its ranges."""
    record = next((r for r in records_of(loop, state) if r["id"] == candidate), None)
    if record is None:
        return None
    folder = CandidateFolder(loop.run_dir / record["dir"])
    return folder.randomization if in_randomization(state) else folder.reward_body


def review_screen(loop: RewardLoop, state: dict, colour: bool = False) -> str:
    """What a reviewer reads: per candidate, its figures, its video and its diff against the current best."""
    if in_randomization(state):
        return _randomization_screen(loop, state, colour)
    it = state["iteration"]
    best = state.get("best_before")  # the reward accepted before this iteration: what proposals change
    best_code = best["code"] if best else ""
    lines = [f"Iteration {it} of {loop.task.name} — diffs against the best before it: "
             + (f"candidate {best['id']} at {best['success_rate']:.0%} success" if best else "none yet"), ""]
    for record in loop.iteration_records(state):
        folder = CandidateFolder(loop.folder(record))
        head = f"[{record['id']}] {record['status']}"
        if record["status"] == "ok":
            head += f"  success {record['success_rate']:.0%}  mean reward {record['mean_reward']:.3f}"
            stats = _component_means(folder.metrics)
            if stats:
                head += "  " + "  ".join(f"{name} {value:.3g}" for name, value in stats.items())
        else:
            head += f"  {record['reason']}"
        lines.append(head)
        if folder.video.is_file():
            lines.append(f"    video: {folder.video}")
        code = folder.reward_body.read_text() if folder.reward_body.is_file() else ""
        diff = difflib.unified_diff(best_code.splitlines(), code.splitlines(), "best", record["id"], lineterm="", n=1)
        lines.extend("    " + _colour(d, colour) for d in diff)
        lines.append("")
    lines.append("Decide: approve ID | reject (with a comment for the next proposals) | edit ID")
    return "\n".join(lines)


def _randomization_screen(loop: RewardLoop, state: dict, colour: bool) -> str:
    """Per randomization candidate: its robustness and its ranges as a diff against the most robust so far."""
    from robosmith.agent.randomization import ranges_yaml

    best = state.get("dr_best_before")
    before = ranges_yaml(best["ranges"]) if best else ""
    lines = [f"Randomization iteration {state['dr_iteration']} of {loop.task.name} — ranges against the most robust "
             "before it: " + (f"candidate {best['id']}, worst variant {best['robustness_worst']:.0%}" if best
                              else "none yet"), ""]
    for record in records_of(loop, state):
        head = f"[{record['id']}] {record['status']}"
        if record["status"] == "ok":
            head += (f"  worst variant {record['robustness_worst']:.0%}  mean {record['robustness_mean']:.0%}  "
                     f"nominal {record['success_rate']:.0%}")
        else:
            head += f"  {record['reason']}"
        lines.append(head)
        ranges = ranges_yaml(record["ranges"]) if record.get("ranges") else ""
        diff = difflib.unified_diff(before.splitlines(), ranges.splitlines(), "best", record["id"], lineterm="", n=1)
        lines.extend("    " + _colour(d, colour) for d in diff)
        lines.append("")
    lines.append("Decide: approve ID | reject (with a comment for the next proposals) | edit ID (its ranges)")
    return "\n".join(lines)


def _component_means(path: Path) -> dict[str, float]:
    """Last-iteration mean of each reward component and the episode length, from metrics.jsonl."""
    rows = read_metrics(path) if path.is_file() else []
    if not rows:
        return {}
    last = rows[-1]
    out = {k.removeprefix("reward/"): v for k, v in last.items() if k.startswith("reward/")}
    if last.get("episode_length") is not None:
        out["ep_len"] = last["episode_length"]
    return out


def decide(loop: RewardLoop, state: dict, action: str, candidate: str | None = None, comment: str = "",
           code: str | None = None) -> dict:
    """Check a decision against the paused iteration and build the resume value for the graph."""
    records = {r["id"]: r for r in records_of(loop, state)}
    if action == "approve":
        if candidate not in records:
            raise ReviewError(f"no candidate {candidate} in the paused iteration; have {', '.join(records)}")
        if records[candidate]["status"] != "ok":
            raise ReviewError(f"candidate {candidate} did not train ({records[candidate]['status']}); pick another")
        return {"action": "approve", "candidate": candidate}
    if action == "reject":
        if not comment.strip():
            raise ReviewError("a rejection needs a comment: it is what the next proposals are told")
        return {"action": "reject", "comment": comment.strip()}
    if action == "edit":
        ranges = in_randomization(state)  # the randomization phase edits ranges, the reward phase code
        what = "ranges" if ranges else "code"
        if code is None:
            raise ReviewError(f"an edit needs the new {what}")
        try:
            if ranges:
                parse_ranges(code)
            else:
                check_static(code)
        except RobosmithError as e:
            raise ReviewError(f"the edited {what} {'are' if ranges else 'is'} rejected: "
                              f"{getattr(e, 'reason', e)}") from None
        return {"action": "edit", "candidate": candidate or "", "ranges" if ranges else "code": code}
    raise ReviewError(f"unknown action {action!r}")

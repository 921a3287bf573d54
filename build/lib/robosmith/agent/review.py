"""Human review of an iteration: each candidate as a diff against the best reward, beside its figures.

The same decisions work from a terminal (`robosmith review RUN`, interactive) and from scripts
(`--approve ID`, `--reject --comment`, `--edit ID --file F`); both resume the paused langgraph graph.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from robosmith.agent.loop import RewardLoop
from robosmith.errors import RobosmithError
from robosmith.reward.check import RewardRejected, check_static
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


def review_screen(loop: RewardLoop, state: dict, colour: bool = False) -> str:
    """What a reviewer reads: per candidate, its figures, its video and its diff against the current best."""
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
    records = {r["id"]: r for r in loop.iteration_records(state)}
    if action == "approve":
        if candidate not in records:
            raise ReviewError(f"no candidate {candidate} in iteration {state['iteration']}; have {', '.join(records)}")
        if records[candidate]["status"] != "ok":
            raise ReviewError(f"candidate {candidate} did not train ({records[candidate]['status']}); pick another")
        return {"action": "approve", "candidate": candidate}
    if action == "reject":
        if not comment.strip():
            raise ReviewError("a rejection needs a comment: it is what the next proposals are told")
        return {"action": "reject", "comment": comment.strip()}
    if action == "edit":
        if code is None:
            raise ReviewError("an edit needs the new code")
        try:
            check_static(code)
        except RewardRejected as e:
            raise ReviewError(f"the edited code is rejected: {e.reason}") from None
        return {"action": "edit", "candidate": candidate or "", "code": code}
    raise ReviewError(f"unknown action {action!r}")

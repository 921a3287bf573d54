"""Where a reward-design run stands, read from its folder alone: `robosmith status RUN`, and the live table
`robosmith run` shows while candidates train.

Everything comes from files the loop and the trainers write anyway (job.json, metrics.jsonl, result.json,
record.json), plus two small ones: `head.json` (which process on which host runs the loop, and whether it
ended, so a killed run is told from a running one) and, for candidates on a Ray node, `live.json` (the
trainer's last metrics row, sent back while it trains). It works during the run, after it, and after a kill,
from any terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from robosmith.execution.executor import every
from robosmith.runs import AgentRun, CandidateFolder, last_metrics_row, write_json

REFRESH_S = 2.0


def mark_head(run_dir: Path) -> None:
    """Record that this process runs the loop now (written at every start and resume)."""
    pid = os.getpid()
    write_json(AgentRun(run_dir).head, {"pid": pid, "start_ticks": _start_ticks(pid), "host": socket.gethostname(),
                                        "started": time.time()})


def mark_ended(run_dir: Path, outcome: str) -> None:
    """The loop returned normally: `finished`, or `paused for review`."""
    run = AgentRun(run_dir)
    write_json(run.head, {**(_read(run.head) or {}), "ended": time.time(), "outcome": outcome})


def head_state(run_dir: Path) -> str:
    """running, finished, paused for review, or stopped (killed or interrupted before the loop's end)."""
    run = AgentRun(run_dir)
    head = _read(run.head)
    if head is None:  # a run from before head.json, or one that never began
        return "finished" if run.summary.is_file() else "stopped" if run.graph.is_file() else "not started"
    if head.get("ended"):
        return head.get("outcome", "finished")
    if head.get("host") != socket.gethostname():
        return f"running on {head.get('host')} (not checked from here)"
    alive = _start_ticks(int(head["pid"])) == head.get("start_ticks")  # the same process, not a reused pid
    return "running" if alive else "stopped"


def candidate_status(run_dir: Path, rel: str, head: str, executor: str = "local") -> dict:
    folder = CandidateFolder(run_dir / rel)
    job, result, record, live = _read(folder.job), _read(folder.result), _read(folder.record), _read(folder.live)
    row = last_metrics_row(folder.metrics) or live or {}
    # A Ray candidate's node is known once it reports (live.json) or returns (result.json).
    where = ((result or {}).get("node") or {}).get("host") or (live or {}).get("node")
    where = where or ("local" if executor == "local" else "")
    minutes = ((job or {}).get("settings") or {}).get("max_minutes")
    elapsed = row.get("wall_s")
    if result:
        status = result["status"]
    elif record:
        status = record.get("status", "done")
    elif job is None:
        status = "checking" if head == "running" else "proposed"  # a rejected one has its record.json
    elif not head.startswith("running"):
        status = "interrupted"
    else:
        status = "training" if row else "queued"
    return {
        "id": rel, "where": where if job else "", "status": status,
        "env_steps": (result or {}).get("env_steps", row.get("env_steps")),
        "elapsed_s": (result or {}).get("wall_s", elapsed),
        "remaining_s": None if result or elapsed is None or minutes is None else max(0.0, 60 * minutes - elapsed),
        "train_success": (result or {}).get("train_success_rate", row.get("success_rate")),
        "mean_reward": (result or {}).get("mean_reward", row.get("mean_reward")),
        "eval_success": (result or {}).get("success_rate"),
    }


def run_status(run_dir: Path) -> dict:
    run = AgentRun(run_dir)
    info = _read(run.run_info) or {}
    head = head_state(run_dir)
    rels = [str(p.relative_to(run_dir)) for pattern in ("iter_*/cand_*", "dr_*/cand_*")
            for p in sorted(run_dir.glob(pattern)) if p.is_dir()]
    executor = info.get("settings", {}).get("executor", "local")
    candidates = [candidate_status(run_dir, rel, head, executor) for rel in rels]
    done = [c for c in candidates if c["eval_success"] is not None and c["status"] == "ok"]
    best = max(done, key=lambda c: c["eval_success"], default=None)
    return {"run": str(run_dir), "task": (info.get("task") or {}).get("name"), "state": head,
            "executor": executor, "candidates": candidates,
            "best": {"id": best["id"], "success_rate": best["eval_success"]} if best else None}


def status_table(status: dict) -> Group:
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("candidate", "left"), ("where", "left"), ("status", "left"), ("env steps", "right"),
                          ("elapsed", "right"), ("remaining", "right"), ("train success", "right"),
                          ("reward", "right"), ("eval success", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for c in status["candidates"]:
        table.add_row(
            c["id"], c["where"], c["status"], _fmt(c["env_steps"], "{:,}"), _fmt(c["elapsed_s"], "{:.0f} s"),
            _fmt(c["remaining_s"], "{:.0f} s"), _fmt(c["train_success"], "{:.0%}"),
            _fmt(c["mean_reward"], "{:.3g}"), _fmt(c["eval_success"], "{:.0%}"),
        )
    best = status["best"]
    head = Text(f"{status['run']}: {status['task']}, {status['state']}, executor {status['executor']}; best so far: "
                + (f"{best['id']} at {best['success_rate']:.0%}" if best else "none yet"))
    return Group(head, table)


@contextlib.contextmanager
def live_status(run_dir: Path, console: Console | None = None):
    """The status table, refreshed while the block runs, where the output is a terminal; nothing elsewhere
    (logs and CI keep the loop's one line per finished candidate)."""
    console = console or Console()
    if not console.is_terminal:
        yield
        return
    with Live(status_table(run_status(run_dir)), console=console, refresh_per_second=1, transient=True) as live, \
            every(REFRESH_S, lambda: live.update(status_table(run_status(run_dir)))):
        yield


def _fmt(value, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _start_ticks(pid: int) -> int | None:
    """When a process started (clock ticks since boot): with the pid, names one process across pid reuse."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None

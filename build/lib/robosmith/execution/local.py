"""The local executor: candidates train in parallel as processes on this machine, a bounded number at a time,
each with a time limit.

A crashed or timed-out candidate is recorded with its reason and the others go on. Results are read from
each folder's result.json and metrics.jsonl, never from stdout. Candidates that already have a result.json
(finished before a kill) are not trained again.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from robosmith.execution.confine import confinement, package_root
from robosmith.execution.executor import OnDone
from robosmith.runs import CandidateFolder, TrainingRun, write_json

PR_SET_PDEATHSIG = 1


def _trainer_preexec(folder: Path) -> Callable[[], None]:
    confine = confinement(folder)  # the trainer runs LLM code: no network, writes only in its folder
    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a SIGKILLed loop must not leave trainers a resume races
        os.setsid()
        confine()

    return apply


def _log_tail(path: Path, lines: int = 5) -> str:
    if not path.is_file():
        return ""
    tail = [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    return " | ".join(tail)[-400:]


@dataclass
class LocalExecutor:
    """Candidates as confined processes on this machine."""

    parallel: int
    timeout_s: float
    threads_per_candidate: int = 1
    name: str = "local"

    def run(self, folders: list[Path], on_done: OnDone | None = None) -> None:
        train_candidates(folders, self.parallel, self.timeout_s, self.threads_per_candidate, on_done)


def train_candidates(
    folders: list[Path],
    parallel: int,
    timeout_s: float,
    threads_per_candidate: int = 1,
    on_done: OnDone | None = None,
) -> None:
    """Train every folder without a result.json; each worker writes its own result.json."""
    pending = [f for f in folders if not CandidateFolder(f).result.is_file()]
    running: dict[Path, tuple[subprocess.Popen, float]] = {}
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads_per_candidate),
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root(), os.environ.get("PYTHONPATH")])),
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
    }
    try:
        while pending or running:
            while pending and len(running) < parallel:
                folder = pending.pop(0)
                log = TrainingRun(folder).train_log.open("w")
                proc = subprocess.Popen(
                    [sys.executable, "-m", "robosmith.execution.worker", str(folder)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
                    env={**env, "HOME": str(folder), "TMPDIR": str(folder)},  # caches and temp files stay inside
                    preexec_fn=_trainer_preexec(folder),
                )
                log.close()
                running[folder] = (proc, time.monotonic())
            time.sleep(0.5)
            for folder, (proc, started) in list(running.items()):
                code = proc.poll()
                if code is None and time.monotonic() - started > timeout_s:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    write_json(CandidateFolder(folder).result, {
                        "status": "timeout", "reason": f"exceeded the candidate time limit of {timeout_s:.0f} s",
                    })
                elif code is None:
                    continue
                elif not CandidateFolder(folder).result.is_file():
                    write_json(CandidateFolder(folder).result, {
                        "status": "crashed",
                        "reason": f"trainer exited with code {code}: {_log_tail(TrainingRun(folder).train_log)}",
                    })
                del running[folder]
                if on_done:
                    on_done(folder, json.loads(CandidateFolder(folder).result.read_text()))
    finally:
        for proc, _ in running.values():  # interrupted (Ctrl-C): take the trainers down with us
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

"""The local executor: candidates train in parallel as processes on this machine, a bounded number at a time,
each with a time limit and confined like the smoke run.

Each trainer runs LLM code millions of times, so it gets: CPU-time and file-size limits, a memory limit (a
cgroup where the system delegates one, else RLIMIT_DATA for the CPU backend, and a resident-memory watchdog
polled here for every backend), an environment without API keys or credentials, no network and writes only
in its folder (robosmith.execution.confine). A crashed, timed-out or over-limit candidate is recorded with its
reason and the others go on. Results are read from each folder's result.json and metrics.jsonl, never from
stdout. Candidates that already have a result.json (finished before a kill) are not trained again.
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

from robosmith.execution.confine import (
    TrainerLimits,
    cgroup_for,
    resident_mb,
    sandbox_preexec,
    trainer_environment,
)
from robosmith.execution.executor import OnDone
from robosmith.runs import CandidateFolder, TrainingRun, write_json

PR_SET_PDEATHSIG = 1
WATCH_EVERY_S = 0.25


def _trainer_preexec(folder: Path, limits: TrainerLimits, cgroup: Path | None) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def first() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a SIGKILLed loop must not leave trainers a resume races
        os.setsid()
        if cgroup is not None:
            with contextlib.suppress(OSError):
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    data_mb = limits.memory_mb if limits.data_limit and cgroup is None else None
    return sandbox_preexec(folder, limits.cpu_s, data_mb, limits.fsize_mb, before=first)


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
    limits: TrainerLimits
    threads_per_candidate: int = 1
    name: str = "local"

    def run(self, folders: list[Path], on_done: OnDone | None = None) -> None:
        train_candidates(folders, self.parallel, self.timeout_s, self.limits, self.threads_per_candidate, on_done)


def train_candidates(
    folders: list[Path],
    parallel: int,
    timeout_s: float,
    limits: TrainerLimits,
    threads_per_candidate: int = 1,
    on_done: OnDone | None = None,
) -> None:
    """Train every folder without a result.json; each worker writes its own result.json."""
    pending = [f for f in folders if not CandidateFolder(f).result.is_file()]
    running: dict[Path, tuple[subprocess.Popen, float, Path | None]] = {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                folder = pending.pop(0).resolve()
                cgroup = cgroup_for(f"robosmith-{os.getpid()}-{len(running)}", limits.memory_mb)
                log = TrainingRun(folder).train_log.open("w")
                proc = subprocess.Popen(
                    [sys.executable, "-m", "robosmith.execution.worker", str(folder)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
                    env=trainer_environment(folder, threads_per_candidate),
                    preexec_fn=_trainer_preexec(folder, limits, cgroup),
                )
                log.close()
                running[folder] = (proc, time.monotonic(), cgroup)
            time.sleep(WATCH_EVERY_S)
            for folder, (proc, started, cgroup) in list(running.items()):
                code = proc.poll()
                if code is None and resident_mb(proc.pid) > limits.memory_mb:
                    _kill(proc)
                    write_json(CandidateFolder(folder).result, {
                        "status": "memory", "reason": f"exceeded the trainer memory limit of {limits.memory_mb} MiB",
                    })
                elif code is None and time.monotonic() - started > timeout_s:
                    _kill(proc)
                    write_json(CandidateFolder(folder).result, {
                        "status": "timeout", "reason": f"exceeded the candidate time limit of {timeout_s:.0f} s",
                    })
                elif code is None:
                    continue
                elif not CandidateFolder(folder).result.is_file():
                    write_json(CandidateFolder(folder).result, _ended_without_result(code, folder, limits))
                if cgroup is not None:
                    with contextlib.suppress(OSError):
                        cgroup.rmdir()
                del running[folder]
                if on_done:
                    on_done(folder, json.loads(CandidateFolder(folder).result.read_text()))
    finally:
        for proc, _, _ in running.values():  # interrupted (Ctrl-C): take the trainers down with us
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _ended_without_result(code: int, folder: Path, limits: TrainerLimits) -> dict:
    """result.json of a trainer that died before writing its own: the limit that stopped it, if one did."""
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return {"status": "cpu", "reason": f"exceeded the trainer CPU-time limit of {limits.cpu_s} s"}
    if code == -signal.SIGXFSZ:
        return {"status": "crashed", "reason": f"wrote a file larger than the limit of {limits.fsize_mb} MiB"}
    tail = _log_tail(TrainingRun(folder).train_log)
    return {"status": "crashed", "reason": f"trainer exited with code {code}: {tail}"}

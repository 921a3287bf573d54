"""The smoke run: reward code tried on real simulator states in a confined subprocess before anything trains.

The parent samples states of the task's scene, writes them and the code into the candidate folder, and starts
`robosmith.reward.judge` there with CPU-time, memory and file-size limits, no network and writes confined to
that folder; the verdict comes back through a JSON file, never stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from robosmith.contract.io import write_json
from robosmith.contract.state import SimState
from robosmith.execution.confine import package_root, sandbox_preexec
from robosmith.reward.check import RewardRejected, check_static
from robosmith.reward.judge import CODE_FILE, RESULT_FILE, STATES_FILE


def sample_states(task, num_envs: int = 64, seed: int = 0) -> SimState:
    """Real states of the task's scene under random actions, from every part of an episode.

    Snapshots right after reset (step 0, previous action zero), a third and two thirds in, and at the last step
    (the one whose state the success check reads) are concatenated: a reward that divides by `episode_step`, or
    that behaves differently late in an episode, shows it here, not in training.
    """
    from robosmith.sim.batched_env import BatchedEnv, env_config  # MuJoCo stays out of the worker process

    cfg = env_config(task, num_envs, seed)
    cfg.nthread = 1  # a few thousand small steps: a thread pool costs more than it saves
    env = BatchedEnv(task.scene, cfg, task.reset, task.has_goal)
    gen = torch.Generator().manual_seed(seed)
    steps = task.episode_length
    marks = {steps // 3, 2 * steps // 3, steps}
    snapshots = [env.state()]
    try:
        for i in range(1, steps + 1):
            state, _ = env.step(torch.rand(num_envs, 6, generator=gen) * 2 - 1)
            if i in marks:
                snapshots.append(state)
    finally:
        env.close()
    names = snapshots[0].present_fields()
    return SimState(**{name: torch.cat([getattr(s, name) for s in snapshots]) for name in names})


def batch_sizes(task, num_envs: int | None = None, eval_episodes: int | None = None) -> list[int]:
    """The batch sizes a reward is called with: one environment, training's and evaluation's."""
    return sorted({1, num_envs or task.train.num_envs, eval_episodes or task.train.eval_episodes})


def smoke_test(code: str, task, candidate_dir: Path, timeout_s: float = 60.0, cpu_s: int = 20,
               memory_mb: int = 2048, states: SimState | None = None, sizes: list[int] | None = None) -> dict:
    """Run the reward on real states in a confined subprocess; return its statistics or raise RewardRejected.

    memory_mb limits the process's writable private memory (RLIMIT_DATA, which reserved-but-unused address
    space does not count): importing torch takes about 0.8 GiB of it, so 2048 leaves the reward about 1.2 GiB.
    cpu_s counts the worker's start (about 3 s of importing torch) too.
    """
    check_static(code)
    candidate_dir = Path(candidate_dir).resolve()
    candidate_dir.mkdir(parents=True, exist_ok=True)
    states = states if states is not None else sample_states(task)
    saved = {k: v for k, v in vars(states).items() if v is not None}
    torch.save({**saved, "batch_sizes": torch.tensor(sizes or batch_sizes(task))}, candidate_dir / STATES_FILE)
    (candidate_dir / CODE_FILE).write_text(code)
    result_path = candidate_dir / RESULT_FILE
    result_path.unlink(missing_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": package_root(),
        "HOME": str(candidate_dir),
        "TMPDIR": str(candidate_dir),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MUJOCO_GL": "disabled",
    }
    # -P: the candidate folder (the cwd) must not be able to shadow modules; -B: no .pyc writes to attempt.
    proc = subprocess.Popen(
        [sys.executable, "-P", "-B", "-m", "robosmith.reward.judge", str(candidate_dir)], cwd=candidate_dir,
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=sandbox_preexec(candidate_dir, cpu_s, memory_mb),
    )
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise _failed(result_path, f"time: did not finish within {timeout_s:g} s (an endless loop?)", "") from None
    memory_reason = f"memory: exceeded the {memory_mb} MiB memory limit"
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if result.get("ok"):
            return {k: v for k, v in result.items() if k not in ("ok", "reason", "kind", "detail")}
        raise RewardRejected("smoke", memory_reason if result.get("kind") == "memory" else result["reason"])
    detail = err.decode(errors="replace")[-4000:]
    last = (detail.strip().splitlines() or [""])[-1]
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise _failed(result_path, f"cpu: exceeded {cpu_s} s of CPU time (an endless loop?)", detail)
    if "MemoryError" in last or "allocate memory" in last:
        raise _failed(result_path, memory_reason, detail)
    if proc.returncode < 0:
        raise _failed(result_path, f"killed: the reward process was killed by {signal.Signals(-proc.returncode).name}",
                      detail)
    raise _failed(result_path, f"crashed: the reward process failed (exit {proc.returncode})", detail)


def _failed(result_path: Path, reason: str, detail: str) -> RewardRejected:
    """The verdict of a worker that could not write its own: kept in the folder, returned to raise."""
    write_json(result_path, {"ok": False, "reason": reason, "detail": detail})
    return RewardRejected("smoke", reason)


def validate_reward(code: str, task, candidate_dir: Path, **limits) -> dict:
    """Both gates: the static check, then the smoke run (smoke_test begins with the static check)."""
    return smoke_test(code, task, candidate_dir, **limits)

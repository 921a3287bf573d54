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

from robosmith.contract.state import SimState
from robosmith.execution.confine import package_root, sandbox_preexec
from robosmith.reward.check import RewardRejected, check_static
from robosmith.reward.judge import CODE_FILE, RESULT_FILE, STATES_FILE


def sample_states(task, num_envs: int = 64, steps: int = 30, seed: int = 0) -> SimState:
    """Real states of the task's scene under random actions: what a reward will see early in training.

    Snapshots right after reset (step 0, previous action zero) and at three points of the random walk are
    concatenated, so a reward that divides by `episode_step` or by a speed fails here, not in training.
    """
    from robosmith.sim.batched_env import BatchedEnv, env_config  # MuJoCo stays out of the worker process

    cfg = env_config(task, num_envs, seed)
    cfg.nthread = 1  # a few hundred small steps: a thread pool costs more than it saves
    env = BatchedEnv(task.scene, cfg, task.reset, task.has_goal)
    gen = torch.Generator().manual_seed(seed)
    marks = {max(1, steps * k // 3) for k in (1, 2, 3)} if steps > 0 else set()
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


def smoke_test(code: str, task, candidate_dir: Path, timeout_s: float = 30.0, cpu_s: int = 10,
               memory_mb: int = 6144, states: SimState | None = None) -> dict:
    """Run the reward on real states in a limited subprocess; return its statistics or raise RewardRejected.

    memory_mb limits the address space, not the resident memory: the CUDA build of torch maps about 4.7 GiB
    when imported (while using about 0.5 GiB), so 6144 leaves the reward about 1.4 GiB of its own.
    cpu_s counts the worker's start (about 2 s of importing torch) too.
    """
    check_static(code)
    candidate_dir = Path(candidate_dir).resolve()
    candidate_dir.mkdir(parents=True, exist_ok=True)
    states = states if states is not None else sample_states(task)
    torch.save({k: v for k, v in vars(states).items() if v is not None}, candidate_dir / STATES_FILE)
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
        raise RewardRejected("smoke", f"did not finish within {timeout_s:g} s (an endless loop?)") from None
    memory_reason = f"exceeded the {memory_mb} MiB memory limit"
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if result.get("ok"):
            return {k: v for k, v in result.items() if k not in ("ok", "reason", "kind")}
        raise RewardRejected("smoke", memory_reason if result.get("kind") == "memory" else result["reason"])
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise RewardRejected("smoke", f"exceeded {cpu_s} s of CPU time (an endless loop?)")
    lines = err.decode(errors="replace").strip().splitlines() or [""]
    if "MemoryError" in lines[-1] or "allocate memory" in lines[-1]:
        raise RewardRejected("smoke", memory_reason)
    if proc.returncode < 0:
        raise RewardRejected("smoke", f"the reward process was killed by {signal.Signals(-proc.returncode).name}")
    raise RewardRejected("smoke", f"the reward process failed (exit {proc.returncode}): {lines[-1][:300]}")


def validate_reward(code: str, task, candidate_dir: Path, **limits) -> dict:
    """Both gates: the static check, then the smoke run (smoke_test begins with the static check)."""
    return smoke_test(code, task, candidate_dir, **limits)



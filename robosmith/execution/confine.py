"""Confinement of processes that run untrusted code (reward smoke runs, candidate trainers).

Layers, each where the OS allows it: resource limits (CPU time, address space, file size, no core dumps), an
empty network namespace (needs root), and Landlock (Linux >= 5.13: writes only inside one folder, no TCP,
no signals to processes outside). Everything OS-dependent degrades quietly: the static check of the code
is the boundary, these are the second layer.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FSIZE_LIMIT_MB = 16  # the smoke worker writes one small JSON file; the states are written by the parent
# What a trainer keeps of the environment: the paths, locale, GPU and rendering settings it needs; never API keys
# or credentials. ROBOSMITH_TRAINER_ENV names more variables to pass (an engine's own, say), comma-separated.
TRAINER_ENV_NAMES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", "MUJOCO_GL", "PYOPENGL_PLATFORM",
                               "DISPLAY", "HF_HUB_OFFLINE", "WANDB_SILENT"})
TRAINER_ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "EGL_", "__EGL_", "VK_", "__GLX_", "WARP_")


@dataclass(frozen=True)
class TrainerLimits:
    """What one candidate's trainer may use; derived from the loop's settings (robosmith.agent.loop)."""

    cpu_s: int  # CPU seconds, all threads together (SIGXCPU, then SIGKILL)
    memory_mb: int  # resident memory of the trainer and its children
    fsize_mb: int = 2048  # the largest file it may write (checkpoints, videos, metrics)
    data_limit: bool = True  # also RLIMIT_DATA (a hard limit; GPU engines rely on the watchdog alone)


def machine_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20


def trainer_environment(folder: Path, threads: int) -> dict[str, str]:
    """The environment of a trainer: a reduced copy of ours, its home and temp in its folder, wandb offline."""
    extra = {n.strip() for n in os.environ.get("ROBOSMITH_TRAINER_ENV", "").split(",") if n.strip()}
    env = {k: v for k, v in os.environ.items()
           if k in TRAINER_ENV_NAMES or k in extra or k.startswith(TRAINER_ENV_PREFIXES)}
    env.update({
        "HOME": str(folder), "TMPDIR": str(folder), "PYTHONPATH": package_root(),
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
        "WANDB_MODE": "offline" if os.environ.get("WANDB_MODE") != "disabled" else "disabled",
    })
    return env


def resident_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB (0 when it is gone)."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError, ValueError, StopIteration):  # gone, or a zombie without VmRSS
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
    return total


def cgroup_for(name: str, memory_mb: int) -> Path | None:
    """A cgroup v2 with a memory limit for one trainer, where this process may create one (a delegated
    subtree); None elsewhere (cgroup v1 machines, containers without delegation), where the watchdog holds."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::"))
        ours = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
        if "memory" not in (ours / "cgroup.subtree_control").read_text().split():
            return None
        group = ours / name
        group.mkdir(exist_ok=True)
        (group / "memory.max").write_text(str(memory_mb << 20))
        with contextlib.suppress(OSError):
            (group / "memory.swap.max").write_text("0")
        return group
    return None


def package_root() -> str:
    """The folder robosmith itself is imported from: child processes import the very same code."""
    return str(Path(__file__).resolve().parent.parent.parent)


# Landlock (Linux >= 5.13): an unprivileged process can take away its own right to write outside a folder and,
# from ABI 4, to open TCP connections. Syscall numbers are the same on x86_64 and aarch64.
_LANDLOCK_SYSCALLS = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}
_LANDLOCK_WRITE_RIGHTS = (  # write_file, remove_dir, remove_file, make_char/dir/reg/sock/fifo/block/sym
    (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
)
_LANDLOCK_REFER, _LANDLOCK_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
_LANDLOCK_TCP = (1 << 0) | (1 << 1)  # bind, connect; ABI 4
_LANDLOCK_SCOPES = (1 << 0) | (1 << 1)  # abstract unix sockets, signals to processes outside; ABI 6
_PR_SET_NO_NEW_PRIVS = 38


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> Any:
    if sys.platform != "linux" or os.uname().machine not in ("x86_64", "aarch64"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi(libc: Any = None) -> int:
    """The kernel's Landlock ABI version, 0 where there is none."""
    libc = libc or _libc()
    if libc is None:
        return 0
    version = libc.syscall(ctypes.c_long(_LANDLOCK_SYSCALLS["create_ruleset"]), None, ctypes.c_size_t(0),
                           ctypes.c_uint32(1))  # LANDLOCK_CREATE_RULESET_VERSION
    return max(int(version), 0)


def _landlock_restrict(libc: Any, abi: int, writable: Path) -> bool:
    """Confine this process and whatever it executes: writes only under `writable` (and /dev/null), no TCP,
    no signals to processes outside. Runs in the forked child, so it only makes system calls."""
    fs = _LANDLOCK_WRITE_RIGHTS | (_LANDLOCK_REFER if abi >= 2 else 0) | (_LANDLOCK_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(fs, _LANDLOCK_TCP if abi >= 4 else 0, _LANDLOCK_SCOPES if abi >= 6 else 0)
    call = libc.syscall
    ruleset = call(ctypes.c_long(_LANDLOCK_SYSCALLS["create_ruleset"]), ctypes.byref(attr),
                   ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return False
    try:
        file_rights = (1 << 1) | (_LANDLOCK_TRUNCATE if abi >= 3 else 0)  # rights a rule on a file may carry
        for path, rights in ((str(writable), fs), ("/dev/null", file_rights)):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(rights, fd)
                if call(ctypes.c_long(_LANDLOCK_SYSCALLS["add_rule"]), ctypes.c_int(ruleset), ctypes.c_int(1),
                        ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    return False
            finally:
                os.close(fd)
        if libc.prctl(ctypes.c_int(_PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) != 0:
            return False
        return call(ctypes.c_long(_LANDLOCK_SYSCALLS["restrict_self"]), ctypes.c_int(ruleset), ctypes.c_uint32(0)) == 0
    finally:
        os.close(ruleset)


def confinement(folder: Path) -> Callable[[], None]:
    """Between fork and exec of a child that runs reward code: an empty network namespace and writes only
    under `folder`, where the OS allows them (root for the namespace, Landlock in the kernel)."""
    libc = _libc()  # loaded here, in the parent: the forked child should only make system calls
    abi = landlock_abi(libc) if libc is not None else 0
    folder = Path(folder).resolve()

    def apply() -> None:
        if hasattr(os, "unshare") and hasattr(os, "CLONE_NEWNET"):
            with contextlib.suppress(OSError):
                os.unshare(os.CLONE_NEWNET)
        if abi > 0:
            with contextlib.suppress(OSError):
                _landlock_restrict(libc, abi, folder)

    return apply


def sandbox_preexec(folder: Path, cpu_s: int, memory_mb: int | None, fsize_mb: int = FSIZE_LIMIT_MB,
                    before: Callable[[], None] | None = None) -> Callable[[], None]:
    """The function a child that runs reward code runs between fork and exec: resource limits, then
    confinement. Everything OS-dependent degrades quietly: the static check is the boundary, these are the
    second layer.

    The memory limit is RLIMIT_DATA: writable private memory, the memory a process really uses. Address space
    that is only reserved (CUDA and Warp reserve tens of GiB) does not count, unlike RLIMIT_AS. None: no limit
    here (a cgroup or the watchdog holds it)."""
    confine = confinement(folder)

    def apply() -> None:
        if before is not None:
            before()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL a second later
        if memory_mb is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb << 20, fsize_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        confine()

    return apply



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
from pathlib import Path
from typing import Any

FSIZE_LIMIT_MB = 16  # the smoke worker writes one small JSON file; the states are written by the parent


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


def sandbox_preexec(folder: Path, cpu_s: int, memory_mb: int, fsize_mb: int = FSIZE_LIMIT_MB) -> Callable[[], None]:
    """The function the smoke-run child runs between fork and exec: resource limits, then confinement.
    Everything OS-dependent degrades quietly: the static check is the boundary, these are the second layer."""
    confine = confinement(folder)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL a second later
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb << 20, fsize_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        confine()

    return apply



"""Validation of reward code written by an LLM: hostile until proven otherwise.

Two gates before anything trains:
1. `check_static`: the code is parsed, never run, and every construct is checked: only function definitions at
   the top, no imports, no names or attributes starting with an underscore (the road to `__class__`,
   `__subclasses__`, `__globals__`), no builtins that reach the interpreter, files or the network, `torch` and
   `math` only as `torch.<allowed function>` (an alias like `t = torch` would reach `torch.os`), no frame or
   generator internals (`gi_frame.f_back.f_globals` reaches the caller's modules), only SimState fields on `s`,
   no writes to `s` or to any attribute.
2. `smoke_test`: the code runs on real simulator states in a separate process with CPU-time, memory and
   file-size limits, no network namespace and writes confined to the candidate's folder (Landlock) where the
   OS allows it; the result (shapes, dtypes, finiteness, statistics) comes back through a JSON file, never
   stdout.
The static check is the boundary that matters most: training runs the same code through `load_reward_fn`
(a small set of builtins) in processes without OS limits. The OS limits of the smoke run are a second layer.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import json
import math
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from robosmith import REPO_ROOT
from robosmith.astnames import dotted_name
from robosmith.runs import write_json
from robosmith.sim.state import FIELD_DOCS, SimState

MAX_CODE_CHARS = 20_000
MAX_COMPONENTS = 32
MAX_COMPONENT_NAME_CHARS = 64
STATES_FILE = "smoke_states.pt"
CODE_FILE = "smoke_code.py"
RESULT_FILE = "smoke.json"
FSIZE_LIMIT_MB = 16  # the worker writes one small JSON file; the states are written by the parent


class RewardRejected(Exception):
    """Reward code that failed validation; `reason` is one line, the thing the LLM is told."""

    def __init__(self, stage: str, reason: str) -> None:
        reason = " ".join(reason.split())  # one line, whatever an exception message held
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


# ------------------------------------------------------------------------------------------ allowlists
# Pure functions and dtypes of torch a reward may use. Anything that touches files (load, save, from_file),
# the interpreter (ops, jit, compile, _C), devices or global settings is left out on purpose. Extend freely with
# pure math; a name that returns a module must go into TORCH_SUBMODULES instead.
TORCH_ALLOWED = frozenset({
    "abs", "acos", "acosh", "add", "all", "allclose", "amax", "amin", "any", "arange", "argmax", "argmin",
    "as_tensor", "asin", "asinh", "atan", "atan2", "atanh", "bmm", "bool", "cat", "cdist", "ceil", "clamp",
    "clamp_max", "clamp_min", "clip", "cos", "cosh", "cosine_similarity", "count_nonzero", "cross", "cumprod",
    "cumsum", "deg2rad", "diff", "div", "dot", "e", "einsum", "eq", "erf", "erfc", "exp", "exp2", "expm1", "flatten",
    "float", "float32", "float64", "floor", "fmod", "full", "full_like", "gather", "ge", "gt", "heaviside", "hypot",
    "inf", "int32", "int64", "isclose", "isfinite", "isinf", "isnan", "le", "lerp", "linalg", "log", "log10",
    "log1p", "log2", "logical_and", "logical_not", "logical_or", "logical_xor", "logsumexp", "long", "lt",
    "matmul", "max", "maximum", "mean", "median", "min", "minimum", "mul", "nan_to_num", "ne", "neg", "nn", "norm",
    "ones", "ones_like", "outer", "pi", "pow", "prod", "rad2deg", "reciprocal", "relu", "remainder", "reshape",
    "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "softmax", "sqrt", "square", "squeeze", "stack",
    "std", "sub", "sum", "tan", "tanh", "tensor", "trunc", "unsqueeze", "var", "where", "zeros", "zeros_like",
})
# Submodules reachable from torch, and what may follow each. A chain may never end at a module: `f =
# torch.nn.functional` would make `f.torch.load` a chain the check cannot see as rooted at torch.
TORCH_SUBMODULES: dict[str, frozenset[str]] = {
    "linalg": frozenset({"norm", "vector_norm", "cross"}),
    "nn": frozenset({"functional"}),
    "functional": frozenset({"relu", "softplus", "sigmoid", "tanh", "elu", "leaky_relu", "normalize", "smooth_l1_loss",
                             "huber_loss", "cosine_similarity"}),
}
MATH_ALLOWED = frozenset({
    "pi", "e", "inf", "tau", "sqrt", "exp", "expm1", "log", "log10", "log2", "log1p", "cos", "sin", "tan", "tanh",
    "atan", "atan2", "acos", "asin", "cosh", "sinh", "fabs", "floor", "ceil", "hypot", "radians", "degrees", "pow",
    "isfinite", "isnan", "isinf", "copysign", "erf",
})
# Attributes denied on anything that is not rooted at torch, math or s (tensors, locals, strings, ...): what
# reaches memory, files, devices, autograd hooks or arbitrary callables. `format`/`format_map` would read
# attributes named inside a string.
ATTRIBUTES_DENIED = frozenset({
    "storage", "untyped_storage", "share_memory_", "numpy", "tofile", "data_ptr", "pin_memory", "cuda", "cpu",
    "xpu", "ipu", "hpu", "mtia", "mps", "to", "backward", "register_hook", "register_post_accumulate_grad_hook",
    "requires_grad_", "apply_", "map_", "map2_", "set_", "resize_", "tolist", "item", "format", "format_map",
    "join", "mro", "load", "save", "from_file", "ops", "hub", "jit", "compile", "fx", "library", "utils",
    "backends", "distributed", "func", "record_stream", "grad_fn", "grad", "module_load", "new_tensor", "pickle",
    "reduce", "as_subclass", "dump", "dumps",
})
# Frame, generator, coroutine, traceback and code internals: `(g for ...).gi_frame.f_back.f_globals` is a way
# from a generator expression to the globals of whoever called the reward, without a single underscore.
ATTRIBUTE_PREFIXES_DENIED = ("gi_", "f_", "tb_", "cr_", "ag_", "co_")
BUILTINS_DENIED = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars",
    "dir", "input", "breakpoint", "help", "type", "super", "object", "memoryview", "classmethod", "staticmethod",
    "property", "exit", "quit", "print", "id", "bytearray", "bytes", "format", "iter", "next", "callable", "chr",
    "ord", "hash", "repr", "ascii", "issubclass", "reload", "license", "credits", "copyright", "aiter", "anext",
})


def _import_for_torch_only(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
    """Torch's C++ side imports its own helper modules through the running frame's builtins (the reward's);
    the reward itself can never reach this name (underscore names are rejected statically)."""
    if level == 0 and (name == "torch" or name.startswith("torch.")):
        return builtins.__import__(name, globals, locals, fromlist, level)
    raise ImportError(f"import of {name} is not allowed in a reward")


SAFE_BUILTINS: dict[str, object] = {
    "__import__": _import_for_torch_only,
    "abs": abs, "min": min, "max": max, "float": float, "int": int, "bool": bool, "len": len, "range": range,
    "sum": sum, "zip": zip, "enumerate": enumerate, "dict": dict, "list": list, "tuple": tuple,
    "isinstance": isinstance, "round": round, "all": all, "any": any, "pow": pow, "ValueError": ValueError,
}
FORBIDDEN_NODES: dict[type, str] = {
    ast.Import: "import statements are not allowed (torch and math are already available)",
    ast.ImportFrom: "import statements are not allowed (torch and math are already available)",
    ast.Global: "global statements are not allowed (no state may be kept between calls)",
    ast.Nonlocal: "nonlocal statements are not allowed (no state may be kept between calls)",
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed (compute_reward returns, it does not generate)",
    ast.YieldFrom: "yield is not allowed (compute_reward returns, it does not generate)",
    ast.With: "with statements are not allowed",
    ast.AsyncWith: "with statements are not allowed",
    ast.AsyncFor: "async for is not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.Try: "try statements are not allowed: let errors surface",
    ast.TryStar: "try statements are not allowed: let errors surface",
    ast.Delete: "del statements are not allowed",
    # Class patterns look attributes up by names held as plain strings (`case int(__class__=c)`).
    ast.Match: "match statements are not allowed",
}


# -------------------------------------------------------------------------------------------- static check
def _reject(node: ast.AST | None, reason: str) -> RewardRejected:
    lineno = getattr(node, "lineno", None)
    return RewardRejected("static", (f"line {lineno}: " if lineno else "") + reason)


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def check_static(code: str) -> None:
    """Raise RewardRejected("static", reason) unless the code is a plain compute_reward over SimState."""
    if not isinstance(code, str):
        raise RewardRejected("static", "the reward must be Python source text")
    if len(code) > MAX_CODE_CHARS:
        raise _reject(None, f"the code is {len(code)} characters long; the limit is {MAX_CODE_CHARS}")
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise RewardRejected("static", (f"line {e.lineno}: " if e.lineno else "") + f"syntax error: {e.msg}") from None
    except ValueError as e:  # e.g. null bytes, on Python versions that do not call it a syntax error
        raise RewardRejected("static", f"the code cannot be parsed: {e}") from None
    state_name = _check_top_level(tree)
    _check_nodes(tree, state_name)


def _check_top_level(tree: ast.Module) -> str:
    """Only definitions at the top, so loading the code runs nothing; returns the name of the state parameter."""
    functions: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        else:
            raise _reject(node, "only function definitions are allowed at the top level (nothing may run on load)")
    fn = functions.get("compute_reward")
    if fn is None:
        raise _reject(None, "no compute_reward function is defined")
    args = fn.args
    if len(args.args) != 1 or args.posonlyargs or args.kwonlyargs or args.vararg or args.kwarg or args.defaults:
        raise _reject(fn, "compute_reward must take exactly one parameter, the SimState (s)")
    return args.args[0].arg


def _check_nodes(tree: ast.Module, state_name: str) -> None:
    # Names that are the object of an attribute access (`torch` in `torch.exp`, `x` in `x.sum`).
    attribute_bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    bound = _bound_names(tree)
    for node in ast.walk(tree):
        reason = FORBIDDEN_NODES.get(type(node))
        if reason:
            raise _reject(node, reason)
        if isinstance(node, ast.FunctionDef):
            if node.decorator_list:
                raise _reject(node, "decorators are not allowed")
            _check_binding(node, node.name)
        elif isinstance(node, ast.arg):
            _check_binding(node, node.arg)
        elif isinstance(node, ast.Name):
            _check_name(node, is_attribute_base=id(node) in attribute_bases)
        elif isinstance(node, ast.Attribute):
            _check_attribute(node, state_name, outermost=id(node) not in attribute_bases)
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
            if _root_name(node) == state_name:
                raise _reject(node, f"compute_reward must not change {state_name} (write into a copy, e.g. "
                                    f"x = {state_name}.ee_pos.clone())")
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if "__" in text:
                raise _reject(node, "strings containing '__' are not allowed")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in BUILTINS_DENIED or name.startswith("_"):
                raise _reject(node, f"{name} is not allowed")
            if name not in SAFE_BUILTINS and name not in bound:
                available = ", ".join(sorted(k for k in SAFE_BUILTINS if not k.startswith("_")))
                raise _reject(node, f"call of {name}() is not allowed; available: torch, math and {available}")


def _bound_names(tree: ast.Module) -> set[str]:
    """Every name the code itself binds: assignments, loop and comprehension targets, parameters, functions."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    names |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return names


def _check_binding(node: ast.AST, name: str) -> None:
    if name.startswith("_"):
        raise _reject(node, f"names starting with an underscore are not allowed ({name})")
    if name in ("torch", "math"):
        raise _reject(node, f"{name} may not be reassigned or shadowed")
    if name in BUILTINS_DENIED:
        raise _reject(node, f"{name} is not allowed as a name")


def _check_name(node: ast.Name, is_attribute_base: bool) -> None:
    if node.id.startswith("_"):
        raise _reject(node, f"names starting with an underscore are not allowed ({node.id})")
    if node.id in BUILTINS_DENIED:
        raise _reject(node, f"{node.id} is not allowed")
    if node.id in ("torch", "math"):
        if not isinstance(node.ctx, ast.Load):
            raise _reject(node, f"{node.id} may not be reassigned or shadowed")
        if not is_attribute_base:
            # The attribute allowlists only see chains that start at the name itself.
            raise _reject(node, f"{node.id} may only be used as {node.id}.<function>(...); it cannot be stored, "
                                "passed or returned")


def _check_attribute(node: ast.Attribute, state_name: str, outermost: bool) -> None:
    if not isinstance(node.ctx, ast.Load):
        raise _reject(node, f"assigning or deleting attributes is not allowed (.{node.attr}); keep results in "
                            "local variables")
    if node.attr.startswith("_"):
        raise _reject(node, f"attributes starting with an underscore are not allowed (.{node.attr})")
    chain = dotted_name(node)
    if chain and chain[0] == "torch":
        allowed = TORCH_ALLOWED
        for part in chain[1:]:
            if part not in allowed:
                raise _reject(node, f"torch.{'.'.join(chain[1:])} is not allowed; use pure math functions of torch")
            allowed = TORCH_SUBMODULES.get(part, frozenset())
        if outermost and chain[-1] in TORCH_SUBMODULES:
            raise _reject(node, f"torch.{'.'.join(chain[1:])} is a module: call one of its functions directly "
                                "(e.g. torch.linalg.norm(...)) instead of storing or passing it")
        return
    if chain and chain[0] == "math":
        if len(chain) != 2 or chain[1] not in MATH_ALLOWED:
            raise _reject(node, f"math.{'.'.join(chain[1:])} is not allowed")
        return
    if chain and chain[0] == state_name and isinstance(node.value, ast.Name):
        if chain[1] not in FIELD_DOCS:
            raise _reject(node, f"SimState has no field {chain[1]!r}; fields: {', '.join(FIELD_DOCS)}")
        return
    if node.attr in ATTRIBUTES_DENIED or node.attr.startswith(ATTRIBUTE_PREFIXES_DENIED):
        raise _reject(node, f".{node.attr} is not allowed")


def load_reward_fn(code: str) -> Callable:
    """The compute_reward function of code that passes check_static, bound to torch, math and safe builtins."""
    check_static(code)
    namespace: dict = {"__builtins__": dict(SAFE_BUILTINS), "torch": torch, "math": math}
    exec(compile(code, "<reward>", "exec"), namespace)  # noqa: S102 - checked above, restricted builtins
    fn = namespace["compute_reward"]
    if not callable(fn):
        raise RewardRejected("static", "compute_reward is not a function")
    return fn


# --------------------------------------------------------------------------------------------- smoke run
def sample_states(task, num_envs: int = 64, steps: int = 30, seed: int = 0) -> SimState:
    """Real states of the task's scene under random actions: what a reward will see early in training.

    Snapshots right after reset (step 0, previous action zero) and at three points of the random walk are
    concatenated, so a reward that divides by `episode_step` or by a speed fails here, not in training.
    """
    from robosmith.sim.batched_env import BatchedEnv  # MuJoCo stays out of the worker process

    cfg = task.env_config(num_envs, seed)
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
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": str(candidate_dir),
        "TMPDIR": str(candidate_dir),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MUJOCO_GL": "disabled",
    }
    # -P: the candidate folder (the cwd) must not be able to shadow modules; -B: no .pyc writes to attempt.
    proc = subprocess.Popen(
        [sys.executable, "-P", "-B", "-m", "robosmith.agent.sandbox", str(candidate_dir)], cwd=candidate_dir,
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


# ---------------------------------------------------------------------------------- worker (subprocess)
def _stats(t: torch.Tensor) -> dict[str, float]:
    return {"mean": float(t.mean()), "min": float(t.min()), "max": float(t.max())}


class _ContractError(ValueError):
    """What the reward returned breaks the contract; the message is the whole reason."""


def _check_outputs(out: object, n: int) -> dict:
    """Statistics of a reward's output, or a _ContractError saying what is wrong with it."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise _ContractError("compute_reward must return a tuple (total, components)")
    total, components = out
    if not isinstance(total, torch.Tensor) or total.shape != (n,):
        shape = tuple(total.shape) if isinstance(total, torch.Tensor) else type(total).__name__
        raise _ContractError(f"total must be a tensor of shape ({n},), one value per environment; got {shape}")
    if not total.dtype.is_floating_point:
        raise _ContractError(f"total must be a floating-point tensor, got {total.dtype}")
    if not bool(torch.isfinite(total).all()):
        bad = int((~torch.isfinite(total)).sum())
        raise _ContractError(f"total has non-finite values (NaN or inf) in {bad} of {n} states")
    if not isinstance(components, dict):
        raise _ContractError(f"components must be a dict of name -> tensor, got {type(components).__name__}")
    if len(components) > MAX_COMPONENTS:
        raise _ContractError(f"at most {MAX_COMPONENTS} components, got {len(components)}")
    stats = {}
    for name, value in components.items():
        # Names go into logs, prompts, the report and the rendered module's docstring, which must itself pass
        # the static check when training loads it.
        if (not isinstance(name, str) or not name or len(name) > MAX_COMPONENT_NAME_CHARS or not name.isprintable()
                or any(c in name for c in "\"'\\") or "__" in name):
            raise _ContractError(f"component names must be non-empty printable strings of at most "
                                 f"{MAX_COMPONENT_NAME_CHARS} characters, without quotes, backslashes or '__'; "
                                 f"got {name!r:.80}")
        if not isinstance(value, torch.Tensor) or value.shape != (n,) or not value.dtype.is_floating_point:
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise _ContractError(f"component {name!r} must be a float tensor of shape ({n},); got {got}")
        if not bool(torch.isfinite(value).all()):
            raise _ContractError(f"component {name!r} has non-finite values (NaN or inf)")
        stats[name] = _stats(value)
    return {"num_states": n, "total": _stats(total), "components": stats}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _reward_line(e: BaseException) -> str:
    """'line N: ' of the innermost frame of the reward's own code in the traceback, if any."""
    lineno, tb = None, e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<reward>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f"line {lineno}: " if lineno else ""


def _is_out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, MemoryError) or "allocate memory" in text or "out of memory" in text.lower()


def evaluate_in_process(code: str, states: SimState) -> dict:
    """Run the code on the states in this very process and judge what it returns: {"ok": True, statistics...}
    or {"ok": False, "reason": ...}. Untrusted code only ever gets here inside the limited worker process."""
    result: dict = {"ok": False, "reason": ""}
    try:
        fields = {name: getattr(states, name) for name in states.present_fields()}
        before = {name: value.clone() for name, value in fields.items()}
        fn = load_reward_fn(code)
        with torch.no_grad():
            out = fn(states)
        result = {"ok": True, "reason": "", **_check_outputs(out, states.num_envs)}
        for name, value in before.items():
            if getattr(states, name) is not fields[name] or not _same(value, fields[name]):
                # The trainer computes observations and success from the same state after the reward.
                return {"ok": False, "reason": f"compute_reward changed s.{name} in place; compute on copies "
                                               f"(e.g. x = s.{name}.clone()) and leave s unchanged"}
    except RewardRejected as e:
        result["reason"] = e.reason
    except _ContractError as e:
        result["reason"] = str(e)
    except RecursionError:
        result["reason"] = "recursion too deep (maximum recursion depth exceeded)"
    except Exception as e:  # noqa: BLE001 - whatever the reward raised is the reason
        if _is_out_of_memory(e):
            result.update(kind="memory", reason="out of memory")
        else:
            message = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            result["reason"] = f"{_reward_line(e)}{type(e).__name__}: {message}"
    return result


def _worker(folder: Path) -> None:
    """In the limited subprocess: run the code on the saved states, write smoke.json."""
    try:
        states = SimState(**torch.load(folder / STATES_FILE, weights_only=True))
        result = evaluate_in_process((folder / CODE_FILE).read_text(), states)
    except Exception as e:  # noqa: BLE001 - a broken states file is still reported through smoke.json
        result = {"ok": False, "reason": f"the smoke run could not start: {type(e).__name__}: {e}"}
    write_json(folder / RESULT_FILE, result)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))

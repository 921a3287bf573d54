"""Validation of reward code written by an LLM: hostile until proven otherwise.

Two gates before anything trains:
1. `check_static`: the code is parsed, never run, and every construct is checked against an allowlist: only
   function definitions at the top, no imports, no names or attributes starting with an underscore (the
   road to `__class__`, `__subclasses__`, `__globals__`), no builtins that reach the interpreter, files or
   the network, only pure-math attributes of `torch` and `math`, only SimState fields on `s`.
2. `smoke_test`: the code runs on real simulator states in a separate process with CPU-time, memory and
   file-size limits, no network namespace where the OS allows it, in the candidate's folder; the result
   (shapes, dtypes, finiteness) comes back through a JSON file, never stdout.
Even after both, the code only ever runs through `load_reward_fn`, with a small set of builtins.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import math
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from robosmith import REPO_ROOT
from robosmith.sim.state import FIELD_DOCS, SimState

MAX_CODE_CHARS = 20_000
STATES_FILE = "smoke_states.pt"
CODE_FILE = "smoke_code.py"
RESULT_FILE = "smoke.json"


class RewardRejected(Exception):
    """Reward code that failed validation; `reason` is one line, the thing the LLM is told."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


# Pure functions and dtypes of torch a reward may use. Anything that touches files (load, save, from_file),
# the interpreter (ops, jit, compile, _C), devices or global settings is left out on purpose.
TORCH_ALLOWED = frozenset({
    "abs", "acos", "acosh", "add", "all", "amax", "amin", "any", "arange", "argmax", "argmin", "asin", "atan",
    "atan2", "bool", "cat", "ceil", "clamp", "clamp_max", "clamp_min", "clip", "cos", "cosh", "cross", "cumsum",
    "diff", "div", "dot", "einsum", "eq", "exp", "expm1", "float32", "float64", "floor", "full", "full_like", "ge",
    "gt", "hypot", "int64", "isfinite", "isnan", "le", "lerp", "linalg", "log", "log1p", "logical_and",
    "logical_not", "logical_or", "logical_xor", "long", "lt", "max", "maximum", "mean", "min", "minimum", "mul",
    "nan_to_num", "ne", "neg", "norm", "ones", "ones_like", "pi", "pow", "prod", "rad2deg", "deg2rad",
    "reciprocal", "relu", "remainder", "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "softplus", "sqrt",
    "square", "stack", "std", "sub", "sum", "tan", "tanh", "tensor", "as_tensor", "trunc", "var", "where",
    "zeros", "zeros_like", "float", "exp2", "erf", "inf", "e", "nn",
})
TORCH_SUBMODULES = {
    "linalg": frozenset({"norm", "vector_norm", "cross"}),
    "nn": frozenset({"functional"}),
    "functional": frozenset({"relu", "softplus", "sigmoid", "tanh", "elu", "leaky_relu", "normalize"}),
}
MATH_ALLOWED = frozenset({
    "pi", "e", "inf", "tau", "sqrt", "exp", "log", "log10", "log2", "cos", "sin", "tan", "tanh", "atan", "atan2",
    "acos", "asin", "fabs", "floor", "ceil", "hypot", "radians", "degrees", "pow", "isfinite", "copysign",
})
# Tensor methods that reach memory, files, devices, autograd or arbitrary callables.
TENSOR_METHODS_DENIED = frozenset({
    "storage", "untyped_storage", "share_memory_", "numpy", "tofile", "data_ptr", "pin_memory", "cuda", "cpu",
    "to", "backward", "register_hook", "register_post_accumulate_grad_hook", "requires_grad_", "apply_", "map_",
    "map2_", "set_", "resize_", "tolist", "item", "format", "join", "mro", "load", "save", "from_file", "ops",
    "hub", "jit", "compile", "fx", "library", "utils", "mps", "backends", "distributed", "func",
    "record_stream", "grad_fn", "grad", "module_load", "new_tensor", "pickle", "reduce",
})
BUILTINS_DENIED = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars",
    "dir", "input", "breakpoint", "help", "type", "super", "object", "memoryview", "classmethod", "staticmethod",
    "property", "exit", "quit", "print", "id", "bytearray", "bytes", "format", "iter", "next", "callable", "chr",
    "ord", "hash", "repr", "ascii", "issubclass", "reload", "license", "credits", "copyright",
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
    "isinstance": isinstance, "round": round, "ValueError": ValueError,
}
FORBIDDEN_NODES: dict[type, str] = {
    ast.Import: "import statements are not allowed (torch and math are already available)",
    ast.ImportFrom: "import statements are not allowed (torch and math are already available)",
    ast.Global: "global statements are not allowed",
    ast.Nonlocal: "nonlocal statements are not allowed",
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed (compute_reward returns, it does not generate)",
    ast.YieldFrom: "yield is not allowed (compute_reward returns, it does not generate)",
    ast.With: "with statements are not allowed",
    ast.AsyncWith: "with statements are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.Try: "try statements are not allowed: let errors surface",
    ast.Delete: "del statements are not allowed",
}


def _reject(node: ast.AST | None, reason: str) -> RewardRejected:
    where = f"line {node.lineno}: " if node is not None and hasattr(node, "lineno") else ""
    return RewardRejected("static", where + reason)


def _attribute_chain(node: ast.Attribute) -> list[str] | None:
    """['torch', 'linalg', 'norm'] for torch.linalg.norm; None when the chain does not start at a name."""
    chain = [node.attr]
    value = node.value
    while isinstance(value, ast.Attribute):
        chain.append(value.attr)
        value = value.value
    if isinstance(value, ast.Name):
        chain.append(value.id)
        return chain[::-1]
    return None


def check_static(code: str) -> None:
    """Raise RewardRejected("static", reason) unless the code is a plain compute_reward over SimState."""
    if len(code) > MAX_CODE_CHARS:
        raise _reject(None, f"the code is {len(code)} characters long; the limit is {MAX_CODE_CHARS}")
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise RewardRejected("static", f"line {e.lineno}: syntax error: {e.msg}") from None

    functions = {}
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
    if (len(args.args) != 1 or args.posonlyargs or args.kwonlyargs or args.vararg or args.kwarg
            or args.defaults):
        raise _reject(fn, "compute_reward must take exactly one parameter, the SimState (s)")
    state_name = args.args[0].arg
    local_functions = set(functions)

    for node in ast.walk(tree):
        for kind, reason in FORBIDDEN_NODES.items():
            if isinstance(node, kind):
                raise _reject(node, reason)
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            raise _reject(node, "decorators are not allowed")
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise _reject(node, f"names starting with an underscore are not allowed ({node.id})")
            if node.id in BUILTINS_DENIED:
                raise _reject(node, f"{node.id} is not allowed")
            if node.id in ("torch", "math") and isinstance(node.ctx, ast.Store):
                raise _reject(node, f"{node.id} may not be reassigned")
        elif isinstance(node, ast.arg) and node.arg.startswith("_"):
            raise _reject(node, f"names starting with an underscore are not allowed ({node.arg})")
        elif isinstance(node, ast.Attribute):
            _check_attribute(node, state_name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
            raise _reject(node, "strings containing '__' are not allowed")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in BUILTINS_DENIED or name.startswith("_"):
                raise _reject(node, f"{name} is not allowed")
            if name not in SAFE_BUILTINS and name not in local_functions and name not in _assigned_names(tree):
                raise _reject(node, f"call of {name}() is not allowed; available: torch, math and "
                                    f"{', '.join(sorted(k for k in SAFE_BUILTINS if k[0].islower()))}")


def _assigned_names(tree: ast.Module) -> set[str]:
    return {t.id for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
            for t in ast.walk(node) if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)} | {
        a.arg for node in ast.walk(tree) if isinstance(node, (ast.Lambda, ast.FunctionDef)) for a in node.args.args}


def _check_attribute(node: ast.Attribute, state_name: str) -> None:
    if node.attr.startswith("_"):
        raise _reject(node, f"attributes starting with an underscore are not allowed (.{node.attr})")
    chain = _attribute_chain(node)
    if chain and chain[0] == "torch":
        allowed = TORCH_ALLOWED
        for part in chain[1:]:
            if part not in allowed:
                raise _reject(node, f"torch.{'.'.join(chain[1:])} is not allowed; use pure math functions of torch")
            allowed = TORCH_SUBMODULES.get(part, frozenset())
        return
    if chain and chain[0] == "math":
        if len(chain) != 2 or chain[1] not in MATH_ALLOWED:
            raise _reject(node, f"math.{'.'.join(chain[1:])} is not allowed")
        return
    if chain and chain[0] == state_name and len(chain) >= 2 and isinstance(node.value, ast.Name):
        if chain[1] not in FIELD_DOCS:
            raise _reject(node, f"SimState has no field {chain[1]!r}; fields: {', '.join(FIELD_DOCS)}")
        return
    if node.attr in TENSOR_METHODS_DENIED:
        raise _reject(node, f".{node.attr} is not allowed")


def load_reward_fn(code: str) -> Callable:
    """The compute_reward function of code that passes check_static, bound to torch, math and safe builtins."""
    check_static(code)
    namespace: dict = {"__builtins__": dict(SAFE_BUILTINS), "torch": torch, "math": math}
    exec(compile(code, "<reward>", "exec"), namespace)  # noqa: S102 - checked above, restricted builtins
    return namespace["compute_reward"]


# -------------------------------------------------------------------------------------------- smoke run
def sample_states(task, num_envs: int = 64, steps: int = 30, seed: int = 0) -> SimState:
    """Real states of the task's scene under random actions: what a reward will see early in training."""
    from robosmith.sim.batched_env import BatchedEnv

    env = BatchedEnv(task.scene, task.env_config(num_envs, seed), task.reset, task.has_goal)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        state, _ = env.step(torch.rand(num_envs, 6, generator=gen) * 2 - 1)
    env.close()
    return state


def _limits(cpu_s: int, memory_mb: int, fsize_mb: int) -> Callable[[], None]:
    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb << 20, fsize_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if hasattr(os, "unshare") and hasattr(os, "CLONE_NEWNET"):
            with contextlib.suppress(OSError):  # no network at all where the OS lets us (root, user namespaces)
                os.unshare(os.CLONE_NEWNET)

    return apply


def smoke_test(code: str, task, candidate_dir: Path, timeout_s: float = 30.0, cpu_s: int = 10,
               memory_mb: int = 6144, states: SimState | None = None) -> dict:
    """Run the reward on real states in a limited subprocess; return per-component statistics."""
    check_static(code)
    candidate_dir.mkdir(parents=True, exist_ok=True)
    states = states if states is not None else sample_states(task)
    torch.save({k: v for k, v in vars(states).items() if v is not None}, candidate_dir / STATES_FILE)
    (candidate_dir / CODE_FILE).write_text(code)
    (candidate_dir / RESULT_FILE).unlink(missing_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": str(candidate_dir),
        "OMP_NUM_THREADS": "1",
        "MUJOCO_GL": "disabled",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "robosmith.agent.sandbox", str(candidate_dir)], cwd=candidate_dir, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=_limits(cpu_s, memory_mb, fsize_mb=16),
    )
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RewardRejected("smoke", f"did not finish within {timeout_s:.0f} s (an endless loop?)") from None
    result_path = candidate_dir / RESULT_FILE
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if not result["ok"]:
            reason = result["reason"]
            if "allocate memory" in reason or "out of memory" in reason:
                reason = f"exceeded the memory limit of {memory_mb} MiB ({reason[:120]})"
            raise RewardRejected("smoke", reason)
        return result
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise RewardRejected("smoke", f"exceeded {cpu_s} s of CPU time (an endless loop?)")
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    if "MemoryError" in tail[0] or "memory" in tail[0].lower():
        raise RewardRejected("smoke", f"exceeded the memory limit of {memory_mb} MiB")
    raise RewardRejected("smoke", f"the reward process died (exit {proc.returncode}): {tail[0][:300]}")


def validate_reward(code: str, task, candidate_dir: Path, **limits) -> dict:
    check_static(code)
    return smoke_test(code, task, candidate_dir, **limits)


def _check_outputs(out: object, n: int) -> dict:
    """Statistics of a reward's output, or a ValueError saying what is wrong with it."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError("compute_reward must return a tuple (total, components)")
    total, components = out
    if not isinstance(total, torch.Tensor) or total.shape != (n,):
        shape = tuple(total.shape) if isinstance(total, torch.Tensor) else type(total).__name__
        raise ValueError(f"total must be a tensor of shape ({n},), one value per environment; got {shape}")
    if not total.dtype.is_floating_point:
        raise ValueError(f"total must be a floating-point tensor, got {total.dtype}")
    if not bool(torch.isfinite(total).all()):
        raise ValueError(f"total has non-finite values (NaN or inf) in {int((~torch.isfinite(total)).sum())} "
                         "environments")
    if not isinstance(components, dict):
        raise ValueError(f"components must be a dict of name -> tensor, got {type(components).__name__}")
    stats = {}
    for name, value in components.items():
        if not isinstance(name, str) or not name:
            raise ValueError("component names must be non-empty strings")
        if not isinstance(value, torch.Tensor) or value.shape != (n,) or not value.dtype.is_floating_point:
            raise ValueError(f"component {name!r} must be a float tensor of shape ({n},)")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"component {name!r} has non-finite values (NaN or inf)")
        stats[name] = {"min": float(value.min()), "mean": float(value.mean()), "max": float(value.max())}
    return {"total": {"min": float(total.min()), "mean": float(total.mean()), "max": float(total.max())},
            "components": stats}


def _worker(folder: Path) -> None:
    """In the limited subprocess: run the code on the saved states, write smoke.json."""
    result: dict = {"ok": False, "reason": ""}
    try:
        tensors = torch.load(folder / STATES_FILE, weights_only=True)
        states = SimState(**tensors)
        fn = load_reward_fn((folder / CODE_FILE).read_text())
        with torch.no_grad():
            out = fn(states)
        result = {"ok": True, "reason": "", **_check_outputs(out, states.num_envs)}
    except MemoryError:
        result["reason"] = "ran out of memory (exceeded the memory limit)"
    except RecursionError:
        result["reason"] = "recursion too deep"
    except RewardRejected as e:
        result["reason"] = e.reason
    except Exception as e:  # noqa: BLE001 - whatever the reward raised is the reason
        result["reason"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    (folder / RESULT_FILE).write_text(json.dumps(result))


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))

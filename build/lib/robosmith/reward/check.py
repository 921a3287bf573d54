"""The static check of reward code (and of a task's expressions): the boundary against hostile code.

The code is parsed, never run, and every construct is checked: only function definitions at the top, no
imports, no names or attributes starting with an underscore (the road to `__class__`, `__subclasses__`,
`__globals__`), no builtins that reach the interpreter, files or the network, `torch` and `math` only as
`torch.<allowed function>` (an alias like `t = torch` would reach `torch.os`), no frame or generator
internals (`gi_frame.f_back.f_globals` reaches the caller's modules), only SimState fields on `s`, no writes
to `s` or to any attribute. Code that passes is loaded by `robosmith.reward.load` with a small set of
builtins; the smoke run (`robosmith.execution.smoke`) then tries it on real states in a confined process.
"""

from __future__ import annotations

import ast

from robosmith.astnames import dotted_name
from robosmith.contract.state import FIELD_DOCS
from robosmith.errors import RobosmithError

MAX_CODE_CHARS = 20_000
MAX_COMPONENTS = 32
MAX_COMPONENT_NAME_CHARS = 64


class RewardRejected(RobosmithError):
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


# The builtins reward code may call; the loader gives it these and nothing else.
ALLOWED_BUILTINS = (
    "abs", "min", "max", "float", "int", "bool", "len", "range", "sum", "zip", "enumerate", "dict", "list", "tuple",
    "isinstance", "round", "all", "any", "pow", "ValueError",
)
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
            if name not in ALLOWED_BUILTINS and name not in bound:
                available = ", ".join(sorted(ALLOWED_BUILTINS))
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



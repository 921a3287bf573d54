"""The static check of reward code (and of a task file's expressions): the first boundary against hostile code.

The code is parsed, never run. Harmless noise an LLM writes is taken away first (annotations, a docstring,
`import torch`, `import torch.nn.functional as F`, typing imports); what remains must be a few pure functions
over SimState, and every construct is checked against allowlists:

- structure: only function definitions and named constants at the top; `compute_reward` takes exactly the
  state; default values
  are constants (a list default would keep state between calls); the call graph has no cycle (no recursion);
  loops run over what is finite by construction (a literal range, a tensor, a literal container), never
  `while`; no lambda, class, try, with, match, yield, global, import of anything else;
- names: no underscores (the road to `__class__`, `__globals__`) except `_` itself; only the builtins in
  ALLOWED_BUILTINS are called; every name is defined by the code or is torch, math or F;
- torch, math and F (torch.nn.functional) only as `torch.<allowed name>` (an alias like `t = torch` would
  reach `torch.os`); their allowlists hold pure math, reductions, copying indexing and dtypes, nothing that
  exposes storage, pointers, sparse layouts, uninitialised memory, files, devices, randomness or modules;
- attributes of anything else (tensors, dicts, lists, tuples) by allowlist of pure methods; no in-place
  method (they all end in `_`), no `out=` or `device=` arguments, `.to()` with a dtype only;
- nothing is assigned to an attribute, and nothing into `s`.

Code that passes is loaded by `robosmith.reward.load` from the checked syntax tree itself (what runs is what
was checked), with only ALLOWED_BUILTINS. The smoke run (`robosmith.execution.smoke`) then runs it on real
states in a confined process, and training watches every call (state writes, component names).
A rejection's reason names the rule (`static/<rule>: ...`) so the LLM can fix exactly that.
"""

from __future__ import annotations

import ast

from robosmith.astnames import dotted_name
from robosmith.contract.state import FIELD_DOCS
from robosmith.errors import RobosmithError

MAX_CODE_CHARS = 20_000
MAX_RANGE = 10_000  # the largest literal range a loop may run over


class RewardRejected(RobosmithError):
    """Reward code that failed validation; `reason` is one line, the thing the LLM is told."""

    def __init__(self, stage: str, reason: str) -> None:
        reason = " ".join(reason.split())  # one line, whatever an exception message held
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


# ------------------------------------------------------------------------------------------ allowlists
def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Pure functions, constants and dtypes of torch. Left out on purpose: files (load, save, from_file), the
# interpreter (ops, jit, compile, _C), devices, global settings, randomness (rand*: a reward must give the same
# value for the same state), uninitialised memory (empty*), storage and sparse layouts. A name that returns a
# module goes into TORCH_SUBMODULES instead.
TORCH_DTYPES = frozenset({
    "bool", "uint8", "int8", "int16", "short", "int32", "int", "int64", "long", "float16", "half", "bfloat16",
    "float32", "float", "float64", "double",
})
TORCH_ALLOWED = TORCH_DTYPES | _names("""
    abs absolute acos acosh add addcdiv addcmul all allclose amax amin aminmax any arange arccos arccosh arcsin
    arcsinh arctan arctan2 arctanh argmax argmin argsort argwhere as_tensor asin asinh atan atan2 atanh atleast_1d
    atleast_2d atleast_3d bincount bitwise_and bitwise_not bitwise_or bitwise_xor bmm broadcast_tensors broadcast_to
    bucketize cat cdist ceil chunk clamp clamp_max clamp_min clip column_stack concat concatenate cos cosh
    cosine_similarity count_nonzero cross cummax cummin cumprod cumsum deg2rad diag diag_embed diagonal diff digamma
    dist div divide dot dsplit dstack e einsum eq equal erf erfc erfinv exp exp2 expm1 eye flatten flip fliplr
    flipud float_power floor floor_divide fmax fmin fmod frac full full_like gather ge greater greater_equal gt
    heaviside hsplit hstack hypot index_select inf inner isclose isfinite isin isinf isnan isneginf isposinf kron
    kthvalue le lerp less less_equal lgamma linalg linspace log log10 log1p log2 log_softmax logaddexp logaddexp2
    logcumsumexp logical_and logical_not logical_or logical_xor logit logspace logsumexp lt masked_fill
    masked_select matmul max maximum mean median min minimum mm mode moveaxis movedim mul multiply mv nan nan_to_num
    nanmean nanmedian nanquantile nansum narrow ne neg negative nn nonzero norm not_equal numel ones ones_like outer
    pairwise_distance permute pi positive pow prod quantile rad2deg ravel reciprocal relu remainder
    repeat_interleave reshape roll rot90 round rsqrt searchsorted select sgn sigmoid sign signbit sin sinc sinh
    softmax sort special split sqrt square squeeze stack std std_mean sub subtract sum swapaxes swapdims t take
    take_along_dim tan tanh tensor tensor_split tensordot tile topk trace transpose trapezoid trapz tril triu
    true_divide trunc unbind unflatten unique unique_consecutive unsqueeze var var_mean vdot vsplit vstack where
    xlogy zeros zeros_like
""")
FUNCTIONAL_ALLOWED = _names("""
    relu relu6 elu selu celu gelu silu mish softplus softsign sigmoid tanh hardtanh hardsigmoid hardswish
    leaky_relu logsigmoid softmax log_softmax softmin normalize one_hot mse_loss l1_loss smooth_l1_loss huber_loss
    cosine_similarity pairwise_distance threshold tanhshrink softshrink hardshrink binary_cross_entropy kl_div pad
""")
# Submodules reachable from torch, and what may follow each. A chain may never end at a module: `f =
# torch.nn.functional` would make `f.torch.load` a chain the check cannot see as rooted at torch.
TORCH_SUBMODULES: dict[str, frozenset[str]] = {
    "linalg": _names("norm vector_norm matrix_norm cross det inv solve vecdot diagonal multi_dot"),
    "special": _names("expit logit erf erfc erfinv sinc xlogy entr log_softmax softmax logsumexp"),
    "nn": frozenset({"functional"}),
    "functional": FUNCTIONAL_ALLOWED,
}
MATH_ALLOWED = _names("""
    pi e inf nan tau sqrt exp expm1 log log10 log2 log1p cos sin tan tanh atan atan2 acos asin acosh asinh atanh cosh
    sinh fabs floor ceil trunc hypot radians degrees pow isfinite isnan isinf isclose copysign erf erfc fmod
    dist prod fsum
""")
# Attributes of anything not rooted at torch, math, F or s: tensor methods that compute (a new tensor, or a view
# whose writes training detects), shape and dtype queries, the methods of the reward's own dicts and lists, and
# `values` of torch's named tuples (`torch.max(x, dim=1).values`; use torch.argmax for the indices).
ATTRIBUTES_ALLOWED = _names("""
    abs absolute acos acosh add addcdiv addcmul all allclose amax amin aminmax any arccos arccosh arcsin arcsinh
    arctan arctan2 arctanh argmax argmin argsort argwhere asin asinh atan atan2 atanh bfloat16 bool bmm
    broadcast_to byte ceil char chunk clamp clamp_max clamp_min clip clone contiguous cos cosh count_nonzero cross
    cummax cummin cumprod cumsum deg2rad detach diag diag_embed diagonal diff digamma dim dist div divide dot double
    dtype eq equal erf erfc erfinv exp exp2 expand expand_as expm1 flatten flip fliplr flipud float float_power
    floor floor_divide fmax fmin fmod frac gather ge greater greater_equal gt half heaviside hypot index_select
    inner int is_floating_point isclose isfinite isinf isnan isneginf isposinf kron kthvalue le lerp less
    less_equal lgamma log log10 log1p log2 log_softmax logaddexp logcumsumexp logical_and logical_not logical_or
    logical_xor logit logsumexp long lt mT masked_fill masked_select matmul max maximum mean median min minimum mm
    mode moveaxis movedim mul multiply mv nan_to_num nanmean nanmedian nanquantile nansum narrow ndim ne neg
    negative new_full new_ones new_zeros nonzero norm not_equal numel outer permute pow prod quantile rad2deg
    ravel reciprocal relu remainder repeat repeat_interleave reshape reshape_as roll rot90 round rsqrt select sgn
    shape short sigmoid sign signbit sin sinc sinh size softmax sort split sqrt square squeeze std sub subtract sum
    sum_to_size swapaxes swapdims T t take take_along_dim tan tanh tensor_split tile to topk trace transpose tril
    triu true_divide trunc type_as unbind unflatten unique unique_consecutive unsqueeze var view view_as where
    xlogy
    item tolist
    items keys values get append extend insert update setdefault pop copy count index
""")
# The builtins reward code may call; the loader gives it these and nothing else.
ALLOWED_BUILTINS = (
    "abs", "min", "max", "float", "int", "bool", "len", "range", "sum", "zip", "enumerate", "dict", "list", "tuple",
    "isinstance", "round", "all", "any", "pow", "reversed", "sorted", "str", "ValueError",
)
MODULE_NAMES = ("torch", "math", "F")  # F: torch.nn.functional, as LLMs import it
# Imports an LLM writes out of habit that change nothing: the names are provided (or only used in annotations,
# which are taken away). (module, alias); `from torch import Tensor` is ("torch.Tensor", None).
HARMLESS_IMPORTS = {("torch", None), ("math", None), ("torch.nn.functional", "F"), ("typing", None),
                    ("torch.Tensor", None), ("torch.nn.functional", None)}
KEYWORDS_DENIED = frozenset({"out", "device", "requires_grad", "pin_memory", "layout", "memory_format", "generator"})
GROWING_METHODS = frozenset({"append", "extend", "insert", "update", "setdefault"})
FORBIDDEN_NODES: dict[type, tuple[str, str]] = {
    ast.Import: ("imports", "import statements are not allowed (torch, math and F are already available)"),
    ast.ImportFrom: ("imports", "import statements are not allowed (torch, math and F are already available)"),
    ast.Global: ("state", "global statements are not allowed (no state may be kept between calls)"),
    ast.Nonlocal: ("state", "nonlocal statements are not allowed (no state may be kept between calls)"),
    ast.AsyncFunctionDef: ("structure", "async functions are not allowed"),
    ast.Await: ("structure", "await is not allowed"),
    ast.Yield: ("structure", "yield is not allowed (compute_reward returns, it does not generate)"),
    ast.YieldFrom: ("structure", "yield is not allowed (compute_reward returns, it does not generate)"),
    ast.With: ("structure", "with statements are not allowed"),
    ast.AsyncWith: ("structure", "with statements are not allowed"),
    ast.AsyncFor: ("structure", "async for is not allowed"),
    ast.ClassDef: ("structure", "class definitions are not allowed"),
    ast.Try: ("structure", "try statements are not allowed: let errors surface"),
    ast.TryStar: ("structure", "try statements are not allowed: let errors surface"),
    ast.Delete: ("structure", "del statements are not allowed"),
    ast.While: ("loops", "while loops are not allowed; loop with for over a range, a tensor or a literal list"),
    ast.Lambda: ("structure", "lambda is not allowed; define a helper function with def"),
    # Class patterns look attributes up by names held as plain strings (`case int(__class__=c)`).
    ast.Match: ("structure", "match statements are not allowed"),
    ast.NamedExpr: ("structure", "assignment expressions (:=) are not allowed"),
}


def _reject(node: ast.AST | None, rule: str, reason: str) -> RewardRejected:
    lineno = getattr(node, "lineno", None)
    return RewardRejected("static", f"{rule}: " + (f"line {lineno}: " if lineno else "") + reason)


# ------------------------------------------------------------------------------------------ entry points
def check_static(code: str) -> ast.Module:
    """The checked syntax tree of a reward, or RewardRejected("static", "<rule>: <reason>").

    The tree is what the loader compiles: annotations and harmless imports are gone from it."""
    if not isinstance(code, str):
        raise RewardRejected("static", "structure: the reward must be Python source text")
    if len(code) > MAX_CODE_CHARS:
        raise _reject(None, "size", f"the code is {len(code)} characters long; the limit is {MAX_CODE_CHARS}")
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise RewardRejected("static", "syntax: " + (f"line {e.lineno}: " if e.lineno else "")
                             + f"syntax error: {e.msg}") from None
    except ValueError as e:  # e.g. null bytes, on Python versions that do not call it a syntax error
        raise RewardRejected("static", f"syntax: the code cannot be parsed: {e}") from None
    tree = _Sanitizer().visit(tree)
    ast.fix_missing_locations(tree)
    state_name = _check_top_level(tree, "compute_reward")
    _Checker(tree, state_name).run()
    return tree


def check_expression(expr: str, name: str = "success") -> ast.Module:
    """A task file's expression over `s` (a success check), checked like reward code; the tree defines
    `name(s)` returning it."""
    if not isinstance(expr, str) or len(expr) > MAX_CODE_CHARS:
        raise RewardRejected("static", "size: an expression must be text of at most "
                                       f"{MAX_CODE_CHARS} characters")
    try:
        ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise RewardRejected("static", f"syntax: syntax error: {e.msg}") from None
    tree = ast.parse(f"def {name}(s):\n    return ({expr})\n")
    _check_top_level(tree, name)
    _Checker(tree, "s").run()
    return tree


# ------------------------------------------------------------------------------------------- sanitizing
class _Sanitizer(ast.NodeTransformer):
    """Take away what an LLM writes out of habit and what must not run: annotations (they are evaluated when
    a function is defined) and the harmless imports. Anything else stays for the checker to judge."""

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = None
        self.generic_visit(node)
        if not node.body:
            node.body = [ast.Pass()]
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def visit_Import(self, node: ast.Import) -> ast.AST | None:
        return None if all((a.name, a.asname) in HARMLESS_IMPORTS for a in node.names) else node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        if node.level == 0 and node.module == "typing":
            return None
        if node.level == 0 and all((f"{node.module}.{a.name}", a.asname) in HARMLESS_IMPORTS for a in node.names):
            return None
        return node


# ------------------------------------------------------------------------------------------- the checks
def _check_top_level(tree: ast.Module, entry: str) -> str:
    """Only definitions at the top, so loading the code runs nothing; returns the name of the state parameter."""
    functions: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and _is_constant(node.value)):
            continue  # a named constant (TEMPERATURE = 0.05): nothing that could hold state
        else:
            raise _reject(node, "structure", "only function definitions and constants are allowed at the top level "
                                             "(nothing may run on load)")
    fn = functions.get(entry)
    if fn is None:
        raise _reject(None, "structure", f"no {entry} function is defined")
    args = fn.args
    if len(args.args) != 1 or args.posonlyargs or args.kwonlyargs or args.vararg or args.kwarg or args.defaults:
        raise _reject(fn, "structure", f"{entry} must take exactly one parameter, the SimState (s)")
    return args.args[0].arg


def _int_constant(node: ast.AST) -> int | None:
    """The value of an integer expression made of literals (10 ** 3, 2 * 5, -1), else None; kept small."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _int_constant(node.operand)
        return None if value is None else -value
    if not isinstance(node, ast.BinOp):
        return None
    left, right = _int_constant(node.left), _int_constant(node.right)
    if left is None or right is None or abs(left) > 10**9 or abs(right) > 10**9:
        return None
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    if isinstance(node.op, ast.FloorDiv) and right != 0:
        return left // right
    if isinstance(node.op, ast.Pow) and 0 <= right <= 64 and abs(left) <= 10**3:
        return left**right
    return None


class _Checker:
    def __init__(self, tree: ast.Module, state_name: str) -> None:
        self.tree, self.state = tree, state_name
        self.functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        self.bound = self._bound_names()
        # Names that are the object of an attribute access (`torch` in `torch.exp`, `x` in `x.sum`).
        self.attribute_bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}

    def run(self) -> None:
        # Names first: `open(...).read()` is rejected for open, the way out, rather than for .read.
        for node in ast.walk(self.tree):
            forbidden = FORBIDDEN_NODES.get(type(node))
            if forbidden:
                raise _reject(node, *forbidden)
            if isinstance(node, ast.FunctionDef):
                self._function(node)
            elif isinstance(node, ast.arg):
                self._binding(node, node.arg)
            elif isinstance(node, ast.Name):
                self._name(node)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute):
                self._attribute(node)
            elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
                if _root_name(node) == self.state:
                    raise _reject(node, "state-write", f"compute_reward must not change {self.state} (write into a "
                                                       f"copy, e.g. x = {self.state}.ee_pos.clone())")
            elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
                if "__" in text:
                    raise _reject(node, "names", "strings containing '__' are not allowed")
            elif isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, (ast.For, ast.comprehension)):
                self._loop(node)
        self._no_recursion()

    # ---------------------------------------------------------------------------------------- names
    def _bound_names(self) -> set[str]:
        """Every name the code itself binds: assignments, loop and comprehension targets, parameters, functions."""
        tree = self.tree
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        names |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
        return names | set(self.functions)

    def _binding(self, node: ast.AST, name: str) -> None:
        if name.startswith("_") and name != "_":
            raise _reject(node, "names", f"names starting with an underscore are not allowed ({name}); `_` alone is "
                                         "fine")
        if name in MODULE_NAMES:
            raise _reject(node, "names", f"{name} may not be reassigned or shadowed")
        if name in BUILTINS_DENIED:
            raise _reject(node, "names", f"{name} is not allowed as a name")

    def _name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            self._binding(node, node.id)
            return
        if node.id.startswith("_") and node.id != "_":
            raise _reject(node, "names", f"names starting with an underscore are not allowed ({node.id})")
        if node.id in BUILTINS_DENIED:
            raise _reject(node, "builtins", f"{node.id} is not allowed")
        if node.id in MODULE_NAMES:
            if id(node) not in self.attribute_bases:
                # The attribute allowlists only see chains that start at the name itself.
                raise _reject(node, "modules", f"{node.id} may only be used as {node.id}.<function>(...); it cannot "
                                               "be stored, passed or returned")
            return
        if node.id not in self.bound and node.id not in ALLOWED_BUILTINS:
            raise _reject(node, "names", f"{node.id} is not defined (available: torch, math, F, the state "
                                         f"{self.state} and {', '.join(ALLOWED_BUILTINS)})")

    def _function(self, node: ast.FunctionDef) -> None:
        if node.decorator_list:
            raise _reject(node, "structure", "decorators are not allowed")
        self._binding(node, node.name)
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
            if not _is_constant(default):
                raise _reject(default, "state", f"the default values of {node.name}() must be constants (a list or "
                                                "dict default would keep state between calls)")

    # ----------------------------------------------------------------------------------- attributes
    def _attribute(self, node: ast.Attribute) -> None:
        if not isinstance(node.ctx, ast.Load):
            raise _reject(node, "attribute-write", f"assigning or deleting attributes is not allowed (.{node.attr}); "
                                                   "keep results in local variables")
        if node.attr.startswith("_"):
            raise _reject(node, "names", f"attributes starting with an underscore are not allowed (.{node.attr})")
        chain = dotted_name(node)
        outermost = id(node) not in self.attribute_bases
        if chain and chain[0] in ("torch", "F"):
            allowed = TORCH_ALLOWED if chain[0] == "torch" else FUNCTIONAL_ALLOWED
            for part in chain[1:]:
                if part not in allowed:
                    raise _reject(node, "torch", f"{'.'.join(chain)} is not allowed; use pure math functions of "
                                                 "torch")
                allowed = TORCH_SUBMODULES.get(part, frozenset())
            if outermost and chain[-1] in TORCH_SUBMODULES:
                raise _reject(node, "modules", f"{'.'.join(chain)} is a module: call one of its functions directly "
                                               "(e.g. torch.linalg.norm(...)) instead of storing or passing it")
            return
        if chain and chain[0] == "math":
            if len(chain) != 2 or chain[1] not in MATH_ALLOWED:
                raise _reject(node, "math", f"math.{'.'.join(chain[1:])} is not allowed")
            return
        if chain and chain[0] == self.state and isinstance(node.value, ast.Name):
            if chain[1] not in FIELD_DOCS:
                raise _reject(node, "state-fields", f"SimState has no field {chain[1]!r}; fields: "
                                                    f"{', '.join(FIELD_DOCS)}")
            return
        if node.attr not in ATTRIBUTES_ALLOWED:
            hint = " (in-place methods are not allowed: write x = x + y)" if node.attr.endswith("_") else ""
            raise _reject(node, "attributes", f".{node.attr} is not allowed{hint}")

    # ---------------------------------------------------------------------------------------- calls
    def _call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg is None:
                raise _reject(node, "calls", "** arguments are not allowed; name the keywords")
            if keyword.arg in KEYWORDS_DENIED:
                raise _reject(node, "calls", f"the {keyword.arg}= argument is not allowed (rewards compute new "
                                             "tensors on the state's device)")
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in ALLOWED_BUILTINS and func.id not in self.functions:
                raise _reject(node, "calls", f"call of {func.id}() is not allowed; call torch, math and F functions, "
                                             f"your own functions, or {', '.join(ALLOWED_BUILTINS)}")
        elif isinstance(func, ast.Attribute) and func.attr == "to":
            dtypes = [*node.args, *(k.value for k in node.keywords)]
            if not dtypes or any(k.arg != "dtype" for k in node.keywords) or not all(_is_dtype(d) for d in dtypes):
                raise _reject(node, "calls", ".to() takes a dtype only, e.g. x.to(torch.float32)")

    # ---------------------------------------------------------------------------------------- loops
    def _loop(self, node: ast.For | ast.comprehension) -> None:
        body = node.body if isinstance(node, ast.For) else []
        reason = self._unbounded(node.iter, body)
        if reason:
            raise _reject(node if isinstance(node, ast.For) else node.iter, "loops", reason)

    def _unbounded(self, it: ast.expr, body: list[ast.stmt]) -> str | None:
        """Why a loop over `it` might not end, or None: ranges need bounds known from the code, and a list may
        not grow while it is walked."""
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name):
            if it.func.id == "range":
                for arg in it.args:
                    if not self._bounded_int(arg):
                        return ("range() needs bounds the code fixes: whole numbers up to "
                                f"{MAX_RANGE}, len(...) or a tensor's shape")
                return None
            if it.func.id in ("zip", "enumerate", "reversed", "sorted"):
                return next((r for a in it.args if (r := self._unbounded(a, body))), None)
        if isinstance(it, ast.Name):
            for stmt in body:
                for sub in ast.walk(stmt):
                    if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name)
                            and sub.value.id == it.id and sub.attr in GROWING_METHODS):
                        return f"the loop grows {it.id} while it walks over it"
        return None

    def _bounded_int(self, node: ast.expr) -> bool:
        value = _int_constant(node)
        if value is not None:
            return abs(value) <= MAX_RANGE
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
            return True
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("size", "dim",
                                                                                                      "numel"):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "ndim":
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.FloorDiv)):
            return self._bounded_int(node.left) and self._bounded_int(node.right)
        if isinstance(node, ast.Name):  # a local assigned only bounded values
            values = [n.value for n in ast.walk(self.tree) if isinstance(n, ast.Assign)
                      and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)]
            return bool(values) and all(not (isinstance(v, ast.Name) and v.id == node.id) and self._bounded_int(v)
                                        for v in values)
        return False

    def _no_recursion(self) -> None:
        """The call graph between the code's own functions has no cycle."""
        calls = {name: {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                        and n.func.id in self.functions}
                 for name, fn in self.functions.items()}
        done: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in path:
                cycle = " -> ".join([*path[path.index(name):], name])
                raise _reject(self.functions[name], "recursion", f"functions may not call themselves ({cycle})")
            if name in done:
                return
            for callee in sorted(calls[name]):
                visit(callee, [*path, name])
            done.add(name)

        for name in sorted(self.functions):
            visit(name, [])


BUILTINS_DENIED = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars",
    "dir", "input", "breakpoint", "help", "type", "super", "object", "memoryview", "classmethod", "staticmethod",
    "property", "exit", "quit", "print", "id", "bytearray", "bytes", "format", "iter", "next", "callable", "chr",
    "ord", "hash", "repr", "ascii", "issubclass", "reload", "license", "credits", "copyright", "aiter", "anext",
})


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _is_constant(node.operand)
    return isinstance(node, ast.Tuple) and all(_is_constant(e) for e in node.elts)


def _is_dtype(node: ast.AST) -> bool:
    chain = dotted_name(node) if isinstance(node, ast.Attribute) else None
    return bool(chain) and len(chain) == 2 and chain[0] == "torch" and chain[1] in TORCH_DTYPES

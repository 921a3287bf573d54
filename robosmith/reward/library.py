"""The reward-term library: templates of reward terms, with their parameters and ranges (library.yaml).

The offline proposer composes rewards from these without looking at a task's reference reward; the LLM prompt
shows them as examples. A template is a torch expression over the SimState `s` whose `{{ slot }}` places are
filled (Jinja) with SimState expressions when a term is made, e.g. `distance_tanh` with a = `s.ee_pos`,
b = `s.object_pos`. Its `{param}` fields stay parameters of the `RewardTerm`, which the search moves inside
the template's range. What comes out is an ordinary reward body, checked by the sandbox like any other.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from robosmith.errors import ConfigError
from robosmith.reward.terms import RewardTerm

LIBRARY_FILE = Path(__file__).resolve().parent / "library.yaml"
KINDS = ("distance", "orientation", "contact", "height", "shaping", "success", "penalty")
_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


@dataclass(frozen=True)
class TermTemplate:
    name: str
    kind: str  # one of KINDS
    doc: str
    expr: str  # Jinja over the slots; `{param}` fields for the parameters
    slots: tuple[str, ...]
    params: dict[str, tuple[float, float, float]]  # name -> (default, low, high)

    def render(self, slots: dict[str, str] | None = None) -> str:
        """The torch expression with the slots filled (parameters left as `{param}` fields)."""
        slots = {k: str(v) for k, v in (slots or {}).items()}
        if set(slots) != set(self.slots):
            raise ConfigError(f"{self.name}: slots {sorted(self.slots)} needed, got {sorted(slots)}")
        return _JINJA.from_string(self.expr).render(**slots)

    def clamp(self, params: dict[str, float]) -> dict[str, float]:
        """Parameters kept inside the template's ranges."""
        return {k: min(max(float(v), self.params[k][1]), self.params[k][2]) if k in self.params else float(v)
                for k, v in params.items()}

    def term(self, name: str, weight: float, slots: dict[str, str] | None = None,
             params: dict[str, float] | None = None, gate: str | None = None) -> RewardTerm:
        """A reward term from this template; `gate` (an expression, 0..1 per environment) multiplies it."""
        expr = self.render(slots)
        if gate:
            expr = f"({expr}) * ({gate})"
        values = {k: default for k, (default, _, _) in self.params.items()} | self.clamp(params or {})
        return RewardTerm(name, float(weight), expr, values)


@functools.cache
def load_library(path: Path = LIBRARY_FILE) -> dict[str, TermTemplate]:
    """The templates by name; a malformed entry is one error naming the file and the field."""
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: the library maps template names to templates")
    out = {}
    for name, entry in raw.items():
        where = f"{path}: {name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a mapping with kind, doc, expr, slots, params")
        unknown = set(entry) - {"kind", "doc", "expr", "slots", "params"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key")
        if entry.get("kind") not in KINDS:
            raise ConfigError(f"{where}.kind: one of {', '.join(KINDS)}, got {entry.get('kind')!r}")
        for key in ("doc", "expr"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{where}.{key}: must be a non-empty string")
        params = {}
        for pname, bounds in (entry.get("params") or {}).items():
            if not (isinstance(bounds, list) and len(bounds) == 3 and bounds[1] <= bounds[0] <= bounds[2]):
                raise ConfigError(f"{where}.params.{pname}: must be [default, low, high] with low <= default <= high")
            params[str(pname)] = tuple(float(b) for b in bounds)
        slots = tuple(str(s) for s in entry.get("slots") or ())
        out[str(name)] = TermTemplate(str(name), entry["kind"], " ".join(entry["doc"].split()), entry["expr"].strip(),
                                      slots, params)
    return out


def library_examples(fields: set[str]) -> list[dict[str, str]]:
    """The templates whose SimState fields all exist (`fields`), as the LLM prompt shows them: slots as
    `<slot>`, parameters as `{name}` with their default."""
    out = []
    for t in load_library().values():
        expr = t.render({slot: f"<{slot}>" for slot in t.slots})
        if not set(re.findall(r"s\.(\w+)", expr)) <= fields:
            continue
        defaults = ", ".join(f"{k} about {d:g}" for k, (d, _, _) in t.params.items())
        doc = t.doc + (f" ({defaults})" if defaults else "")
        out.append({"name": t.name, "kind": t.kind, "expr": expr, "doc": doc})
    return out

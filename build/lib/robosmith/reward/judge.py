"""Judging what reward code returns on real states, inside the confined smoke-run process.

`python -m robosmith.reward.judge FOLDER` loads the states and the code the parent wrote into FOLDER, runs the
code through the one loader, checks the result against the contract (shapes, dtypes, finiteness, no writes
to the state) and writes its verdict to FOLDER/smoke.json. The parent (robosmith.execution.smoke) starts it
with resource limits and confinement and reads only that file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from robosmith.contract.io import write_json
from robosmith.contract.state import SimState
from robosmith.reward.check import MAX_COMPONENT_NAME_CHARS, MAX_COMPONENTS, RewardRejected
from robosmith.reward.load import load_reward

STATES_FILE = "smoke_states.pt"
CODE_FILE = "smoke_code.py"
RESULT_FILE = "smoke.json"


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
        fn = load_reward(code)
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

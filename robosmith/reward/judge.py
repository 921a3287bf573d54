"""Judging what reward code does on real states, inside the confined smoke-run process.

`python -m robosmith.reward.judge FOLDER` loads the states and the code the parent wrote into FOLDER and runs
the code through the one loader the way training and evaluation will: on states from every part of an
episode (the last step included), at every batch size they use, through the same guarded call (a copy of the
state; writes into it caught; the output contract). On top of what training checks it asks:
- the same input twice gives the same output (no hidden state between calls);
- a state's reward does not depend on the batch it sits in (the batch reversed, and states one by one);
- the values are finite.
The verdict goes to FOLDER/smoke.json: `reason` is what the LLM is told (the rule and a short message, never
values of the candidate's tensors), `detail` the whole story, kept in the folder.
"""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path

import torch

from robosmith.contract.io import write_json
from robosmith.contract.reward_call import RewardContractError, call_reward
from robosmith.contract.state import SimState
from robosmith.reward.check import RewardRejected
from robosmith.reward.load import load_reward

STATES_FILE = "smoke_states.pt"
CODE_FILE = "smoke_code.py"
RESULT_FILE = "smoke.json"
SINGLE_STATES = 8  # states also judged one at a time, for batch independence
TOLERANCE = 1e-4  # batched matrix products may round differently from one-by-one ones


class _Verdict(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")


def sanitize(message: str, limit: int = 160) -> str:
    """A message fit to send to an LLM: one line, no tensor printouts, no pointers, no float values."""
    message = " ".join(message.split())
    message = message.split("tensor(")[0]
    message = re.sub(r"0x[0-9a-fA-F]+", "<address>", message)
    message = re.sub(r"-?\d+\.\d+(?:e[-+]?\d+)?", "<value>", message)
    return message[:limit].rstrip(" ,:(")


def _stats(t: torch.Tensor) -> dict[str, float]:
    return {"mean": float(t.mean()), "min": float(t.min()), "max": float(t.max())}


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


def _same(a: torch.Tensor, b: torch.Tensor, atol: float = 0.0) -> bool:
    if a.shape != b.shape:
        return False
    if atol == 0.0:
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    return bool(torch.isclose(a, b, rtol=atol, atol=atol, equal_nan=True).all())


def _batch(states: SimState, size: int) -> SimState:
    """`size` states: the sampled ones, repeated as often as it takes."""
    return states.index(torch.arange(size) % states.num_envs)


def judge(fn, states: SimState, batch_sizes: list[int]) -> dict:
    """Statistics of the reward on `states`, or _Verdict / RewardContractError / the reward's own exception."""
    with torch.no_grad():
        total, components = call_reward(fn, states)
        bad = int((~torch.isfinite(total)).sum())
        if bad:
            raise _Verdict("finite", f"total has non-finite values (NaN or inf) in {bad} of {states.num_envs} states")
        for name, value in components.items():
            if not bool(torch.isfinite(value).all()):
                raise _Verdict("finite", f"component {name!r} has non-finite values (NaN or inf)")
        again, again_components = call_reward(fn, states)
        if (again_components.keys() != components.keys() or not _same(total, again)
                or not all(_same(value, again_components[name]) for name, value in components.items())):
            raise _Verdict("hidden-state", "two calls with the same states gave different rewards; compute_reward "
                                           "must keep no state between calls and draw no random numbers")
        reverse = torch.arange(states.num_envs - 1, -1, -1)
        flipped, _ = call_reward(fn, states.index(reverse))
        if not _same(flipped, total[reverse], TOLERANCE):
            raise _Verdict("batch", "a state's reward changed when the batch was reordered; each environment's reward "
                                    "must depend on its own state only (no normalizing over the batch)")
        for i in range(min(SINGLE_STATES, states.num_envs)):
            one, _ = call_reward(fn, states.index(torch.tensor([i])))
            if not _same(one, total[i : i + 1], TOLERANCE):
                raise _Verdict("batch", "a state's reward alone differs from its reward within the batch; each "
                                        "environment's reward must depend on its own state only")
        for size in batch_sizes:  # what training and evaluation will call it with
            call_reward(fn, _batch(states, size))
    return {"num_states": states.num_envs, "total": _stats(total),
            "components": {name: _stats(value) for name, value in components.items()}}


def evaluate_in_process(code: str, states: SimState, batch_sizes: list[int] | None = None) -> dict:
    """Run the code on the states in this very process and judge it: {"ok": True, statistics...} or {"ok": False,
    "reason": ..., "detail": ...}. Untrusted code only ever gets here inside the confined worker process."""
    result: dict = {"ok": False, "reason": ""}
    try:
        fn = load_reward(code)
        result = {"ok": True, "reason": "", **judge(fn, states, batch_sizes or [])}
    except RewardRejected as e:
        result["reason"] = e.reason
    except (_Verdict, RewardContractError) as e:
        result["reason"] = str(e)
    except RecursionError:
        result["reason"] = "recursion: recursion too deep (maximum recursion depth exceeded)"
    except Exception as e:  # noqa: BLE001 - whatever the reward raised is the reason
        if _is_out_of_memory(e):
            result.update(kind="memory", reason="memory: exceeded the memory limit")
        else:
            message = sanitize(str(e).strip().splitlines()[0]) if str(e).strip() else ""
            result["reason"] = f"runtime: {_reward_line(e)}{type(e).__name__}: {message}".rstrip(": ")
        result["detail"] = traceback.format_exc()[-4000:]
    return result


def _worker(folder: Path) -> None:
    """In the confined subprocess: run the code on the saved states, write smoke.json."""
    try:
        saved = torch.load(folder / STATES_FILE, weights_only=True)
        batch_sizes = [int(b) for b in saved.pop("batch_sizes").tolist()]
        result = evaluate_in_process((folder / CODE_FILE).read_text(), SimState(**saved), batch_sizes)
    except Exception as e:  # noqa: BLE001 - a broken states file is still reported through smoke.json
        result = {"ok": False, "reason": f"smoke: the smoke run could not start: {type(e).__name__}"}
        result["detail"] = traceback.format_exc()[-4000:]
    write_json(folder / RESULT_FILE, result)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))

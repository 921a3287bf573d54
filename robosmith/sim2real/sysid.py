"""System identification: the registry parameters under which the simulated arm replays real episodes best.

CMA-ES (the `cma` package) searches the parameters in a normalized space (logarithmic for quantities that span
decades, whole numbers for the delay); every generation is one batched replay, one environment per
(hypothesis, training episode). The objective is the mean squared error of the arm's five joints (the gripper
is left out: it closes on objects the replay does not have). Validation episodes, never seen by the search,
give the gap before (the shipped model) and after.

Damping, armature and friction can explain the same trajectories in different proportions; the search's
final covariance says where two parameters trade off, and each fitted value gets the interval over which the
training error stays within 10% of the best (the others held at their fitted values).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from robosmith.robot.params import PARAMS, ParamError, Value, param
from robosmith.sim2real.dataset import RealDataset
from robosmith.sim2real.gap import replay_batch, rmse_deg

DEFAULT_PARAMS = ("actuator_kp", "joint_damping", "joint_armature", "joint_frictionloss", "action_delay_steps")
LOG_FLOOR = {"joint_damping": 0.01, "joint_armature": 0.001, "joint_frictionloss": 0.001, "actuator_kv": 0.01}
# Offsets from the fit, in the normalized space: fine near it, coarse far off (intervals narrow or wide).
_STEPS = np.array([0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
PROFILE_STEPS = np.concatenate([-_STEPS[::-1], [0.0], _STEPS])
FLAT = 0.10  # an interval holds the values whose training error is within 10% of the best


@dataclass(frozen=True)
class Axis:
    """One searched parameter and its map from [0, 1] to a value."""

    name: str
    low: float
    high: float
    log: bool
    integer: bool

    def value(self, u: float) -> float:
        u = min(max(u, 0.0), 1.0)
        v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))) if self.log else \
            self.low + u * (self.high - self.low)
        return float(round(v)) if self.integer else v

    def unit(self, v: float) -> float:
        if self.log:
            return (math.log(max(v, self.low)) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)


def axis_of(name: str) -> Axis:
    entry = param(name)
    if entry.needs_cube:
        raise ParamError(f"{name}: the replay has the arm alone; it cannot identify the objects")
    if name in ("action_noise", "joint_pos_noise", "object_pos_noise", "joint_zero_offset"):
        raise ParamError(f"{name}: not identifiable from open-loop replays here; fit it from calibration")
    low = max(entry.low, LOG_FLOOR.get(name, entry.low)) if entry.low == 0 else entry.low
    high = min(entry.high, 6.0) if entry.integer else entry.high  # delays beyond 6 steps (200 ms) are not lags
    log = not entry.integer and low > 0 and high / low > 20
    return Axis(name, low, high, log, entry.integer)


def _hypotheses(axes: list[Axis], units: np.ndarray, fixed: dict[str, float] | None = None) -> list[dict[str, Value]]:
    return [{**{a.name: a.value(u) for a, u in zip(axes, row, strict=True)}, **(fixed or {})} for row in units]


def _errors(data: RealDataset, hypotheses: list[dict[str, Value]], nthread: int) -> np.ndarray:
    """Per hypothesis: the arm's mean squared joint error (rad²) over the dataset's episodes."""
    out = []
    for r in replay_batch(data, hypotheses, nthread):
        diff = np.concatenate([s[:, :5] - x[:, :5] for s, x in zip(r.sim, r.real, strict=True)])
        out.append(float((diff**2).mean()))
    return np.array(out)


class _Objective:
    """Errors of continuous hypotheses, each tried at every combination of the whole-number parameters (the
    delay) in the same batched replay, keeping the best combination: CMA-ES then searches a smooth space."""

    def __init__(self, data: RealDataset, axes: list[Axis], nthread: int) -> None:
        self.data, self.nthread = data, nthread
        self.axes = [a for a in axes if not a.integer]
        whole = [a for a in axes if a.integer]
        self.combos = [dict(zip([a.name for a in whole], c, strict=True)) for c in
                       itertools.product(*[range(int(a.low), int(a.high) + 1) for a in whole])]

    def __call__(self, units: np.ndarray) -> tuple[np.ndarray, list[dict[str, float]]]:
        hypotheses = [h for combo in self.combos for h in _hypotheses(self.axes, units, combo)]
        errors = _errors(self.data, hypotheses, self.nthread).reshape(len(self.combos), len(units))
        best = errors.argmin(axis=0)
        return errors.min(axis=0), [self.combos[k] for k in best]


def split_episodes(data: RealDataset, val: list[int] | None) -> tuple[RealDataset, RealDataset]:
    ids = [e.index for e in data.episodes]
    if len(ids) < 2:
        raise ParamError(f"{data.root}: system identification needs at least 2 episodes (training and validation)")
    val = val if val is not None else ids[-max(1, len(ids) // 4):]
    unknown = [e for e in val if e not in ids]
    if unknown:
        raise ParamError(f"--val-episodes: no episode {unknown[0]} in {data.root}")
    train = [e for e in data.episodes if e.index not in val]
    if not train:
        raise ParamError("--val-episodes: every episode is for validation; none is left to fit on")

    def subset(episodes: list) -> RealDataset:
        return RealDataset(data.root, data.fps, data.robot_type, data.units, episodes)

    return subset(train), subset([e for e in data.episodes if e.index in val])


def identify(
    data: RealDataset, names: list[str], val_episodes: list[int] | None = None, generations: int = 40,
    popsize: int = 12, seed: int = 0, nthread: int = 0, progress: bool = True,
) -> dict:
    """Fit `names` to the training episodes; the figures of sysid.json."""
    import cma

    axes = [axis_of(n) for n in names]
    train, val = split_episodes(data, val_episodes)
    objective = _Objective(train, axes, nthread)
    start = np.array([a.unit(float(np.mean(PARAMS[a.name].default))) for a in objective.axes])
    default_error = float(_errors(train, [{}], nthread)[0])
    best_units, (errors, combos) = start, objective(start[None])
    best_error, best_combo = float(errors[0]), combos[0]
    history = []
    if objective.axes:
        options = {"bounds": [0.0, 1.0], "popsize": popsize, "seed": seed + 1, "verbose": -9}
        search = cma.CMAEvolutionStrategy(list(start), 0.25, options)
        for generation in tqdm(range(generations), desc="sysid", unit="generation", disable=not progress):
            units = np.array(search.ask())
            errors, combos = objective(units)
            search.tell(list(units), list(errors))
            k = int(np.argmin(errors))
            if errors[k] < best_error:
                best_units, best_error, best_combo = units[k], float(errors[k]), combos[k]
            history.append({"generation": generation, "best_rmse_deg": math.degrees(math.sqrt(best_error))})
            if search.stop().get("tolfun") or search.stop().get("tolx"):
                break
    fitted = {**_hypotheses(objective.axes, np.array([best_units]))[0], **best_combo}
    intervals = _profiles(train, objective.axes, best_units, best_combo, best_error, nthread)
    intervals.update(_whole_number_intervals(train, objective, best_units, best_combo, best_error))
    before = rmse_deg(replay_batch(val, [{}], nthread)[0])
    after = rmse_deg(replay_batch(val, [fitted], nthread)[0])
    return {
        "params": {k: (round(v, 6) if not param(k).integer else int(v)) for k, v in fitted.items()},
        "intervals": intervals,
        "trade_offs": _trade_offs(objective.axes, search) if objective.axes else [],
        "train_episodes": [e.index for e in train.episodes], "val_episodes": [e.index for e in val.episodes],
        "train_rmse_before_deg": round(math.degrees(math.sqrt(default_error)), 4),
        "train_rmse_after_deg": round(math.degrees(math.sqrt(best_error)), 4),
        "val_rmse_before_deg": round(float(before[:5].mean()), 4),
        "val_rmse_after_deg": round(float(after[:5].mean()), 4),
        "val_rmse_before_per_joint_deg": [round(float(v), 4) for v in before],
        "val_rmse_after_per_joint_deg": [round(float(v), 4) for v in after],
        "evaluations": len(history) * popsize * len(objective.combos), "history": history,
    }


def _profiles(train: RealDataset, axes: list[Axis], best: np.ndarray, combo: dict, best_error: float,
              nthread: int) -> dict:
    """Per parameter: the values (others at their fit) whose training error stays within FLAT of the best."""
    out = {}
    for i, a in enumerate(axes):
        grid = np.unique(np.clip(best[i] + PROFILE_STEPS, 0.0, 1.0))
        units = np.repeat(best[None], len(grid), axis=0)
        units[:, i] = grid
        errors = _errors(train, _hypotheses(axes, units, combo), nthread)
        ok = [a.value(u) for u, e in zip(grid, errors, strict=True) if e <= best_error * (1 + FLAT)]
        out[a.name] = [round(min(ok), 6), round(max(ok), 6)] if ok else None
    return out


def _whole_number_intervals(train: RealDataset, objective: _Objective, best: np.ndarray, combo: dict,
                            best_error: float) -> dict:
    """For the delay (and any whole-number parameter): the values within FLAT of the best, the others fixed."""
    out = {}
    for name in combo:
        errors = _errors(train, [{**_hypotheses(objective.axes, best[None])[0], **c} for c in objective.combos],
                         objective.nthread)
        ok = [c[name] for c, e in zip(objective.combos, errors, strict=True) if e <= best_error * (1 + FLAT)
              and all(c[k] == combo[k] for k in combo if k != name)]
        out[name] = [min(ok), max(ok)] if ok else None
    return out


def _trade_offs(axes: list[Axis], search) -> list[str]:
    """Pairs the search's final covariance correlates strongly: the data cannot tell them apart."""
    cov = np.asarray(search.sm.covariance_matrix if hasattr(search.sm, "covariance_matrix") else search.C)
    std = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    corr = cov / np.outer(std, std)
    out = []
    for i in range(len(axes)):
        for j in range(i + 1, len(axes)):
            if abs(corr[i, j]) > 0.7:
                out.append(f"{axes[i].name} and {axes[j].name} trade off (correlation {corr[i, j]:+.2f}): the data "
                           "constrain a combination of them better than either alone")
    return out

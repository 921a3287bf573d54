"""RAPP, the reward-aware physics prior of DrEureka: for each parameter alone, the interval of values over which
a trained policy still succeeds.

DrEureka swept each parameter over a fixed grid with one rollout per value. Batched environments afford many
episodes per value: every value of a sweep gets its own block of environments in one simulation, and the
success of each value comes with its 95% Wilson interval. Three intervals are reported around the nominal
value, growing while neighbouring grid values keep succeeding:
- `interval`: the measured success rate stays at or above the threshold;
- `interval_sure`: even the lower end of the 95% interval does (the policy surely works there);
- `interval_possible`: the upper end does (beyond it the policy surely fails).
The threshold defaults to 80% of the policy's nominal success, measured in the same run.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from robosmith.contract.metrics import wilson_interval
from robosmith.reward.load import load_reward
from robosmith.robot.params import PARAMS, ParamError, PhysicalParam, param
from robosmith.task.spec import TaskSpec
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import play_episodes
from robosmith.train.policy import Policy

MAX_INTEGER_POINTS = 11


def nominal_value(task: TaskSpec, name: str) -> float:
    """The task's own value of a registry parameter (the mean over joints where it has one per joint)."""
    entry = param(name)
    if entry.where == "robot":
        value = task.scene.robot.as_dict()[name]
    elif entry.where == "scene":
        value = getattr(task.scene, name)
    else:
        value = entry.default
    return float(np.mean(value))


def sweep_values(entry: PhysicalParam, nominal: float, points: int) -> np.ndarray:
    """A grid over the physical bounds, the nominal value in it: every whole number for integer entries,
    evenly spaced where values go negative, geometric (with 0) for positive quantities spanning decades."""
    if entry.integer:
        count = min(int(entry.high - entry.low) + 1, MAX_INTEGER_POINTS)
        grid = np.round(np.linspace(entry.low, entry.high, count))
    elif entry.low < 0:
        grid = np.linspace(entry.low, entry.high, points)
    elif entry.low == 0:
        grid = np.concatenate([[0.0], np.geomspace(entry.high * 1e-3, entry.high, points - 1)])
    else:
        grid = np.geomspace(entry.low, entry.high, points)
    return np.unique(np.append(grid, nominal))


def grow_interval(values: np.ndarray, ok: np.ndarray, start: int) -> list[float] | None:
    """The run of `ok` grid values around index `start`, as [low, high]; None when `start` itself fails."""
    if not ok[start]:
        return None
    lo = hi = start
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < len(values) - 1 and ok[hi + 1]:
        hi += 1
    return [float(values[lo]), float(values[hi])]


def rapp(
    policy: Policy, task: TaskSpec, names: list[str], points: int = 9, episodes: int = 50, seed: int = 12345,
    threshold: float | None = None, progress: bool = True, reward_body: str | None = None,
) -> dict:
    """Sweep each parameter alone over its physical bounds; the success per value and the intervals."""
    for name in names:
        entry = param(name)
        if entry.needs_cube and not task.scene.cube:
            raise ParamError(f"{name}: {task.name} has no cube")
    reward = load_reward(reward_body or task.reference_reward_body())

    def success_per_value(values: np.ndarray, name: str | None) -> tuple[np.ndarray, np.ndarray]:
        env = TaskEnv(task, reward, len(values) * episodes, seed=seed, auto_reset=False)
        per_env = np.repeat(values, episodes)
        env.set_world({name: per_env[:, None] if PARAMS[name].per_joint else per_env} if name else {})
        outcomes = play_episodes(env, policy, progress=False).reshape(len(values), episodes)
        env.close()
        wins = (outcomes == 1).sum(dim=1).numpy()
        return wins / episodes, np.array([wilson_interval(int(w), episodes) for w in wins])

    nominal_rate, nominal_ci = success_per_value(np.zeros(1), None)
    cut = 0.8 * float(nominal_rate[0]) if threshold is None else threshold
    if cut <= 0:  # a policy that never succeeds has no interval to report (every value would "succeed")
        cut = math.inf
    sweeps = []
    for name in tqdm(names, desc="rapp", unit="parameter", disable=not progress):
        entry = PARAMS[name]
        nominal = nominal_value(task, name)
        values = sweep_values(entry, nominal, points)
        rate, ci = success_per_value(values, name)
        start = int(np.argmin(np.abs(values - nominal)))
        sweeps.append({
            "name": name, "unit": entry.unit, "nominal": nominal, "bounds": [entry.low, entry.high],
            "values": values.tolist(), "success_rate": rate.tolist(), "ci95": ci.tolist(),
            "interval": grow_interval(values, rate >= cut, start),
            "interval_sure": grow_interval(values, ci[:, 0] >= cut, start),
            "interval_possible": grow_interval(values, ci[:, 1] >= cut, start),
        })
    return {
        "task": task.name, "episodes_per_value": episodes, "seed": seed, "threshold": cut if cut < math.inf else None,
        "nominal_success_rate": float(nominal_rate[0]), "nominal_ci95": nominal_ci[0].tolist(), "parameters": sweeps,
    }


def rapp_table(result: dict) -> str:
    def fmt(interval: list[float] | None) -> str:
        return "none" if interval is None else f"[{interval[0]:.4g}, {interval[1]:.4g}]"

    cut = "none (the policy never succeeds)" if result["threshold"] is None else f"{result['threshold']:.1%}"
    lines = [f"nominal success {result['nominal_success_rate']:.1%}; threshold {cut} "
             f"({result['episodes_per_value']} episodes per value)",
             f"{'parameter':<22} {'nominal':>9}  {'succeeds over':<22} {'surely':<22} {'possibly':<22}"]
    for p in result["parameters"]:
        lines.append(f"{p['name']:<22} {p['nominal']:>9.4g}  {fmt(p['interval']):<22} {fmt(p['interval_sure']):<22} "
                     f"{fmt(p['interval_possible']):<22}")
    return "\n".join(lines)


def plot_rapp(result: dict, path) -> None:
    """One panel per parameter: success against value, its 95% band, the threshold and the nominal value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = result["parameters"]
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, p in zip(axes.ravel(), params, strict=False):
        values, rate, ci = np.array(p["values"]), np.array(p["success_rate"]), np.array(p["ci95"])
        ax.fill_between(values, ci[:, 0], ci[:, 1], alpha=0.25, color="tab:blue")
        ax.plot(values, rate, "o-", color="tab:blue", ms=3)
        if result["threshold"] is not None:
            ax.axhline(result["threshold"], color="tab:red", lw=0.8, ls="--")
        ax.axvline(p["nominal"], color="k", lw=0.8)
        if p["interval"]:
            ax.axvspan(*p["interval"], color="tab:green", alpha=0.12)
        smallest = values[values > 0].min() if (values > 0).any() else 0.0
        if values.min() >= 0 and smallest > 0 and values.max() / smallest > 50:  # geometric grids: log axis
            ax.set_xscale("symlog", linthresh=smallest)
        ax.set_title(f"{p['name']} ({p['unit']})" if p["unit"] else p["name"], fontsize=9)
        ax.set_ylim(-0.02, 1.02)
    for ax in axes.ravel()[len(params):]:
        ax.axis("off")
    fig.suptitle(f"RAPP: {result['task']}, success per value alone (95% band; dashed: threshold)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

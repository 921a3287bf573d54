"""Robustness: a policy's success in each variant of the world, from a variants file.

A variants file is YAML, a list of `{name, params}` where `params` has the schema of a robot-params file
(registry names -> one number, or one per joint), e.g.

    - name: slow_servos_heavy_cube
      params: {actuator_kp: 12.0, cube_mass: 0.07, action_delay_steps: 2}
    - name: nominal
      params: {}

Every variant plays the same initial states (same seed), so differences between variants are the world's,
not the luck of the draw. Each task ships two suites: `default` (what the agent selects randomizations on) and
`test` (nothing selects on it or tunes to it: the claims are made on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from robosmith.reward.load import load_reward
from robosmith.robot.params import PARAMS, ParamError, Value, check_params, read_yaml
from robosmith.runs import TrainingRun, write_json
from robosmith.task.load import TASKS_DIR
from robosmith.task.spec import TaskSpec
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import evaluate_policy
from robosmith.train.policy import Policy

SUITES_DIR = TASKS_DIR.parent / "robustness"
SUITES = ("default", "test")


@dataclass(frozen=True)
class Variant:
    name: str
    params: dict[str, Value]


def load_variants(path: Path, task: TaskSpec | None = None) -> list[Variant]:
    """The variants of a file, checked against the registry (and against the task's scene when given)."""
    raw = read_yaml(path, "variants file")
    if not isinstance(raw, list) or not raw:
        raise ParamError(f"{path}: must be a non-empty list of {{name, params}}")
    out, names = [], set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not set(item) <= {"name", "params"} or "name" not in item:
            raise ParamError(f"{path}: variant {i}: needs the keys name and params (and nothing else)")
        name = item["name"]
        if not isinstance(name, str) or not name.strip():
            raise ParamError(f"{path}: variant {i}: name must be a non-empty string")
        if name in names:
            raise ParamError(f"{path}: variant {name!r}: the name is used twice")
        names.add(name)
        where = f"{path}: variant {name!r}"
        params = check_params(item.get("params") or {}, where)
        if task is not None and not task.scene.cube:
            on_cube = [k for k in params if PARAMS[k].needs_cube]
            if on_cube:
                raise ParamError(f"{where}: {', '.join(on_cube)}: {task.name} has no cube")
        out.append(Variant(name, params))
    return out


def variants_from(raw: list[dict]) -> list[Variant]:
    """Variants as a job file carries them ({name, params} dicts), checked again: the file is on disk."""
    return [Variant(v["name"], check_params(v["params"], f"variant {v['name']!r}")) for v in raw]


def suite_path(task: TaskSpec, suite: str) -> Path:
    """The shipped suite of a task: `default` or `test`."""
    if suite not in SUITES:
        raise ParamError(f"suite {suite!r}: one of {', '.join(SUITES)}")
    path = SUITES_DIR / (f"{task.name}.yaml" if suite == "default" else f"{task.name}.{suite}.yaml")
    if not path.is_file():
        raise ParamError(f"{task.name}: no shipped {suite} robustness suite; give --variants FILE")
    return path


def evaluate_variants(
    policy: Policy, task: TaskSpec, variants: list[Variant], out_dir: Path, episodes: int = 100, seed: int = 12345,
    progress: bool = True, reward_body: str | None = None,
) -> dict:
    """Success of `policy` in each variant (same initial states in each); `{"variants": [...]}` in the file's
    order, each with name, success_rate, ci95, episodes (and the params it set)."""
    reward = load_reward(reward_body or task.reference_reward_body())
    rows = []
    for variant in tqdm(variants, desc="robustness", unit="variant", disable=not progress):
        torch.manual_seed(seed)  # policies that sample draw the same noise in every variant
        env = TaskEnv(task, reward, episodes, seed=seed, auto_reset=False)
        env.set_world(dict(variant.params))
        result = evaluate_policy(env, policy, out_dir, video_episodes=0, progress=False)
        rows.append({
            "name": variant.name, "success_rate": result["success_rate"], "ci95": result["ci95"],
            "episodes": result["episodes"], "unstable_episodes": result["unstable_episodes"],
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in variant.params.items()},
        })
    return {"variants": rows, "seed": seed}


def nominal_first(rows: list[dict]) -> list[dict]:
    """The table's order: the variant that changes nothing first, the rest in the file's order."""
    return sorted(rows, key=lambda r: 0 if not r["params"] else 1)


def robustness_table(result: dict) -> str:
    lines = [f"{'variant':<32} {'success':>8}  95% CI"]
    for r in nominal_first(result["variants"]):
        low, high = r["ci95"]
        lines.append(f"{r['name']:<32} {r['success_rate']:>8.1%}  {low:.1%}-{high:.1%}")
    worst = min(result["variants"], key=lambda r: r["success_rate"])
    lines.append(f"worst: {worst['name']} ({worst['success_rate']:.1%}); "
                 f"mean {sum(r['success_rate'] for r in result['variants']) / len(result['variants']):.1%}")
    return "\n".join(lines)


def plot_heatmap(columns: list[tuple[str, dict]], path: Path) -> Path:
    """Variants (rows, nominal first) by policies (columns), coloured and labelled by success rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in nominal_first(columns[0][1]["variants"])]
    table = np.array([[{r["name"]: r for r in result["variants"]}[n]["success_rate"] for _, result in columns]
                      for n in names])
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(columns), 1.2 + 0.42 * len(names)))
    ax.imshow(table, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), [label for label, _ in columns], rotation=20, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), value in np.ndenumerate(table):
        ci = {r["name"]: r for r in columns[j][1]["variants"]}[names[i]]["ci95"]
        ax.text(j, i, f"{value:.0%}\n[{ci[0]:.0%}, {ci[1]:.0%}]", ha="center", va="center", fontsize=8)
    fig.suptitle("success per variant (95% CI)", fontsize=10)  # over the figure: one column is narrower than it
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_result(folder: Path, result: dict, suite: str | None = None) -> Path:
    """robustness.json, the last result; with a shipped `suite`, robustness.<suite>.json too."""
    path = TrainingRun(folder).robustness
    write_json(path, result)
    if suite is not None:
        write_json(TrainingRun(folder).suite_robustness(suite), result)
    return path


def robustness_scores(result: dict) -> dict:
    """What selection ranks by: the worst variant's success, then the mean (nominal kept for the record)."""
    rates = [v["success_rate"] for v in result["variants"]]
    nominal = next((v["success_rate"] for v in result["variants"] if not v["params"]), None)
    return {"robustness_worst": min(rates), "robustness_mean": sum(rates) / len(rates), "nominal_success": nominal}

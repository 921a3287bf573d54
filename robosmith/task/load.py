"""Loading task specs from YAML (the library ships in `robosmith/task/tasks/`), validated once, here.

A malformed file stops with one line naming the file and the field (`TaskError`). Everything downstream
(environment, trainer, agent) receives a validated `TaskSpec` and never re-checks it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from robosmith.contract.actions import ACTION_MODES
from robosmith.contract.observations import OBSERVATION_DOCS, observation_fields, observation_vector
from robosmith.contract.state import OBJECT_FIELDS, SimState
from robosmith.errors import RobosmithError
from robosmith.reward.check import RewardRejected
from robosmith.reward.load import SuccessFn, load_reward, load_success
from robosmith.reward.terms import RewardTerm, terms_to_body
from robosmith.robot.params import PARAMS, ParamError, RobotParams, check_params, param, read_yaml
from robosmith.task.spec import (
    CurriculumStage,
    DRParam,
    PPOConfig,
    RandomizedTraining,
    ResetConfig,
    SACConfig,
    SafetyLimits,
    SceneConfig,
    TaskSpec,
    TrainDefaults,
)

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


class TaskError(RobosmithError, ValueError):
    """A task file that does not describe a valid task. The message names the file and the field."""


# ------------------------------------------------------------------------------------------- loading
def available_tasks() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def resolve_task_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise TaskError(f"{path}: no such task file")
        return path
    path = TASKS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise TaskError(f"unknown task {str(name_or_path)!r}; known: {', '.join(available_tasks())}")
    return path


def load_task(name_or_path: str | Path, params: dict[str, float] | None = None) -> TaskSpec:
    """A task from the library or a file; `params` override the task's own parameter defaults."""
    path = resolve_task_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TaskError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if params and isinstance(raw, dict):
        known = raw.get("params") or {}
        for key, value in params.items():
            if key not in known:
                raise TaskError(f"{path}: params.{key}: unknown parameter; known: {', '.join(known) or 'none'}")
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TaskError(f"{path}: params.{key}: must be a number, got {value!r}")
        raw = {**raw, "params": {**known, **params}}
    return task_from_dict(raw, path)


def substitute_params(expr: str, params: dict[str, float]) -> str:
    """Write task parameters into an expression; other `{name}` fields (a term's own) are left alone."""
    return re.sub(r"\{(\w+)\}", lambda m: repr(float(params[m[1]])) if m[1] in params else m[0], expr)


def task_from_dict(raw: Any, source: Path | None = None) -> TaskSpec:
    where = str(source) if source else "<task>"
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: a task file is a mapping of fields")
    return _Parser(where).task(raw, source)


class _Parser:
    """Builds typed configs from raw YAML, raising TaskError('<file>: <field>: <problem>')."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, fieldname: str, problem: str) -> TaskError:
        return TaskError(f"{self.where}: {fieldname}: {problem}")

    def dataclass_from(self, cls: type, raw: Any, fieldname: str, **fixed: Any) -> Any:
        """Instantiate a dataclass from a mapping; unknown keys and bad values name the field."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise self.fail(fieldname, "must be a mapping")
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise self.fail(f"{fieldname}.{key}", f"unknown key; known: {', '.join(sorted(known))}")
            if key in fixed:
                continue
            kwargs[key] = self.typed(value, known[key], f"{fieldname}.{key}")
        try:
            return cls(**fixed, **kwargs)
        except (TypeError, ValueError) as e:
            raise self.fail(fieldname, str(e)) from None

    def typed(self, value: Any, f: dataclasses.Field, fieldname: str) -> Any:
        """Check a value against a dataclass field's declared scalar type; lists become tuples."""
        kind = str(f.type)
        if kind.endswith(" | None"):
            if value is None:
                return None
            kind = kind.removesuffix(" | None")
        if kind.startswith("tuple") and isinstance(value, list):
            return tuple(value)
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        expected = {"str": str, "float": float, "int": int, "bool": bool}.get(kind)
        if kind.startswith("dict"):
            expected = dict
        if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            raise self.fail(fieldname, f"expected {kind}, got {value!r}")
        return value

    def task(self, raw: dict, source: Path | None) -> TaskSpec:
        spec_fields = {f.name for f in dataclasses.fields(TaskSpec)} - {"source"}
        for key in raw:
            if key not in spec_fields:
                raise self.fail(key, f"unknown key; known: {', '.join(sorted(spec_fields))}")
        required = ("name", "description", "episode_length", "control_hz", "success", "reward", "observations")
        for key in required:
            if key not in raw:
                raise self.fail(key, "missing")

        name, description = raw["name"], raw["description"]
        for key in ("name", "description", "success"):
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise self.fail(key, "must be a non-empty string")
        episode_length = raw["episode_length"]
        if not isinstance(episode_length, int) or episode_length < 1:
            raise self.fail("episode_length", f"must be a whole number of control steps >= 1, got {episode_length!r}")
        control_hz = raw["control_hz"]
        if not isinstance(control_hz, (int, float)) or not 1 <= control_hz <= 500:
            raise self.fail("control_hz", f"must be a number in [1, 500], got {control_hz!r}")
        success_target = raw.get("success_target", 0.95)
        if not isinstance(success_target, (int, float)) or not 0 < success_target <= 1:
            raise self.fail("success_target", f"must be in (0, 1], got {success_target!r}")

        params = raw.get("params") or {}
        if not isinstance(params, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values()
        ):
            raise self.fail("params", "must map names to numbers")
        params = {str(k): float(v) for k, v in params.items()}
        scene = self.scene(raw.get("scene"))
        observations = self.observations(raw["observations"], scene)
        train = self.train_defaults(raw.get("train"), params)
        spec = TaskSpec(
            name=name,
            description=description.strip(),
            scene=scene,
            episode_length=episode_length,
            control_hz=float(control_hz),
            success=substitute_params(raw["success"].strip(), params),
            success_target=float(success_target),
            params=params,
            observations=observations,
            reward=self.reward_terms(raw["reward"], params),
            reset=self.dataclass_from(ResetConfig, raw.get("reset"), "reset"),
            action_mode=raw.get("action_mode", "delta"),
            action_scale=float(raw.get("action_scale", 0.1)),
            obs_noise=self.obs_noise(raw.get("obs_noise"), observations),
            domain_randomization=self.dr_params(raw.get("domain_randomization")),
            train=train,
            safety=self.dataclass_from(SafetyLimits, raw.get("safety"), "safety"),
            source=source,
        )
        if spec.action_mode not in ACTION_MODES:
            raise self.fail("action_mode", f"must be one of {', '.join(ACTION_MODES)}, got {spec.action_mode!r}")
        if round(1.0 / (spec.control_hz * scene.timestep)) * scene.timestep * spec.control_hz - 1 > 1e-6:
            raise self.fail("control_hz", f"must divide 1/scene.timestep = {1 / scene.timestep:g} Hz evenly")
        for i, p in enumerate(spec.domain_randomization):
            if PARAMS[p.name].needs_cube and not scene.cube:
                raise self.fail(f"domain_randomization[{i}]", f"{p.name}: the scene has no cube (scene.cube: false)")
        self.check_expressions(spec)
        return spec

    def scene(self, raw: Any) -> SceneConfig:
        raw = dict(raw or {})
        robot = raw.pop("robot", None) or {}
        if not isinstance(robot, dict):
            raise self.fail("scene.robot", "must map physical parameters to values")
        known = {f.name for f in dataclasses.fields(RobotParams)}
        for key in robot:
            if key not in known:
                raise self.fail(f"scene.robot.{key}", f"unknown key; known: {', '.join(sorted(known))}")
        try:
            params = RobotParams(**robot)
            effects = check_params(raw.pop("effects", None) or {}, f"{self.where}: scene.effects")
        except ParamError as e:
            raise TaskError(f"{self.where}: {e}" if not str(e).startswith(self.where) else str(e)) from None
        for key in effects:
            if PARAMS[key].where != "effect":
                raise self.fail(f"scene.effects.{key}", "not an effect (it belongs in scene.robot or scene)")
        return self.dataclass_from(SceneConfig, raw, "scene", robot=params, effects=effects)

    def observations(self, raw: Any, scene: SceneConfig) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("observations", "must be a non-empty list of SimState fields or relative positions")
        for name in raw:
            if name not in OBSERVATION_DOCS:
                raise self.fail("observations", f"{name!r} is neither a SimState field nor a relative position; "
                                                f"names: {', '.join(OBSERVATION_DOCS)}")
            if not scene.cube and any(f in OBJECT_FIELDS for f in observation_fields([name])):
                raise self.fail("observations", f"{name!r} needs a cube in the scene (scene.cube: true)")
        if len(set(raw)) < len(raw):
            raise self.fail("observations", "names a field twice")
        return tuple(raw)

    def obs_noise(self, raw: Any, observations: tuple[str, ...]) -> dict[str, float]:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise self.fail("obs_noise", "must map SimState fields to noise std")
        for name, std in raw.items():
            if name not in observation_fields(observations):
                raise self.fail(f"obs_noise.{name}", "not a SimState field the task's observations read")
            if not isinstance(std, (int, float)) or std < 0:
                raise self.fail(f"obs_noise.{name}", f"must be a std >= 0, got {std!r}")
        return {k: float(v) for k, v in raw.items()}

    def reward_terms(self, raw: Any, task_params: dict[str, float]) -> tuple[RewardTerm, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("reward", "must be a non-empty list of terms (name, weight, expr, params)")
        terms, names = [], set()
        for i, item in enumerate(raw):
            term = self.dataclass_from(RewardTerm, item, f"reward[{i}]")
            term = dataclasses.replace(term, expr=substitute_params(term.expr, task_params))
            if term.name in names:
                raise self.fail(f"reward[{i}].name", f"duplicate term {term.name!r}")
            names.add(term.name)
            terms.append(term)
        return tuple(terms)

    def dr_params(self, raw: Any) -> tuple[DRParam, ...]:
        try:
            return dr_ranges(raw or [], f"{self.where}: domain_randomization")
        except ParamError as e:
            raise TaskError(str(e)) from None

    def train_defaults(self, raw: Any, task_params: dict[str, float]) -> TrainDefaults:
        raw = dict(raw or {})
        ppo = self.dataclass_from(PPOConfig, raw.pop("ppo", None), "train.ppo")
        sac = self.dataclass_from(SACConfig, raw.pop("sac", None), "train.sac")
        randomized = self.dataclass_from(RandomizedTraining, raw.pop("randomized", None), "train.randomized")
        curriculum = self.curriculum(raw.pop("curriculum", None), task_params)
        if "hidden_dims" in raw and isinstance(raw["hidden_dims"], list):
            raw["hidden_dims"] = tuple(raw["hidden_dims"])
        return self.dataclass_from(TrainDefaults, raw, "train", ppo=ppo, sac=sac, randomized=randomized,
                                   curriculum=curriculum)

    def curriculum(self, raw: Any, task_params: dict[str, float]) -> tuple[CurriculumStage, ...]:
        """Stages in order; every one but the last moves on at a success rate, the last trains the whole reward."""
        if raw is None or raw == []:
            return ()
        if not isinstance(raw, list):
            raise self.fail("train.curriculum", "must be a list of stages (name, terms, success, advance_at)")
        stages = []
        for i, item in enumerate(raw):
            where = f"train.curriculum[{i}]"
            stage = self.dataclass_from(CurriculumStage, item, where)
            stage = dataclasses.replace(stage, success=substitute_params(stage.success.strip(), task_params))
            last = i == len(raw) - 1
            if last and (stage.terms or stage.success or stage.advance_at is not None):
                raise self.fail(where, "the last stage trains the whole reward towards the task's success: "
                                       "give it a name only")
            if not last and (stage.advance_at is None or not 0.0 < stage.advance_at <= 1.0):
                raise self.fail(f"{where}.advance_at", f"must be in (0, 1], got {stage.advance_at!r}")
            if stage.name in {s.name for s in stages}:
                raise self.fail(f"{where}.name", f"duplicate stage {stage.name!r}")
            stages.append(stage)
        if len(stages) < 2:
            raise self.fail("train.curriculum", "needs at least two stages (or none)")
        return tuple(stages)

    def check_success(self, expr: str, fieldname: str, state: SimState) -> None:
        """A success expression (the task's, a curriculum stage's) passes the static check and gives one bool
        per environment of `state`."""
        try:
            success_check(expr)
        except RewardRejected as e:
            raise self.fail(fieldname, f"does not pass the static check of task expressions: {e.reason}") from None
        try:
            ok = eval_success(expr, state)
        except Exception as e:  # noqa: BLE001 - any failure of the expression is the file's fault
            raise self.fail(fieldname, f"does not evaluate: {type(e).__name__}: {e}") from None
        if ok.shape != (state.num_envs,):
            raise self.fail(fieldname, f"must give one bool per environment, got shape {tuple(ok.shape)}")

    def check_expressions(self, spec: TaskSpec) -> None:
        """Evaluate success and reward on a state of the right shapes: typos surface now, not mid-training."""
        state = SimState.zeros(4, has_object=spec.scene.cube, has_goal=spec.has_goal)
        try:
            observation_vector(state, spec.observations, spec.episode_length)
        except ValueError as e:  # a field the scene lacks (a goal in a scene without one)
            raise self.fail("observations", str(e)) from None
        self.check_success(spec.success, "success", state)
        terms = [term.name for term in spec.reward]
        for i, stage in enumerate(spec.train.curriculum):
            where = f"train.curriculum[{i}]"
            for name in stage.terms:
                if name not in terms:
                    raise self.fail(f"{where}.terms", f"{name!r} is not a reward term; terms: {', '.join(terms)}")
            if stage.success:
                self.check_success(stage.success, f"{where}.success", state)
        for i, term in enumerate(spec.reward):
            try:
                fn = load_reward(terms_to_body((term,)))
            except RewardRejected as e:
                raise self.fail(f"reward[{i}].expr", f"does not pass the static check: {e.reason}") from None
            try:
                total, _ = fn(state)
            except Exception as e:  # noqa: BLE001
                raise self.fail(f"reward[{i}].expr", f"does not evaluate: {type(e).__name__}: {e}") from None
            if total.shape != (4,) or not bool(torch.isfinite(total).all()):
                raise self.fail(f"reward[{i}].expr", f"must give one finite value per environment, got {total}")


@functools.cache
def success_check(expr: str) -> SuccessFn:
    """A task's success expression as a function, through the one checked loader (a task file from someone
    else's run folder is as untrusted as an LLM's answer)."""
    return load_success(expr)


def eval_success(expr: str, s: SimState) -> torch.Tensor:
    """Evaluate a task's success expression to a bool tensor (N,)."""
    return success_check(expr)(s)


DISTRIBUTIONS = ("uniform", "log_uniform")


def dr_ranges(raw: object, where: str) -> tuple[DRParam, ...]:
    """A list of {name, nominal, bounds[, distribution]} (the schema of a task's `domain_randomization`), checked
    against the registry; one line naming `where` and the entry when something is wrong."""
    if not isinstance(raw, list):
        raise ParamError(f"{where}: must be a list of {{name, nominal, bounds}}")
    out, seen = [], set()
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not {"name", "nominal", "bounds"} <= set(item) <= {
                "name", "nominal", "bounds", "distribution"}:
            raise ParamError(f"{at}: needs the keys name, nominal, bounds (and may have distribution), no others")
        entry = param(str(item["name"]), at)
        if entry.name in seen:
            raise ParamError(f"{at}: {entry.name} is randomized twice")
        seen.add(entry.name)
        bounds = item["bounds"]
        if not (isinstance(bounds, list) and len(bounds) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
            raise ParamError(f"{at}.bounds: must be [low, high]")
        low, high, nominal = float(bounds[0]), float(bounds[1]), item["nominal"]
        if not entry.low <= low <= high <= entry.high:
            raise ParamError(f"{at}.bounds: [{low:g}, {high:g}] must be an interval within the physical bounds of "
                             f"{entry.name}, [{entry.low:g}, {entry.high:g}] {entry.unit}")
        if isinstance(nominal, bool) or not isinstance(nominal, (int, float)) or not low <= nominal <= high:
            raise ParamError(f"{at}.nominal: must be a number within bounds [{low:g}, {high:g}]")
        if entry.integer and math.floor(high) < math.ceil(low):
            raise ParamError(f"{at}.bounds: [{low:g}, {high:g}] holds no whole number of {entry.unit}")
        distribution = item.get("distribution", "uniform")
        if distribution not in DISTRIBUTIONS:
            raise ParamError(f"{at}.distribution: {distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")
        if distribution == "log_uniform" and (entry.integer or low <= 0.0):
            raise ParamError(f"{at}.distribution: log_uniform needs a range of positive, not whole, numbers")
        out.append(DRParam(entry.name, float(nominal), low, high, distribution))
    return tuple(out)


def load_randomization_file(path: Path) -> tuple[DRParam, ...]:
    """A randomization file (`--dr`): YAML, either the list itself or a mapping with `domain_randomization`."""
    raw = read_yaml(path, "randomization file")
    if isinstance(raw, dict) and "domain_randomization" in raw:
        return dr_ranges(raw["domain_randomization"], f"{path}: domain_randomization")
    return dr_ranges(raw, str(path))


def load_safety_file(path: Path, base: SafetyLimits) -> SafetyLimits:
    """A safety file (`deploy --safety`): YAML mapping some of a task's `safety:` fields; the rest stay `base`'s."""
    raw = read_yaml(path, "safety file")
    if isinstance(raw, dict) and isinstance(raw.get("safety"), dict):
        raw = raw["safety"]
    merged = {**dataclasses.asdict(base), **(raw if isinstance(raw, dict) else {})}
    if not isinstance(raw, dict):
        raise TaskError(f"{path}: a safety file maps safety fields to values")
    return _Parser(str(path)).dataclass_from(SafetyLimits, merged, "safety")

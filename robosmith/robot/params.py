"""The registry of physical parameters: one name, unit and pair of physical bounds per parameter, everywhere.

A robot description, a domain-randomization range, a robustness variant and a system-identification fit
all speak these names (`actuator_kp`, `joint_damping`, `cube_mass`, `action_delay_steps`, ...). Each entry
says how the value reaches the simulation: written into an MjSpec (the nominal model), into a compiled
MjModel (one environment's own copy), or applied by the environment because it is no model field at all
(delays, noise, calibration offsets); and which event of mjlab and of Isaac Lab randomizes it there.

Per-joint parameters take one value for all six joints or one value per joint (LeRobot order, gripper last).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import yaml

from robosmith.errors import RobosmithError
from robosmith.robot.so101 import JOINT_NAMES, PAD_GEOMS

CUBE_BODY = "cube"  # the name of the cube's body and geom in every task scene

Value = float | tuple[float, ...]
ModelSetter = Callable[[mujoco.MjModel, mujoco.MjModel, np.ndarray], None]  # (model, nominal model, value)
SpecSetter = Callable[[mujoco.MjSpec, np.ndarray], None]


class ParamError(RobosmithError, ValueError):
    """A parameter name or value the registry does not accept (one line, names the parameter)."""


@dataclass(frozen=True)
class PhysicalParam:
    name: str
    unit: str
    low: float  # physical bounds: values outside are refused, whoever asks
    high: float
    default: float  # the shipped model's value (a robot description starts here)
    doc: str
    where: str  # "robot" (the arm's model), "scene" (the task's objects) or "effect" (applied by the env)
    per_joint: bool = False
    integer: bool = False
    set_spec: SpecSetter | None = None
    set_model: ModelSetter | None = None
    # Engine events that randomize it, as source in which "{bounds}" stands for the (low, high) range; None: no
    # event there. They name ARM, PADS, KV, JOINTS and JAW_LINKS, which the engine's env_cfg defines.
    mjlab_event: str | None = None
    isaaclab_event: str | None = None
    isaaclab_attr: str | None = None  # the events config attribute, when it replaces a fixed one
    # Masses, inertias and armature enter constants MuJoCo derives when it compiles (the constraint solver's
    # inverse weights): after setting one in a compiled model, mj_setConst must run, or contacts go unstable.
    derived: bool = False

    @property
    def needs_cube(self) -> bool:
        """Meaningful only in a scene with the cube (its own parameters, and the noise on its perceived pose)."""
        return self.where == "scene" or self.name == "object_pos_noise"

    def check(self, value: Any, where: str = "") -> Value:
        """The value as the registry keeps it (float, or a tuple of one float per joint), or ParamError."""
        prefix = f"{where}: " if where else ""
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and (not self.per_joint or len(values) != len(JOINT_NAMES)):
            expected = f"one number or {len(JOINT_NAMES)} (one per joint)" if self.per_joint else "one number"
            raise ParamError(f"{prefix}{self.name}: expected {expected}, got {len(values)} values")
        out = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParamError(f"{prefix}{self.name}: must be a finite number, got {v!r}")
            if self.integer and float(v) != int(v):
                raise ParamError(f"{prefix}{self.name}: must be a whole number of {self.unit}, got {v!r}")
            if not self.low <= v <= self.high:
                raise ParamError(f"{prefix}{self.name}: {v:g} {self.unit} is outside the physical bounds "
                                 f"[{self.low:g}, {self.high:g}]")
            out.append(float(v))
        return tuple(out) if isinstance(value, (list, tuple)) else out[0]

    def per_joint_array(self, value: Value) -> np.ndarray:
        """The value as one number per joint (a scalar repeated)."""
        return np.broadcast_to(np.asarray(value, dtype=float), (len(JOINT_NAMES),)).copy()


# ------------------------------------------------------------------------------------------------- setters
def _dofs(m: mujoco.MjModel) -> list[int]:
    return [int(m.joint(name).dofadr[0]) for name in JOINT_NAMES]


def _actuators(m: mujoco.MjModel) -> list[int]:
    return [m.actuator(name).id for name in JOINT_NAMES]


def _model_kp(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    for a, kp in zip(_actuators(m), np.broadcast_to(v, (len(JOINT_NAMES),)), strict=True):
        m.actuator_gainprm[a, 0] = kp
        m.actuator_biasprm[a, 1] = -kp


def _model_kv(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    for a, kv in zip(_actuators(m), np.broadcast_to(v, (len(JOINT_NAMES),)), strict=True):
        m.actuator_biasprm[a, 2] = -kv


def _model_dof(array: str) -> ModelSetter:
    def setter(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
        getattr(m, array)[_dofs(m)] = v

    return setter


def _model_force_limit(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    for a, limit in zip(_actuators(m), np.broadcast_to(v, (len(JOINT_NAMES),)), strict=True):
        m.actuator_forcerange[a] = (-limit, limit)


def _model_link_mass_scale(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    bodies = [b for b in range(1, m.nbody) if m.body(b).name != CUBE_BODY]
    m.body_mass[bodies] = nominal.body_mass[bodies] * float(v)
    m.body_inertia[bodies] = nominal.body_inertia[bodies] * float(v)


def _model_pad_friction(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    for pad in PAD_GEOMS:
        m.geom_friction[m.geom(pad).id, 0] = float(v)


def _cube_inertia(m: mujoco.MjModel) -> None:
    """A solid cube's inertia from its current mass and edge (mass and size are set in either order)."""
    b, g = m.body(CUBE_BODY).id, m.geom(CUBE_BODY).id
    edge = 2.0 * m.geom_size[g, 0]
    m.body_inertia[b] = m.body_mass[b] * edge**2 / 6.0


def _model_cube_mass(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    m.body_mass[m.body(CUBE_BODY).id] = float(v)
    _cube_inertia(m)


def _model_cube_size(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    g, half = m.geom(CUBE_BODY).id, float(v) / 2
    m.geom_size[g] = half
    # Collision culling reads the bounding sphere and box, which the compiler computed for the nominal size.
    m.geom_rbound[g] = half * math.sqrt(3.0)
    m.geom_aabb[g, 3:] = half
    _cube_inertia(m)


def _model_cube_friction(m: mujoco.MjModel, nominal: mujoco.MjModel, v: np.ndarray) -> None:
    m.geom_friction[m.geom(CUBE_BODY).id, 0] = float(v)


def _per_joint(spec_setter: Callable[[mujoco.MjSpec, str, float], None]) -> SpecSetter:
    def setter(spec: mujoco.MjSpec, v: np.ndarray) -> None:
        for name, value in zip(JOINT_NAMES, np.broadcast_to(v, (len(JOINT_NAMES),)), strict=True):
            spec_setter(spec, name, float(value))

    return setter


def _spec_kp(spec: mujoco.MjSpec, joint: str, kp: float) -> None:
    act = spec.actuator(joint)
    act.gainprm[0] = kp
    act.biasprm[0] = 0.0
    act.biasprm[1] = -kp


def _spec_kv(spec: mujoco.MjSpec, joint: str, kv: float) -> None:
    spec.actuator(joint).biasprm[2] = -kv


def _spec_damping(spec: mujoco.MjSpec, joint: str, value: float) -> None:
    spec.joint(joint).damping = [value, 0.0, 0.0]  # linear term only


def _spec_armature(spec: mujoco.MjSpec, joint: str, value: float) -> None:
    spec.joint(joint).armature = value


def _spec_frictionloss(spec: mujoco.MjSpec, joint: str, value: float) -> None:
    spec.joint(joint).frictionloss = value


def _spec_force_limit(spec: mujoco.MjSpec, joint: str, value: float) -> None:
    act = spec.actuator(joint)
    act.forcelimited = True
    act.forcerange = [-value, value]


def _spec_link_mass_scale(spec: mujoco.MjSpec, v: np.ndarray) -> None:
    scale = float(v)
    for body in spec.bodies:
        if body.name and body.name != "world" and body.mass > 0:
            # Scaling mass and inertia together keeps each link's shape (radius of gyration).
            body.mass = body.mass * scale
            body.fullinertia = body.fullinertia * scale
            body.inertia = body.inertia * scale


def _spec_pad_friction(spec: mujoco.MjSpec, v: np.ndarray) -> None:
    for pad in PAD_GEOMS:
        spec.geom(pad).friction = [float(v), 0.02, 0.002]


# --------------------------------------------------------------------------------------------- registry
_ARM = 'SceneEntityCfg("robot", joint_names=JOINTS)'
_ACTUATORS = 'SceneEntityCfg("robot", actuator_names=JOINTS)'
_MJ = 'EventTermCfg(func=dr.{func}, mode="reset", params={{{params}, "operation": "abs", "asset_cfg": {asset}}})'
_IL_JOINT = ('EventTermCfg(func=mdp.{func}, mode="reset", params={{"asset_cfg": ' + _ARM
             + ', "{key}": {{bounds}}, "operation": "abs"}})')
_IL_MATERIAL = ('EventTermCfg(func=mdp.randomize_rigid_body_material, mode="startup", params={{"asset_cfg": {asset}, '
                '"static_friction_range": {{bounds}}, "dynamic_friction_range": {{bounds}}, '
                '"restitution_range": (0.0, 0.0), "num_buckets": 64}})')


def _mj(func: str, params: str, asset: str) -> str:
    return _MJ.format(func=func, params=params, asset=asset)


PARAMS: dict[str, PhysicalParam] = {p.name: p for p in [
    PhysicalParam(
        "actuator_kp", "N·m/rad", 1.0, 100.0, 17.8, "position gain of the servos (torque per radian of error)",
        "robot", per_joint=True, set_spec=_per_joint(_spec_kp), set_model=_model_kp,
        mjlab_event=_mj("pd_gains", '"kp_range": {bounds}, "kd_range": (min(KV), max(KV))', _ACTUATORS),
        isaaclab_event=_IL_JOINT.format(func="randomize_actuator_gains", key="stiffness_distribution_params"),
    ),
    PhysicalParam(
        "actuator_kv", "N·m·s/rad", 0.0, 10.0, 0.0, "velocity gain of the servos (torque opposing joint speed)",
        "robot", per_joint=True, set_spec=_per_joint(_spec_kv), set_model=_model_kv,
    ),
    PhysicalParam(
        "joint_damping", "N·m·s/rad", 0.0, 10.0, 0.60, "viscous damping of each joint", "robot", per_joint=True,
        set_spec=_per_joint(_spec_damping), set_model=_model_dof("dof_damping"),
        mjlab_event=_mj("joint_damping", '"ranges": {bounds}', "ARM"),
        isaaclab_event=_IL_JOINT.format(func="randomize_actuator_gains", key="damping_distribution_params"),
    ),
    PhysicalParam(
        "joint_armature", "kg·m²", 0.0, 0.5, 0.028, "reflected rotor inertia of each joint's gearbox", "robot",
        per_joint=True, set_spec=_per_joint(_spec_armature), set_model=_model_dof("dof_armature"),
        mjlab_event=_mj("joint_armature", '"ranges": {bounds}', "ARM"),
        isaaclab_event=_IL_JOINT.format(func="randomize_joint_parameters", key="armature_distribution_params"),
        derived=True,
    ),
    PhysicalParam(
        "joint_frictionloss", "N·m", 0.0, 2.0, 0.052, "dry (Coulomb) friction torque of each joint", "robot",
        per_joint=True, set_spec=_per_joint(_spec_frictionloss), set_model=_model_dof("dof_frictionloss"),
        mjlab_event=_mj("joint_friction", '"ranges": {bounds}', "ARM"),
        isaaclab_event=_IL_JOINT.format(func="randomize_joint_parameters", key="friction_distribution_params"),
    ),
    PhysicalParam(
        "actuator_force_limit", "N·m", 0.1, 20.0, 3.35, "largest torque a servo applies", "robot", per_joint=True,
        set_spec=_per_joint(_spec_force_limit), set_model=_model_force_limit,
        mjlab_event=_mj("effort_limits", '"effort_limit_range": {bounds}', _ACTUATORS),
    ),
    PhysicalParam(
        "link_mass_scale", "×", 0.25, 4.0, 1.0, "factor on the mass and inertia of every link of the arm", "robot",
        set_spec=_spec_link_mass_scale, set_model=_model_link_mass_scale,
        derived=True,
    ),
    PhysicalParam(
        "pad_friction", "", 0.05, 5.0, 1.5, "sliding friction coefficient of the jaw pads", "robot",
        set_spec=_spec_pad_friction, set_model=_model_pad_friction,
        mjlab_event=_mj("geom_friction", '"ranges": {bounds}', 'SceneEntityCfg("robot", geom_names=PADS)'),
        isaaclab_event=_IL_MATERIAL.format(asset='SceneEntityCfg("robot", body_names=JAW_LINKS)'),
        isaaclab_attr="jaw_material",
    ),
    PhysicalParam(
        "cube_mass", "kg", 0.002, 1.0, 0.03, "mass of the cube", "scene", set_model=_model_cube_mass,
        mjlab_event=_mj("body_mass", '"ranges": {bounds}', 'SceneEntityCfg("cube", body_names=("cube",))'),
        isaaclab_event=('EventTermCfg(func=mdp.randomize_rigid_body_mass, mode="startup", params={"asset_cfg": '
                        'SceneEntityCfg("cube"), "mass_distribution_params": {bounds}, "operation": "abs"})'),
        derived=True,
    ),
    PhysicalParam(
        "cube_size", "m", 0.01, 0.06, 0.025, "edge length of the cube", "scene", set_model=_model_cube_size,
        derived=True,
    ),
    PhysicalParam(
        "cube_friction", "", 0.05, 5.0, 1.0, "sliding friction coefficient of the cube", "scene",
        set_model=_model_cube_friction,
        mjlab_event=_mj("geom_friction", '"ranges": {bounds}', 'SceneEntityCfg("cube", geom_names=("cube",))'),
        isaaclab_event=_IL_MATERIAL.format(asset='SceneEntityCfg("cube")'),
    ),
    PhysicalParam(
        "action_delay_steps", "control steps", 0, 10, 0, "control steps between a policy's action and the servo "
        "targets it sets (communication and processing lag)", "effect", integer=True,
    ),
    PhysicalParam(
        "action_noise", "action units", 0.0, 0.5, 0.0, "std of Gaussian noise added to each action in [-1, 1]",
        "effect",
    ),
    PhysicalParam(
        "joint_zero_offset", "rad", -0.2, 0.2, 0.0, "error of each joint's calibrated zero: the arm reports "
        "q + offset and is driven to target - offset", "effect", per_joint=True,
    ),
    PhysicalParam(
        "joint_pos_noise", "rad", 0.0, 0.2, 0.0, "std of Gaussian noise on the joint positions a policy reads",
        "effect",
    ),
    PhysicalParam(
        "object_pos_noise", "m", 0.0, 0.1, 0.0, "std of Gaussian noise on the cube position a policy reads "
        "(on the real arm: the perception estimate's error)", "effect",
    ),
]}


def param(name: str, where: str = "") -> PhysicalParam:
    """The registry entry of `name`, or ParamError listing the known names."""
    if name not in PARAMS:
        prefix = f"{where}: " if where else ""
        raise ParamError(f"{prefix}{name!r} is not a physical parameter; known: {', '.join(PARAMS)}")
    return PARAMS[name]


def check_params(values: dict[str, Any], where: str = "") -> dict[str, Value]:
    """A mapping of registry names to values, each checked against its entry (the robot-params schema)."""
    if not isinstance(values, dict):
        raise ParamError(f"{where}: must map parameter names to values" if where else "must be a mapping")
    return {name: param(name, where).check(value, where) for name, value in values.items()}


def load_params_file(path: Path) -> dict[str, Value]:
    """A robot-params file: YAML mapping registry names to one number or one per joint, e.g.

        actuator_kp: 9.0
        joint_frictionloss: [0.05, 0.1, 0.1, 0.05, 0.05, 0.05]
        action_delay_steps: 2

    What system identification writes and `--robot-params` reads; a robustness variant's `params` has the
    same schema. Bad files get one line naming the file and the entry.
    """
    raw = read_yaml(path, "robot-params file")
    return check_params(raw if raw is not None else {}, str(path))


def read_yaml(path: Path, kind: str) -> Any:
    """The YAML of a parameter file (robot params, randomization, variants), or one line naming the file."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError:
        raise ParamError(f"{path}: no such {kind}") from None
    except yaml.YAMLError as e:
        raise ParamError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None


def robot_params_of(values: dict[str, Value], base: RobotParams | None = None) -> RobotParams:
    """`base` (default: the shipped model) with the robot entries of `values` replaced."""
    base = base or RobotParams()
    robot = {k: v for k, v in values.items() if PARAMS[k].where == "robot"}
    return dataclasses.replace(base, **robot)


def _robot_field(name: str) -> Any:
    return field(default=PARAMS[name].default)


@dataclass(frozen=True)
class RobotParams:
    """The arm's physical description: registry values, one number or one per joint where the entry allows.

    Defaults are the STS3215 values of the shipped model. System identification fits these; domain
    randomization varies them around them.
    """

    actuator_kp: Value = _robot_field("actuator_kp")
    actuator_kv: Value = _robot_field("actuator_kv")
    joint_damping: Value = _robot_field("joint_damping")
    joint_armature: Value = _robot_field("joint_armature")
    joint_frictionloss: Value = _robot_field("joint_frictionloss")
    actuator_force_limit: Value = _robot_field("actuator_force_limit")
    link_mass_scale: Value = _robot_field("link_mass_scale")
    pad_friction: Value = _robot_field("pad_friction")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, PARAMS[f.name].check(getattr(self, f.name), "scene.robot"))

    def as_dict(self) -> dict[str, Value]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def apply_to_spec(self, spec: mujoco.MjSpec) -> None:
        """Write every value into a spec of the SO-101."""
        for name, value in self.as_dict().items():
            PARAMS[name].set_spec(spec, np.asarray(value, dtype=float))

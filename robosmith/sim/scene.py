"""Task scenes: the SO-101 on a table with the task's objects, cameras and the sensors SimState reads.

Two compiled variants come from one description: a lean physics model (no meshes, what the batched
environment steps) and a visual model (meshes, goal marker, lights) used for rendering. Both have the same
joints in the same order, so a state of one is a state of the other.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robosmith.robot.params import CUBE_BODY
from robosmith.robot.so101 import BIT_LINK, BIT_WORLD, GRIPPER_BODY, JOINT_NAMES, PAD_GEOMS, TOOL_SITE, build_robot_spec
from robosmith.task.spec import SceneConfig

GOAL_BODY = "goal"
CAMERAS = ("front", "wrist")
CUBE_RGBA = (0.85, 0.2, 0.2, 1.0)


def _look_at_quat(pos: np.ndarray, target: np.ndarray) -> list[float]:
    """Quaternion (wxyz) of a MuJoCo camera at pos looking at target; cameras look along their -z."""
    z = pos - target
    z = z / np.linalg.norm(z)
    x = np.cross([0.0, 0.0, 1.0], z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x, y, z]).ravel())
    return quat.tolist()


def _add_sensor(spec: mujoco.MjSpec, name: str, type_, objtype, objname: str, **extra) -> None:
    sensor = spec.add_sensor()
    sensor.name = name
    sensor.type = type_
    sensor.objtype = objtype
    sensor.objname = objname
    for key, value in extra.items():
        setattr(sensor, key, value)


def build_scene_spec(cfg: SceneConfig, visual: bool) -> mujoco.MjSpec:
    spec = build_robot_spec(cfg.robot, visual=visual)
    spec.modelname = "so101_scene"
    opt = spec.option
    opt.timestep = cfg.timestep
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.impratio = 10  # stiffer friction: grasped objects slip less
    # MuJoCo would silently put a diverging environment back to qpos0; we want the NaN to surface so that
    # BatchedEnv resets it from the task's own distribution and counts it.
    opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET
    world = spec.worldbody

    table = world.add_geom()
    table.name = "table"
    table.type = mujoco.mjtGeom.mjGEOM_PLANE
    table.size = [1.0, 1.0, 0.01]
    table.contype, table.conaffinity = BIT_WORLD, BIT_WORLD | BIT_LINK
    table.rgba = [0.55, 0.5, 0.45, 1.0]

    if cfg.cube:
        cube = world.add_body()
        cube.name = CUBE_BODY
        cube.pos = [0.25, 0.0, cfg.cube_size / 2]
        cube.add_freejoint()
        g = cube.add_geom()
        g.name = CUBE_BODY
        g.type = mujoco.mjtGeom.mjGEOM_BOX
        g.size = [cfg.cube_size / 2] * 3
        g.mass = cfg.cube_mass
        g.friction = [cfg.cube_friction, 0.02, 0.002]
        g.condim = 4
        g.contype, g.conaffinity = BIT_WORLD, BIT_WORLD
        g.rgba = list(CUBE_RGBA)

    if visual:
        _add_visuals(spec, cfg)

    # Sensors, in the order SimState reads them.
    for name in JOINT_NAMES:
        _add_sensor(spec, f"{name}_pos", mujoco.mjtSensor.mjSENS_JOINTPOS, mujoco.mjtObj.mjOBJ_JOINT, name)
    for name in JOINT_NAMES:
        _add_sensor(spec, f"{name}_vel", mujoco.mjtSensor.mjSENS_JOINTVEL, mujoco.mjtObj.mjOBJ_JOINT, name)
    site = mujoco.mjtObj.mjOBJ_SITE
    _add_sensor(spec, "ee_pos", mujoco.mjtSensor.mjSENS_FRAMEPOS, site, TOOL_SITE)
    _add_sensor(spec, "ee_quat", mujoco.mjtSensor.mjSENS_FRAMEQUAT, site, TOOL_SITE)
    if cfg.cube:
        body = mujoco.mjtObj.mjOBJ_BODY
        _add_sensor(spec, "object_pos", mujoco.mjtSensor.mjSENS_FRAMEPOS, body, CUBE_BODY)
        _add_sensor(spec, "object_quat", mujoco.mjtSensor.mjSENS_FRAMEQUAT, body, CUBE_BODY)
        _add_sensor(spec, "object_linvel", mujoco.mjtSensor.mjSENS_FRAMELINVEL, body, CUBE_BODY)
        for pad in PAD_GEOMS:
            # Contact sensor: data = found|force (bits 0 and 1), reduce = net force (world frame) over all contacts.
            _add_sensor(
                spec,
                f"{pad}_contact",
                mujoco.mjtSensor.mjSENS_CONTACT,
                mujoco.mjtObj.mjOBJ_GEOM,
                pad,
                reftype=mujoco.mjtObj.mjOBJ_GEOM,
                refname=CUBE_BODY,
                intprm=[1 | 2, 3, 1],
            )
    return spec


def _add_visuals(spec: mujoco.MjSpec, cfg: SceneConfig) -> None:
    world = spec.worldbody
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    spec.visual.headlight.ambient = [0.4, 0.4, 0.4]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    light = world.add_light()
    light.pos = [0.2, 0.0, 1.2]
    light.dir = [0.0, 0.0, -1.0]
    light.diffuse = [0.6, 0.6, 0.6]

    goal = world.add_body()
    goal.name = GOAL_BODY
    goal.mocap = True
    goal.pos = [0.25, 0.0, 0.15]
    if cfg.goal_marker != "none":
        g = goal.add_geom()
        g.contype = g.conaffinity = 0
        if cfg.goal_marker == "point":
            g.type = mujoco.mjtGeom.mjGEOM_SPHERE
            g.size = [0.012, 0, 0]
            g.rgba = [0.1, 0.8, 0.2, 0.6]
        else:
            g.type = mujoco.mjtGeom.mjGEOM_CYLINDER
            g.size = [cfg.goal_radius, 0.001, 0]
            g.pos = [0, 0, 0.0015]  # just above the table top, where the goal point lies
            g.rgba = [0.1, 0.8, 0.2, 0.5]

    front = world.add_camera()
    front.name = "front"
    pos = np.array([0.52, -0.34, 0.34])
    front.pos = pos.tolist()
    front.quat = _look_at_quat(pos, np.array([0.17, 0.0, 0.08]))
    front.fovy = 55

    wrist = spec.body(GRIPPER_BODY).add_camera()
    wrist.name = "wrist"
    # Mounted on the gripper, looking along the jaws towards the tool point.
    wrist.pos = [0.0, -0.06, -0.03]
    wrist.quat = _look_at_quat(np.array([0.0, -0.06, -0.03]), np.array([0.0, 0.0, -0.1]))
    wrist.fovy = 70


def compile_scene(cfg: SceneConfig, visual: bool = False) -> mujoco.MjModel:
    return build_scene_spec(cfg, visual=visual).compile()

"""Named physical parameters that can be set per environment on a compiled model.

These are the knobs domain randomization varies and system identification fits. Each takes one scalar
per environment and writes it into that environment's own MjModel.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco

from robosmith.sim.scene import CUBE_BODY
from robosmith.sim.so101 import JOINT_NAMES, PAD_GEOMS


def _arm_dofs(m: mujoco.MjModel) -> list[int]:
    return [int(m.joint(name).dofadr[0]) for name in JOINT_NAMES]


def _actuators(m: mujoco.MjModel) -> list[int]:
    return [m.actuator(name).id for name in JOINT_NAMES]


def _set_kp(m: mujoco.MjModel, v: float) -> None:
    for a in _actuators(m):
        m.actuator_gainprm[a, 0] = v
        m.actuator_biasprm[a, 1] = -v


def _set_damping(m: mujoco.MjModel, v: float) -> None:
    m.dof_damping[_arm_dofs(m)] = v


def _set_armature(m: mujoco.MjModel, v: float) -> None:
    m.dof_armature[_arm_dofs(m)] = v


def _set_frictionloss(m: mujoco.MjModel, v: float) -> None:
    m.dof_frictionloss[_arm_dofs(m)] = v


def _set_force_limit(m: mujoco.MjModel, v: float) -> None:
    for a in _actuators(m):
        m.actuator_forcerange[a] = (-v, v)


def _set_cube_mass(m: mujoco.MjModel, v: float) -> None:
    b = m.body(CUBE_BODY).id
    scale = v / m.body_mass[b]
    m.body_mass[b] = v
    m.body_inertia[b] *= scale


def _set_cube_friction(m: mujoco.MjModel, v: float) -> None:
    m.geom_friction[m.geom(CUBE_BODY).id, 0] = v


def _set_pad_friction(m: mujoco.MjModel, v: float) -> None:
    for pad in PAD_GEOMS:
        m.geom_friction[m.geom(pad).id, 0] = v


PHYSICS_PARAMS: dict[str, Callable[[mujoco.MjModel, float], None]] = {
    "actuator_kp": _set_kp,
    "joint_damping": _set_damping,
    "joint_armature": _set_armature,
    "joint_frictionloss": _set_frictionloss,
    "actuator_force_limit": _set_force_limit,
    "cube_mass": _set_cube_mass,
    "cube_friction": _set_cube_friction,
    "pad_friction": _set_pad_friction,
}

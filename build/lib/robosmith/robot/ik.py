"""Inverse kinematics of the SO-101 tool point, for scripted motions (tests, demonstrations).

Damped least squares on the tool site's position and the gripper's orientation. The arm has five joints
before the gripper; a top-down grasp (tool axis pointing down, jaws turned to a yaw) is reachable within
the workspace because shoulder_pan sets the azimuth, the three pitch joints set reach, height and the
vertical approach, and wrist_roll sets the yaw.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robosmith.robot.so101 import GRIPPER_BODY, JOINT_NAMES, TOOL_SITE

ARM_JOINTS = JOINT_NAMES[:5]


def top_down_quat(yaw: float) -> np.ndarray:
    """Gripper orientation (wxyz) with its tool axis (-z of the gripper body) pointing down, jaws along yaw."""
    # Columns: gripper x (jaw closing direction) in the table plane at yaw, gripper z pointing up.
    x = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    z = np.array([0.0, 0.0, 1.0])
    y = np.cross(z, x)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x, y, z]).ravel())
    return quat


def solve_ik(
    model: mujoco.MjModel,
    target_pos: np.ndarray,
    target_quat: np.ndarray | None,
    q_init: np.ndarray,
    iterations: int = 200,
    damping: float = 1e-3,
    orientation_weight: float = 0.3,
) -> tuple[np.ndarray, float]:
    """Joint positions (the 5 arm joints; the gripper is left as in q_init) and the final position error in m."""
    data = mujoco.MjData(model)
    dofs = np.array([model.joint(j).dofadr[0] for j in ARM_JOINTS])
    qadr = np.array([model.joint(j).qposadr[0] for j in ARM_JOINTS])
    low, high = model.jnt_range[[model.joint(j).id for j in ARM_JOINTS]].T
    data.qpos[: len(q_init)] = q_init
    site, body = model.site(TOOL_SITE).id, model.body(GRIPPER_BODY).id
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    err_rot = np.zeros(3)
    q_conj = np.zeros(4)
    q_err = np.zeros(4)
    for _ in range(iterations):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        err_pos = target_pos - data.site_xpos[site]
        rows, errs = [], []
        mujoco.mj_jacSite(model, data, jacp, None, site)
        rows.append(jacp[:, dofs])
        errs.append(err_pos)
        if target_quat is not None:
            mujoco.mju_negQuat(q_conj, data.xquat[body])
            mujoco.mju_mulQuat(q_err, target_quat, q_conj)
            mujoco.mju_quat2Vel(err_rot, q_err, 1.0)
            mujoco.mj_jacBody(model, data, None, jacr, body)
            rows.append(orientation_weight * jacr[:, dofs])
            errs.append(orientation_weight * err_rot)
        jac, err = np.vstack(rows), np.concatenate(errs)
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(len(err)), err)
        data.qpos[qadr] = np.clip(data.qpos[qadr] + dq, low, high)
    mujoco.mj_kinematics(model, data)
    q = np.array(q_init, dtype=float).copy()
    q[:5] = data.qpos[qadr]
    return q, float(np.linalg.norm(target_pos - data.site_xpos[site]))

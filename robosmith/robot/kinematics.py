"""Forward kinematics of our SO-101 model: where the tool point is for given joint positions.

The deploy loop needs it twice on the real arm, where no simulator runs: to build the observations a policy
reads (`ee_pos`, `ee_quat`) from the joint readings, and to keep every commanded pose inside the safety
layer's workspace box. The numbers are the simulator's own (the same MJCF, the same tool site), so a policy
sees on the arm what its `ee_pos` sensor showed it in training.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robosmith.robot.params import RobotParams
from robosmith.robot.so101 import JOINT_NAMES, TOOL_SITE, build_robot_spec


class ToolKinematics:
    """Tool-point pose of the arm alone (no scene), from joint positions in rad (the gripper's is ignored)."""

    def __init__(self, params: RobotParams | None = None) -> None:
        self.model = build_robot_spec(params or RobotParams(), visual=False).compile()
        self.data = mujoco.MjData(self.model)
        self._qpos = [self.model.joint(name).qposadr[0] for name in JOINT_NAMES]
        self._site = self.model.site(TOOL_SITE).id
        self._quat = np.zeros(4)

    def pose(self, joint_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,) in m, orientation (4,) wxyz) of the tool point in the robot's base frame."""
        self.data.qpos[self._qpos] = np.asarray(joint_rad, dtype=float)[: len(self._qpos)]
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mju_mat2Quat(self._quat, self.data.site_xmat[self._site])
        return self.data.site_xpos[self._site].copy(), self._quat.copy()

    def position(self, joint_rad: np.ndarray) -> np.ndarray:
        return self.pose(joint_rad)[0]

"""Our simulated SO-101 as a LeRobot `Robot`: the deploy rehearsal, `deploy --sim` and the tests drive it, and
LeRobot's own commands can too (`--robot.type=robosmith_so101_sim`, once the `lerobot_robot_robosmith` plugin
distribution is installed; `make` installs it).

It speaks exactly what LeRobot's SO-101 follower speaks: `<joint>.pos` in degrees (gripper 0-100) in and out,
cameras as (H, W, 3) uint8 frames. One `send_action` is one control period of the task: the simulator
advances deterministically, not with the wall clock, so a run is reproducible and as fast as the CPU allows.
The arm's effects (lag, calibration offsets, sensor noise; `--robot-params`) act as on a real arm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lerobot.robots.config import RobotConfig
from lerobot.robots.robot import Robot

from robosmith.contract.observations import sensed_state
from robosmith.contract.state import SimState
from robosmith.errors import RobosmithError
from robosmith.robot.units import LEROBOT_JOINT_NAMES, from_lerobot, to_lerobot

ROBOT_TYPE = "robosmith_so101_sim"


class SimRobotError(RobosmithError, ValueError):
    """A simulated arm that cannot be set up as asked (one line)."""


@RobotConfig.register_subclass(ROBOT_TYPE)
@dataclass
class SimSO101Config(RobotConfig):
    task: str = "so101_lift"  # task name or task file: the scene (cube, goal marker, cameras) and control rate
    seed: int = 0
    robot_params: str | None = None  # a robot-params file (e.g. from `robosmith sysid`): the arm as identified
    sim_cameras: list[str] = field(default_factory=list)  # the scene's cameras to render: front, wrist
    image_height: int = 480
    image_width: int = 640
    camera_file: str | None = None  # a camera file: the front camera rendered as that calibrated camera


class SimSO101(Robot):
    config_class = SimSO101Config
    name = ROBOT_TYPE

    def __init__(self, config: SimSO101Config) -> None:
        super().__init__(config)
        self.config = config
        self.env = None
        self._renderer = None
        self._noise = torch.Generator().manual_seed(config.seed + 1)

    # ------------------------------------------------------------------------------------ LeRobot's API
    @property
    def observation_features(self) -> dict:
        cams = {c: (self.config.image_height, self.config.image_width, 3) for c in self.config.sim_cameras}
        return {**dict.fromkeys(LEROBOT_JOINT_NAMES, float), **cams}

    @property
    def action_features(self) -> dict:
        return dict.fromkeys(LEROBOT_JOINT_NAMES, float)

    @property
    def is_connected(self) -> bool:
        return self.env is not None

    def connect(self, calibrate: bool = True) -> None:  # noqa: ARG002  (nothing to calibrate)
        from robosmith.sim.batched_env import BatchedEnv, env_config
        from robosmith.task.load import load_task

        task = load_task(self.config.task)
        if self.config.robot_params:
            from robosmith.robot.params import load_params_file
            from robosmith.task.spec import with_robot_params

            task = with_robot_params(task, load_params_file(Path(self.config.robot_params)))
        if self.config.camera_file:
            from robosmith.perception.camera import load_camera, with_camera

            task = with_camera(task, load_camera(Path(self.config.camera_file)))
        self.task = task
        self.env = BatchedEnv(task.scene, env_config(task, 1, self.config.seed), task.reset, task.has_goal)
        if self.config.sim_cameras:
            from robosmith.sim.render import SceneRenderer

            self._renderer = SceneRenderer(task.scene, width=self.config.image_width,
                                           height=self.config.image_height)
            known = [self._renderer.model.camera(i).name for i in range(self._renderer.model.ncam)]
            unknown = [c for c in self.config.sim_cameras if c not in known]
            if unknown:
                self.disconnect()
                raise SimRobotError(f"cameras {', '.join(unknown)}: the {task.name} scene has {', '.join(known)}")

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass  # the model's joint zeros are the calibration middle (robosmith.robot.units)

    def configure(self) -> None:
        pass

    def get_observation(self) -> dict:
        self._need_connection()
        noise, offset = self.env.sensing()
        sensed = sensed_state(self.env.state(), noise, self._noise, offset)
        values = to_lerobot(sensed.joint_pos[0].double()).tolist()
        obs: dict = dict(zip(LEROBOT_JOINT_NAMES, values, strict=True))
        if self._renderer is not None:
            goal = self.env.goal_pos[0].numpy() if self.env.has_goal else None
            for camera in self.config.sim_cameras:
                obs[camera] = self._renderer.render(self.env.qpos_of(0), goal, camera)
        return obs

    def send_action(self, action: dict) -> dict:
        self._need_connection()
        goal = np.array([float(action[name]) for name in LEROBOT_JOINT_NAMES])
        targets = from_lerobot(torch.from_numpy(goal)).numpy()[None]
        self.env.step_targets(targets)
        return dict(zip(LEROBOT_JOINT_NAMES, goal.tolist(), strict=True))

    def disconnect(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------------- what only a simulator has
    def sim_state(self) -> SimState:
        """The true state (cube pose, contacts): what `deploy --sim` gives a policy for fields no sensor has."""
        self._need_connection()
        return self.env.state()

    def joint_velocity(self) -> np.ndarray:
        """(6,) rad/s: what the servos' velocity registers would report."""
        return self.env.state().joint_vel[0].double().numpy()

    def start_episode(self, qpos: np.ndarray, qvel: np.ndarray, goal: np.ndarray | None = None) -> None:
        """Put the simulated world into a given initial state (arm, cube) with the servos holding the arm."""
        self._need_connection()
        env = self.env
        env.set_state(np.asarray(qpos)[None], np.asarray(qvel)[None])
        if goal is not None and env.has_goal:
            env.goal_pos[0] = torch.as_tensor(goal, dtype=torch.float32)
        env.episode_step[:] = 0

    def qpos(self) -> np.ndarray:
        return self.env.qpos_of(0)

    def _need_connection(self) -> None:
        if self.env is None:
            from lerobot.utils.errors import DeviceNotConnectedError

            raise DeviceNotConnectedError(f"{self} is not connected")

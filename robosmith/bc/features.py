"""What a LeRobot policy sees and does in our simulation, in LeRobot's feature names and units.

One definition serves both directions: `bc collect` writes these features into the dataset, and rollouts of
a trained policy build the same observation from a SimState.
"""

from __future__ import annotations

import torch

from robosmith.contract.observations import RELATIVE_OBSERVATIONS, observation_fields
from robosmith.contract.state import SimState
from robosmith.robot.units import to_lerobot
from robosmith.sim.render import SceneRenderer
from robosmith.sim2real.dataset import STATE, image_key, so101_features
from robosmith.task import TaskSpec

ENV_STATE = "observation.environment_state"
CAMERAS = ("front", "wrist")
IMAGE_SIZE = (480, 640)  # height, width of both cameras by default: what LeRobot's SO-101 examples record


def camera_renderer(task: TaskSpec, image_size: tuple[int, int] = IMAGE_SIZE) -> SceneRenderer:
    """Renders the task's cameras at a dataset's image size (height, width)."""
    return SceneRenderer(task.scene, width=image_size[1], height=image_size[0])


def environment_relatives(task: TaskSpec) -> list[str]:
    """The relative positions (robosmith.contract.observations.RELATIVE_OBSERVATIONS) among the task's RL
    observations: the task file says its policy should not have to subtract two absolute positions, and that
    holds for a cloned policy too (pick-and-place: a BC policy on absolute positions alone aimed its grasp a
    median 3 cm off the cube in two episodes of three)."""
    return [name for name in task.observations if name in RELATIVE_OBSERVATIONS]


def environment_state_names(task: TaskSpec) -> list[str]:
    """The object's pose (position in m, orientation wxyz), when the task has one the goal's position, then the
    task's relative positions (m, world axes)."""
    names = ["cube.x", "cube.y", "cube.z", "cube.qw", "cube.qx", "cube.qy", "cube.qz"]
    if task.has_goal:
        names += ["goal.x", "goal.y", "goal.z"]
    return names + [f"{name}.{axis}" for name in environment_relatives(task) for axis in "xyz"]


def environment_state_fields(task: TaskSpec) -> tuple[str, ...]:
    """The SimState fields the environment state is made from (what a source must provide besides the joints)."""
    fields = ("object_pos", "object_quat") + (("goal_pos",) if task.has_goal else ())
    return tuple(dict.fromkeys(fields + observation_fields(environment_relatives(task))))


def environment_state(task: TaskSpec, s: SimState) -> torch.Tensor:
    parts = [s.object_pos, s.object_quat]
    if task.has_goal:
        parts.append(s.goal_pos)
    for name in environment_relatives(task):
        start, end, _ = RELATIVE_OBSERVATIONS[name]
        parts.append(getattr(s, end) - getattr(s, start))
    return torch.cat(parts, dim=1).float()


def dataset_features(task: TaskSpec, image_size: tuple[int, int] | None = IMAGE_SIZE) -> dict[str, dict]:
    """LeRobot dataset features of a task's demonstrations; `image_size` (height, width) of the camera videos,
    None for a dataset without them."""
    env_names = environment_state_names(task)
    features = so101_features({camera: (*image_size, 3) for camera in CAMERAS} if image_size else None)
    features[ENV_STATE] = {"dtype": "float32", "shape": (len(env_names),), "names": env_names}
    return features


def observation_batch(task: TaskSpec, s: SimState, images: dict[str, torch.Tensor] | None = None) -> dict:
    """A policy input batch for all environments: state in LeRobot units, images as float CHW in [0, 1]."""
    batch: dict = {STATE: to_lerobot(s.joint_pos.float()), ENV_STATE: environment_state(task, s)}
    for camera, frames in (images or {}).items():  # frames: (N, H, W, 3) uint8
        batch[image_key(camera)] = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0
    batch["task"] = [task.description] * s.joint_pos.shape[0]
    return batch

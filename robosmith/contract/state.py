"""SimState: the one view of the simulation that rewards, success checks and observations read.

Names, units and frames are part of the API shown to reward writers (people and LLMs). The world frame has
the robot base at the origin, z up, the table top at z = 0. Every tensor's first dimension is the number of
environments. Fields a task's scene lacks (no cube, no goal) are None.

Part of robosmith's contract: torch only, copied verbatim into every exported engine package.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

# (field name, shape after N, unit and frame) — rendered into prompts and docs.
FIELD_DOCS: dict[str, tuple[tuple[int, ...], str]] = {
    "joint_pos": ((6,), "rad; LeRobot order: shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, gripper"),
    "joint_vel": ((6,), "rad/s; same order as joint_pos"),
    "ee_pos": ((3,), "m, world frame; the tool point between the gripper pads"),
    "ee_quat": ((4,), "wxyz, world frame; orientation of the gripper"),
    "object_pos": ((3,), "m, world frame; centre of the cube"),
    "object_quat": ((4,), "wxyz, world frame; orientation of the cube"),
    "object_linvel": ((3,), "m/s, world frame; linear velocity of the cube"),
    "goal_pos": ((3,), "m, world frame; the target point, or the centre of the target zone"),
    "finger_contact": ((2,), "1.0 where the fixed / moving jaw pad touches the cube, else 0.0"),
    "finger_force": ((2,), "N; magnitude of the net contact force between the fixed / moving jaw pad and the cube"),
    "action": ((6,), "the policy's action this step, in [-1, 1]"),
    "prev_action": ((6,), "the policy's action the step before, in [-1, 1]"),
    "prev_prev_action": ((6,), "the policy's action two steps before, in [-1, 1] (CPU backend and the real arm)"),
    "episode_step": ((), "steps since the episode began (0 right after reset)"),
}
# Every backend provides these; the others exist where the task's scene has a cube or a goal.
REQUIRED_FIELDS = ("joint_pos", "joint_vel", "ee_pos", "ee_quat", "action", "prev_action", "episode_step")
OBJECT_FIELDS = ("object_pos", "object_quat", "object_linvel", "finger_contact", "finger_force")


@dataclass
class SimState:
    joint_pos: torch.Tensor
    joint_vel: torch.Tensor
    ee_pos: torch.Tensor
    ee_quat: torch.Tensor
    action: torch.Tensor
    prev_action: torch.Tensor
    episode_step: torch.Tensor
    goal_pos: torch.Tensor | None = None
    object_pos: torch.Tensor | None = None
    object_quat: torch.Tensor | None = None
    object_linvel: torch.Tensor | None = None
    finger_contact: torch.Tensor | None = None
    finger_force: torch.Tensor | None = None
    # With 3 control steps of lag the servos still have to play the last three actions: a policy that reads them
    # all knows what they will do (the exported engines' action managers keep two; they leave this None).
    prev_prev_action: torch.Tensor | None = None

    @property
    def num_envs(self) -> int:
        return self.joint_pos.shape[0]

    def present_fields(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def index(self, ids: torch.Tensor | slice) -> SimState:
        """The state of a subset of environments."""
        return SimState(**{k: (None if v is None else v[ids]) for k, v in vars(self).items()})

    def clone(self) -> SimState:
        """A copy whose tensors share nothing with this state's."""
        return SimState(**{k: (None if v is None else v.clone()) for k, v in vars(self).items()})

    @staticmethod
    def zeros(num_envs: int, has_object: bool, has_goal: bool) -> SimState:
        """A state of the right shapes, for checking expressions before any simulation exists."""

        def z(name: str) -> torch.Tensor:
            shape = FIELD_DOCS[name][0]
            t = torch.zeros((num_envs, *shape))
            if name.endswith("quat"):
                t[:, 0] = 1.0
            return t

        kwargs = {
            name: z(name)
            for name in FIELD_DOCS
            if (name not in OBJECT_FIELDS or has_object) and (name != "goal_pos" or has_goal)
        }
        return SimState(**kwargs)

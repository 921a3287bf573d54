"""The manager terms robosmith adds to the engine's environment: observations, the reward, object resets.

They read the scene only through `adapter.build_state` (SimState, the contract the reward is written
against) and write it only through `adapter.write_cube_pose`, so they are the same on every engine; the
observation vector and the episode statistics are the contract's own code.
Copied verbatim by robosmith into every exported package.
"""

from __future__ import annotations

import torch

from .adapter import build_state, write_cube_pose
from .buffers import goal_pos, recorder
from .contract.observations import observation_vector
from .contract.reward_call import call_reward
from .reward import compute_reward, success
from .task_info import TASK


def observations(env, names: list[str], noise: dict[str, float]) -> torch.Tensor:
    """The task's observation vector, from one SimState."""
    return observation_vector(build_state(env), names, TASK["episode_length"], noise)


def reward(env) -> torch.Tensor:
    """The task's compute_reward on a copy of the state (a write into it fails the run); also records the step
    for metrics.jsonl (before finished envs reset). Success is read from the state, before the reward runs."""
    s = build_state(env)
    ok = torch.as_tensor(success(s), device=s.joint_pos.device).bool().reshape(-1)
    total, components = call_reward(compute_reward, s)
    time_out = env.episode_length_buf >= env.max_episode_length
    return recorder(env).record(total, components, time_out, ok, env.episode_length_buf)


def reset_objects(env, env_ids: torch.Tensor | None) -> None:
    """The cube's pose and the goal point, uniform in the task's ranges; the goal kept away from the cube."""
    if env_ids is None:
        env_ids = torch.arange(env.num_envs, device=env.device)
    k, reset = len(env_ids), TASK["reset"]

    def uniform(r: tuple[float, float], n: int) -> torch.Tensor:
        return torch.empty(n, device=env.device).uniform_(r[0], r[1])

    cube_xy = None
    if TASK["cube"]:
        cube_xy = torch.stack([uniform(reset["object_x"], k), uniform(reset["object_y"], k)], dim=1)
        write_cube_pose(env, env_ids, cube_xy, uniform(reset["object_yaw"], k))
    if TASK["has_goal"]:
        goal = torch.stack([uniform(reset[f"goal_{a}"], k) for a in "xyz"], dim=1)
        if cube_xy is not None and reset["goal_min_distance"] > 0:
            for _ in range(100):
                near = torch.norm(goal[:, :2] - cube_xy, dim=1) < reset["goal_min_distance"]
                if not bool(near.any()):
                    break
                m = int(near.sum())
                goal[near, 0] = uniform(reset["goal_x"], m)
                goal[near, 1] = uniform(reset["goal_y"], m)
        goal_pos(env)[env_ids] = goal

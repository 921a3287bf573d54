"""Is a coarser physics time step accurate enough for a task? The same episodes at two time steps, compared.

A coarser step makes every control period cheaper (fewer physics steps per period), so training sees more
experience per minute; it is only worth having where the arm, and the cube in its hand, move as they do at the
finer step. Both runs start from the same initial states and receive the same smooth random commands (a
random walk of targets, the way a policy's outputs wander, not white noise that no servo follows), and the
distances between their joint angles, tool points and cube positions are the answer.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from robosmith.sim.batched_env import BatchedEnv, env_config
from robosmith.task.spec import TaskSpec

STEP_SIZE = 0.15  # action units per control step of the random walk


def smooth_actions(steps: int, num_envs: int, seed: int) -> torch.Tensor:
    """(steps, num_envs, 6) actions in [-1, 1]: a clipped random walk from zero."""
    gen = torch.Generator().manual_seed(seed)
    walk = torch.cumsum(torch.randn(steps, num_envs, 6, generator=gen) * STEP_SIZE, dim=0)
    return walk.clamp(-1.0, 1.0)


def rollout(task: TaskSpec, timestep: float, actions: torch.Tensor, seed: int) -> tuple[dict, float]:
    """Joint angles, tool points and cube positions (steps + 1, N, ...) of one episode per environment, and the
    control steps per second of wall-clock it ran at."""
    scene = dataclasses.replace(task.scene, timestep=timestep)
    env = BatchedEnv(scene, env_config(task, actions.shape[1], seed), task.reset, task.has_goal)
    states = [env.state()]
    try:
        start = time.perf_counter()
        for a in actions:
            states.append(env.step(a)[0])
        seconds = time.perf_counter() - start
    finally:
        env.close()
    out = {"joint_pos": torch.stack([s.joint_pos for s in states]), "ee_pos": torch.stack([s.ee_pos for s in states])}
    if states[0].object_pos is not None:
        out["object_pos"] = torch.stack([s.object_pos for s in states])
    return out, actions.shape[0] * actions.shape[1] / seconds


def compare_timesteps(task: TaskSpec, timestep: float, num_envs: int = 32, seed: int = 0) -> dict:
    """The task's episodes at `timestep` against its own (finer) time step: errors and the speed-up."""
    # One episode less than the task's: the last step of an episode resets the environment.
    actions = smooth_actions(task.episode_length - 1, num_envs, seed)
    fine, fine_rate = rollout(task, task.scene.timestep, actions, seed)
    coarse, coarse_rate = rollout(task, timestep, actions, seed)

    def spread(x: torch.Tensor) -> dict:
        x = x.flatten().numpy()
        return {"mean": round(float(x.mean()), 3), "p95": round(float(np.percentile(x, 95)), 3),
                "max": round(float(x.max()), 3)}

    result = {
        "task": task.name, "reference_timestep": task.scene.timestep, "timestep": timestep, "episodes": num_envs,
        "joint_error_deg": spread(torch.rad2deg((coarse["joint_pos"] - fine["joint_pos"]).abs())),
        "tool_error_mm": spread(1000 * torch.linalg.norm(coarse["ee_pos"] - fine["ee_pos"], dim=-1)),
        "speedup": round(coarse_rate / fine_rate, 3),
    }
    if "object_pos" in fine:
        result["cube_error_mm"] = spread(1000 * torch.linalg.norm(coarse["object_pos"] - fine["object_pos"], dim=-1))
    return result

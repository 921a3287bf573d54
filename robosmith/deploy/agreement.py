"""Does `deploy --sim` do what `robosmith eval` does? The check of the whole deploy path.

`deploy --sim --seed S` starts its episodes from the initial states `eval --seed S` starts from, so the two
differ only by the path in between: LeRobot's robot interface, units both ways, velocities from the servo
registers, the tool pose by forward kinematics, the safety layer. Here both run and are compared: episode
outcomes, and the joint trajectories in degrees (RMS over the episode and the six joints).

How close is close enough depends on the policy: a closed loop with contacts amplifies the last bits of a float.
The floor measures that: eval against eval again with the joint readings perturbed by 1e-6 rad, far below the
encoders' step; deploy cannot be expected to agree with eval better than eval agrees with itself so perturbed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from robosmith.reward.load import load_reward
from robosmith.sim2real.dataset import load_dataset
from robosmith.task.spec import TaskSpec
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import play_episodes
from robosmith.train.policy import Policy

# Above float32's rounding of the joint angles a policy reads (1e-7 rad at 1 rad), 1,500 times below the
# encoders' step (0.088 deg): what float arithmetic alone can do to one policy's closed loop.
FLOOR_NOISE_RAD = 1e-6


def eval_trajectories(policy: Policy, task: TaskSpec, episodes: int, seed: int,
                      joint_noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(outcomes (E,) 1/0, joint positions (E, T, 6) rad before each step) of `robosmith eval --seed`; with
    `joint_noise`, the policy reads its joint positions with that much more Gaussian noise (rad)."""
    if joint_noise:
        std = math.hypot(task.obs_noise.get("joint_pos", 0.0), joint_noise)
        task = dataclasses.replace(task, obs_noise={**task.obs_noise, "joint_pos": std})
    torch.manual_seed(seed)
    env = TaskEnv(task, load_reward(task.reference_reward_body()), episodes, seed=seed, auto_reset=False)
    joints = [env.state.joint_pos.double().numpy().copy()]
    outcomes = play_episodes(env, policy, progress=False,
                             on_step=lambda: joints.append(env.state.joint_pos.double().numpy().copy()))
    env.close()
    return outcomes.numpy(), np.stack(joints[:-1], axis=1)


def joint_rms_deg(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """(RMS in degrees, squared errors) of two joint trajectories (T, 6) rad over their common length."""
    n = min(len(a), len(b))
    err = np.degrees(a[:n] - b[:n])
    return float(np.sqrt(np.mean(err**2))), err.ravel() ** 2


def agreement(deploy_dir: Path, policy: Policy, task: TaskSpec, floor: bool = True) -> dict:
    """Outcomes and trajectories of a `deploy --sim` folder against eval of the same policy and seed.

    `joint_rms_deg` per episode; `joint_rms_deg_all` pooled over every episode, step and joint. With `floor`, the
    same of eval against eval with its joint readings perturbed (`floor_*`, see the module's text)."""
    deploy_dir = Path(deploy_dir)
    result = json.loads((deploy_dir / "deploy.json").read_text())
    episodes = [e for e in result["episodes"] if e.get("recorded", True)]
    outcomes, joints = eval_trajectories(policy, task, len(episodes), result["seed"])
    recorded = load_dataset(deploy_dir / "dataset")
    rms, squares = [], []
    for e, ep in zip(episodes, recorded.episodes, strict=True):
        value, sq = joint_rms_deg(ep.state, joints[e["episode"]])
        rms.append(value)
        squares.append(sq)
    same = [bool(outcomes[e["episode"]] == int(e["success"])) for e in episodes]
    out = {
        "episodes": len(episodes),
        "outcomes_agree": int(sum(same)),
        "deploy_successes": int(sum(e["success"] for e in episodes)),
        "eval_successes": int((outcomes == 1).sum()),
        "joint_rms_deg": rms,
        "joint_rms_deg_max": max(rms) if rms else None,
        "joint_rms_deg_all": float(np.sqrt(np.mean(np.concatenate(squares)))) if squares else None,
    }
    if floor and episodes:
        again, perturbed = eval_trajectories(policy, task, len(episodes), result["seed"], FLOOR_NOISE_RAD)
        pairs = [joint_rms_deg(perturbed[e["episode"]], joints[e["episode"]]) for e in episodes]
        out.update({
            "floor_noise_rad": FLOOR_NOISE_RAD,
            "floor_outcomes_agree": int(sum(again[e["episode"]] == outcomes[e["episode"]] for e in episodes)),
            "floor_joint_rms_deg_max": max(v for v, _ in pairs),
            "floor_joint_rms_deg_all": float(np.sqrt(np.mean(np.concatenate([sq for _, sq in pairs])))),
        })
    return out

"""Does `deploy --sim` do what `robosmith eval` does? The check of the whole deploy path.

`deploy --sim --seed S` starts its episodes from the initial states `eval --seed S` starts from, so the two
differ only by the path in between: LeRobot's robot interface, units both ways, velocities from the servo
registers, the tool pose by forward kinematics, the safety layer. Here both run and are compared: episode
outcomes, and the joint trajectories in degrees (RMS over the episode and the six joints).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robosmith.reward.load import load_reward
from robosmith.sim2real.dataset import load_dataset
from robosmith.task.spec import TaskSpec
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import play_episodes
from robosmith.train.policy import Policy


def eval_trajectories(policy: Policy, task: TaskSpec, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(outcomes (E,) 1/0, joint positions (E, T, 6) rad before each step) of `robosmith eval --seed`."""
    torch.manual_seed(seed)
    env = TaskEnv(task, load_reward(task.reference_reward_body()), episodes, seed=seed, auto_reset=False)
    joints = [env.state.joint_pos.double().numpy().copy()]
    outcomes = play_episodes(env, policy, progress=False,
                             on_step=lambda: joints.append(env.state.joint_pos.double().numpy().copy()))
    env.close()
    return outcomes.numpy(), np.stack(joints[:-1], axis=1)


def agreement(deploy_dir: Path, policy: Policy, task: TaskSpec) -> dict:
    """Outcomes and trajectories of a `deploy --sim` folder against eval of the same policy and seed.

    `joint_rms_deg` per episode; `joint_rms_deg_all` pooled over every episode, step and joint."""
    deploy_dir = Path(deploy_dir)
    result = json.loads((deploy_dir / "deploy.json").read_text())
    episodes = [e for e in result["episodes"] if e.get("recorded", True)]
    outcomes, joints = eval_trajectories(policy, task, len(episodes), result["seed"])
    recorded = load_dataset(deploy_dir / "dataset")
    rms, squares = [], []
    for e, ep in zip(episodes, recorded.episodes, strict=True):
        n = min(len(ep.state), joints.shape[1])
        err = np.degrees(ep.state[:n] - joints[e["episode"], :n])
        squares.append(err.ravel() ** 2)
        rms.append(float(np.sqrt(np.mean(err**2))))
    same = [bool(outcomes[e["episode"]] == int(e["success"])) for e in episodes]
    return {
        "episodes": len(episodes),
        "outcomes_agree": int(sum(same)),
        "deploy_successes": int(sum(e["success"] for e in episodes)),
        "eval_successes": int((outcomes == 1).sum()),
        "joint_rms_deg": rms,
        "joint_rms_deg_max": max(rms) if rms else None,
        "joint_rms_deg_all": float(np.sqrt(np.mean(np.concatenate(squares)))) if squares else None,
    }

"""How far a finetuned policy strays from the behaviour it was cloned from (#19).

RL on top of a BC policy should raise success and keep the demonstrated way of doing the task: a user who
taught the arm to lift gently does not want it to fling the cube. Two measures, taken over the evaluation
episodes of `robosmith bc eval`:

- the actions: mean |a - a_BC| between what the finetuned policy commands and what its frozen BC policy
  proposes on the same observation (action units, and joint degrees through the task's action scale);
- the tool point's path: per episode its highest point above the table and the length of its path, the
  same figures computed from the demonstrations (forward kinematics of the recorded joints), so that a
  policy that lifts far higher or wanders far more than the person did shows in numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from robosmith.bc.policy import RESIDUAL_FILE
from robosmith.bc.train import BC_TRAIN_RECORD
from robosmith.robot.kinematics import ToolKinematics
from robosmith.sim2real.dataset import DatasetError, load_dataset

if TYPE_CHECKING:
    from robosmith.train.env import TaskEnv
    from robosmith.train.policy import Observation, Policy

class StrayMeter:
    """A policy as evaluation sees it, recording its action deviation from the BC policy underneath (a finetuned
    policy exposes `last_base_action`; a BC policy has none) and, through `record_step`, the tool point."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self.spec = policy, policy.spec
        self.deviations: list[torch.Tensor] = []  # (6,) mean over environments, per step
        self.tool_points: list[np.ndarray] = []  # (N, 3) per step

    def reset(self, env_ids: torch.Tensor | None = None) -> None:
        self.policy.reset(env_ids)

    def act(self, observation: Observation) -> torch.Tensor:
        action = self.policy.act(observation)
        base = getattr(self.policy, "last_base_action", None)
        if base is not None:
            self.deviations.append((action - base).abs().mean(0))
        return action

    def record_step(self, env: TaskEnv) -> None:
        self.tool_points.append(env.state.ee_pos.numpy().copy())

    def close(self) -> None:
        self.policy.close()

    def figures(self, action_scale: float, demonstrations: dict | None) -> dict:
        out: dict = {"action_deviation": None, "action_deviation_per_joint": None, "target_deviation_deg": None}
        if self.deviations:
            per_joint = torch.stack(self.deviations).mean(0)
            out.update(action_deviation=float(per_joint.mean()),
                       action_deviation_per_joint=[round(float(v), 5) for v in per_joint],
                       target_deviation_deg=math.degrees(float(per_joint.mean()) * action_scale))
        paths = list(np.stack(self.tool_points, axis=1)) if self.tool_points else []  # per episode (T, 3)
        out["policy_paths"] = path_figures(paths) if paths else None
        out["demonstration_paths"] = demonstrations
        return out


def path_figures(paths: list[np.ndarray]) -> dict:
    """Per episode ((T, 3) tool points, m): the highest point and the path length; their mean and spread."""
    heights = np.array([p[:, 2].max() for p in paths])
    lengths = np.array([np.linalg.norm(np.diff(p, axis=0), axis=1).sum() for p in paths])

    def spread(values: np.ndarray) -> dict:
        return {"mean": round(float(values.mean()), 4), "p10": round(float(np.percentile(values, 10)), 4),
                "median": round(float(np.median(values)), 4), "p90": round(float(np.percentile(values, 90)), 4)}

    return {"episodes": len(paths), "max_height_m": spread(heights), "path_length_m": spread(lengths)}


def demonstration_paths(dataset: Path) -> dict:
    """`path_figures` of a dataset's episodes, from their recorded joints through our model's kinematics."""
    data = load_dataset(dataset)
    kinematics = ToolKinematics()
    return {"dataset": str(dataset), **path_figures([kinematics.positions(ep.state) for ep in data.episodes])}


def demonstrations_of(checkpoint: Path) -> Path | None:
    """The dataset a BC policy (or the BC policy under a finetuned one) was trained on, where its folders say."""
    checkpoint = Path(checkpoint).resolve()
    residual = checkpoint / RESIDUAL_FILE
    if residual.is_file():
        checkpoint = Path(json.loads(residual.read_text()).get("bc_checkpoint", checkpoint)).resolve()
    for folder in (checkpoint, *list(checkpoint.parents)[:4]):
        record = folder / BC_TRAIN_RECORD
        if record.is_file():
            dataset = Path(json.loads(record.read_text()).get("dataset", ""))
            return dataset if (dataset / "meta" / "info.json").is_file() else None
    return None


def demonstration_figures(checkpoint: Path, dataset: Path | None = None) -> dict | None:
    """The demonstrations' path figures (the named dataset, else the policy's own), or None where none is found;
    a dataset that cannot be read gives its one line under "error"."""
    dataset = dataset or demonstrations_of(checkpoint)
    if dataset is None:
        return None
    try:
        return demonstration_paths(dataset)
    except DatasetError as e:
        return {"dataset": str(dataset), "error": str(e)}

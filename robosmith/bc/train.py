"""`robosmith bc train`: behaviour cloning with LeRobot's own training script, offline, on CPU by default.

We run `lerobot-train` as a subprocess, exactly as a user would, so the checkpoints are ordinary LeRobot
checkpoints. Two things we add around it:
- `inputs="state"` (the CPU default) trains on the joint state and the object pose only. LeRobot decodes
  every camera stream of a dataset for every sample, which alone would take hours on two cores, so we first
  derive a copy without the camera features with LeRobot's `remove_feature`.
- The policy is sized for the task (a 4 M parameter ACT instead of the 52 M default, short action chunks at
  30 Hz), and no pretrained backbone is downloaded: image policies train their ResNet from scratch.
A killed training resumes from its last checkpoint when the same command is run again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from robosmith.bc.collect import dataset_info, repo_id
from robosmith.bc.features import CAMERAS
from robosmith.errors import ConfigError
from robosmith.runs import write_json
from robosmith.sim2real.dataset import image_key

POLICIES = ("act", "diffusion")
INPUTS = ("state", "images")


BC_TRAIN_RECORD = "bc_train.json"  # beside LeRobot's folder: the dataset, the settings, the command, the time


@dataclass
class BCTrainSettings:
    policy: str = "act"
    inputs: str = "state"  # "state": joints + object pose; "images": also the front and wrist cameras
    steps: int = 4000
    batch_size: int = 32
    learning_rate: float = 1e-4
    save_every: int = 500  # steps between LeRobot checkpoints (what a killed run resumes from)
    seed: int = 0
    device: str = "cpu"
    # Actions predicted at once (ACT's chunk_size, diffusion's horizon) and how many of them are played before
    # the next prediction; None: CHUNKS' values for the policy.
    chunk_size: int | None = None
    n_action_steps: int | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.inputs not in INPUTS:
            raise ConfigError(f"inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be >= 1")
        chunk, played = CHUNKS[self.policy]
        self.chunk_size = chunk if self.chunk_size is None else self.chunk_size
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size}")
        self.n_action_steps = min(played, self.chunk_size) if self.n_action_steps is None else self.n_action_steps
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ConfigError(f"n_action_steps must be in 1..chunk_size ({self.chunk_size}), got {self.n_action_steps}")


# (chunk or horizon, actions played per prediction) at 30 Hz. A state-only ACT on lift played 10 actions of
# 20: 64% success; 1 action per prediction: 10% (from rest, the demonstrations' first targets barely move).
CHUNKS: dict[str, tuple[int, int]] = {"act": (20, 10), "diffusion": (16, 8)}
CHUNK_ARG = {"act": "--policy.chunk_size", "diffusion": "--policy.horizon"}

# Policy sizes for a 6-joint arm at 30 Hz on a CPU; LeRobot's defaults target 50 Hz bimanual image tasks.
POLICY_ARGS: dict[str, list[str]] = {
    "act": [
        "--policy.dim_model=256",
        "--policy.dim_feedforward=1024",
        "--policy.n_heads=4",
        "--policy.n_encoder_layers=2",
        "--policy.n_vae_encoder_layers=2",
    ],
    "diffusion": [
        "--policy.n_obs_steps=2",
        "--policy.down_dims=[128,256,512]",
        "--policy.num_inference_steps=10",
    ],
}


def _state_only_copy(dataset: Path, out: Path) -> Path:
    """The dataset without its camera streams, written once next to the training output."""
    from lerobot.datasets.dataset_tools import remove_feature
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if (out / "meta" / "info.json").is_file():
        return out
    partial = out.with_name(out.name + ".partial")  # renamed when complete: a stopped copy is never reused
    shutil.rmtree(partial, ignore_errors=True)
    source = LeRobotDataset(repo_id(dataset), root=dataset)
    cameras = [image_key(c) for c in CAMERAS if image_key(c) in source.meta.features]
    remove_feature(source, cameras, output_dir=partial, repo_id=repo_id(out))
    partial.rename(out)
    return out


def _lerobot_train() -> str:
    return str(Path(sys.executable).with_name("lerobot-train"))


def lerobot_train_command(dataset: Path, lerobot_dir: Path, settings: BCTrainSettings) -> list[str]:
    args = [
        _lerobot_train(),
        f"--dataset.repo_id={repo_id(dataset)}",
        f"--dataset.root={dataset}",
        f"--policy.type={settings.policy}",
        f"--policy.device={settings.device}",
        "--policy.push_to_hub=false",
        f"--policy.optimizer_lr={settings.learning_rate}",
        *POLICY_ARGS[settings.policy],
        f"{CHUNK_ARG[settings.policy]}={settings.chunk_size}",
        f"--policy.n_action_steps={settings.n_action_steps}",
        f"--output_dir={lerobot_dir}",
        f"--steps={settings.steps}",
        f"--batch_size={settings.batch_size}",
        f"--save_freq={settings.save_every}",
        "--log_freq=100",
        f"--seed={settings.seed}",
        "--num_workers=0",  # two cores: a loader process would only compete with training
        "--wandb.enable=false",
    ]
    if settings.inputs == "images":
        args.append("--policy.pretrained_backbone_weights=null")  # no download: the ResNet trains from scratch
    return args


def train_bc(dataset: Path, out_dir: Path, settings: BCTrainSettings) -> Path:
    """Train a LeRobot policy on `dataset`; returns the folder of the last checkpoint's policy.

    Run again on the same `out_dir` after a stop, it resumes from the last checkpoint with the settings the
    training started with (LeRobot keeps them in the checkpoint); with more `steps` than it started with, it
    trains on to that many (the learning rate is constant, so 8000 steps and then 8000 more are 16000 steps).
    """
    # Absolute paths: LeRobot stores them in the checkpoint, and a resume may start from another folder.
    dataset, out_dir = dataset.resolve(), out_dir.resolve()
    if not (dataset / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"{dataset}: not a LeRobot dataset (no meta/info.json)")
    out_dir.mkdir(parents=True, exist_ok=True)
    record_path = out_dir / BC_TRAIN_RECORD
    lerobot_dir = out_dir / "lerobot"
    last_config = lerobot_dir / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    if last_config.is_file() and record_path.is_file():  # stopped before: go on from the last checkpoint
        record = json.loads(record_path.read_text())
        record["resumes"] = record.get("resumes", 0) + 1
        command = [_lerobot_train(), f"--config_path={last_config}", "--resume=true"]
        if settings.steps > record["steps"]:  # asked for more steps: train on from the last checkpoint
            record["steps"] = settings.steps
            command.append(f"--steps={settings.steps}")
    else:
        shutil.rmtree(lerobot_dir, ignore_errors=True)  # stopped before its first checkpoint: nothing to keep
        data = _state_only_copy(dataset, out_dir / "dataset_state") if settings.inputs == "state" else dataset
        command = lerobot_train_command(data, lerobot_dir, settings)
        record = {"dataset": str(dataset), "demonstrations": dataset_info(dataset).get("episodes"),
                  **asdict(settings), "train_command": command, "wall_s": 0.0}
    write_json(record_path, {**record, "command": command})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    started = time.monotonic()
    try:
        subprocess.run(command, env=env, check=True)
    finally:
        record["wall_s"] = round(record["wall_s"] + time.monotonic() - started, 1)
        write_json(record_path, {**record, "command": command})
    return lerobot_dir / "checkpoints" / "last" / "pretrained_model"

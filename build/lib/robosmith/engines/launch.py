"""Training on a GPU engine: the exported package's train.py, run by the engine's own Python as a subprocess.

mjlab pins MuJoCo and rsl-rl versions of its own and Isaac Lab comes with Isaac Sim's Python, so neither is
imported here: robosmith exports a package (robosmith.engines.export), starts the engine's interpreter on it and
reads back what it wrote (metrics.jsonl, checkpoints/, eval.json), the same files the CPU trainer writes.

mjlab's interpreter: `--mjlab-python`, else $ROBOSMITH_MJLAB_PYTHON, else `.venv-mjlab/bin/python` in the
current folder (what `make mjlab` creates).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from robosmith.contract.io import EVAL_FILE, METRICS_FILE
from robosmith.engines.export import ISAACLAB_VERSIONS
from robosmith.errors import RobosmithError
from robosmith.runs import TrainingRun, read_metrics

BACKENDS = ("cpu", "mjlab", "isaaclab")
MJLAB_PYTHON_ENV = "ROBOSMITH_MJLAB_PYTHON"


class EngineError(RobosmithError, ValueError):
    """An engine that cannot be started (one line, names the path)."""


def default_mjlab_python() -> Path:
    """$ROBOSMITH_MJLAB_PYTHON, else the venv `make mjlab` creates in the current folder."""
    return Path(os.environ.get(MJLAB_PYTHON_ENV) or Path.cwd() / ".venv-mjlab" / "bin" / "python")


def engine_command(backend: str, engine_python: str | Path | None) -> list[str]:
    """The interpreter command for a backend: a Python executable, or Isaac Lab's isaaclab.sh (run with -p)."""
    if backend not in BACKENDS[1:]:
        raise EngineError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if engine_python is None:
        if backend == "isaaclab":
            raise EngineError("--backend isaaclab needs --isaaclab-python (Isaac Lab's python or isaaclab.sh)")
        engine_python = default_mjlab_python()
    path = Path(engine_python).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        hint = f" (make mjlab creates it; or set {MJLAB_PYTHON_ENV})" if backend == "mjlab" else ""
        raise EngineError(f"{path}: no executable {backend} interpreter there{hint}")
    path = path.absolute()  # not resolved: a venv's python is a symlink that only works by its own path
    return [str(path), "-p"] if path.name.endswith(".sh") else [str(path)]


def train_package(
    command: list[str], package_dir: Path, run_dir: Path, num_envs: int, max_iterations: int, max_minutes: float,
    eval_episodes: int, video_episodes: int, seed: int, log=None,
) -> tuple[list[dict], dict]:
    """Run `<package>.train` with the engine's interpreter until it ends: (metrics rows, eval.json).

    The child inherits our confinement (network, writable folders) and writes into run_dir; its output goes
    to `log`. Raises EngineError when it ends without its metrics or evaluation.
    """
    args = [
        "-m", f"{package_dir.name}.train", "--run-dir", str(Path(run_dir).absolute()),
        "--num-envs", str(num_envs), "--max-iterations", str(max_iterations), "--max-minutes", str(max_minutes),
        "--eval-episodes", str(eval_episodes), "--video-episodes", str(video_episodes), "--seed", str(seed),
    ]
    path = os.pathsep.join(filter(None, [str(package_dir.parent.absolute()), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("VIRTUAL_ENV", None)  # our venv's variables must not leak into the engine's interpreter
    proc = subprocess.run(
        [*command, *args], cwd=package_dir.parent, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        check=False,
    )
    metrics, evaluation = Path(run_dir) / METRICS_FILE, Path(run_dir) / EVAL_FILE
    rows = read_metrics(metrics) if metrics.is_file() else []
    if proc.returncode != 0 or not rows or not evaluation.is_file():
        raise EngineError(f"the engine's trainer exited with code {proc.returncode} after {len(rows)} iterations")
    return rows, json.loads(evaluation.read_text())


def isaaclab_version(command: list[str]) -> str:
    """'2.3' or '3.0': which Isaac Lab the interpreter has, so the package is written for it."""
    probe = "import importlib.metadata as m; print(m.version('isaaclab'))"
    try:
        out = subprocess.run([*command, "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EngineError(f"{command[0]}: could not ask it for its Isaac Lab version: {e}") from None
    version = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
    for supported in ISAACLAB_VERSIONS:
        if version.startswith(supported + "."):
            return supported
    supported = " and ".join(f"{v}.x" for v in ISAACLAB_VERSIONS)
    raise EngineError(f"{command[0]}: Isaac Lab {version or '(not installed)'}; robosmith exports for {supported}")


def render_engine_video(run_dir: Path, scene, fps: float) -> Path | None:
    """eval.mp4 from the states an engine's evaluation kept (eval_states.npz), with robosmith's cameras.

    The engines simulate the same joints and cube; the states are put into robosmith's visual model, so the
    video looks the same whichever engine trained the policy.
    """
    import numpy as np

    from robosmith.sim.render import SceneRenderer, write_video

    path = TrainingRun(run_dir).eval_states
    if not path.is_file():
        return None
    states = np.load(path)
    renderer = SceneRenderer(scene)
    frames = []
    episodes, steps = states["joint_pos"].shape[:2]
    for episode in range(episodes):
        for step in range(steps):
            qpos = np.zeros(renderer.model.nq)
            qpos[:6] = states["joint_pos"][episode, step]
            if "object_pos" in states:
                qpos[6:9] = states["object_pos"][episode, step]
                qpos[9:13] = states["object_quat"][episode, step]
            goal = states["goal_pos"][episode, step] if "goal_pos" in states else None
            frames.append(renderer.render(qpos, goal))
    renderer.close()
    return write_video(frames, TrainingRun(run_dir).video, fps=fps)

"""robosmith: simulation-driven robot learning for the SO-101 arm."""

import os
from pathlib import Path

# MuJoCo picks its OpenGL platform on first import; without a display only EGL/OSMesa work.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

# The repository root holds the user-editable task files, prompts and templates.
REPO_ROOT = Path(__file__).resolve().parent.parent
TASKS_DIR = REPO_ROOT / "tasks"
RUNS_DIR = REPO_ROOT / "runs"

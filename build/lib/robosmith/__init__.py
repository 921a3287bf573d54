"""robosmith: simulation-driven robot learning for the SO-101 arm."""

import os

# MuJoCo picks its OpenGL platform on first import; without a display only EGL/OSMesa work.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# wandb runs offline by default; the tests switch it off except where they check it.
os.environ.setdefault("WANDB_MODE", "disabled")

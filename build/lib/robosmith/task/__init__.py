"""Tasks: specs as typed data (`spec`), loaded from YAML and validated once (`load`). The library's task files
ship inside this package (`tasks/*.yaml`)."""

from robosmith.task.load import (
    TASKS_DIR,
    TaskError,
    available_tasks,
    eval_success,
    load_task,
    resolve_task_path,
    task_from_dict,
)
from robosmith.task.spec import DRParam, PPOConfig, ResetConfig, SceneConfig, TaskSpec, TrainDefaults

__all__ = [
    "TASKS_DIR", "DRParam", "PPOConfig", "ResetConfig", "SceneConfig", "TaskError", "TaskSpec", "TrainDefaults",
    "available_tasks", "eval_success", "load_task", "resolve_task_path", "task_from_dict",
]

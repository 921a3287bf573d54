"""Training a task's own reward in stages: a task file's `train.curriculum`.

A stage pays some of the reward's terms (pick and place: first the lift task's reach, grasp and lift) and has a
goal of its own (the cube held 4 cm up). Once the stage's training success over the last ten iterations
(`success_window`) reaches its `advance_at`, training moves on to the next stage, with the same networks; the
last stage trains the whole reward towards the task's success. Evaluation always measures the task's success.

Why stages: a reward whose late stages pay much more than its early ones (a cube put down in the zone: 40 per
step, against at most 2 for reaching and grasping) is dominated early on by what random motion earns from the
late stages (pushing the cube into the zone by chance), which teaches flailing, not grasping.
"""

from __future__ import annotations

import dataclasses

import torch

from robosmith.contract.state import SimState
from robosmith.task.load import eval_success
from robosmith.task.spec import CurriculumStage, TaskSpec
from robosmith.train.success_window import SuccessWindow


class Curriculum:
    """Which stage a run is in, the reward that stage pays, and when it moves on (`end_iteration`)."""

    def __init__(self, stages: tuple[CurriculumStage, ...]) -> None:
        self.stages = stages
        self.index = 0
        self.window = SuccessWindow()  # the current stage's

    @staticmethod
    def for_run(task: TaskSpec, reward_body: str) -> Curriculum | None:
        """The task's curriculum where the run trains the task's own reward (the stages name its terms); a reward
        from elsewhere (`--reward`, the agent's candidates) trains whole."""
        if not task.train.curriculum or reward_body != task.reference_reward_body():
            return None
        return Curriculum(task.train.curriculum)

    @property
    def stage(self) -> CurriculumStage:
        return self.stages[self.index]

    def reward(self, total: torch.Tensor, components: dict[str, torch.Tensor]) -> torch.Tensor:
        """The reward of the current stage: the sum of its terms (components come weighted)."""
        if not self.stage.terms:
            return total
        return torch.stack([components[name] for name in self.stage.terms]).sum(dim=0)

    def record(self, s: SimState, ended: torch.Tensor, task_success: torch.Tensor) -> None:
        """Count the stage's successes among the episodes that end at this step; `task_success`, which the
        environment has already evaluated, is the success of a stage without its own."""
        ok = eval_success(self.stage.success, s) if self.stage.success else task_success
        self.window.record(ok, ended)

    def end_iteration(self) -> dict:
        """The iteration's `curriculum_stage` (index) and `stage_success` for metrics.jsonl; then moves on to the
        next stage if this one has reached its `advance_at` over a full window."""
        rate = self.window.end_iteration()
        row = {"curriculum_stage": self.index, "stage_success": rate}
        advance_at = self.stage.advance_at
        if advance_at is not None and rate is not None and self.window.full and rate >= advance_at:
            self.index += 1
            self.window.clear()
        return row

    def as_config(self) -> list[dict]:
        return [dataclasses.asdict(stage) for stage in self.stages]

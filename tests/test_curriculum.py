"""Training in stages: a stage pays its terms, moves on after a full window at its success rate, and a run logs it."""

import dataclasses
import json

import torch

from robosmith.contract.state import SimState
from robosmith.runs import read_metrics
from robosmith.task import eval_success, load_task
from robosmith.task.spec import CurriculumStage
from robosmith.train.curriculum import Curriculum
from robosmith.train.ppo import TrainSettings, train
from robosmith.train.success_window import WINDOW

TASK_SUCCESS = "s.object_pos[:, 2] < 0.02"  # the task's success in these tests: the cube on the table
LIFT_FIRST = (
    CurriculumStage("lift", terms=("reach", "lift"), success="s.object_pos[:, 2] > 0.05", advance_at=0.5),
    CurriculumStage("place"),
)


def _iteration(curriculum: Curriculum, lifted: int, ended: int = 10) -> dict:
    """One iteration in which `ended` episodes end, `lifted` of them with the cube 6 cm up."""
    s = SimState.zeros(ended, has_object=True, has_goal=True)
    s.object_pos[:lifted, 2] = 0.06
    curriculum.record(s, torch.ones(ended, dtype=torch.bool), eval_success(TASK_SUCCESS, s))
    return curriculum.end_iteration()


def test_a_stage_pays_its_own_terms_then_the_last_pays_the_whole_reward():
    curriculum = Curriculum(LIFT_FIRST)
    parts = {"reach": torch.tensor([1.0, 0.5]), "lift": torch.tensor([4.0, 0.0]), "placed": torch.tensor([0.0, 40.0])}
    total = sum(parts.values())
    assert torch.equal(curriculum.reward(total, parts), torch.tensor([5.0, 0.5]))
    for _ in range(WINDOW):
        _iteration(curriculum, lifted=10)
    assert curriculum.stage.name == "place"
    assert torch.equal(curriculum.reward(total, parts), total)


def test_a_stage_moves_on_only_after_a_full_window_at_its_rate():
    curriculum = Curriculum(LIFT_FIRST)
    rows = [_iteration(curriculum, lifted=4) for _ in range(3 * WINDOW)]  # 40% < 50%: stays
    assert {r["curriculum_stage"] for r in rows} == {0} and rows[-1]["stage_success"] == 0.4
    first = _iteration(curriculum, lifted=10)  # the window: 9 iterations at 40%, 1 at 100%: 46%
    assert first["stage_success"] == 0.46 and curriculum.index == 0
    second = _iteration(curriculum, lifted=10)  # 52%: the row still reports the stage it was measured in
    assert second == {"curriculum_stage": 0, "stage_success": 0.52} and curriculum.index == 1
    # From the last stage on, success is the task's (cube below 2 cm: all of them here) and nothing moves on.
    rows = [_iteration(curriculum, lifted=0) for _ in range(2 * WINDOW)]
    assert {r["curriculum_stage"] for r in rows} == {1} and rows[-1]["stage_success"] == 1.0


def test_a_run_trains_the_tasks_own_reward_in_stages_and_logs_them(tmp_path):
    task = load_task("so101_pick_place")
    always = CurriculumStage("warm_up", terms=("reach",), success="s.object_pos[:, 2] > -1.0", advance_at=0.5)
    task = dataclasses.replace(task, train=dataclasses.replace(task.train, curriculum=(always, CurriculumStage("all"))))
    settings = TrainSettings.from_task(task, num_envs=16, max_iterations=WINDOW + 2, steps_per_iteration=40,
                                       eval_episodes=2)
    train(task, task.reference_reward_body(), tmp_path / "staged", settings, progress=False)
    rows = read_metrics(tmp_path / "staged" / "metrics.jsonl")
    assert [r["curriculum_stage"] for r in rows] == [0] * WINDOW + [1, 1]
    # In the warm-up stage the reward trained on is reach alone (its weight is 1: at most 1 per step).
    assert all(r["mean_reward"] == r["reward/reach"] for r in rows[:WINDOW])
    config = json.loads((tmp_path / "staged" / "config.json").read_text())
    assert [stage["name"] for stage in config["curriculum"]] == ["warm_up", "all"]

    # Any other reward (a file, the agent's candidate) trains whole: the stages name the task's own terms.
    other = task.reference_reward_body().replace("reach", "reach_other")
    train(task, other, tmp_path / "whole", dataclasses.replace(settings, max_iterations=2), progress=False)
    assert "curriculum_stage" not in read_metrics(tmp_path / "whole" / "metrics.jsonl")[-1]
    assert json.loads((tmp_path / "whole" / "config.json").read_text())["curriculum"] == []

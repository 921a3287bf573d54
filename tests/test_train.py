"""Training and evaluation write the run folder contract; the CLI reports bad input in one line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from robosmith.cli import app
from robosmith.runs import read_metrics
from robosmith.task import load_task
from robosmith.train.evaluate import evaluate_run
from robosmith.train.ppo import TrainSettings, train


def test_train_and_evaluate_write_the_run_folder(tmp_path):
    task = load_task("so101_lift")
    settings = TrainSettings.from_task(task, num_envs=16, max_iterations=3, steps_per_iteration=50, eval_episodes=6)
    run = tmp_path / "run"
    last = train(task, task.reference_reward_body(), run, settings, progress=False)

    config = json.loads((run / "config.json").read_text())
    assert config["task"]["name"] == "so101_lift" and config["settings"]["num_envs"] == 16
    assert (run / "reward.py").read_text() == task.reference_reward_body()
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[-1] == last and last["env_steps"] == 3 * 16 * 50
    for key in ("env_steps_per_s", "mean_reward", "success_rate", "episode_length", "unstable_resets"):
        assert key in last
    assert {f"reward/{t.name}" for t in task.reward} <= set(last)
    # Episodes are 120 steps; staggered starts make some finish within 150 steps of 16 environments.
    assert rows[-1]["episodes"] > 0 and 1 <= rows[-1]["episode_length"] <= 120
    assert (run / "checkpoints" / "model.pt").is_file()

    result = evaluate_run(run, episodes=6, video_episodes=1, progress=False)
    assert result["episodes"] == 6 and 0 <= result["success_rate"] <= 1
    assert result["ci95"][0] <= result["success_rate"] <= result["ci95"][1]
    assert json.loads((run / "eval.json").read_text()) == result
    assert (run / "eval.mp4").stat().st_size > 1000


def test_cli_eval_of_missing_run_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'nope'}: no such run folder"


def test_cli_eval_of_run_without_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = CliRunner().invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2
    assert "no checkpoint" in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_train_of_malformed_task(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    result = CliRunner().invoke(app, ["train", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {bad}: ")


def test_training_is_tracked_with_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    task = load_task("so101_reach")
    settings = TrainSettings.from_task(task, num_envs=8, max_iterations=2, steps_per_iteration=10, eval_episodes=2)
    train(task, task.reference_reward_body(), tmp_path / "run", settings, progress=False)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_cli_train_rejects_a_hostile_reward_file(tmp_path):
    hostile = tmp_path / "reward.py"
    hostile.write_text("def compute_reward(s):\n    return torch.load('/etc/passwd'), {}\n")
    result = CliRunner().invoke(app, ["train", "so101_reach", "--reward", str(hostile), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    expected = f"error: {hostile}: torch: line 2: torch.load is not allowed; use pure math functions of torch"
    assert result.output.strip() == expected
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_cli_train_takes_a_robot_params_file(tmp_path):
    params = tmp_path / "arm.yaml"
    params.write_text("actuator_kp: [9, 9, 9, 9, 9, 12]\njoint_damping: 0.4\n")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "so101_reach", "--robot-params", str(params), "--iterations", "1",
                                      "--num-envs", "4", "--eval-episodes", "2", "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    robot = json.loads((run / "config.json").read_text())["task"]["scene"]["robot"]
    assert robot["actuator_kp"] == [9.0, 9.0, 9.0, 9.0, 9.0, 12.0] and robot["joint_damping"] == 0.4
    # What sysid writes (the lag included) is a robot description too; objects a task lacks are refused.
    params.write_text("action_delay_steps: 2\nactuator_kp: 9\n")
    run2 = tmp_path / "run2"
    result = CliRunner().invoke(app, ["train", "so101_reach", "--robot-params", str(params), "--iterations", "1",
                                      "--num-envs", "4", "--eval-episodes", "2", "--out", str(run2), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((run2 / "config.json").read_text())["task"]["scene"]["effects"] == {"action_delay_steps": 2.0}
    params.write_text("cube_mass: 0.05\n")
    result = CliRunner().invoke(app, ["train", "so101_reach", "--robot-params", str(params), "--out", str(run)])
    assert result.exit_code == 2 and "cube_mass: so101_reach has no cube" in result.output

    # The other commands that take one: eval, robustness and export on that arm, the loop training on it.
    params.write_text("actuator_kp: 7.5\n")
    result = CliRunner().invoke(app, ["eval", str(run), "--robot-params", str(params), "--episodes", "2",
                                      "--video-episodes", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "eval.json").read_text())["robot_params"] == {"actuator_kp": 7.5}
    variants = tmp_path / "variants.yaml"
    variants.write_text("- {name: nominal, params: {}}\n")
    result = CliRunner().invoke(app, ["robustness", str(run), "--variants", str(variants), "--episodes", "2",
                                      "--robot-params", str(params), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["export", "so101_reach", "--target", "mjlab", "--out", str(tmp_path / "pkg"),
                                      "--no-check", "--robot-params", str(params)])
    assert result.exit_code == 0, result.output
    assert "7.5" in "".join(f.read_text() for f in (tmp_path / "pkg").rglob("*.py"))
    result = CliRunner().invoke(app, ["run", "so101_reach", "--offline", "--dry-run", "--out", str(tmp_path / "loop"),
                                      "--robot-params", str(params)])
    assert result.exit_code == 0, result.output
    assert "actuator_kp: 7.5" in (tmp_path / "loop" / "task.yaml").read_text()


@pytest.mark.slow
def test_a_candidate_tracks_its_reward_code_evaluation_and_video(tmp_path, monkeypatch):
    """wandb (offline here, as by default without a key) gets one run per candidate: the curves, the reward
    code, then the evaluation's figures and its video."""
    import dataclasses

    from robosmith.execution.worker import run_candidate
    from robosmith.runs import CandidateFolder, write_json

    monkeypatch.setenv("WANDB_MODE", "offline")
    task = load_task("so101_reach")
    settings = TrainSettings.from_task(task, num_envs=8, max_iterations=2, steps_per_iteration=5, eval_episodes=2)
    settings.video_episodes = 1
    candidate = CandidateFolder(tmp_path / "cand_0")
    candidate.path.mkdir()
    body = task.reference_reward_body()
    candidate.reward.write_text(body)
    write_json(candidate.job, {"task": task.to_dict(), "settings": dataclasses.asdict(settings),
                               "reward_file": "reward.py", "group": "run-1"})
    assert run_candidate(candidate.path)["status"] == "ok"
    (offline,) = (candidate.path / "wandb").glob("offline-run-*")
    assert list((offline / "files" / "media" / "videos" / "eval").glob("video_*.mp4"))
    record = next(offline.glob("run-*.wandb")).read_bytes()  # protobuf records: strings are stored as they are
    assert body.splitlines()[1].strip().encode() in record and b"eval/success_rate" in record
    assert b"loss/value" in record or b"loss/surrogate" in record



def test_value_clipping_is_a_task_setting_that_reaches_rsl_rl():
    import torch

    from robosmith.train.env import TaskEnv
    from robosmith.train.ppo import build_ppo, rsl_config

    # rsl-rl's default (clipped) for reach's rewards of about 1 per step; lift's task file turns it off.
    for name, expected in (("so101_reach", True), ("so101_lift", False)):
        task = load_task(name)
        env = TaskEnv(task, lambda s: (torch.zeros(s.joint_pos.shape[0]), {}), 2, seed=0)
        assert build_ppo(env, rsl_config(task, 4)).use_clipped_value_loss is expected


def test_learning_curves_smooth_training_success_and_name_bad_folders(tmp_path):
    from robosmith.runs import RunError
    from robosmith.train.curves import SMOOTH, learning_curve

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"iteration": i, "wall_s": 6.0 * (i + 1), "success_rate": None if i < 2 else float(i % 2)}
            for i in range(40)]
    lines = [json.dumps(r) for r in rows] + ['{"iteration": 40, "wall_s": 24']  # a run killed mid-write
    (run / "metrics.jsonl").write_text("\n".join(lines))
    (run / "eval.json").write_text(json.dumps({"success_rate": 0.5, "ci95": [0.4, 0.6], "episodes": 100}))
    minutes, success = learning_curve(run)
    assert len(minutes) == 38 and minutes[0] == 0.3 and minutes[-1] == 4.0  # rows without episodes left out
    assert success[0] == 0.0 and success[1] == 0.5  # a trailing mean, shorter at the start
    assert success[-1] == sum(i % 2 for i in range(40 - SMOOTH, 40)) / SMOOTH
    result = CliRunner().invoke(app, ["curves", str(run), "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 0 and (tmp_path / "c.png").stat().st_size > 10_000
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(RunError, match=r"fresh/metrics.jsonl: success_rate: no episode has ended yet"):
        learning_curve(tmp_path / "fresh")
    # A run trained in stages: each stage's own success, in order; none for a run without a curriculum.
    from robosmith.train.curves import stage_curves

    assert stage_curves(run) == []
    for r in rows:
        r.update(curriculum_stage=int(r["iteration"] >= 30), stage_success=None if r["iteration"] < 10 else 0.5)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (run / "config.json").write_text(json.dumps({"curriculum": [{"name": "lift"}, {"name": "place"}]}))
    ((name, first_minutes, first),) = stage_curves(run)  # the last stage's success is the task's: not repeated
    assert name == "lift" and first_minutes[-1] == 3.0
    assert len(first) == 30 and np.isnan(first[:10]).all() and (first[10:] == 0.5).all()
    result = CliRunner().invoke(app, ["curves", str(run), "--out", str(tmp_path / "staged.png")])
    assert result.exit_code == 0 and (tmp_path / "staged.png").stat().st_size > 10_000
    result = CliRunner().invoke(app, ["curves", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and result.output.strip() == f"error: {tmp_path / 'nothing' / 'metrics.jsonl'}: " \
        "no metrics here (not a training run?)"

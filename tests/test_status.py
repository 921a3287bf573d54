"""`robosmith status`: a run read from its folder while it runs, after it finished and after a kill."""

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from robosmith.agent.status import mark_ended, mark_head, run_status
from robosmith.cli import app
from robosmith.runs import AgentRun, CandidateFolder, write_json


def make_run(tmp_path):
    """A run the way the loop leaves it mid-iteration: one candidate done, one training, one queued, one
    proposed (not yet checked); rows as the trainer writes them, the last one cut short by the writer."""
    run = AgentRun(tmp_path / "run")
    run.path.mkdir()
    write_json(run.run_info, {"task": {"name": "so101_reach"}, "settings": {"executor": "local"}})
    job = {"settings": {"max_minutes": 5.0}}
    done, training, queued, proposed = (CandidateFolder(run.path / f"iter_00/cand_{k}") for k in range(4))
    for c in (done, training, queued, proposed):
        c.path.mkdir(parents=True)
    for c in (done, training, queued):
        write_json(c.job, job)
    done.metrics.write_text(json.dumps({"env_steps": 1000, "wall_s": 300.0, "success_rate": 0.9}) + "\n")
    write_json(done.result, {"status": "ok", "success_rate": 0.93, "env_steps": 2_100_000, "wall_s": 300.0,
                             "train_success_rate": 0.9, "mean_reward": 0.7})
    training.metrics.write_text("\n".join(json.dumps({"env_steps": 512 * i, "wall_s": 30.0 * i, "success_rate": 0.1 * i,
                                                      "mean_reward": 0.2}) for i in (1, 2)) + '\n{"env_st')
    return run


def test_status_while_running_after_a_kill_and_when_finished(tmp_path):
    run = make_run(tmp_path)
    mark_head(run.path)  # this process runs the "loop"
    status = run_status(run.path)
    rows = {c["id"]: c for c in status["candidates"]}
    assert status["state"] == "running" and status["best"] == {"id": "iter_00/cand_0", "success_rate": 0.93}
    assert [rows[f"iter_00/cand_{k}"]["status"] for k in range(4)] == ["ok", "training", "queued", "checking"]
    training = rows["iter_00/cand_1"]
    assert training["env_steps"] == 1024 and training["remaining_s"] == 240.0 and training["train_success"] == 0.2
    assert training["where"] == "local" and rows["iter_00/cand_3"]["where"] == ""
    assert rows["iter_00/cand_0"]["env_steps"] == 2_100_000 and rows["iter_00/cand_0"]["remaining_s"] is None

    # The head is killed: another process's pid (its own start time) that has exited.
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    head = json.loads(run.head.read_text())
    write_json(run.head, {**head, "pid": int(child.stdout)})
    status = run_status(run.path)
    assert status["state"] == "stopped"
    assert [c["status"] for c in status["candidates"]] == ["ok", "interrupted", "interrupted", "proposed"]

    write_json(run.head, head)
    mark_ended(run.path, "finished")
    assert run_status(run.path)["state"] == "finished"
    assert os.getpid() == head["pid"]


def test_status_command_prints_the_table_and_json(tmp_path):
    run = make_run(tmp_path)
    mark_head(run.path)
    mark_ended(run.path, "finished")
    result = CliRunner().invoke(app, ["status", str(run.path)])
    assert result.exit_code == 0, result.output
    assert "finished" in result.output and "iter_00/cand_1" in result.output and "93%" in result.output
    result = CliRunner().invoke(app, ["status", str(run.path), "--json"])
    assert json.loads(result.output)["candidates"][1]["env_steps"] == 1024
    result = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert result.exit_code != 0 and "not a reward-design run" in result.output

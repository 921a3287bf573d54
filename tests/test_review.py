"""A whole review session driven without a terminal: approve, reject with a comment, edit, resume to the end."""

import json

import pytest
from typer.testing import CliRunner

from robosmith.agent.loop import RewardLoop
from robosmith.cli import app
from robosmith.task import load_task

from .llm_server import FakeLLMServer, Reply
from .test_agent import GOOD, GOOD_2, llm_config, tiny_settings

pytestmark = pytest.mark.slow  # whole reward-design loops

EDITED = """def compute_reward(s):
    d = torch.norm(s.ee_pos - s.goal_pos, dim=-1)
    components = {"edited_distance": 1.0 - torch.tanh(d / 0.0123)}
    return components["edited_distance"], components
"""


def test_review_session_approve_reject_edit(tmp_path):
    run = tmp_path / "run"
    cli = CliRunner()
    with FakeLLMServer([Reply(texts=[GOOD, GOOD_2])]) as server:
        settings = tiny_settings(candidates=2, max_iterations=3, review=True)
        loop = RewardLoop.create(run, load_task("so101_reach"), settings, llm_config(server.url, samples=2))
        state = loop.run()
        assert state["paused_for_review"] and state["iteration"] == 0

        # Iteration 0: the screen shows both candidates as diffs; approve the second one.
        shown = cli.invoke(app, ["review", str(run)])
        assert shown.exit_code == 0, shown.output
        assert "[0.0] ok" in shown.output and "[0.1] ok" in shown.output and "+    d = torch.norm" in shown.output
        result = cli.invoke(app, ["review", str(run), "--approve", "0.1"])
        assert result.exit_code == 0, result.output
        assert "paused for review after iteration 1" in result.output
        assert json.loads((run / "iter_00" / "cand_1" / "record.json").read_text())["why"] == "approved by the reviewer"

        # Iteration 1: reject with a comment; the next prompt carries it, and the best falls back to 0.1.
        result = cli.invoke(app, ["review", str(run), "--reject", "--comment", "penalise joint velocity more"])
        assert result.exit_code == 0, result.output
        assert "Feedback from the human reviewer (follow it): penalise joint velocity more" in server.user_prompts()[-1]
        shown = cli.invoke(app, ["review", str(run)])
        assert "Iteration 2 of so101_reach — diffs against the best before it: candidate 0.1" in shown.output

        # Iteration 2: edit candidate 2.0; the edited code is validated and trained, then the review returns.
        edited = tmp_path / "edited.py"
        edited.write_text(EDITED)
        result = cli.invoke(app, ["review", str(run), "--edit", "2.0", "--file", str(edited)])
        assert result.exit_code == 0, result.output
        assert "paused for review after iteration 2" in result.output
        folder = run / "iter_02" / "cand_2"
        assert "0.0123" in (folder / "reward.py").read_text()
        assert json.loads((folder / "result.json").read_text())["status"] == "ok"
        assert "edited_distance" in (folder / "metrics.jsonl").read_text()

        result = cli.invoke(app, ["review", str(run), "--approve", "2.2"])
        assert result.exit_code == 0, result.output
        assert "stopped: iteration limit reached" in result.output

    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["id"] == "2.2" and summary["iterations"] == 3


def test_review_rejects_bad_decisions(tmp_path):
    run = tmp_path / "run"
    with FakeLLMServer([Reply(texts=[GOOD])]) as server:
        settings = tiny_settings(candidates=1, max_iterations=1, review=True)
        RewardLoop.create(run, load_task("so101_reach"), settings, llm_config(server.url, samples=1)).run()
        cli = CliRunner()
        bad = cli.invoke(app, ["review", str(run), "--approve", "7.7"])
        assert bad.exit_code == 2 and "no candidate 7.7" in bad.output
        bad = cli.invoke(app, ["review", str(run), "--reject"])
        assert bad.exit_code == 2 and "needs a comment" in bad.output
        hostile = tmp_path / "h.py"
        hostile.write_text("def compute_reward(s):\n    import os\n    return s.ee_pos[:, 0], {}\n")
        bad = cli.invoke(app, ["review", str(run), "--edit", "0.0", "--file", str(hostile)])
        assert bad.exit_code == 2 and "import statements" in bad.output

"""The reward-design loop end to end: the real openai client against a local canned server, the offline
proposer, task choice from sentences, and resuming a run killed with SIGKILL."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robosmith.agent.llm import BudgetExceeded, LLMClient, LLMConfig, LLMError
from robosmith.agent.loop import LoopSettings, RewardLoop
from robosmith.agent.proposers import extract_code
from robosmith.agent.task_from_text import NoMatchingTask, choose_task, parse_offline
from robosmith.cli import app
from robosmith.task import load_task

from .llm_server import FakeLLMServer, Reply

GOOD = """Here is a reward that pulls the tool point to the target.

```python
def compute_reward(s):
    d = torch.norm(s.ee_pos - s.goal_pos, dim=-1)
    components = {"distance": 1.0 - torch.tanh(d / 0.1), "precision": 1.0 - torch.tanh(d / 0.015)}
    return components["distance"] + components["precision"], components
```
"""
GOOD_2 = GOOD.replace("0.015", "0.02")
BROKEN = "```python\ndef compute_reward(s):\n    return torch.norm(s.ee_pos - s.goal_pos, dim=-1\n```"
HOSTILE = (
    "```python\ndef compute_reward(s):\n    import os\n    os.system('touch /tmp/pwned')\n"
    "    return s.ee_pos[:, 0], {}\n```"
)
PROSE = "I would reward the robot for getting close to the goal, and penalise jerky motion."


def llm_config(url: str, **kw) -> LLMConfig:
    return LLMConfig(base_url=url, model="test-model", api_key="test", **kw)


def test_extract_code_from_fenced_and_bare_answers():
    assert extract_code(GOOD).startswith("def compute_reward(s):")
    assert extract_code("def compute_reward(s):\n    return 1, {}") is not None
    assert extract_code(PROSE) is None


def test_candidates_share_the_machines_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    one_at_a_time, default = LoopSettings(parallel=1), LoopSettings()
    assert (one_at_a_time.workers, one_at_a_time.threads) == (1, 4)  # --parallel 1: each candidate on every core
    assert (default.workers, default.threads) == (4, 1)  # one candidate per core
    assert LoopSettings(parallel=2).threads == 2
    assert LoopSettings(threads_per_candidate=2).workers == 2


def test_client_retries_server_errors_and_logs_tokens(tmp_path):
    with FakeLLMServer([Reply(status=500), Reply(texts=["hello"])]) as server:
        client = LLMClient(llm_config(server.url), tmp_path / "calls.jsonl")
        assert client.complete([{"role": "user", "content": "hi"}], n=2) == ["hello", "hello"]
    lines = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert lines[0]["error"] == "InternalServerError"
    assert lines[1]["prompt_tokens"] == 200 and lines[1]["completion_tokens"] == 100


def test_client_times_out_and_gives_up(tmp_path):
    with FakeLLMServer([Reply(texts=["late"], delay_s=3.0)]) as server:
        client = LLMClient(llm_config(server.url, timeout_s=0.5, max_retries=1), tmp_path / "calls.jsonl")
        started = time.monotonic()
        with pytest.raises(LLMError, match="failed 2 times"):
            client.complete([{"role": "user", "content": "hi"}])
        assert time.monotonic() - started < 3.0


def test_budget_cap_stops_further_calls(tmp_path):
    with FakeLLMServer([Reply(texts=["ok"])]) as server:
        cfg = LLMConfig(base_url=server.url, model="gpt-4o", api_key="k", budget_usd=1e-6)
        client = LLMClient(cfg, tmp_path / "calls.jsonl")
        client.complete([{"role": "user", "content": "hi"}])
        assert client.spent_usd() > 0
        with pytest.raises(BudgetExceeded):
            client.complete([{"role": "user", "content": "again"}])


@pytest.mark.parametrize(
    "sentence, task, params",
    [
        ("lift the cube 10 cm", "so101_lift", {"lift_height": 0.1}),
        ("touch the point above the table", "so101_reach", {"tolerance": 0.02}),
        ("reach the target point with the gripper", "so101_reach", {"tolerance": 0.02}),
        ("put the cube into the green zone", "so101_pick_place", {"zone_radius": 0.03}),
    ],
)
def test_offline_parser_maps_sentences_to_tasks(sentence, task, params):
    choice = parse_offline(sentence)
    assert choice.spec.name == task
    assert choice.spec.params == pytest.approx(params)
    if task == "so101_lift":
        assert "0.1125" in choice.spec.success.replace(" ", "") or "0.0125+0.1" in choice.spec.success.replace(" ", "")


@pytest.mark.parametrize("sentence, task, params", [
    ("lift the cube by ten centimetres", "so101_lift", {"lift_height": 0.10}),
    ("raise the red block by twelve centimetres", "so101_lift", {"lift_height": 0.12}),
    ("lift the cube by twenty-five millimetres", "so101_lift", {"lift_height": 0.025}),
    ("grab the cube and raise it 3 inches", "so101_lift", {"lift_height": 0.0762}),
    ("hold the cube up off the table by 8cm", "so101_lift", {"lift_height": 0.08}),
    ("please pick it up", "so101_lift", {"lift_height": 0.05}),
    ("I'm asking you to grasp the block and hold it up", "so101_lift", {"lift_height": 0.05}),
    ("bring the end of the gripper to a spot floating over the table", "so101_reach", {"tolerance": 0.02}),
    ("hover the gripper over the red dot", "so101_reach", {"tolerance": 0.02}),
    ("move the gripper to within 5 mm of the target", "so101_reach", {"tolerance": 0.005}),
    ("put the tip of the gripper on the marked location to within one centimetre", "so101_reach",
     {"tolerance": 0.01}),
    ("carry the cube over to the marked area", "so101_pick_place", {"zone_radius": 0.03}),
    ("take the block to the goal", "so101_pick_place", {"zone_radius": 0.03}),
    ("place the block in a zone of 4 cm radius", "so101_pick_place", {"zone_radius": 0.04}),
    ("drop the cube onto the target", "so101_pick_place", {"zone_radius": 0.03}),
])
def test_offline_parser_reads_paraphrases_and_number_words(sentence, task, params):
    choice = parse_offline(sentence)
    assert (choice.spec.name, choice.spec.params) == (task, pytest.approx(params))


@pytest.mark.parametrize("sentence, said", [
    ("lift the cube a few centimetres", "'a few centimetres' names a length the offline parser cannot read"),
    ("bring the gripper to a spot 15 cm above the table", "'spot 15 cm' is not a length so101_reach can take"),
    ("lift the cube within 2 cm", "'within 2 cm' is not a length so101_lift can take"),
    ("lift the cube 5 cm, no, 10 cm", "two lengths for lift_height"),
])
def test_offline_parser_never_drops_a_value_it_cannot_use(sentence, said):
    with pytest.raises(NoMatchingTask, match=re.escape(said)):
        parse_offline(sentence)


def test_sentence_matching_no_task_exits_nonzero_and_lists_tasks(tmp_path):
    with pytest.raises(NoMatchingTask, match="so101_lift"):
        parse_offline("juggle three balls")
    result = CliRunner().invoke(app, ["run", "juggle three balls", "--offline", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "no task matches" in result.output and "so101_reach" in result.output


def test_dry_run_saves_the_chosen_task(tmp_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["run", "lift the cube 8 cm", "--offline", "--dry-run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "task: so101_lift" in result.output and "lift_height=0.08" in result.output
    assert load_task(out / "task.yaml").params["lift_height"] == pytest.approx(0.08)
    assert (out / "task.yaml").is_file() and not list(out.glob("iter_*"))


def test_llm_structured_task_choice(tmp_path):
    answer = json.dumps({"task": "so101_lift", "params": {"lift_height": 0.12}, "why": "lifting"})
    with FakeLLMServer([Reply(texts=[answer])]) as server:
        client = LLMClient(llm_config(server.url), tmp_path / "calls.jsonl")
        choice = choose_task("raise the red block by twelve centimetres", client)
        assert server.requests[0]["response_format"] == {"type": "json_object"}
    assert choice.spec.name == "so101_lift" and choice.spec.params["lift_height"] == pytest.approx(0.12)


def tiny_settings(**kw) -> LoopSettings:
    base = dict(candidates=4, max_iterations=2, train_minutes=0.05, num_envs=16, parallel=2,
                eval_episodes=4, video_episodes=0)  # videos: tests/test_report.py
    base.update(kw)
    return LoopSettings(**base)


@pytest.mark.slow
def test_two_iteration_llm_loop_end_to_end(tmp_path):
    script = [
        Reply(texts=[GOOD, BROKEN, HOSTILE, PROSE]),  # iteration 0: one good, three bad
        Reply(status=500),  # iteration 1: a server error first, then the retry succeeds
        Reply(texts=[GOOD_2]),
    ]
    task = load_task("so101_reach")
    with FakeLLMServer(script) as server:
        loop = RewardLoop.create(tmp_path / "run", task, tiny_settings(candidates=4), llm_config(server.url, samples=4))
        final = loop.run()
        prompts = server.user_prompts()

    run = tmp_path / "run"
    records = {r["id"]: r for r in final["history"]}
    assert records["0.0"]["status"] == "ok"
    assert records["0.1"]["status"] == "rejected" and "syntax" in records["0.1"]["reason"].lower()
    assert records["0.2"]["status"] == "rejected" and "import" in records["0.2"]["reason"]
    assert records["0.3"]["status"] == "rejected" and "no compute_reward" in records["0.3"]["reason"]
    assert records["0.4"]["origin"] == "the task's reference reward" and records["0.4"]["status"] == "ok"
    assert all(records[f"1.{k}"]["status"] == "ok" for k in range(4)) and "1.4" not in records
    assert final["iteration"] == 2 and final["stop_reason"].startswith("iteration limit")
    # The second prompt carries the reflection on the first iteration: rejections and curves.
    assert len(prompts) >= 2
    assert "Candidate 0.2 was rejected before training" in prompts[-1] and "distance:" in prompts[-1]
    for rid in records:
        folder = run / f"iter_{int(rid[0]):02d}" / f"cand_{rid[2]}"
        assert json.loads((folder / "record.json").read_text())["why"]
    assert (run / "iter_00" / "cand_0" / "eval.json").is_file()
    assert (run / "iter_00" / "cand_0" / "reward.py").read_text().startswith('"""Reward of so101_reach')
    calls = [json.loads(x) for x in (run / "llm_calls.jsonl").read_text().splitlines()]
    assert sum(c.get("completion_tokens", 0) for c in calls) > 0 and any(c.get("error") for c in calls)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["proposer"] == "llm" and summary["best"]["id"] in records
    assert summary["reference"]["id"] == "0.4"
    assert not Path("/tmp/pwned").exists()


def _wait_for(predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def kill_when(cmd: list[str], marker: Path, timeout_s: float, any_of: list[Path] | None = None) -> bool:
    """Run a command and SIGKILL it a second after `marker` (or any file of `any_of`) appears; False if it
    never did."""
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = _wait_for(lambda: any(m.is_file() for m in any_of or [marker]), timeout_s)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    return seen


@pytest.mark.slow
def test_sigkill_during_second_iteration_then_resume_trains_nothing_twice(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "robosmith.cli", "run", "so101_reach", "--offline", "--out", str(run),
           "--candidates", "2", "--iterations", "2", "--train-minutes", "0.1", "--num-envs", "16",
           "--parallel", "2", "--eval-episodes", "4", "--no-baseline"]
    assert kill_when(cmd, run / "iter_01" / "cand_0" / "train.log", 240), "iteration 2 never began"
    first = sorted((run / "iter_00").glob("cand_*"))
    assert len(first) == 2
    before = {c: ((c / "result.json").stat().st_mtime_ns, (c / "metrics.jsonl").read_text()) for c in first}
    assert not (run / "iter_01" / "cand_0" / "result.json").is_file()

    result = CliRunner().invoke(app, ["resume", str(run)])
    assert result.exit_code == 0, result.output
    for c in first:  # finished before the kill: untouched
        assert ((c / "result.json").stat().st_mtime_ns, (c / "metrics.jsonl").read_text()) == before[c]
    for c in sorted((run / "iter_01").glob("cand_*")):
        assert json.loads((c / "result.json").read_text())["status"] == "ok"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["candidates_tried"] == 4 and summary["proposer"] == "offline"


@pytest.mark.slow
def test_pool_records_timeouts_and_crashes_and_goes_on(tmp_path):
    import dataclasses

    from robosmith.execution.confine import TrainerLimits
    from robosmith.execution.local import train_candidates
    from robosmith.runs import write_json
    from robosmith.train.ppo import TrainSettings

    task = load_task("so101_reach")
    settings = TrainSettings.from_task(task, num_envs=8, max_iterations=2, steps_per_iteration=5, eval_episodes=2)
    folders = {name: tmp_path / name for name in ("slow", "broken", "fine")}
    for name, folder in folders.items():
        folder.mkdir()
        (folder / "reward.py").write_text(task.reference_reward_body())
        job = {"task": task.to_dict(), "settings": dataclasses.asdict(settings), "reward_file": "reward.py"}
        if name == "slow":
            job["settings"]["max_iterations"] = 10_000
            job["settings"]["max_minutes"] = 10.0
        if name == "broken":
            job["reward_file"] = "missing.py"
        write_json(folder / "job.json", job)
    # The slow one hits its time limit while the broken one crashes beside it; neither stops the pool.
    # The limit leaves the broken worker time to start (importing torch and MuJoCo took over 15 s on a
    # machine with two trainings beside the tests) so that it crashes before it could time out.
    limits = TrainerLimits(cpu_s=600, memory_mb=4096)
    train_candidates([folders["slow"], folders["broken"]], parallel=2, timeout_s=45, limits=limits)
    train_candidates([folders["fine"]], parallel=1, timeout_s=600, limits=limits)
    results = {n: json.loads((f / "result.json").read_text()) for n, f in folders.items()}
    assert results["slow"]["status"] == "timeout" and "time limit" in results["slow"]["reason"]
    assert results["broken"]["status"] == "crashed" and "missing.py" in results["broken"]["reason"]
    assert results["fine"]["status"] == "ok" and 0 <= results["fine"]["success_rate"] <= 1


@pytest.mark.slow
def test_budget_cap_stops_the_loop_cleanly(tmp_path):
    with FakeLLMServer([Reply(texts=[GOOD])]) as server:
        cfg = LLMConfig(base_url=server.url, model="gpt-4o", api_key="k", samples=1, budget_usd=1e-6)
        settings = tiny_settings(candidates=1, max_iterations=5, baseline=False)
        final = RewardLoop.create(tmp_path / "run", load_task("so101_reach"), settings, cfg).run()
        assert len(server.requests) == 1
    assert final["stop_reason"].startswith("LLM budget of $0.00 is spent")
    assert final["iteration"] == 1 and [r["id"] for r in final["history"]] == ["0.0"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["llm_cost_usd"] > 0


@pytest.mark.slow
def test_trainer_processes_write_only_inside_their_folder(tmp_path):
    from robosmith.execution.confine import TrainerLimits, landlock_abi
    from robosmith.execution.local import _trainer_preexec

    if landlock_abi() == 0:
        pytest.skip("this kernel has no Landlock; the static check is the only boundary here")
    folder, outside = tmp_path / "cand", tmp_path / "outside.txt"
    folder.mkdir()
    code = f"open({str(folder / 'in.txt')!r}, 'w').write('x'); open({str(outside)!r}, 'w').write('x')"
    limits = TrainerLimits(cpu_s=60, memory_mb=4096)
    done = subprocess.run([sys.executable, "-c", code], preexec_fn=_trainer_preexec(folder, limits, None),
                          capture_output=True)
    assert done.returncode != 0 and b"PermissionError" in done.stderr
    assert (folder / "in.txt").read_text() == "x" and not outside.exists()

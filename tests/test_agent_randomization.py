"""The loop's randomization phase (DrEureka): the prior, proposals checked against the registry, candidates
trained under their ranges and selected by robustness; offline, with the fake LLM server, and after a kill."""

import dataclasses
import json
import sys

import pytest
import yaml
from typer.testing import CliRunner

from robosmith.agent.loop import LoopSettings, RewardLoop
from robosmith.agent.randomization import OfflineRandomizationProposer, RandomizationContext, parse_ranges
from robosmith.cli import app
from robosmith.errors import RobosmithError
from robosmith.sim2real.robustness import load_variants, suite_path
from robosmith.task import load_task

from .llm_server import FakeLLMServer, Reply
from .test_agent import GOOD, kill_when, llm_config

DR_GOOD = """Slower servos and a few steps of lag are what a real arm brings:

```yaml
- {name: actuator_kp, nominal: 17.8, bounds: [9.0, 24.0]}
- {name: action_delay_steps, nominal: 0, bounds: [0, 3]}
```
"""
DR_UNKNOWN = "```yaml\n- {name: gravity, nominal: 9.81, bounds: [9, 10]}\n```"
DR_OUT_OF_BOUNDS = "```yaml\n- {name: actuator_kp, nominal: 17.8, bounds: [0.01, 24]}\n```"


def tiny(**kw) -> LoopSettings:
    base = dict(candidates=1, max_iterations=1, train_minutes=0.05, num_envs=16, parallel=2, eval_episodes=4,
                video_episodes=0, dr=True, dr_candidates=2, dr_prior_episodes=2, baseline=False)
    base.update(kw)
    return LoopSettings(**base)


def test_llm_answers_are_checked_against_the_registry():
    assert [p.name for p in parse_ranges(DR_GOOD)] == ["actuator_kp", "action_delay_steps"]
    with pytest.raises(RobosmithError, match="'gravity' is not a physical parameter"):
        parse_ranges(DR_UNKNOWN)
    with pytest.raises(RobosmithError, match="within the physical bounds of actuator_kp"):
        parse_ranges(DR_OUT_OF_BOUNDS)


def test_offline_proposals_follow_rapp_and_cover_the_failed_variants():
    task = load_task("so101_lift")
    rapp = {"parameters": [
        {"name": "actuator_kp", "nominal": 17.8, "interval": [10.0, 30.0], "interval_possible": [7.0, 56.0]},
        {"name": "action_delay_steps", "nominal": 0.0, "interval": [0.0, 1.0], "interval_possible": [0.0, 2.0]},
        {"name": "cube_mass", "nominal": 0.03, "interval": None, "interval_possible": None},  # never succeeds
    ]}
    failed = {"variants": [{"name": "lag_2", "params": {"action_delay_steps": 2}, "success_rate": 0.1},
                           {"name": "nominal", "params": {}, "success_rate": 0.95}]}
    wide, narrow = OfflineRandomizationProposer().propose(RandomizationContext(task, 0, rapp, failed), 2)
    ranges = {p.name: (p.low, p.high) for p in wide.ranges}
    assert ranges["actuator_kp"] == (10.0, 30.0)  # the whole interval where success was measured
    assert ranges["action_delay_steps"] == (0.0, 2.0)  # lag 2 failed beyond the measured interval: covered
    assert ranges["cube_mass"] == (0.01, 0.1)  # RAPP bounds nothing there: the task's own range
    kp = {p.name: (p.low, p.high) for p in narrow.ranges}["actuator_kp"]
    assert 10.0 < kp[0] < 17.8 < kp[1] < 30.0  # a narrower fraction around the task's value
    # A range the task draws log-uniform is drawn so in the proposals too.
    log_mass = dataclasses.replace(task, domain_randomization=tuple(
        dataclasses.replace(p, distribution="log_uniform") if p.name == "cube_mass" else p
        for p in task.domain_randomization))
    proposal = OfflineRandomizationProposer().propose(RandomizationContext(log_mass, 0, rapp, failed), 1)[0]
    assert {p.name: p.distribution for p in proposal.ranges}["cube_mass"] == "log_uniform"
    assert {p.name: p.distribution for p in wide.ranges}["cube_mass"] == "uniform"


def test_offline_proposals_reach_toward_failed_worlds_beyond_rapp():
    """A nominal policy fails at one step of lag, so RAPP's lag interval is the nominal value alone; the suite's
    lagging variants failed. Every candidate still randomizes the lag, up to the failed variants' 3 steps."""
    task = load_task("so101_reach")
    rapp = {"parameters": [
        {"name": "actuator_kp", "nominal": 17.8, "interval": [1.0, 100.0], "interval_possible": [1.0, 100.0]},
        {"name": "action_delay_steps", "nominal": 0.0, "interval": [0.0, 0.0], "interval_possible": [0.0, 0.0]},
        # RAPP's grid failed at -0.067 rad and succeeded at +0.067: a real arm's offset may have either sign.
        {"name": "joint_zero_offset", "nominal": 0.0, "interval": [0.0, 0.067], "interval_possible": [0.0, 0.067]},
        # A nominal policy shrugs off 0.05 rad of joint noise alone; a real arm's encoders are far finer.
        {"name": "joint_pos_noise", "nominal": 0.0, "interval": [0.0, 0.05], "interval_possible": [0.0, 0.2]},
        # Succeeds at the model's armature and above; the grid's point below (0.0079) failed.
        {"name": "joint_armature", "nominal": 0.028, "interval": [0.028, 0.5], "interval_possible": [0.028, 0.5]},
    ]}
    failed = {"variants": [{"name": "lag_2", "params": {"action_delay_steps": 2}, "success_rate": 0.05},
                           {"name": "half_kp_lag_3", "params": {"actuator_kp": 9.0, "action_delay_steps": 3},
                            "success_rate": 0.0},
                           {"name": "offsets", "params": {"joint_zero_offset": [0.05, -0.1, 0.0, 0.0, 0.0, 0.0]},
                            "success_rate": 0.5}]}
    proposals = OfflineRandomizationProposer().propose(RandomizationContext(task, 0, rapp, failed), 4)
    lags = [{p.name: (p.low, p.high) for p in c.ranges}.get("action_delay_steps") for c in proposals]
    assert lags == [(0.0, 3.0)] * 4  # every candidate, whatever its width
    offsets = [{p.name: (p.low, p.high) for p in c.ranges}["joint_zero_offset"] for c in proposals]
    assert all(o == pytest.approx((-0.1, 0.1)) for o in offsets)  # the failed variant's largest offset, both signs
    noise = [{p.name: (p.low, p.high) for p in c.ranges}["joint_pos_noise"] for c in proposals]
    assert noise == [(0.0, 0.01), (0.0, 0.005), (0.0, 0.0075), (0.0, 0.003)]  # widths of 0.01 rad, not of 0.05
    # The armature interval stops at the model's value: mirrored below it by the factor measured above it.
    armature = [{p.name: (p.low, p.high) for p in c.ranges}["joint_armature"] for c in proposals]
    assert armature[0] == pytest.approx((0.014, 0.056))
    assert armature[1] == pytest.approx((0.021, 0.042))
    assert all(low < 0.028 < high for low, high in armature)
    # Reach succeeds at any kp alone, but a world draws every parameter at once: a factor of 2 at most.
    kp = {p.name: (p.low, p.high) for p in proposals[0].ranges}["actuator_kp"]
    assert kp == pytest.approx((17.8 / 2, 17.8 * 2), rel=1e-3)
    without_failures = OfflineRandomizationProposer().propose(RandomizationContext(task, 0, rapp, None), 1)[0]
    assert "action_delay_steps" not in {p.name for p in without_failures.ranges}  # nothing asks for it
    offsets = {p.name: (p.low, p.high) for p in without_failures.ranges}["joint_zero_offset"]
    assert offsets == pytest.approx((-0.067, 0.067))  # the measured side, mirrored


def test_later_iterations_keep_the_best_ranges_and_widen_what_still_fails():
    task = load_task("so101_reach")
    rapp = {"parameters": [
        {"name": "actuator_kp", "nominal": 17.8, "interval": [1.0, 100.0], "interval_possible": [1.0, 100.0]},
        {"name": "action_delay_steps", "nominal": 0.0, "interval": [0.0, 0.0], "interval_possible": [0.0, 0.0]},
        {"name": "joint_zero_offset", "nominal": 0.0, "interval": [0.0, 0.067], "interval_possible": [0.0, 0.067]},
    ]}
    best = {"id": "dr0.1", "robustness_worst": 0.72, "robustness_mean": 0.86, "ranges": [
        {"name": "actuator_kp", "nominal": 17.8, "bounds": [9.0, 26.7]},
        {"name": "action_delay_steps", "nominal": 0, "bounds": [0, 3]},
        {"name": "joint_zero_offset", "nominal": 0.0, "bounds": [-0.0333, 0.0333]}]}
    still_failing = {"variants": [
        {"name": "half_kp_lag_3", "params": {"actuator_kp": 9.0, "action_delay_steps": 3}, "success_rate": 0.95},
        {"name": "calibration_offsets", "params": {"joint_zero_offset": [0.05, -0.05, 0.04, -0.04, 0.05, 0.0]},
         "success_rate": 0.72}]}
    wide, narrow = OfflineRandomizationProposer().propose(RandomizationContext(task, 1, rapp, still_failing, best),
                                                           2)
    narrow_ranges = {p.name: (p.low, p.high) for p in narrow.ranges}
    assert narrow_ranges["actuator_kp"] == (9.0, 26.7)  # held, so not widened: the best's range
    assert narrow_ranges["action_delay_steps"] == (0, 3)
    assert narrow_ranges["joint_zero_offset"] == pytest.approx((-0.05, 0.05))  # the failing offsets, both signs
    assert {p.name: (p.low, p.high) for p in wide.ranges}["actuator_kp"] == pytest.approx((8.9, 35.6))


def check_phase(run, final, candidates=2):
    prior = run / "dr_prior"
    assert json.loads((prior / "result.json").read_text())["status"] == "ok"
    names = [v.name for v in load_variants(suite_path(load_task("so101_reach"), "default"))]
    assert [v["name"] for v in json.loads((prior / "robustness.json").read_text())["variants"]] == names
    assert json.loads((prior / "rapp.json").read_text())["parameters"]
    records = {r["id"]: r for r in final["dr_history"]}
    assert sorted(records) == [f"dr0.{k}" for k in range(candidates)]
    for r in records.values():
        folder = run / r["dir"]
        if r["status"] != "ok":
            continue
        config = json.loads((folder / "config.json").read_text())
        # Trained under its own ranges: the run's config has them and every iteration recorded its draws.
        assert config["randomization"] == yaml.safe_load((folder / "randomization.yaml").read_text())
        first = json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])
        assert set(first["randomization"]) == {p["name"] for p in config["randomization"]}
        robustness = json.loads((folder / "robustness.json").read_text())
        assert [v["name"] for v in robustness["variants"]] == names
        assert json.loads((folder / "robustness.default.json").read_text()) == robustness
        assert json.loads((folder / "record.json").read_text())["why"]
    summary = json.loads((run / "summary.json").read_text())["randomization"]
    assert summary["candidates_tried"] == candidates and summary["without_randomization"]["policy"] == "iter_00/cand_0"
    return records, summary


@pytest.mark.slow
def test_randomization_phase_end_to_end_offline(tmp_path):
    run = tmp_path / "run"
    final = RewardLoop.create(run, load_task("so101_reach"), tiny(), None).run()
    records, summary = check_phase(run, final)
    ok = [r for r in records.values() if r["status"] == "ok"]
    assert ok and summary["best"]["id"] == max(ok, key=lambda r: (r["robustness_worst"], r["robustness_mean"],
                                                                  r["success_rate"]))["id"]
    assert summary["stop_reason"].startswith("randomization iteration limit")
    assert "randomization" in (run / "report.html").read_text().lower()


@pytest.mark.slow
def test_randomization_phase_with_the_llm(tmp_path):
    script = [Reply(texts=[GOOD]), Reply(texts=[DR_GOOD, DR_UNKNOWN, DR_OUT_OF_BOUNDS])]
    with FakeLLMServer(script) as server:
        loop = RewardLoop.create(tmp_path / "run", load_task("so101_reach"), tiny(dr_candidates=3, baseline=False),
                                 llm_config(server.url, samples=1))
        final = loop.run()
        prompts = server.user_prompts()
    records, summary = check_phase(tmp_path / "run", final, candidates=3)
    assert records["dr0.0"]["status"] == "ok" and summary["best"]["id"] == "dr0.0"
    assert records["dr0.1"]["status"] == "rejected" and "'gravity' is not a physical parameter" in records[
        "dr0.1"]["reason"]
    assert records["dr0.2"]["status"] == "rejected" and "physical bounds" in records["dr0.2"]["reason"]
    # The prompt shows what DrEureka's shows: RAPP's intervals and the robustness of the policy so far.
    assert "Reward-aware physics prior" in prompts[-1] and "half_kp_lag_3" in prompts[-1]
    system = server.requests[-1]["messages"][0]["content"]
    assert "action_delay_steps [control steps] bounds [0, 10]" in system


@pytest.mark.slow
def test_sigkill_in_the_randomization_phase_then_resume(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "robosmith.cli", "run", "so101_reach", "--offline", "--out", str(run),
           "--candidates", "1", "--iterations", "1", "--train-minutes", "0.1", "--num-envs", "16",
           "--parallel", "2", "--eval-episodes", "4", "--dr", "--dr-candidates", "2", "--no-baseline"]
    assert kill_when(cmd, run / "dr_00" / "cand_0" / "train.log", 400), "the randomization phase never began"
    before = {p: p.stat().st_mtime_ns for p in (run / "iter_00" / "cand_0" / "result.json",
                                                 run / "dr_prior" / "result.json")}
    assert not (run / "dr_00" / "cand_0" / "result.json").is_file()
    result = CliRunner().invoke(app, ["resume", str(run)])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the reward and the prior: not redone
    assert "most robust: candidate dr0." in result.output
    for k in range(2):
        assert json.loads((run / "dr_00" / f"cand_{k}" / "result.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_review_covers_the_randomization_phase(tmp_path):
    run = tmp_path / "run"
    loop = RewardLoop.create(run, load_task("so101_reach"), tiny(review=True, dr_candidates=1), None)
    assert loop.run()["paused_for_review"]  # after the reward iteration
    result = CliRunner().invoke(app, ["review", str(run), "--approve", "0.0"])
    assert result.exit_code == 0, result.output
    assert "paused for review after randomization iteration 0" in result.output
    screen = CliRunner().invoke(app, ["review", str(run)])
    assert "Randomization iteration 0 of so101_reach" in screen.output and "[dr0.0]" in screen.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: actuator_kp, nominal: 17.8, bounds: [0, 24]}\n")
    result = CliRunner().invoke(app, ["review", str(run), "--edit", "dr0.0", "--file", str(bad)])
    assert result.exit_code == 2 and "the edited ranges are rejected" in result.output
    edited = tmp_path / "edited.yaml"
    edited.write_text("- {name: action_delay_steps, nominal: 0, bounds: [0, 2]}\n")
    result = CliRunner().invoke(app, ["review", str(run), "--edit", "dr0.0", "--file", str(edited)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "dr_00" / "cand_1" / "config.json").read_text())["randomization"] == [
        {"name": "action_delay_steps", "nominal": 0.0, "bounds": [0.0, 2.0]}]
    result = CliRunner().invoke(app, ["review", str(run), "--approve", "dr0.1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())["randomization"]
    assert summary["best"]["id"] == "dr0.1"
    assert json.loads((run / "dr_00" / "cand_1" / "record.json").read_text())["why"] == "approved by the reviewer"

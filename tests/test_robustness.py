"""Robustness evaluation: variants files, the shipped suites, and variants that really change the world a policy
acts in (measured with a policy whose behaviour we can predict)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robosmith.cli import app
from robosmith.robot.ik import solve_ik
from robosmith.robot.params import PARAMS, ParamError
from robosmith.runs import TrainingRun
from robosmith.sim.scene import compile_scene
from robosmith.sim2real.rapp import rapp
from robosmith.sim2real.robustness import SUITES_DIR, evaluate_variants, load_variants, suite_path
from robosmith.task import load_task
from robosmith.train.policy import Observation, PolicySpec


class ReachByIK:
    """Sends the servos straight to the joints that put the tool on the goal (or `offset` from another field it
    reads, once): perfect in the nominal world, and predictably wrong where the world differs (too weak to hold
    the arm up, or calibrated off) or where the field is wrong."""

    def __init__(self, task, field="goal_pos", offset=(0.0, 0.0, 0.0)):
        self.task, self.model = task, compile_scene(task.scene, visual=False)
        self.spec = PolicySpec("scripted", task.name, task.description, ("joint_pos", field), task.control_hz)
        self.field, self.offset = field, np.asarray(offset)
        self.targets = None

    def reset(self, env_ids=None):
        self.targets = None

    def act(self, observation: Observation) -> torch.Tensor:
        s = observation.state
        if self.targets is None:
            home = np.asarray(self.task.reset.home)
            self.targets = torch.as_tensor(np.stack([solve_ik(self.model, p.numpy().astype(float) + self.offset, None,
                                                              home)[0] for p in getattr(s, self.field)]))
        return self.task.action_map().actions_for(self.targets, observation.servo_targets)

    def close(self):
        pass


def write(tmp_path, text, name="variants.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_variants_change_the_world_the_policy_acts_in(tmp_path):
    task = load_task("so101_reach")
    variants = load_variants(write(tmp_path, """
- name: lag_3
  params: {action_delay_steps: 3}
- name: too_weak_to_hold_the_arm
  params: {actuator_force_limit: 0.15}
- name: nominal
  params: {}
- name: calibrated_off
  params: {joint_zero_offset: [0.15, -0.15, 0.15, -0.15, 0.0, 0.0]}
"""), task)
    result = evaluate_variants(ReachByIK(task), task, variants, tmp_path, episodes=12, progress=False)
    rows = {r["name"]: r for r in result["variants"]}
    assert [r["name"] for r in result["variants"]] == ["lag_3", "too_weak_to_hold_the_arm", "nominal", "calibrated_off"]
    assert rows["nominal"]["success_rate"] >= 0.9 and rows["lag_3"]["success_rate"] >= 0.9
    assert rows["too_weak_to_hold_the_arm"]["success_rate"] <= 0.1
    assert rows["calibrated_off"]["success_rate"] <= 0.2
    for r in result["variants"]:
        assert r["episodes"] == 12 and r["ci95"][0] <= r["success_rate"] <= r["ci95"][1]


def test_cli_robustness_writes_json_and_heat_map(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "so101_reach", "--iterations", "1", "--num-envs", "4",
                                      "--eval-episodes", "2", "--no-progress", "--out", str(run)])
    assert result.exit_code == 0, result.output
    variants = write(tmp_path, "- {name: lag_2, params: {action_delay_steps: 2}}\n- {name: nominal, params: {}}\n")
    result = CliRunner().invoke(app, ["robustness", str(run), "--variants", str(variants), "--episodes", "4", "--json",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert [v["name"] for v in printed["variants"]] == ["lag_2", "nominal"]
    assert {"name", "success_rate", "ci95", "episodes"} <= set(printed["variants"][0])
    assert json.loads((run / "robustness.json").read_text())["variants"] == printed["variants"]
    assert (run / "robustness.png").stat().st_size > 1000
    result = CliRunner().invoke(app, ["robustness", str(run), "--variants", str(variants), "--episodes", "4",
                                      "--no-progress"])
    lines = result.output.splitlines()
    assert lines[2].startswith("nominal") and lines[3].startswith("lag_2")  # nominal first in the table
    # The shipped suites keep a file each: evaluating the test suite after the default one (as after a loop's
    # selection) leaves the default suite's result where the loop and its report read it.
    task = load_task("so101_reach")
    for suite in ("default", "test"):
        result = CliRunner().invoke(app, ["robustness", str(run), "--suite", suite, "--episodes", "2", "--json",
                                          "--no-progress"])
        assert result.exit_code == 0, result.output
    names = {suite: [v.name for v in load_variants(suite_path(task, suite))] for suite in ("default", "test")}
    assert names["default"] != names["test"]
    assert [v["name"] for v in json.loads((run / "robustness.json").read_text())["variants"]] == names["test"]
    assert [v["name"] for v in TrainingRun(run).read_robustness("default")["variants"]] == names["default"]
    assert [v["name"] for v in TrainingRun(run).read_robustness("test")["variants"]] == names["test"]


@pytest.mark.parametrize("text, message", [
    ("- {name: a, params: {kp: 3}}\n", "variant 'a': 'kp' is not a physical parameter"),
    ("- {name: a, params: {actuator_kp: 500}}\n", "variant 'a': actuator_kp: 500 N·m/rad is outside the physical"),
    ("- {name: a, params: {actuator_kp: [1, 2]}}\n", "variant 'a': actuator_kp: expected one number or 6"),
    ("- {name: a, params: {action_delay_steps: 1.5}}\n", "action_delay_steps: must be a whole number"),
    ("- {name: a}\n- {name: a}\n", "variant 'a': the name is used twice"),
    ("- {params: {}}\n", "variant 0: needs the keys name and params"),
    ("- {name: a, params: {cube_mass: 0.05}}\n", "variant 'a': cube_mass: so101_reach has no cube"),
    ("name: a\n", "must be a non-empty list of {name, params}"),
    ("- [unclosed\n", "not valid YAML"),
])
def test_bad_variants_files_get_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ParamError, match=None) as e:
        load_variants(path, load_task("so101_reach"))
    assert message in str(e.value) and str(path) in str(e.value)
    result = CliRunner().invoke(app, ["robustness", str(tmp_path), "--task", "so101_reach", "--variants", str(path)])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("task_name", ["so101_reach", "so101_lift", "so101_pick_place"])
def test_each_task_ships_a_default_and_a_test_suite_with_a_real_arm_in_them(task_name):
    task = load_task(task_name)
    default, test = (load_variants(suite_path(task, s), task) for s in ("default", "test"))
    kp = PARAMS["actuator_kp"].default
    for suite in (default, test):
        assert any(not v.params for v in suite)  # the nominal world
        assert any(v.params.get("actuator_kp", kp) <= 0.55 * kp for v in suite)  # half the gain
        assert any(v.params.get("action_delay_steps", 0) >= 2 for v in suite)  # a real arm's lag
        assert any("joint_zero_offset" in v.params for v in suite)  # calibration offsets
    # The claim's hardest world: half kp and a 3-step delay together.
    assert any(v.params.get("actuator_kp", kp) <= 0.55 * kp and v.params.get("action_delay_steps") == 3 for v in test)
    # Nothing of the test suite is a copy of the default suite: selection never sees the test's worlds.
    assert not {json.dumps(v.params, sort_keys=True) for v in test if v.params} & {
        json.dumps(v.params, sort_keys=True) for v in default}
    assert sorted(p.name for p in SUITES_DIR.glob(f"{task_name}*.yaml")) == [f"{task_name}.test.yaml",
                                                                              f"{task_name}.yaml"]


def test_rapp_finds_where_a_policy_stops_succeeding(tmp_path):
    task = load_task("so101_reach")
    result = rapp(ReachByIK(task), task, ["actuator_force_limit", "joint_zero_offset", "action_delay_steps"],
                  points=7, episodes=10, progress=False)
    assert result["nominal_success_rate"] >= 0.9 and result["threshold"] == pytest.approx(0.8 * result[
        "nominal_success_rate"])
    sweeps = {p["name"]: p for p in result["parameters"]}
    force = sweeps["actuator_force_limit"]
    assert force["values"][0] == PARAMS["actuator_force_limit"].low and PARAMS["actuator_force_limit"].default in \
        force["values"]
    low, high = force["interval"]
    assert 0.1 < low <= 3.35 <= high == 20.0  # too weak to hold the arm up below some torque; never too strong
    offsets = sweeps["joint_zero_offset"]
    assert -0.2 < offsets["interval"][0] <= 0.0 <= offsets["interval"][1] < 0.2  # far-off calibration misses
    assert sweeps["action_delay_steps"]["values"] == list(range(11))  # every whole number of steps
    for p in sweeps.values():
        sure, measured, possible = p["interval_sure"], p["interval"], p["interval_possible"]
        assert possible[0] <= measured[0] and measured[1] <= possible[1]
        assert sure is None or (measured[0] <= sure[0] and sure[1] <= measured[1])


@pytest.mark.slow
def test_cli_rapp_writes_json_and_plot(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "so101_reach", "--iterations", "1", "--num-envs", "4",
                                      "--eval-episodes", "2", "--no-progress", "--out", str(run)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["rapp", str(run), "--params", "actuator_kp,cube_mass", "--no-progress"])
    assert result.exit_code == 2 and "cube_mass: so101_reach has no cube" in result.output
    result = CliRunner().invoke(app, ["rapp", str(run), "--params", "actuator_kp", "--points", "3", "--episodes", "2",
                                      "--threshold", "0.5", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == json.loads((run / "rapp.json").read_text())
    assert printed["threshold"] == 0.5 and printed["parameters"][0]["name"] == "actuator_kp"
    assert (run / "rapp.png").stat().st_size > 1000

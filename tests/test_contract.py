"""The contract every backend shares (observations, actions, episode statistics), the physical-parameter
registry, and the package's layering: what may import what."""

from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import robosmith
from robosmith.contract import (
    ActionMap,
    EpisodeRecorder,
    SimState,
    eval_result,
    observation_fields,
    observation_size,
    observation_vector,
)
from robosmith.robot.params import PARAMS, ParamError, RobotParams, check_params
from robosmith.robot.so101 import JOINT_NAMES, joint_limits
from robosmith.sim.batched_env import BatchedEnv, env_config
from robosmith.task import TaskError, load_task, task_from_dict

PACKAGE = Path(robosmith.__file__).resolve().parent


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, relative level) of every import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", node.level))
    return out


def test_the_contract_imports_torch_and_the_standard_library_only():
    allowed = {"__future__", "torch", "math", "json", "os", "dataclasses", "pathlib", "typing", "collections"}
    for path in sorted((PACKAGE / "contract").glob("*.py")):
        for module, level in _imports(path):
            assert level == 1 or module.split(".")[0] in allowed, f"{path.name} imports {module}"


@pytest.mark.parametrize("package, forbidden", [
    ("sim", ("agent", "cli", "engines", "execution", "train", "bc", "sim2real", "deploy", "perception")),
    ("train", ("agent", "cli", "engines", "execution", "bc", "sim2real", "deploy", "perception")),
    ("reward", ("sim", "train", "agent", "cli", "engines", "execution", "task", "sim2real", "deploy", "perception")),
    ("robot", ("sim", "train", "agent", "cli", "engines", "execution", "task", "sim2real", "deploy", "perception")),
    ("task", ("sim", "train", "agent", "cli", "engines", "execution", "sim2real", "deploy", "perception")),
    ("perception", ("agent", "cli", "engines", "execution", "bc", "sim2real", "deploy")),
    ("sim2real", ("agent", "cli", "engines", "execution", "bc", "deploy")),
    ("deploy", ("agent", "cli", "engines", "execution", "bc")),
    ("engines", ("agent", "cli", "execution", "sim2real", "deploy")),
    ("execution", ("agent", "cli", "deploy")),
])
def test_dependencies_point_one_way(package, forbidden):
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for module, level in _imports(path):
            if level == 0 and module.startswith("robosmith."):
                assert module.split(".")[1] not in forbidden, f"robosmith/{package}/{path.name} imports {module}"


def test_actions_map_to_clipped_servo_targets_both_ways():
    low, high = (-1.0, -2.0), (1.0, 2.0)
    absolute = ActionMap("absolute", 1.5, (0.5, 0.0), low, high)
    targets = absolute.targets(torch.tensor([[0.2, 1.0], [1.0, -3.0]]), torch.zeros(2, 2))
    assert torch.allclose(targets, torch.tensor([[0.8, 1.5], [1.0, -1.5]], dtype=torch.float64))  # 2.0 clipped to 1
    assert targets.dtype == torch.float64
    delta = ActionMap("delta", 0.1, (0.0, 0.0), low, high)
    previous = torch.tensor([[0.95, 0.0]])
    assert torch.allclose(delta.targets(torch.tensor([[1.0, -1.0]]), previous),
                          torch.tensor([[1.0, -0.1]], dtype=torch.float64))
    # The inverse lands on the target where the action range reaches it, at the range's end where not.
    wanted = torch.tensor([[0.8, 1.5], [5.0, 0.0]], dtype=torch.float64)
    actions = absolute.actions_for(wanted, torch.zeros(2, 2))
    assert torch.allclose(actions, torch.tensor([[0.2, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="action_mode"):
        ActionMap("velocity", 1.0, (0.0,), (-1.0,), (1.0,))


def test_the_simulator_and_the_task_share_one_action_map():
    lift = load_task("so101_lift")
    # Without the safety rules in simulation (tests/test_deploy.py checks them), a target is the map's target.
    task = dataclasses.replace(lift, safety=dataclasses.replace(lift.safety, in_simulation=False))
    env = BatchedEnv(task.scene, env_config(task, 3, 0), task.reset, task.has_goal)
    try:
        assert env.action_map == task.action_map()
        assert task.action_map().low == joint_limits()[0] and len(task.action_map().home) == len(JOINT_NAMES)
        action = torch.tensor([[0.3, -0.2, 0.1, 1.0, -1.0, 0.5]] * 3)
        env.step(action)
        expected = task.action_map().targets(action, torch.zeros(3, 6)).numpy()
        np.testing.assert_array_equal(env.target, expected)
    finally:
        env.close()


def test_observation_vector_orders_fields_and_scales_the_episode_step():
    s = SimState.zeros(2, has_object=False, has_goal=True)
    s.goal_pos[:] = torch.tensor([0.1, 0.2, 0.3])
    s.episode_step[:] = torch.tensor([0, 25])
    names = ("goal_pos", "episode_step", "joint_pos")
    obs = observation_vector(s, names, episode_length=50)
    assert obs.shape == (2, observation_size(names)) == (2, 3 + 1 + 6) and obs.dtype == torch.float32
    assert torch.allclose(obs[:, :3], s.goal_pos) and obs[1, 3] == 0.5
    a = observation_vector(s, names, 50, {"goal_pos": 0.1}, torch.Generator().manual_seed(1))
    b = observation_vector(s, names, 50, {"goal_pos": 0.1}, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, obs) and torch.equal(a[:, 3:], obs[:, 3:])
    with pytest.raises(ValueError, match="'object_pos': this SimState has no such field"):
        observation_vector(s, ("object_pos",), 50)


def test_relative_observations_are_differences_of_the_noisy_fields():
    s = SimState.zeros(2, has_object=True, has_goal=True)
    s.object_pos[:] = torch.tensor([[0.25, 0.0, 0.0125], [0.2, 0.05, 0.05]])
    s.goal_pos[:] = torch.tensor([0.3, -0.1, 0.0])
    s.ee_pos[:] = torch.tensor([0.2, 0.0, 0.1])
    names = ("object_to_goal", "ee_to_object", "joint_pos")
    assert observation_fields(names) == ("object_pos", "goal_pos", "ee_pos", "joint_pos")
    obs = observation_vector(s, names, 50)
    assert obs.shape == (2, observation_size(names)) == (2, 3 + 3 + 6)
    assert torch.allclose(obs[:, :3], s.goal_pos - s.object_pos)
    assert torch.allclose(obs[:, 3:6], s.object_pos - s.ee_pos)
    # Noise enters through the fields: the cube's noise moves both vectors that read it, by opposite amounts.
    noisy = observation_vector(s, names, 50, {"object_pos": 0.01}, torch.Generator().manual_seed(0))
    moved = noisy - obs
    assert moved[:, :3].abs().min() > 0 and torch.allclose(moved[:, :3], -moved[:, 3:6])
    assert torch.equal(noisy[:, 6:], obs[:, 6:])
    with pytest.raises(ValueError, match="'object_pos': this SimState has no such field"):
        observation_vector(SimState.zeros(2, has_object=False, has_goal=True), ("object_to_goal",), 50)


def test_episode_recorder_counts_finished_episodes_and_drops_diverged_ones():
    rec = EpisodeRecorder(3)
    step = torch.tensor([1, 1, 1])
    no = torch.zeros(3, dtype=torch.bool)
    rec.record(torch.tensor([1.0, 2.0, float("nan")]), {"a": torch.ones(3)}, no, no, step)
    ended = torch.tensor([True, True, False])
    unstable = torch.tensor([False, True, False])
    total = rec.record(torch.tensor([1.0, 1.0, 1.0]), {"a": torch.ones(3)}, ended, torch.tensor([True, True, True]),
                       step + 1, unstable)
    assert total.tolist() == [1.0, 0.0, 1.0]  # the diverged environment earns nothing
    summary = rec.summary()
    # Only environment 0 finished an episode: return 1 + 1; environment 1 diverged, 2 never ended.
    assert summary["episodes"] == 1 and summary["success_rate"] == 1.0 and summary["episode_return"] == 2.0
    assert summary["unstable_resets"] == 1 and summary["nonfinite_rewards"] == 1
    assert summary["mean_reward"] == pytest.approx((1 + 2 + 0 + 1 + 0 + 1) / 6) and summary["reward/a"] == 1.0
    result = eval_result("t", 10, 9, 0, 1.5)
    assert result["success_rate"] == 0.9 and result["ci95"][0] < 0.9 < result["ci95"][1]


def test_the_registry_checks_names_bounds_and_per_joint_values():
    assert check_params({"actuator_kp": 9.0, "joint_damping": [0.5] * 6}) == {
        "actuator_kp": 9.0, "joint_damping": (0.5,) * 6}
    with pytest.raises(ParamError, match=r"^f\.yaml: 'kp' is not a physical parameter; known: actuator_kp"):
        check_params({"kp": 9.0}, "f.yaml")
    with pytest.raises(ParamError, match=r"actuator_kp: 500 N·m/rad is outside the physical bounds \[1, 100\]"):
        check_params({"actuator_kp": 500})
    with pytest.raises(ParamError, match="cube_mass: expected one number, got 6 values"):
        check_params({"cube_mass": [0.1] * 6})
    with pytest.raises(ParamError, match="action_delay_steps: must be a whole number"):
        check_params({"action_delay_steps": 1.5})
    # One name per parameter: the robot description is the registry's robot entries, nothing else.
    assert set(RobotParams().as_dict()) == {n for n, p in PARAMS.items() if p.where == "robot"}
    assert all(p.low <= p.default <= p.high for p in PARAMS.values())


def test_every_engine_event_of_the_registry_is_python_with_the_range_filled_in():
    events = [e for p in PARAMS.values() for e in (p.mjlab_event, p.isaaclab_event) if e]
    assert len(events) >= 12
    for event in events:
        tree = ast.parse(event.replace("{bounds}", "(1.0, 2.0)"), mode="eval")
        assert isinstance(tree.body, ast.Call) and tree.body.func.id == "EventTermCfg"


def test_per_joint_robot_params_reach_the_compiled_model():
    task = load_task("so101_reach")
    raw = task.to_dict()
    kp = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    raw["scene"]["robot"] = {"actuator_kp": kp, "joint_frictionloss": 0.1}
    custom = task_from_dict(raw)
    env = BatchedEnv(custom.scene, env_config(custom, 2, 0), custom.reset, custom.has_goal)
    try:
        m = env.model
        got = [m.actuator_gainprm[m.actuator(j).id, 0] for j in JOINT_NAMES]
        assert got == kp and [-m.actuator_biasprm[m.actuator(j).id, 1] for j in JOINT_NAMES] == kp
        assert all(m.dof_frictionloss[m.joint(j).dofadr[0]] == 0.1 for j in JOINT_NAMES)
        # Per environment: each of the two gets its own gains, per joint.
        env.set_physics({"actuator_kp": np.array([[2.0] * 6, [3.0] * 6]), "cube_friction": 0.5}
                        if custom.scene.cube else {"actuator_kp": np.array([[2.0] * 6, [3.0] * 6])})
        assert env.models[0].actuator_gainprm[0, 0] == 2.0 and env.models[1].actuator_gainprm[5, 0] == 3.0
        # Effects go through the same door; they are the environment's, not the model's.
        env.set_physics({"action_delay_steps": np.array([0, 2])})
        assert env.effects["action_delay_steps"].tolist() == [0.0, 2.0]
    finally:
        env.close()
    raw["scene"]["robot"] = {"kp": 9.0}
    with pytest.raises(TaskError, match=r"scene\.robot\.kp: unknown key; known: actuator_force_limit"):
        task_from_dict(raw)
    raw["scene"]["robot"] = {"actuator_kp": [1.0, 2.0]}
    with pytest.raises(TaskError, match="actuator_kp: expected one number or 6"):
        task_from_dict(raw)


def test_randomization_ranges_must_lie_within_the_physical_bounds():
    raw = load_task("so101_lift").to_dict()
    raw["domain_randomization"] = [{"name": "cube_mass", "nominal": 0.03, "bounds": [0.0, 0.08]}]
    with pytest.raises(TaskError, match=r"domain_randomization\[0\]\.bounds: \[0, 0.08\] must be an interval within "
                                        r"the physical bounds of cube_mass"):
        task_from_dict(raw)


def test_the_wilson_interval_is_the_contracts():
    from robosmith.contract.metrics import wilson_interval

    low, high = wilson_interval(95, 100)
    assert 0.88 < low < 0.89 and 0.978 < high < 0.979 and math.isclose(sum(wilson_interval(5, 10)), 1.0)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(100, 100)[1] == 1.0 and wilson_interval(0, 100)[0] == 0.0  # not 0.99999... by rounding


def test_robot_params_files_share_the_registry_schema(tmp_path):
    from robosmith.robot.params import load_params_file, robot_params_of

    good = tmp_path / "fitted.yaml"
    good.write_text("actuator_kp: 9.0\njoint_frictionloss: [0.05, 0.1, 0.1, 0.05, 0.05, 0.05]\naction_delay_steps: 2\n")
    values = load_params_file(good)
    assert values == {"actuator_kp": 9.0, "joint_frictionloss": (0.05, 0.1, 0.1, 0.05, 0.05, 0.05),
                      "action_delay_steps": 2.0}
    robot = robot_params_of(values)
    assert robot.actuator_kp == 9.0 and robot.joint_damping == 0.6  # effects stay out of the robot description
    for text, reason in (("kp: 9.0\n", "'kp' is not a physical parameter"), ("- 1\n", "must map parameter names"),
                         ("actuator_kp: [1, 2]\n", "expected one number or 6"), ("a: [\n", "not valid YAML")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ParamError, match=f"^{bad}: .*{reason}"):
            load_params_file(bad)
    with pytest.raises(ParamError, match="no such robot-params file"):
        load_params_file(tmp_path / "missing.yaml")


def test_difference_interval_is_newcombes_hybrid_score_interval():
    from robosmith.contract.metrics import difference_interval

    # Newcombe (1998), Statistics in Medicine 17:873, example (b): 56/70 against 48/80, method 10: 0.0524 to 0.3339.
    gain, low, high = difference_interval(48, 80, 56, 70)
    assert gain == pytest.approx(0.2) and (low, high) == (pytest.approx(0.0524, abs=1e-4), pytest.approx(0.3339,
                                                                                                        abs=1e-4))
    # Near the bounds it stays inside [-1, 1] and includes the extreme difference it saw.
    gain, low, high = difference_interval(0, 10, 10, 10)
    assert gain == 1.0 and 0.5 < low < 1.0 and high == 1.0

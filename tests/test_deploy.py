"""Deployment: LeRobot's real SO-101 follower driving emulated STS3215 servos, the safety layer judged on what
reaches the bus, our simulated arm behind LeRobot's interface, kills that leave the arm safe and the data
readable, and `deploy --sim` against `robosmith eval`."""

import collections
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from robosmith.cli import app
from robosmith.deploy.feetech_emulator import EmulatedArm, ServoSetup
from robosmith.deploy.loop import (
    Arm,
    DeploySettings,
    StateBuilder,
    deploy,
    refuse_unmeasurable,
    run_episode,
    sim_initial_states,
)
from robosmith.deploy.safety import SafetyLayer, SafetyStop, joint_limits
from robosmith.robot.kinematics import ToolKinematics
from robosmith.robot.units import load_calibration, to_lerobot
from robosmith.sim.batched_env import BatchedEnv, env_config
from robosmith.sim2real.dataset import load_dataset
from robosmith.task import load_task
from robosmith.train.policy import PolicyError, PolicySpec

TICK_DEG = 360.0 / 4095  # LeRobot's degrees per encoder tick


class ScriptedPolicy:
    """Plays a fixed list of actions (anything: NaN, infinities, huge values), then zeros; may fail on purpose."""

    def __init__(self, task, actions=(), fields=("joint_pos", "goal_pos"), fail_at=None):
        self.spec = PolicySpec("scripted", task.name, task.description, tuple(fields), task.control_hz)
        self.actions, self.fail_at = [torch.as_tensor(a, dtype=torch.float32) for a in actions], fail_at
        self.t = self.calls = 0
        self.states = []  # what it was given, step by step

    def reset(self, env_ids=None):
        self.t = 0

    def act(self, observation):
        self.states.append(observation.state)
        self.t += 1
        self.calls += 1  # over every episode (the rehearsal's too)
        if self.fail_at is not None and self.calls > self.fail_at:
            raise RuntimeError("the policy crashed")
        return (self.actions[self.t - 1] if self.t <= len(self.actions) else torch.zeros(6))[None]

    def close(self):
        pass


def follower(arm: EmulatedArm, folder: Path):
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arm.json").write_text(json.dumps(arm.calibration()))
    robot = SO101Follower(SO101FollowerConfig(port=arm.port, id="arm", calibration_dir=folder))
    return robot, load_calibration(folder / "arm.json")


def bus_degrees(entries, setup: ServoSetup, calibration) -> dict[int, list[float]]:
    """Goal positions that reached each servo, in LeRobot's degrees (arm) and 0-100 (gripper), from raw ticks."""
    out: dict[int, list[float]] = {}
    names = list(calibration)
    for e in entries:
        if not e["torque"]:
            continue
        i = setup.ids.index(e["id"])
        c = calibration[names[i]]
        if i < 5:
            value = (e["goal_ticks"] - (c.range_min + c.range_max) / 2) * TICK_DEG
        else:
            value = (e["goal_ticks"] - c.range_min) / (c.range_max - c.range_min) * 100
        out.setdefault(i, []).append(value)
    return out


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """LeRobot's SO-101 follower, connected to emulated servos (one arm for the module)."""
    with EmulatedArm("so101_reach") as arm:
        robot, calibration = follower(arm, tmp_path_factory.mktemp("calibration"))
        robot.connect()
        yield arm, robot, calibration
        if robot.is_connected:
            robot.disconnect()


def test_lerobot_follower_reads_and_moves_the_emulated_arm(emulated):
    arm, robot, _ = emulated
    obs = robot.get_observation()
    assert set(obs) == {f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex",
                                              "wrist_roll", "gripper")}
    # The emulated arm starts where the task's reset puts it; LeRobot's degrees are our joint angles.
    assert abs(obs["elbow_flex.pos"]) > 1.0
    target = {**obs, "wrist_roll.pos": obs["wrist_roll.pos"] + 20.0}
    for _ in range(20):
        robot.send_action(target)
        time.sleep(1 / 30)
    moved = robot.get_observation()
    assert moved["wrist_roll.pos"] - obs["wrist_roll.pos"] == pytest.approx(20.0, abs=3.0)
    snap = arm.snapshot()
    assert all(s["torque"] == 1 for s in snap.values())


ACTION = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([1e6, -1e6, 1.0, -1.0, 0.0]))
SEQUENCE = st.lists(st.lists(ACTION, min_size=6, max_size=6), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SEQUENCE, st.booleans())
def test_no_command_on_the_bus_leaves_the_limits(emulated, sequence, oscillate):
    """Whatever a policy outputs, the goals the servos receive stay in the joint limits, move at most max_step per
    control step, and put the tool point inside the workspace box (forward kinematics of the goals)."""
    arm, robot, calibration = emulated
    task = load_task("so101_reach")
    if oscillate:  # full-scale flips every step on top of whatever was drawn
        sequence = [[(1.0 if k % 2 else -1.0) * (j + 1) for j in range(6)] for k in range(4)] + sequence
    policy = ScriptedPolicy(task, sequence)
    layer = SafetyLayer.for_arm(task.safety, task.control_hz, calibration)
    short = dataclasses.replace(task, episode_length=len(sequence))
    arm.place(task.reset.home)  # every example starts at rest in the task's start pose
    before = len(arm.bus_log())
    _, _, stopped = run_episode(Arm(robot, calibration, False), policy, short, layer,
                                StateBuilder(short), None, np.array([0.25, 0.0, 0.1]),
                                realtime=False)
    sent = bus_degrees(arm.bus_log()[before:], arm.setup, calibration)
    # A safety stop ends with a hold: the goal becomes where the arm is (a stop, not a step of the policy), so the
    # per-step limit and the box are checked on the commands before it; the joint limits on all.
    moves = {i: v[:-1] if stopped else v for i, v in sent.items()}
    low, high = joint_limits(calibration, task.safety.joint_margin)
    tick = TICK_DEG + 1e-6
    for i, values in sent.items():
        v = np.array(values)
        assert (v >= low[i] - tick).all() and (v <= high[i] + tick).all(), (i, v, low[i], high[i])
        if len(moves[i]) > 1:
            assert np.abs(np.diff(moves[i])).max() <= task.safety.max_step + 2 * tick
    fk = ToolKinematics()
    goals = np.array([moves[i] for i in range(6)]).T if all(i in moves for i in range(6)) else np.zeros((0, 6))
    for row in goals:
        q = np.radians(row[:5])
        p = fk.position(np.append(q, 0.0))
        assert (p >= np.array(task.safety.workspace_low) - 1e-3).all(), p
        assert (p <= np.array(task.safety.workspace_high) + 1e-3).all(), p


def test_nan_stops_the_episode_and_the_arm_holds(emulated):
    arm, robot, calibration = emulated
    task = load_task("so101_reach")
    short = dataclasses.replace(task, episode_length=10)
    policy = ScriptedPolicy(short, [[0.1] * 6, [float("nan")] + [0.0] * 5])
    layer = SafetyLayer.for_arm(task.safety, task.control_hz, calibration)
    before = len(arm.bus_log())
    steps, counts, stopped = run_episode(Arm(robot, calibration, False), policy, short, layer,
                                         StateBuilder(short), None,
                                         np.array([0.25, 0.0, 0.1]), realtime=False)
    assert (steps, stopped) == (1, "non_finite")
    assert len(arm.bus_log()) - before == 12  # one command, then the hold: six goals each, nothing after


def test_the_policy_reads_its_last_three_actions_on_the_arm_as_in_simulation(emulated):
    arm, robot, calibration = emulated
    short = dataclasses.replace(load_task("so101_reach"), episode_length=5)
    played = [[0.01 * (i + 1)] * 6 for i in range(5)]
    policy = ScriptedPolicy(short, played)
    layer = SafetyLayer.for_arm(short.safety, short.control_hz, calibration)
    steps, _, stopped = run_episode(Arm(robot, calibration, False), policy, short, layer, StateBuilder(short), None,
                                    np.array([0.25, 0.0, 0.1]), realtime=False)
    assert (steps, stopped) == (5, None)
    last = policy.states[4]  # before the fifth action: the fourth, third and second, newest first
    for field, i in (("action", 3), ("prev_action", 2), ("prev_prev_action", 1)):
        np.testing.assert_allclose(getattr(last, field)[0].numpy(), played[i], rtol=1e-6, err_msg=field)
    assert not policy.states[1].prev_prev_action.any() and policy.states[1].action[0, 0] == pytest.approx(0.01)


def test_hot_servo_stops_the_episode(emulated):
    arm, robot, calibration = emulated
    task = load_task("so101_reach")
    short = dataclasses.replace(task, episode_length=12)  # temperature is read every 5th step, twice to stop
    arm.set_temperature(70)
    try:
        steps, _, stopped = run_episode(Arm(robot, calibration, False), ScriptedPolicy(short), short,
                                    SafetyLayer.for_arm(task.safety, task.control_hz, calibration),
                                    StateBuilder(short), None, np.zeros(3), realtime=False)
    finally:
        arm.set_temperature(35)
    assert (steps, stopped) == (5, "temperature")


def test_safety_layer_pulls_commands_below_the_table_back():
    task = load_task("so101_reach")
    layer = SafetyLayer.for_arm(task.safety, task.control_hz)
    home = to_lerobot(torch.tensor(task.reset.home, dtype=torch.float64)).numpy()
    layer.reset(home)
    down = home.copy()
    down[1], down[2] = 60.0, 20.0  # shoulder forward, elbow open: the tool goes into the table
    fk = ToolKinematics()
    assert fk.position(np.radians(down))[2] < 0  # the request really is below the table
    command, interventions = layer.filter(down, home)
    assert any(i.limit == "workspace" for i in interventions)
    assert layer.inside(command) and not np.allclose(command, home)  # kept the part of the step that is safe


def test_a_step_out_of_the_box_stops_where_it_first_leaves():
    """The workspace rule keeps the part of each step before the tool first leaves the box, to 1/256 of the step:
    not much more could have been kept, and never a pose past the first exit."""
    from robosmith.sim.command_limits import CommandLimits, model_tool_positions
    from robosmith.sim.command_limits import joint_limits as model_limits

    task = load_task("so101_lift")
    low, high = model_limits(None, task.safety.joint_margin)
    n, rng = 256, np.random.default_rng(4)
    no_box = dataclasses.replace(task.safety, workspace_low=(-9.0, -9.0, -9.0), workspace_high=(9.0, 9.0, 9.0))
    rules, unboxed = (CommandLimits(limits, task.control_hz, low, high, model_tool_positions(), num_arms=n)
                      for limits in (task.safety, no_box))
    home = to_lerobot(torch.tensor(task.reset.home, dtype=torch.float64)).numpy()
    along = np.linspace(0, 1, 1025)[:, None]
    cut = 0
    for _ in range(4):
        start = home + rng.uniform(-20, 20, (n, 6))
        rules.reset(np.arange(n), start)
        unboxed.reset(np.arange(n), start)
        previous, inside_before = rules.previous.copy(), rules.inside(rules.previous)
        target = rng.uniform(low, high, (n, 6))
        sent, wanted = rules.apply(target, previous), unboxed.apply(target, previous)
        for arm in np.flatnonzero(inside_before & ~np.isclose(sent, wanted).all(1)):
            cut += 1
            step = wanted[arm, :5] - previous[arm, :5]
            kept = float(np.dot(sent[arm, :5] - previous[arm, :5], step) / np.dot(step, step))
            path = np.hstack([previous[arm, :5] + along * step, np.zeros((len(along), 1))])
            first_out = np.argmin(rules.inside(path)) / (len(along) - 1)
            assert first_out - 1 / 256 - 2e-3 <= kept <= first_out + 1e-9, (arm, kept, first_out)
    assert cut > 50  # random requests do leave the box


def test_the_simulator_sends_what_the_arms_safety_layer_would():
    """Training and evaluation step under the arm's command rules: every environment's servo targets are those
    a SafetyLayer sends for the same policy targets and joint readings."""
    task = load_task("so101_lift")
    env = BatchedEnv(task.scene, env_config(task, 4, 0), task.reset, task.has_goal)
    layers = [SafetyLayer.for_arm(task.safety, task.control_hz) for _ in range(4)]
    gen = torch.Generator().manual_seed(0)
    rules: collections.Counter[str] = collections.Counter()
    try:
        for layer, target in zip(layers, env.target, strict=True):
            layer.reset(to_lerobot(torch.from_numpy(target)).numpy())
        for _ in range(30):
            action = torch.rand(4, 6, generator=gen) * 2 - 1
            reading = to_lerobot(torch.from_numpy(env.joint_reading())).numpy()
            wanted = to_lerobot(task.action_map().targets(action, torch.from_numpy(env.target))).numpy()
            expected = []
            for layer, want, read in zip(layers, wanted, reading, strict=True):
                command, interventions = layer.filter(want, read)
                expected.append(command)
                rules.update(i.limit for i in interventions)
            env.step(action)
            np.testing.assert_allclose(to_lerobot(torch.from_numpy(env.target)).numpy(), expected, atol=1e-9)
    finally:
        env.close()
    assert {"workspace", "joint_limit"} <= set(rules), rules  # random actions do meet the rules


def test_the_watchdog_stops_on_stale_readings_and_late_periods():
    task = load_task("so101_reach")
    layer = SafetyLayer.for_arm(task.safety, task.control_hz)
    layer.check_timing(task.safety.stale_observation * 0.9, task.safety.max_missed_deadlines)  # within: no stop
    with pytest.raises(SafetyStop, match="stale_observation") as stale:
        layer.check_timing(task.safety.stale_observation + 0.01, 0)
    assert stale.value.limit == "stale_observation"
    with pytest.raises(SafetyStop, match="missed_deadlines"):
        layer.check_timing(0.0, task.safety.max_missed_deadlines + 1)


def test_policy_needing_the_cube_is_refused_on_hardware():
    task = load_task("so101_lift")
    policy = ScriptedPolicy(task, fields=task.observations)
    with pytest.raises(PolicyError, match="object_pos, object_quat, finger_contact"):
        refuse_unmeasurable(policy, sim=False)
    assert refuse_unmeasurable(policy, sim=True) == ["object_pos", "object_quat", "finger_contact"]
    # With a camera file the estimator gives the cube's pose; what no camera sees still refuses, by name.
    with pytest.raises(PolicyError, match=r"reads finger_contact, .*the camera gives object_pos, object_quat"):
        refuse_unmeasurable(policy, sim=False, perceived=("object_pos", "object_quat"))
    sees_the_cube = ScriptedPolicy(task, fields=("joint_pos", "object_pos"))
    assert refuse_unmeasurable(sees_the_cube, sim=False, perceived=("object_pos", "object_quat")) == []


def test_state_builder_reads_the_cube_from_the_robots_camera(tmp_path):
    """The simulated arm renders its front camera as a camera file says; the builder, told nothing by the
    simulator, puts the estimator's cube into the state a policy reads."""
    from robosmith.deploy.loop import DeployError
    from robosmith.deploy.sim_robot import SimSO101, SimSO101Config
    from robosmith.perception.camera import nominal_camera, save_camera

    task = load_task("so101_lift")
    camera = nominal_camera(task.scene)
    camera = camera.with_pose(camera.rotation, np.asarray(camera.pos) + (0.02, -0.01, 0.0))  # not the scene's own
    robot = SimSO101(SimSO101Config(task="so101_lift", sim_cameras=["front"], image_height=480, image_width=640,
                                    camera_file=str(save_camera(camera, tmp_path / "cam.yaml")), id="sim",
                                    calibration_dir=tmp_path / "cal"))
    robot.connect()
    qpos, qvel, _ = sim_initial_states(task, 2, seed=4)
    builder = StateBuilder(task, None, camera)
    arm = Arm(robot, None, False)
    for ep in range(2):
        robot.start_episode(qpos[ep], qvel[ep])
        builder.start_episode()
        _, degrees, images = arm.read()
        zeros = torch.zeros(1, 6)
        s = builder.build(degrees, None, [zeros] * 3, 0, None, images)
        truth = robot.sim_state().object_pos[0].numpy()
        assert np.linalg.norm(s.object_pos[0].numpy() - truth) < 0.005
    with pytest.raises(DeployError, match="no 'front' camera frame"):
        builder.build(degrees, None, [zeros] * 3, 1, None, {})
    robot.disconnect()


@pytest.mark.slow
def test_deploy_on_emulated_servos_records_a_dataset_and_stops_safely_on_an_exception(tmp_path):
    reach = load_task("so101_reach")
    # The watchdog is not what this test is about: on a starved machine the emulator answers late and the
    # watchdog rightly cuts episodes short, so its limits are opened here (test_the_watchdog_... checks it).
    task = dataclasses.replace(reach, safety=dataclasses.replace(reach.safety, stale_observation=30.0,
                                                                 max_missed_deadlines=10_000))
    with EmulatedArm("so101_reach") as arm:
        robot, calibration = follower(arm, tmp_path / "cal")
        out = tmp_path / "deploy"
        # 60 steps of rehearsal, episode 0, then it dies in episode 1
        policy = ScriptedPolicy(task, [[0.2, 0.1, 0.0, 0.0, 0.0, 0.0]] * 5, fail_at=150)
        with pytest.raises(RuntimeError, match="crashed"):
            deploy(policy, task, robot, out, DeploySettings(episodes=3, yes=True), calibration=calibration,
                   judge=lambda ep: ep == 0, prompt=lambda _: "", progress=False)
        final = arm.snapshot()
        log = arm.bus_log()
    assert all(s["torque"] == 0 for s in final.values())  # LeRobot's disconnect turned torque off...
    last_goals = [e for e in log if e["torque"]][-6:]  # ...after the hold: the goals were where the arm was
    for e in last_goals:
        assert abs(e["goal_ticks"] - final[e["id"]]["present"]) < 60
    result = json.loads((out / "deploy.json").read_text())
    assert result["n"] == 1 and result["success_rate"] == 1.0 and "crashed" in result["error"]
    assert result["rehearsal"]["steps"] == task.episode_length
    assert (out / "rehearsal" / "rehearsal.mp4").stat().st_size > 0
    data = load_dataset(out / "dataset")  # readable, the episode cut short left out
    assert len(data.episodes) == 1 and len(data.episodes[0].state) == task.episode_length
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("robosmith/deploy", root=out / "dataset")
    assert ds.num_episodes == 1 and ds.meta.robot_type == "so_follower"


@pytest.fixture(scope="module")
def reach_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("policy") / "reach"
    result = CliRunner().invoke(app, ["train", "so101_reach", "--iterations", "3", "--num-envs", "64",
                                      "--eval-episodes", "10", "--no-randomize", "--no-progress", "--out", str(run)])
    assert result.exit_code == 0, result.output
    return run


@pytest.mark.slow
def test_eval_perceived_refuses_a_policy_that_reads_no_cube(tmp_path, reach_run):
    from robosmith.perception.camera import nominal_camera, save_camera

    camera = save_camera(nominal_camera(load_task("so101_reach").scene), tmp_path / "cam.yaml")
    result = CliRunner().invoke(app, ["eval", str(reach_run), "--perceived", "--camera", str(camera)])
    assert result.exit_code != 0 and "the policy reads no cube pose" in result.output
    assert not (reach_run / "eval_perceived.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_killed_deploy_leaves_torque_off_and_the_dataset_readable(tmp_path, reach_run, sig):
    with EmulatedArm("so101_reach") as arm:
        (tmp_path / "cal").mkdir()
        (tmp_path / "cal" / "arm.json").write_text(json.dumps(arm.calibration()))
        out = tmp_path / "deploy"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "robosmith"), "deploy", str(reach_run), "so101_reach",
             "--robot.port", arm.port, "--robot.id", "arm", "--robot.calibration_dir", str(tmp_path / "cal"),
             "--episodes", "50", "--yes",
             "--record", str(out), "--no-progress"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        proc.stdin.write("y\n" * 200)  # the operator: every episode a success, every reset done
        proc.stdin.flush()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:  # wait until a second episode is under way
            if (out / "deploy.json").is_file() and json.loads((out / "deploy.json").read_text())["episodes"]:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=120)
        final = arm.snapshot()
    assert all(s["torque"] == 0 for s in final.values()), output
    result = json.loads((out / "deploy.json").read_text())
    assert result["interrupted"] and signal.Signals(sig).name in result["error"], output
    data = load_dataset(out / "dataset")
    assert len(data.episodes) == result["n"] >= 1


@pytest.mark.slow
def test_deploy_sim_agrees_with_eval_and_lerobot_replays_it(tmp_path, reach_run):
    from robosmith.deploy.agreement import agreement
    from robosmith.train.policy import load_policy

    out = tmp_path / "deploy"
    result = CliRunner().invoke(app, ["deploy", str(reach_run), "so101_reach", "--sim", "--episodes", "10",
                                      "--record", str(out), "--no-progress", "--sim-cameras", "front",
                                      "--camera-size", "128x96"])
    assert result.exit_code == 0, result.output
    task = load_task("so101_reach")
    figures = agreement(out, load_policy(reach_run, task), task)
    assert figures["outcomes_agree"] >= 9, figures
    # The floor really perturbs eval: a perturbation below float32's rounding would leave it identical.
    assert figures["floor_noise_rad"] == 1e-6 and figures["floor_joint_rms_deg_all"] > 0, figures
    # Same initial states: the first recorded frame of every episode is eval's, to float32 precision.
    deployed = json.loads((out / "deploy.json").read_text())
    assert deployed["sim"] and deployed["n"] == 10 and deployed["sim_success_rate"] is not None
    page = (out / "deploy.html").read_text()
    assert "this deployment" in page and f"{deployed['success_rate']:.0%}" in page
    assert f"{deployed['sim_success_rate']:.0%}" in page and "object_pos" not in page  # reach reads no cube
    data = load_dataset(out / "dataset")
    assert data.robot_type == "robosmith_so101_sim" and len(data.episodes) == 10
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    frame = LeRobotDataset("robosmith/deploy", root=out / "dataset")[5]  # decodes the front camera's video
    assert tuple(frame["observation.images.front"].shape) == (3, 96, 128)
    # The recording is consistent: replayed open-loop on the simulated arm (robosmith gap), the actions as sent
    # reproduce the states as read.
    gap = CliRunner().invoke(app, ["gap", str(out / "dataset"), "--out", str(tmp_path / "gap"), "--episodes", "0,1"])
    assert gap.exit_code == 0, gap.output
    assert json.loads((tmp_path / "gap" / "gap.json").read_text())["rmse_deg_arm_mean"] < 0.05
    # LeRobot's own replay command drives our simulated arm (the plugin robot) from the recorded actions.
    replay = subprocess.run(
        [str(Path(sys.executable).parent / "lerobot-replay"), "--robot.type=robosmith_so101_sim",
         "--robot.task=so101_reach", "--robot.id=sim", f"--robot.calibration_dir={tmp_path / 'cal'}",
         "--dataset.repo_id=robosmith/deploy", f"--dataset.root={out / 'dataset'}", "--dataset.episode=0"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert replay.returncode == 0, replay.stderr[-2000:]


def test_safety_file_replaces_the_task_limits_and_names_bad_fields(tmp_path):
    from robosmith.task.load import load_safety_file
    from robosmith.task.spec import SafetyLimits

    good = tmp_path / "first_run.yaml"
    good.write_text("max_step: 5\nworkspace_low: [0.0, -0.3, 0.02]\n")
    limits = load_safety_file(good, SafetyLimits())
    assert limits.max_step == 5.0 and limits.workspace_low == (0.0, -0.3, 0.02)
    assert limits.max_velocity == SafetyLimits().max_velocity
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_stepp: 5\n")
    result = CliRunner().invoke(app, ["deploy", "x", "so101_reach", "--sim", "--record", str(tmp_path / "d"),
                                      "--safety", str(bad)])
    assert result.exit_code == 2 and "bad.yaml: safety.max_stepp: unknown key" in result.output


def test_compare_gives_the_gain_with_an_interval_for_simulation_and_the_arm(tmp_path):
    (tmp_path / "bc").mkdir()
    (tmp_path / "bc" / "eval.json").write_text(json.dumps({"task": "so101_lift", "episodes": 200, "successes": 160,
                                                            "success_rate": 0.8}))
    deployed = {"task": "so101_lift", "sim": False, "episodes": [{"episode": i, "success": i < 19} for i in range(20)]}
    (tmp_path / "deploy.json").write_text(json.dumps(deployed))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "bc"), str(tmp_path / "deploy.json"), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["a"]["where"] == "simulation" and figures["b"]["where"] == "real arm"
    assert figures["gain"] == pytest.approx(0.95 - 0.8)
    low, high = figures["gain_ci95"]
    assert low < 0.15 < high and low > -0.1  # twenty episodes on the arm: a wide interval
    other = tmp_path / "reach.json"
    other.write_text(json.dumps({"task": "so101_reach", "episodes": 10, "successes": 9}))
    mismatch = CliRunner().invoke(app, ["compare", str(tmp_path / "bc"), str(other)])
    assert mismatch.exit_code == 2 and "not the same task" in mismatch.output

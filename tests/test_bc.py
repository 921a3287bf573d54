"""Behaviour cloning through LeRobot: units, demonstrations, the dataset round trip, evaluation, finetuning."""

import dataclasses
import json
import math
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robosmith.bc.demonstrator import GRIPPER_CLOSED, DemoStyle, ScriptedDemonstrator
from robosmith.cli import app
from robosmith.errors import ConfigError
from robosmith.robot.so101 import JOINT_NAMES, model_path
from robosmith.robot.units import GRIPPER_RANGE, LEROBOT_JOINT_NAMES, from_lerobot, to_lerobot
from robosmith.sim.batched_env import BatchedEnv, env_config
from robosmith.task import eval_success, load_task


def test_units_match_lerobot_so101_conventions():
    model = mujoco.MjModel.from_xml_path(str(model_path()))
    np.testing.assert_allclose(model.joint("gripper").range, GRIPPER_RANGE, atol=1e-6)
    q = torch.tensor([[math.pi / 2, -math.pi / 4, 0.0, 0.1, -1.0, GRIPPER_RANGE[0]],
                      [0.0, 0.0, 0.0, 0.0, 0.0, GRIPPER_RANGE[1]]])
    values = to_lerobot(q)
    np.testing.assert_allclose(values[0, :5], [90.0, -45.0, 0.0, math.degrees(0.1), math.degrees(-1.0)], rtol=1e-5)
    assert values[0, 5] == pytest.approx(0.0, abs=1e-4)  # closed
    assert values[1, 5] == pytest.approx(100.0, abs=1e-4)  # open
    np.testing.assert_allclose(from_lerobot(values), q, atol=1e-6)
    assert tuple(f"{j}.pos" for j in JOINT_NAMES) == LEROBOT_JOINT_NAMES


def _demo_success(task_name: str, style: DemoStyle, n: int = 16) -> tuple[float, ScriptedDemonstrator]:
    task = load_task(task_name)
    env = BatchedEnv(task.scene, env_config(task, n, 5), task.reset, task.has_goal)
    demo = ScriptedDemonstrator(task, env, style, seed=5)
    s = env.state()
    demo.begin(s)
    for _ in range(task.episode_length):
        s, _ = env.step(env.action_for_targets(demo.targets(s)))
    return float(eval_success(task.success, s).float().mean()), demo


@pytest.mark.parametrize("task_name", ["so101_lift", "so101_pick_place"])
def test_perfect_demonstrator_solves_the_cube_tasks(task_name):
    success, _ = _demo_success(task_name, DemoStyle.perfect())
    assert success >= 0.9


def test_fumbled_grasps_are_noticed_and_tried_again():
    style = DemoStyle(fumble_prob=1.0, fumble_offset=(0.03, 0.03), pause_prob=0.0, tremor_std=0.0)
    success, demo = _demo_success("so101_lift", style)
    retried = [p.retries for p in demo.plans]
    assert sum(retried) >= 8  # a 3 cm miss closes the jaws on nothing in most episodes
    assert success >= 0.5  # and the second try usually gets it


def test_pick_place_zone_is_never_under_the_cube_at_reset():
    task = load_task("so101_pick_place")
    env = BatchedEnv(task.scene, env_config(task, 256, 0), task.reset, task.has_goal)
    s = env.state()
    distance = torch.norm(s.object_pos[:, :2] - s.goal_pos[:, :2], dim=-1)
    assert float(distance.min()) >= task.reset.goal_min_distance
    assert not bool(eval_success(task.success, s).any())


def test_pick_place_bc_reads_the_tasks_relative_positions_and_lift_only_absolute_ones():
    from robosmith.bc.features import environment_state, environment_state_fields, environment_state_names

    task = load_task("so101_pick_place")
    s = BatchedEnv(task.scene, env_config(task, 4, 0), task.reset, task.has_goal).state()
    names, values = environment_state_names(task), environment_state(task, s)
    assert values.shape == (4, len(names)) and "ee_pos" in environment_state_fields(task)
    to_goal = names.index("object_to_goal.x")
    assert torch.allclose(values[:, to_goal:to_goal + 3], s.goal_pos - s.object_pos)
    to_cube = names.index("ee_to_object.x")
    assert torch.allclose(values[:, to_cube:to_cube + 3], s.object_pos - s.ee_pos)
    assert float(values[:, to_cube:to_cube + 3].norm(dim=-1).min()) > 0.01  # the tool starts away from the cube
    lift = load_task("so101_lift")  # its task file lists no relative position: the cube's pose only
    assert environment_state_names(lift)[-1] == "cube.qz" and environment_state_fields(lift) == ("object_pos",
                                                                                                   "object_quat")


# ----------------------------------------------------------------------------- dataset, training, rollouts
class _ConstantBC:
    """A stand-in for the frozen BC policy under a residual: the same action everywhere, every step."""

    def __init__(self, task, value: float) -> None:
        from robosmith.train.policy import PolicySpec

        self.spec = PolicySpec("bc", task.name, task.description, ("joint_pos",), task.control_hz)
        self.value = value
        self.resets_per_environment = True  # as an ACT policy playing its chunks

    def reset(self, env_ids=None) -> None:
        pass

    def act(self, observation):
        return torch.full((observation.state.joint_pos.shape[0], 6), self.value)


def test_the_stray_penalty_costs_exactly_the_weight_times_the_deviation():
    from robosmith.bc.finetune import ResidualEnv, ResidualSettings
    from robosmith.reward.load import load_reward
    from robosmith.train.env import TaskEnv

    task = load_task("so101_lift")
    envs = [ResidualEnv(TaskEnv(task, load_reward(task.reference_reward_body()), 4, seed=2), _ConstantBC(task, 0.2),
                        0.1, penalty) for penalty in (0.0, 2.0)]
    residual = torch.tensor([[1.0, -1.0, 0.5, 0.0, 2.0, -3.0]]).repeat(4, 1)
    # a = 0.2 + 0.1 r, within the action range here
    deviation = (torch.tensor([0.3, 0.1, 0.25, 0.2, 0.4, -0.1]) - 0.2).abs().mean()
    rewards = [env.step(residual)[1] for env in envs]
    torch.testing.assert_close(rewards[1] - rewards[0], torch.full((4,), -2.0 * float(deviation)))
    _, plain = envs[0].pop_stats()
    _, penalized = envs[1].pop_stats()
    assert plain["action_deviation"] == pytest.approx(float(deviation)) and "reward/stray_penalty" not in plain
    assert penalized["reward/stray_penalty"] == pytest.approx(-2.0 * float(deviation))
    with pytest.raises(ConfigError, match="stray_penalty"):
        ResidualSettings(stray_penalty=-1.0)


def test_straying_measures_actions_against_the_bc_policy_and_the_tools_path():
    from robosmith.bc.straying import StrayMeter, path_figures

    class Finetuned(_ConstantBC):
        def act(self, observation):
            self.last_base_action = super().act(observation)
            return self.last_base_action + torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0, -0.2])

    meter = StrayMeter(Finetuned(load_task("so101_lift"), 0.0))

    class Seen:
        state = type("S", (), {"joint_pos": torch.zeros(3, 6)})()

    for _ in range(5):
        meter.act(Seen())
    figures = meter.figures(action_scale=1.5, demonstrations=None)
    assert figures["action_deviation"] == pytest.approx(0.05)
    assert figures["action_deviation_per_joint"] == pytest.approx([0.1, 0, 0, 0, 0, 0.2])
    assert figures["target_deviation_deg"] == pytest.approx(math.degrees(0.05 * 1.5))
    # Two episodes: up 10 cm and back along z; a 3-4-5 triangle in the plane at 2 cm.
    up_down = np.array([[0.2, 0, 0.02], [0.2, 0, 0.12], [0.2, 0, 0.02]])
    triangle = np.array([[0.2, 0, 0.02], [0.23, 0, 0.02], [0.23, 0.04, 0.02]])
    paths = path_figures([up_down, triangle])
    assert paths["episodes"] == 2
    assert paths["max_height_m"]["mean"] == pytest.approx(0.07) and paths["max_height_m"]["p90"] <= 0.12
    assert paths["path_length_m"]["mean"] == pytest.approx((0.2 + 0.07) / 2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from robosmith.bc.collect import collect

    root = tmp_path_factory.mktemp("bc") / "lift_demos"
    # Small frames keep the test fast; the default is LeRobot's 640x480 (checked below).
    info = collect(load_task("so101_lift"), root, episodes=2, batch_envs=4, seed=1, progress=False,
                   image_size=(120, 160))
    assert info["episodes"] == 2
    return root


@pytest.mark.slow
def test_dataset_loads_in_lerobot_with_videos_and_units(dataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from robosmith.bc.features import dataset_features

    ds = LeRobotDataset("robosmith/lift_demos", root=dataset)
    task = load_task("so101_lift")
    assert ds.meta.info.codebase_version == "v3.0" and ds.meta.robot_type == "so101_follower"
    assert ds.num_episodes == 2 and ds.num_frames == 2 * task.episode_length
    assert ds.fps == task.control_hz == 30  # what lerobot-record writes for an SO-101
    assert set(ds.meta.video_keys) == {"observation.images.front", "observation.images.wrist"}
    assert ds.meta.features["observation.state"]["names"] == list(LEROBOT_JOINT_NAMES)
    item = ds[task.episode_length + 10]
    assert item["observation.images.front"].shape == (3, 120, 160)
    assert dataset_features(task)["observation.images.front"]["shape"] == (480, 640, 3)  # the default
    assert float(item["observation.images.wrist"].std()) > 0.01  # a real picture, not a blank frame
    assert item["task"] == task.description
    states = torch.stack([ds[i]["observation.state"] for i in range(0, ds.num_frames, 10)])
    assert float(states[:, :5].abs().max()) <= 180.0  # degrees
    assert float(states[:, 5].min()) >= 0.0 and float(states[:, 5].max()) <= 100.0  # gripper 0-100
    # The gripper closes during the demonstration: its action goes from open (high) to closed (low).
    actions = torch.stack([ds[i]["action"][5] for i in range(task.episode_length)])
    assert float(actions[:20].mean()) > 50.0 and float(actions[-10:].mean()) < 20.0
    # The action is what was asked, as lerobot-record stores the leader's positions: holding the cube, the
    # demonstrator's closed target, not the target the stall rule let through (the stalled jaws minus the squeeze).
    closed = float(to_lerobot(torch.tensor([[0.0] * 5 + [GRIPPER_CLOSED]]))[0, 5])
    torch.testing.assert_close(actions[-10:], torch.full((10,), closed), atol=0.5, rtol=0)
    jaws = torch.stack([ds[i]["observation.state"][5] for i in range(task.episode_length - 10, task.episode_length)])
    assert float((jaws - task.safety.gripper_stall_squeeze - actions[-10:]).min()) > 1.0


@pytest.mark.slow
def test_video_gap_of_a_recording_against_its_own_camera(dataset, tmp_path):
    """Sim against sim: the recorded front video against renders of its joint states from the camera that
    recorded it (IoU near 1), from a camera 3 cm off (lower), and a video that lags the states by 3 frames."""
    import cv2

    from robosmith.perception.camera import nominal_camera, save_camera
    from robosmith.sim2real.dataset import load_dataset
    from robosmith.sim2real.video_gap import ArmRenderer, episode_frames, motion, video_gap, video_lag_frames

    task = load_task("so101_lift")
    full = nominal_camera(task.scene)
    camera = dataclasses.replace(full, width=160, height=120, fx=full.fx / 4, fy=full.fy / 4,
                                 cx=(full.cx + 0.5) / 4 - 0.5, cy=(full.cy + 0.5) / 4 - 0.5)
    arm = ArmRenderer(task.scene, camera)
    background = arm.background()
    cv2.imwrite(str(tmp_path / "empty.png"), cv2.cvtColor(background, cv2.COLOR_RGB2BGR))
    result = CliRunner().invoke(app, ["gap", str(dataset), "--units", "degrees", "--episodes", "0", "--out",
                                      str(tmp_path / "gap"), "--camera", str(save_camera(camera, tmp_path / "c.yaml")),
                                      "--background", str(tmp_path / "empty.png")])
    assert result.exit_code == 0, result.output
    video = json.loads((tmp_path / "gap" / "gap.json").read_text())["video"]
    assert video["iou_mean"] > 0.85 and video["episodes"][0]["lag_frames"] == 0
    gap = json.loads((tmp_path / "gap" / "gap.json").read_text())
    findings = gap["critique"]["findings"]
    assert any("gap_keyframe_ep0.png" in f for f in findings)
    assert not any("check the camera file" in f for f in findings)
    assert (tmp_path / "gap" / "gap_video_ep0.mp4").stat().st_size > 0
    key = gap["video"]["episodes"][0]["key_frame"]
    assert key["iou"] == min(gap["video"]["episodes"][0]["iou"])
    picture = cv2.imread(str(tmp_path / "gap" / key["image"]))
    assert picture.shape == (120, 3 * 160, 3)  # real | sim | outline

    # The loop's first node (`run --real DATASET --camera FILE`): the video gap too, and the LLM's critique gets
    # its figures and the key frame itself, as a picture.
    from robosmith.agent.llm import LLMClient
    from robosmith.agent.real import read_the_gap
    from robosmith.perception.camera import with_camera

    from .llm_server import FakeLLMServer, Reply
    from .test_agent import llm_config

    answer = "```yaml\nfindings: [the wrist is off]\nfit: [actuator_kp]\n```"
    with FakeLLMServer([Reply(texts=[answer])]) as server:
        _, figures = read_the_gap(tmp_path / "run", with_camera(task, camera, tmp_path / "empty.png"), dataset,
                                  "degrees", None, 2, LLMClient(llm_config(server.url), tmp_path / "llm.jsonl"))
    assert figures["findings"] == ["the wrist is off"]
    real = tmp_path / "run" / "real"
    episodes = json.loads((real / "gap_before.json").read_text())["video"]["episodes"]
    worst_first = sorted(episodes, key=lambda e: e["key_frame"]["iou"])
    assert server.user_images() == [[(real / e["key_frame"]["image"]).read_bytes() for e in worst_first]]
    assert '"key_frames"' in server.user_prompts()[0] and "real frame, the simulated arm" in server.user_prompts()[0]

    # A camera 1 cm and 1 degree off (a board placed by hand), refined on the recording: the rendered arm comes
    # back onto the filmed one, and the table, seen through the camera, falls into place.
    from robosmith.perception.camera import load_camera
    from robosmith.sim2real.camera_fit import perturbed, table_error_m

    off = perturbed(camera, np.array([0.006, -0.005, 0.006, 0.010, -0.008, 0.008]))
    refined = CliRunner().invoke(app, ["camera", "refine", str(dataset), "--camera", str(save_camera(
        off, tmp_path / "off.yaml")), "--out", str(tmp_path / "refined.yaml"), "--background",
        str(tmp_path / "empty.png"), "--units", "degrees", "--frames", "6"])
    assert refined.exit_code == 0, refined.output
    assert table_error_m(load_camera(tmp_path / "refined.yaml"), camera) < 0.4 * table_error_m(off, camera)

    # `camera locate` reads a dataset's video too; this recording has no board in view, and says so.
    located = CliRunner().invoke(app, ["camera", "locate", str(dataset), "--intrinsics", str(tmp_path / "c.yaml"),
                                       "--out", str(tmp_path / "located.yaml")])
    assert located.exit_code != 0 and "the board was not found in any of 10 images" in located.output

    data = load_dataset(dataset, [0], units="degrees")
    data.episodes[0].state = data.episodes[0].state[:40]
    lower = camera.with_pose(camera.rotation, np.asarray(camera.pos) + (0.0, 0.0, -0.03))
    moved = video_gap(data, task.scene, lower, tmp_path / "moved", background=background, video_episodes=0)
    assert moved["iou_mean"] < video["iou_mean"] - 0.15

    real = episode_frames(dataset, 0)[:60]
    sim = np.stack([arm.render(q)[0] for q in data.episodes[0].state[:40]] +
                   [arm.render(q)[0] for q in load_dataset(dataset, [0], units="degrees").episodes[0].state[40:60]])
    arm.close()
    assert video_lag_frames(motion(real[:-3]), motion(sim[3:])) == 3  # the video shows each state 3 frames late
    assert video_lag_frames(motion(real[3:]), motion(sim[:-3])) == -3


@pytest.mark.slow
def test_lerobot_train_accepts_the_dataset_with_images(dataset, tmp_path):
    """The dataset as written (camera videos included) goes through lerobot-train unchanged."""
    from robosmith.bc.train import BCTrainSettings, train_bc

    settings = BCTrainSettings(inputs="images", steps=2, batch_size=2, save_every=2)
    checkpoint = train_bc(dataset, tmp_path / "act_images", settings)
    config = json.loads((checkpoint / "config.json").read_text())
    assert "observation.images.front" in config["input_features"]
    assert (checkpoint / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def bc_run(dataset, tmp_path_factory):
    from robosmith.bc.train import BCTrainSettings, train_bc

    out = tmp_path_factory.mktemp("bc") / "act_state"
    train_bc(dataset, out, BCTrainSettings(steps=4, batch_size=8, save_every=4, chunk_size=6, n_action_steps=3))
    return out


@pytest.mark.slow
def test_state_policy_trains_evaluates_and_resumes(bc_run, tmp_path):
    from robosmith.bc.evaluate import evaluate_bc
    from robosmith.bc.policy import LeRobotPolicy, find_pretrained_model
    from robosmith.bc.train import BCTrainSettings, train_bc
    from robosmith.reward.load import load_reward
    from robosmith.train.env import TaskEnv
    from robosmith.train.policy import PolicyError, load_policy

    task = load_task("so101_lift")
    checkpoint = find_pretrained_model(bc_run)
    config = json.loads((checkpoint / "config.json").read_text())
    assert set(config["input_features"]) == {"observation.state", "observation.environment_state"}
    assert (config["chunk_size"], config["n_action_steps"]) == (6, 3)  # the settings reach LeRobot
    info = json.loads((bc_run / "bc_train.json").read_text())
    assert info["demonstrations"] == 2
    # Run again on the same folder with more steps: LeRobot resumes from the last checkpoint and trains on.
    train_bc(Path(info["dataset"]), bc_run, BCTrainSettings(steps=6, batch_size=8, save_every=4))
    record = json.loads((bc_run / "bc_train.json").read_text())
    assert "--resume=true" in record["command"] and "--steps=6" in record["command"] and record["steps"] == 6
    assert (bc_run / "lerobot" / "checkpoints" / "000006").is_dir()
    assert find_pretrained_model(bc_run) == checkpoint
    result = evaluate_bc(bc_run, task, tmp_path / "eval", episodes=4, video_episodes=1, progress=False)
    assert result["episodes"] == 4 and 0.0 <= result["success_rate"] <= 1.0 and result["kind"] == "bc"
    assert (tmp_path / "eval" / "eval.mp4").stat().st_size > 1000
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["ci95"] == result["ci95"]
    # Straying: a BC policy has no BC policy under it; the tool's paths, the demonstrations' found from the folder.
    straying = result["straying"]
    assert straying["action_deviation"] is None and straying["policy_paths"]["episodes"] == 4
    demos = straying["demonstration_paths"]
    assert demos["dataset"] == info["dataset"] and demos["episodes"] == 2
    # The demonstrator lifts the cube 5 cm: the tool (between the pads, at the cube's centre) goes above 5 cm.
    assert 0.05 < demos["max_height_m"]["median"] < 0.3 and demos["path_length_m"]["median"] > 0.1
    # Temporal ensembling: a chunk predicted at every step, not one per n_action_steps; eval.json says so.
    ensembled, chunked = LeRobotPolicy(bc_run, task, temporal_ensemble=0.01), LeRobotPolicy(bc_run, task)
    env = TaskEnv(task, load_reward(task.reference_reward_body()), 2, seed=3, auto_reset=False)
    for policy in (ensembled, chunked):
        calls = []
        predict = policy.policy.predict_action_chunk
        policy.policy.predict_action_chunk = lambda b, predict=predict, calls=calls: calls.append(1) or predict(b)
        policy.reset()
        for _ in range(3):
            policy.act(env.observation(policy.spec))
        assert len(calls) == (3 if policy is ensembled else 1)
    result = evaluate_bc(bc_run, task, tmp_path / "eval_te", episodes=2, video_episodes=0, progress=False,
                         temporal_ensemble=0.01)
    assert result["temporal_ensemble"] == 0.01 and result["episodes"] == 2
    with pytest.raises(ConfigError, match="temporal_ensemble must be >= 0, got -0.01"):
        evaluate_bc(bc_run, task, tmp_path / "eval_neg", episodes=2, progress=False, temporal_ensemble=-0.01)
    # A policy trained on lift sees the cube only; pick-and-place adds the goal: a clear error, not a shape error.
    with pytest.raises(PolicyError, match=r"config.json: input_features: observation.environment_state has 7"):
        load_policy(bc_run, load_task("so101_pick_place"))


@pytest.mark.slow
def test_act_chunks_play_per_environment_as_lerobot_plays_them_for_the_batch(bc_run):
    from robosmith.bc.features import observation_batch
    from robosmith.bc.policy import LeRobotPolicy
    from robosmith.reward.load import load_reward
    from robosmith.train.env import TaskEnv
    from robosmith.train.policy import PolicyError

    task = load_task("so101_lift")
    ours = LeRobotPolicy(bc_run, task)  # chunks of 6, 3 played per prediction
    assert ours.resets_per_environment and ours.n_action_steps == 3
    env = TaskEnv(task, load_reward(task.reference_reward_body()), 4, seed=3, auto_reset=False)
    sizes = []
    predict = ours.policy.predict_action_chunk
    ours.policy.predict_action_chunk = lambda b: sizes.append(len(b["observation.state"])) or predict(b)
    ours.reset()
    for _ in range(5):  # all environments in step: the actions of LeRobot's own queue for the batch
        observation = env.observation(ours.spec)
        batch = ours.preprocess(observation_batch(task, observation.state))
        theirs = from_lerobot(ours.postprocess(ours.policy.select_action(batch)).float())
        targets = ours.joint_targets(observation)
        torch.testing.assert_close(targets, theirs)
        env.step(ours.action_map.actions_for(targets, observation.servo_targets))
    assert sizes == [4, 4, 4, 4]  # LeRobot's queue, then ours: a chunk for the batch at steps 1 and 4

    ours.reset(torch.tensor([1]))  # environment 1 restarts: only it plans afresh, the others play on
    for _ in range(4):
        ours.joint_targets(env.observation(ours.spec))
    assert sizes == [4, 4, 4, 4, 1, 3, 1]  # env 1 now, then envs 0, 2, 3 at their chunk's end, then env 1 at its end
    with pytest.raises(PolicyError, match="restarts all environments together"):
        LeRobotPolicy(bc_run, task, temporal_ensemble=0.01).reset(torch.tensor([1]))


@pytest.mark.slow
def test_finetuned_policy_starts_as_the_bc_policy_and_loads_the_same_way(bc_run, tmp_path):
    from robosmith.bc.evaluate import evaluate_bc
    from robosmith.bc.finetune import ResidualSettings, finetune
    from robosmith.bc.policy import LeRobotPolicy, ResidualPolicy
    from robosmith.reward.load import load_reward
    from robosmith.runs import RunError
    from robosmith.train.env import TaskEnv
    from robosmith.train.evaluate import evaluate_run
    from robosmith.train.policy import PolicyError, load_policy
    from robosmith.train.ppo import TrainSettings

    task = load_task("so101_lift")
    out = tmp_path / "ft"
    settings = TrainSettings.from_task(task, num_envs=8, steps_per_iteration=10, max_iterations=2, eval_episodes=4)
    last = finetune(bc_run, task, out, settings, ResidualSettings(temporal_ensemble=0.01), progress=False)
    assert last["iteration"] == 1 and last["env_steps"] == 2 * 8 * 10
    assert (out / "pretrained_model" / "model.safetensors").is_file()

    policy = load_policy(out, task)
    assert isinstance(policy, ResidualPolicy)
    # With the residual's output layer at zero the finetuned policy acts exactly like the BC policy.
    for param in policy.actor.mlp.parameters():
        torch.nn.init.zeros_(param)
    # ... and its BC policy ensembles its chunks as it did while the residual trained on it.
    assert policy.base.temporal_ensemble == 0.01
    base = LeRobotPolicy(bc_run, task, temporal_ensemble=0.01)
    env_a = TaskEnv(task, load_reward(task.reference_reward_body()), 4, seed=3, auto_reset=False)
    env_b = TaskEnv(task, load_reward(task.reference_reward_body()), 4, seed=3, auto_reset=False)
    policy.reset()
    base.reset()
    for _ in range(3):
        a, b = policy.act(env_a.observation(policy.spec)), base.act(env_b.observation(base.spec))
        torch.testing.assert_close(a, b)
        env_a.step(a)
        env_b.step(b)
    result = evaluate_bc(out, task, tmp_path / "eval", episodes=4, video_episodes=0, progress=False)
    assert result["kind"] == "bc+residual" and result["episodes"] == 4 and result["temporal_ensemble"] == 0.01
    with pytest.raises(PolicyError, match="residual.json: a finetuned policy's BC policy acts as it did"):
        evaluate_bc(out, task, tmp_path / "eval2", episodes=2, temporal_ensemble=0.05)
    with pytest.raises(FileExistsError, match="already exists"):  # never mixes two policies in one folder
        finetune(bc_run, task, out, settings, progress=False)
    with pytest.raises(RunError, match="robosmith bc eval"):  # the RL evaluation would drop the BC policy
        evaluate_run(out, episodes=2)


def test_chunk_settings_reach_the_lerobot_command_and_bad_ones_are_refused(tmp_path):
    from robosmith.bc.train import BCTrainSettings, lerobot_train_command
    from robosmith.errors import ConfigError

    act = lerobot_train_command(tmp_path, tmp_path / "out", BCTrainSettings(chunk_size=40, n_action_steps=20))
    assert "--policy.chunk_size=40" in act and "--policy.n_action_steps=20" in act
    default = BCTrainSettings(policy="diffusion")
    assert (default.chunk_size, default.n_action_steps) == (16, 8)
    diffusion = lerobot_train_command(tmp_path, tmp_path / "out", default)
    assert "--policy.horizon=16" in diffusion and not any("chunk_size" in a for a in diffusion)
    assert BCTrainSettings(chunk_size=4).n_action_steps == 4  # never more actions played than predicted
    with pytest.raises(ConfigError, match=r"n_action_steps must be in 1..chunk_size \(20\), got 30"):
        BCTrainSettings(n_action_steps=30)
    with pytest.raises(ConfigError, match="chunk_size must be >= 1, got 0"):
        BCTrainSettings(chunk_size=0)


def test_cli_errors_name_the_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["bc", "train", str(tmp_path)])
    assert result.exit_code == 2 and f"{tmp_path}: not a LeRobot dataset" in result.output
    result = runner.invoke(app, ["bc", "eval", str(tmp_path), "so101_lift"])
    assert result.exit_code == 2 and "no LeRobot policy here" in result.output
    result = runner.invoke(app, ["bc", "collect", "no_such_task"])
    assert result.exit_code == 2 and "no_such_task" in result.output


@pytest.mark.slow
def test_diffusion_policy_trains_and_rolls_out(dataset, tmp_path):
    """The other LeRobot policy: its observation history and action queue work in our lockstep rollouts."""
    from robosmith.bc.evaluate import evaluate_bc
    from robosmith.bc.policy import LeRobotPolicy
    from robosmith.bc.train import BCTrainSettings, train_bc
    from robosmith.train.policy import PolicyError

    out = tmp_path / "diffusion"
    checkpoint = train_bc(dataset, out, BCTrainSettings(policy="diffusion", steps=2, batch_size=4, save_every=2))
    assert json.loads((checkpoint / "config.json").read_text())["type"] == "diffusion"
    with pytest.raises(PolicyError, match="config.json: type: temporal ensembling is for ACT policies"):
        LeRobotPolicy(out, load_task("so101_lift"), temporal_ensemble=0.01)
    with pytest.raises(PolicyError, match="a diffusion policy restarts all environments together"):
        LeRobotPolicy(out, load_task("so101_lift")).reset(torch.tensor([0]))
    result = evaluate_bc(out, load_task("so101_lift"), tmp_path / "eval", episodes=2, video_episodes=0,
                         progress=False)
    assert result["episodes"] == 2


@pytest.mark.slow
def test_finetune_reward_comes_from_a_file_a_training_run_or_an_agent_run(tmp_path):
    from robosmith.runs import RunError, reward_body_from, write_json

    body = "def compute_reward(s):\n    return -torch.norm(s.ee_pos - s.object_pos, dim=-1), {}\n"
    (tmp_path / "reward.py").write_text(body)
    assert reward_body_from(tmp_path / "reward.py") == body
    training = tmp_path / "train_run"
    training.mkdir()
    write_json(training / "config.json", {"reward_file": "reward.py"})
    (training / "reward.py").write_text(body)
    assert reward_body_from(training) == body
    agent = tmp_path / "agent_run"
    agent.mkdir()
    write_json(agent / "summary.json", {"best": {"code": body, "success_rate": 0.9}})
    assert reward_body_from(agent) == body
    with pytest.raises(RunError, match="not a reward file"):
        reward_body_from(tmp_path / "nothing")


def test_cli_finetune_rejects_a_hostile_reward_before_anything_runs(tmp_path):
    hostile = tmp_path / "reward.py"
    hostile.write_text("def compute_reward(s):\n    return torch.load('/etc/passwd'), {}\n")
    result = CliRunner().invoke(
        app, ["finetune", str(tmp_path), "so101_lift", "--reward", str(hostile), "--out", str(tmp_path / "ft")]
    )
    assert result.exit_code == 2
    expected = f"error: {hostile}: torch: line 2: torch.load is not allowed; use pure math functions of torch"
    assert result.output.strip() == expected
    assert not (tmp_path / "ft").exists()


def test_cli_finetune_refuses_a_bad_exploration_noise_in_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["finetune", str(tmp_path), "so101_lift", "--init-noise-std", "0", "--out", str(tmp_path / "ft")]
    )
    assert result.exit_code == 2 and result.output.strip() == "error: init_noise_std must be > 0, got 0.0"
    assert not (tmp_path / "ft").exists()


@pytest.mark.slow
def test_a_trained_policy_demonstrates_what_it_would_do_on_the_arm(tmp_path):
    """`bc collect --policy RUN`: the recorded actions are the commands the arm was sent for the policy's actions on
    the state its sensors report, and a policy reading relative positions (`ee_to_object`) runs the same way."""
    import yaml

    from robosmith.bc.collect import POLICY_ACTION, _run_batch
    from robosmith.contract.observations import sensed_state
    from robosmith.sim2real.dataset import ACTION, UNITS_FILE
    from robosmith.train.policy import Observation, load_policy

    raw = yaml.safe_load((Path(load_task("so101_lift").source)).read_text())
    raw["observations"] = ["joint_pos", "joint_vel", "ee_to_object", "object_quat", "finger_contact", "action"]
    raw["success"] = "s.episode_step >= 0"  # every episode is kept: the test is about what is recorded
    task_file = tmp_path / "lift_rel.yaml"
    task_file.write_text(yaml.safe_dump(raw))
    cli = CliRunner()
    run = tmp_path / "run"
    result = cli.invoke(app, ["train", str(task_file), "--iterations", "1", "--num-envs", "8", "--eval-episodes", "2",
                              "--no-randomize", "--no-progress", "--out", str(run)])
    assert result.exit_code == 0, result.output

    refused = cli.invoke(app, ["bc", "collect", str(task_file), "--policy", str(run), "--perfect"])
    assert refused.exit_code != 0 and "--perfect is a style of the scripted demonstrator" in refused.output
    from robosmith.bc.collect import collect
    from robosmith.train.policy import PolicyError

    with pytest.raises(PolicyError, match="cannot demonstrate: a policy demonstrates as it is, with no style"):
        collect(load_task(task_file), tmp_path / "styled", 1, style=DemoStyle(), policy=run, progress=False)
    assert not (tmp_path / "styled").exists()
    out = tmp_path / "demos"
    result = cli.invoke(app, ["bc", "collect", str(task_file), "--policy", str(run), "--episodes", "3",
                              "--no-images", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    info = json.loads((out / UNITS_FILE).read_text())
    assert info["demonstrator"] == f"rl policy {run}" and info["style"] is None and info["episodes"] == 3
    assert info["action"] == POLICY_ACTION

    # The same batch again, by hand: the policy's action on the sensed state, through the command rules: the
    # command sent, in LeRobot units, not the targets asked (an RL policy asks for the joint limits and back).
    task = load_task(task_file)
    policy = load_policy(run, task)
    episodes = _run_batch(task, DemoStyle(), 2, seed=7, policy=policy)
    env = BatchedEnv(task.scene, env_config(task, 2, 7), task.reset, task.has_goal)
    noise, offset = env.sensing()
    noise_gen = torch.Generator().manual_seed(8)
    s = env.state()
    asked_gap = 0.0
    for t in range(5):
        action = policy.act(Observation(sensed_state(s, noise, noise_gen, offset), {}, torch.from_numpy(env.target)))
        asked = to_lerobot(env.action_map.targets(action, torch.from_numpy(env.target)).float())
        s, _ = env.step(action)
        recorded = np.stack([ep.action[t] for ep in episodes])
        np.testing.assert_allclose(recorded, to_lerobot(torch.from_numpy(env.target).float()), atol=1e-4)
        asked_gap = max(asked_gap, float(np.abs(recorded - asked.numpy()).max()))
    env.close()
    assert asked_gap > 1.0  # degrees: the rules changed what was asked, so the test tells the two apart
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("robosmith/demos", root=out)
    assert ds.num_episodes == 3 and ds.features[ACTION]["shape"] == (6,)

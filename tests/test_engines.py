"""GPU-engine targets: exported packages compile, mjlab trains them on CPU, and both adapters agree."""

from __future__ import annotations

import json
import py_compile
import subprocess
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from robosmith.bc.demonstrator import DemoStyle, ScriptedDemonstrator
from robosmith.engines.check import check_export
from robosmith.engines.export import (
    COMMON_DIR,
    CONTRACT_DIR,
    ISAACLAB_VERSIONS,
    TEMPLATES_DIR,
    ExportOptions,
    export_package,
    export_source,
)
from robosmith.engines.launch import default_mjlab_python, engine_command
from robosmith.execution.worker import run_candidate
from robosmith.reward.load import load_reward
from robosmith.runs import CandidateFolder
from robosmith.sim.batched_env import BatchedEnv, env_config
from robosmith.task import available_tasks, load_task
from robosmith.train.ppo import TrainSettings

HERE = Path(__file__).parent

# Every SimState field of a cube-and-goal task, each weighted per column so a swapped or misread column shows.
# Not finger_force: at the same state MuJoCo Warp's box-box collision makes 1-2 contacts per pad where MuJoCo
# makes 4, and soft contacts push back per contact, so the instantaneous forces differ (README, "mjlab").
ALL_FIELDS_BODY = """
def weighted(value):
    return torch.sum(value * torch.arange(1, value.shape[1] + 1, dtype=value.dtype), dim=-1)


def compute_reward(s):
    components = {"joint_pos": weighted(s.joint_pos), "joint_vel": weighted(s.joint_vel), "ee_pos": weighted(s.ee_pos),
                  "ee_quat": weighted(s.ee_quat), "object_pos": weighted(s.object_pos),
                  "object_quat": weighted(s.object_quat), "object_linvel": weighted(s.object_linvel),
                  "goal_pos": weighted(s.goal_pos), "finger_contact": weighted(s.finger_contact),
                  "action": weighted(s.action), "prev_action": weighted(s.prev_action),
                  "episode_step": s.episode_step.float()}
    return sum(components.values()), components
"""


FLAVOURS = [ExportOptions("mjlab", randomize=True)] + [
    ExportOptions("isaaclab", version, randomize=True) for version in ISAACLAB_VERSIONS
]


@pytest.fixture(scope="session")
def mjlab_python() -> list[str]:
    if not default_mjlab_python().is_file():
        pytest.fail(f"{default_mjlab_python()} is missing: `make mjlab` creates mjlab's venv (make test does)")
    return engine_command("mjlab", None)


@pytest.mark.parametrize("task_name", available_tasks())
@pytest.mark.parametrize("options", FLAVOURS, ids=lambda o: o.flavour)
def test_exported_modules_compile(task_name, options, tmp_path):
    task = load_task(task_name)
    package = export_package(task, task.reference_reward_body(), tmp_path, options)
    modules = sorted(package.rglob("*.py"))
    assert {"env_cfg.py", "adapter.py", "reward.py", "train.py", "__init__.py", "state.py"} <= {m.name for m in modules}
    for module in modules:
        py_compile.compile(str(module), doraise=True)
    assert task.reference_reward_body().strip() in (package / "reward.py").read_text()


@pytest.mark.parametrize("options", FLAVOURS, ids=lambda o: o.flavour)
def test_packages_carry_the_contract_and_the_common_modules_byte_for_byte(options, tmp_path):
    task = load_task("so101_lift")
    package = export_package(task, task.reference_reward_body(), tmp_path, options)
    contract = sorted(CONTRACT_DIR.glob("*.py"))
    assert {p.name for p in contract} >= {"state.py", "observations.py", "actions.py", "metrics.py", "io.py"}
    for source in contract:
        assert (package / "contract" / source.name).read_bytes() == source.read_bytes(), source.name
    for source in sorted(COMMON_DIR.glob("*.py")):
        assert (package / source.name).read_bytes() == source.read_bytes(), source.name
    # The templates hold engine-specific code only: nothing of the contract is written again in them.
    for template in TEMPLATES_DIR.rglob("*.j2"):
        text = template.read_text()
        for mirrored in ("class EpisodeRecorder", "def wilson_interval", "class SimState", "torch.randn",
                         "def write_json", "def record("):
            assert mirrored not in text, f"{template.relative_to(TEMPLATES_DIR)} writes {mirrored!r} again"


@pytest.mark.slow
@pytest.mark.parametrize("task_name", available_tasks())
@pytest.mark.parametrize("options", FLAVOURS, ids=lambda o: o.flavour)
def test_every_engine_name_and_keyword_exists_in_the_engine_source(task_name, options, tmp_path):
    task = load_task(task_name)
    package = export_package(task, task.reference_reward_body(), tmp_path, options)
    for requirement, problems in check_export(package, options.flavour).items():
        assert problems == [], f"{requirement}: " + "\n".join(problems)


# Mistakes of the kinds a template change could make, each in one line of a generated module; among them
# names that exist in one Isaac Lab version only.
MISTAKES = [
    ("mjlab", "env_cfg.py", "use_default_offset=True", "use_default_offsets=True", "argument 'use_default_offsets'"),
    ("mjlab", "env_cfg.py", "mdp.time_out,", "mdp.time_outs,", "mdp.time_outs: no such name"),
    ("mjlab", "env_cfg.py", '"kp_range": (', '"kp_rang": (', "dr.pd_gains takes no argument 'kp_rang'"),
    ("mjlab", "env_cfg.py", "from mjlab.scene import SceneCfg", "from mjlab.scene import SceneCfgs", "no SceneCfgs"),
    ("mjlab", "adapter.py", "robot.data.joint_pos,", "robot.data.joint_position,", ".data.joint_position"),
    ("mjlab", "adapter.py", "env.scene.env_origins\n", "env.scene.env_origin\n", "Scene has no member env_origin"),
    ("mjlab", "adapter.py", "action_manager.prev_action", "action_manager.last_action", "no member last_action"),
    ("mjlab", "rl_cfg.py", "num_steps_per_env=", "steps_per_env=", "no keyword argument 'steps_per_env'"),
    ("isaaclab-2.3", "robot_cfg.py", "effort_limit_sim=", "joint_effort_limit=", "argument 'joint_effort_limit'"),
    ("isaaclab-2.3", "adapter.py", "cube.write_root_pose_to_sim(", "cube.write_root_pose_to_sim_index(",
     "RigidObject has no member write_root_pose_to_sim_index"),
    ("isaaclab-2.3", "env_cfg.py", '"mass_distribution_params"', '"mass_range"', "takes no argument 'mass_range'"),
    ("isaaclab-2.3", "adapter.py", "robot.data.body_link_pos_w", "robot.data.body_link_position_w",
     "ArticulationData has no member body_link_position_w"),
    ("isaaclab-3.0", "robot_cfg.py", "fix_base=True,", "fix_base=True, collider_type='convex_hull',",
     "no keyword argument 'collider_type'"),
    ("isaaclab-3.0", "env_cfg.py", "from isaaclab_physx.physics import PhysxCfg", "from isaaclab.sim import PhysxCfg",
     "isaaclab.sim has no PhysxCfg"),
    ("isaaclab-3.0", "adapter.py", "robot.find_bodies(", "robot.find_body(", "Articulation has no member find_body"),
    ("isaaclab-3.0", "env_cfg.py", "sim_utils.RigidBodyMaterialCfg(", "sim_utils.RigidBodyMaterialCfg(friction=1.0, ",
     "no keyword argument 'friction'"),
    ("isaaclab-3.0", "env_cfg.py", "AssetBaseCfg.InitialStateCfg(", "AssetBaseCfg.InitStateCfg(",
     "AssetBaseCfg has no member InitStateCfg"),
    ("isaaclab-3.0", "adapter.py", "preserve_order=True)", "preserve_orderr=True)", "argument 'preserve_orderr'"),
    ("isaaclab-3.0", "adapter.py", "root_pose=pose", "root_poses=pose", "argument 'root_poses'"),
    ("isaaclab-2.3", "env_cfg.py", 'friction_combine_mode="max"', 'friction_combine_mode="maximum"',
     "friction_combine_mode='maximum'): must be one of"),
    ("mjlab", "env_cfg.py", 'reduce="netforce"', 'reduce="net_force"', "reduce='net_force'): must be one of"),
]


@pytest.mark.slow
@pytest.mark.parametrize("flavour, module, good, bad, expected", MISTAKES, ids=[f"{m[0]}:{m[3]}" for m in MISTAKES])
def test_the_static_check_finds_names_the_engine_does_not_have(flavour, module, good, bad, expected, tmp_path):
    task = load_task("so101_pick_place")
    target, _, version = flavour.partition("-")
    options = ExportOptions(target, version or "3.0", randomize=True)
    package = export_package(task, task.reference_reward_body(), tmp_path, options)
    path = package / module
    assert good in path.read_text()
    path.write_text(path.read_text().replace(good, bad, 1))
    for requirement, problems in check_export(package, flavour).items():
        assert any(expected in p for p in problems), f"{requirement}: {problems}"


def _pick_place_states(n: int = 12) -> dict[str, np.ndarray]:
    """States of the demonstrator's pick-and-place episodes: reaching, pinching, carrying the cube."""
    task = load_task("so101_pick_place")
    env = BatchedEnv(task.scene, env_config(task, n, 3), task.reset, task.has_goal)
    demo = ScriptedDemonstrator(task, env, DemoStyle.perfect(), seed=3)
    s = env.state()
    demo.begin(s)
    snaps: list[dict[str, np.ndarray]] = []
    for step in range(1, 91):
        s, _ = env.step(env.action_for_targets(demo.targets(s)))
        if step % 15 == 0:
            qpos, qvel = env.physical_state()
            snaps.append({
                "qpos": qpos, "qvel": qvel, "action": s.action.numpy(), "prev_action": s.prev_action.numpy(),
                "episode_step": s.episode_step.numpy(), "goal_pos": s.goal_pos.numpy(),
            })
    env.close()
    return {k: np.concatenate([snap[k] for snap in snaps]) for k in snaps[0]}


@pytest.mark.slow
def test_one_reward_body_gives_the_same_values_through_the_cpu_and_mjlab_adapters(mjlab_python, tmp_path):
    task = load_task("so101_pick_place")
    states = _pick_place_states()
    n = states["qpos"].shape[0]
    np.savez(tmp_path / "states.npz", **states)

    # CPU adapter: robosmith's scene put into those states, SimState read from its sensors.
    env = BatchedEnv(task.scene, env_config(task, n, 0), task.reset, task.has_goal)
    home = np.asarray(task.reset.home)
    env.set_state(states["qpos"], states["qvel"], targets=home + task.action_scale * states["action"])
    env.action = torch.as_tensor(states["action"])
    env.prev_action = torch.as_tensor(states["prev_action"])
    env.episode_step = torch.as_tensor(states["episode_step"])
    env.goal_pos = torch.as_tensor(states["goal_pos"])
    cpu_state = env.state()
    env.close()
    assert float(cpu_state.finger_contact.prod(dim=1).sum()) >= 5, "the states should include pinched cubes"

    for name, body in (("reference", task.reference_reward_body()), ("all_fields", ALL_FIELDS_BODY)):
        out_dir = tmp_path / name
        package = export_package(task, body, out_dir, ExportOptions("mjlab"))
        subprocess.run(
            [*mjlab_python, str(HERE / "engines" / "mjlab_reward_on_states.py"), package.name,
             str(tmp_path / "states.npz"), str(out_dir / "out.npz")],
            cwd=out_dir, check=True, capture_output=True, env={"PYTHONPATH": str(out_dir), "PATH": "/usr/bin:/bin"},
        )
        mjlab = np.load(out_dir / "out.npz")
        total, components = load_reward(body)(cpu_state)
        for key, value in components.items():
            np.testing.assert_allclose(mjlab[f"component/{key}"], value.numpy(), rtol=1e-4, atol=2e-4, err_msg=key)
        np.testing.assert_allclose(mjlab["total"], total.numpy(), rtol=1e-4, atol=5e-4)


@pytest.mark.slow
def test_mjlab_trains_an_exported_candidate_and_writes_robosmiths_metrics(mjlab_python, tmp_path):
    """The agent's worker trains a candidate on mjlab (CPU here) and reads it back through our contract."""
    task = load_task("so101_reach")
    folder = tmp_path / "cand_0"
    folder.mkdir()
    body = task.reference_reward_body()
    (folder / "reward.py").write_text(body)
    package = export_package(task, body, folder, ExportOptions("mjlab"))
    settings = TrainSettings.from_task(task, num_envs=8, max_iterations=3, max_minutes=5, eval_episodes=8)
    settings.video_episodes = 1
    CandidateFolder(folder).job.write_text(json.dumps({
        "task": task.to_dict(), "settings": vars(settings), "reward_file": "reward.py", "backend": "mjlab",
        "package": package.name, "engine_command": mjlab_python,
    }))
    result = run_candidate(folder)
    assert result["status"] == "ok", (folder / "traceback.txt").read_text() if result["status"] != "ok" else ""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[-1]["env_steps"] == 3 * 8 * task.train.steps_per_iteration
    assert {f"reward/{t.name}" for t in task.reward} <= set(rows[-1])
    assert all(r["backend"] == "mjlab" and np.isfinite(r["mean_reward"]) for r in rows)
    cpu_keys = {"iteration", "env_steps", "wall_s", "env_steps_per_s", "collect_s", "learn_s", "mean_reward",
                "success_rate", "episode_length", "episode_return", "episodes", "action_std"}
    assert cpu_keys <= set(rows[-1]) and all(r["learn_s"] > 0 and r["collect_s"] > 0 for r in rows)
    evaluation = json.loads((folder / "eval.json").read_text())
    assert evaluation["episodes"] == 8 and 0 <= evaluation["success_rate"] <= 1
    # one evaluation episode replayed in robosmith's visual model: a frame per control step
    assert evaluation["video"] == "eval.mp4"
    assert len(imageio.mimread(folder / "eval.mp4", memtest=False)) == task.episode_length
    assert result["eval_episodes"] == 8 and result["env_steps"] == rows[-1]["env_steps"]
    assert (folder / "checkpoints" / "model.pt").is_file()
    assert json.loads(CandidateFolder(folder).result.read_text())["status"] == "ok"


# ------------------------------------------------------------------------------------- the robot description
def _urdf_link_poses(urdf: Path, q: dict[str, float]) -> dict[str, np.ndarray]:
    """World poses (4x4) of every URDF link at joint angles q: rpy origins, revolute joints about their axes."""
    import xml.etree.ElementTree as ET

    def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
        axis = axis / np.linalg.norm(axis)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k

    joints = {j.find("child").get("link"): j for j in ET.parse(urdf).getroot().findall("joint")}
    poses: dict[str, np.ndarray] = {}

    def pose(link: str) -> np.ndarray:
        if link not in joints:
            return np.eye(4)
        j = joints[link]
        origin = j.find("origin")
        r, p, y = (float(v) for v in origin.get("rpy").split())
        local = np.eye(4)
        local[:3, :3] = rotation(np.array([0, 0, 1.0]), y) @ rotation(np.array([0, 1.0, 0]), p) @ rotation(
            np.array([1.0, 0, 0]), r)
        local[:3, 3] = [float(v) for v in origin.get("xyz").split()]
        world = pose(j.find("parent").get("link")) @ local
        if j.get("type") == "revolute":
            turn = np.eye(4)
            turn[:3, :3] = rotation(np.array([float(v) for v in j.find("axis").get("xyz").split()]), q[j.get("name")])
            world = world @ turn
        return world

    for link in joints:
        poses[link] = pose(link)
    return poses


def test_the_isaac_lab_urdf_and_robosmiths_mjcf_describe_the_same_arm():
    """Isaac Lab imports the URDF, robosmith simulates the MJCF: same joints, limits and link frames."""
    import xml.etree.ElementTree as ET

    import mujoco

    from robosmith.robot.so101 import JOINT_NAMES, load_original_spec, model_path

    urdf = model_path().parent / "so101_new_calib.urdf"
    model = load_original_spec().compile()
    data = mujoco.MjData(model)
    revolute = {j.get("name"): j for j in ET.parse(urdf).getroot().findall("joint") if j.get("type") == "revolute"}
    assert set(revolute) == set(JOINT_NAMES)
    for name in JOINT_NAMES:
        limit = revolute[name].find("limit")
        np.testing.assert_allclose(
            [float(limit.get("lower")), float(limit.get("upper"))], model.joint(name).range, atol=1e-4, err_msg=name
        )
    rng = np.random.default_rng(0)
    for q in [np.zeros(6), *rng.uniform(-1.0, 1.0, size=(4, 6))]:
        data.qpos[:6] = q
        mujoco.mj_forward(model, data)
        poses = _urdf_link_poses(urdf, dict(zip(JOINT_NAMES, q, strict=True)))
        for body, link in (("gripper", "gripper_link"), ("moving_jaw_so101_v1", "moving_jaw_so101_v1_link")):
            np.testing.assert_allclose(poses[link][:3, 3], data.body(body).xpos, atol=1e-5)
            np.testing.assert_allclose(poses[link][:3, :3], data.body(body).xmat.reshape(3, 3), atol=1e-4)


# ------------------------------------------------------------------------------------------ the agent's side
def _fake_isaaclab_sh(tmp_path: Path, version: str) -> Path:
    """A stand-in for isaaclab.sh: answers the version probe, fails any training (no Isaac Sim here)."""
    script = tmp_path / "isaaclab.sh"
    script.write_text(
        "#!/bin/sh\n[ \"$1\" = -p ] && shift\n"
        f"if [ \"$1\" = -c ]; then echo {version}; exit 0; fi\n"
        "echo 'Isaac Sim is not installed here' >&2; exit 3\n"
    )
    script.chmod(0o755)
    return script


@pytest.mark.slow
def test_run_with_the_isaaclab_backend_exports_each_candidate_for_the_installed_version(tmp_path):
    from robosmith.agent.loop import LoopSettings, RewardLoop
    from robosmith.engines.launch import isaaclab_version

    command = engine_command("isaaclab", _fake_isaaclab_sh(tmp_path, "2.3.2"))
    assert command[1] == "-p" and isaaclab_version(command) == "2.3"
    task = load_task("so101_lift")
    settings = LoopSettings(candidates=1, max_iterations=1, backend="isaaclab", engine_python=command[0],
                            isaaclab_version="2.3", baseline=False)
    loop = RewardLoop.create(tmp_path / "run", task, settings, None)
    state = {"iteration": 0, "history": [], "best": None}
    state.update(loop.propose(state))
    state.update(loop.validate(state))
    folder = loop.folder(state["candidates"][0])
    # `robosmith export RUN --candidate 0.0` takes that candidate's body and the run's task
    exported_task, body, label = export_source(str(tmp_path / "run"), "0.0")
    assert exported_task.name == "so101_lift" and body == (folder / "reward_body.py").read_text()
    assert label == "candidate 0.0 of run"
    job = json.loads(CandidateFolder(folder).job.read_text())
    assert job["backend"] == "isaaclab" and job["engine_command"] == command
    package = folder / job["package"]
    assert "AppLauncher" in (package / "train.py").read_text()  # written for 2.3
    assert all(p == [] for p in check_export(package, "isaaclab-2.3").values())
    result = run_candidate(folder)  # the stand-in cannot train: the reason is recorded, nothing raised
    assert result["status"] == "crashed" and "exited with code 3" in result["reason"]
    # A package whose reward module was changed after validation is refused before the engine starts.
    reward = package / "reward.py"
    reward.write_text(reward.read_text() + "\nimport os\n")
    CandidateFolder(folder).result.unlink()
    result = run_candidate(folder)
    assert result["status"] == "crashed" and result["reason"].startswith("RewardRejected: static")


def test_export_cli_checks_and_fails_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from robosmith.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["export", "so101_reach", "--target", "isaaclab", "--isaaclab-version", "3.0",
                             "--out", str(tmp_path / "reach")])
    assert ok.exit_code == 0, ok.output
    assert "checked against isaaclab==3.0.0: OK" in ok.output
    assert (tmp_path / "reach" / "robosmith_so101_reach" / "assets" / "so101_new_calib.urdf").is_file()
    bad = runner.invoke(app, ["export", "so101_reach", "--target", "gazebo", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--target: must be one of mjlab, isaaclab" in bad.output
    missing = runner.invoke(app, ["export", str(tmp_path), "--target", "mjlab", "--candidate", "1.0",
                                  "--out", str(tmp_path / "y")])
    assert missing.exit_code == 2 and "not an agent run" in missing.output
    hostile = tmp_path / "hostile.py"
    hostile.write_text("def compute_reward(s):\n    import os\n    return s.joint_pos.sum(-1), {}\n")
    run_dir = tmp_path / "train_run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"task": load_task("so101_reach").to_dict(),
                                                     "reward_file": "hostile.py"}))
    (run_dir / "hostile.py").write_text(hostile.read_text())
    refused = runner.invoke(app, ["export", str(run_dir), "--target", "mjlab", "--out", str(tmp_path / "z")])
    assert refused.exit_code == 2 and "static check" in refused.output
    assert not (tmp_path / "z").exists()


def test_delta_action_tasks_are_refused_by_name(tmp_path):
    import dataclasses

    from robosmith.engines.export import ExportError

    task = dataclasses.replace(load_task("so101_reach"), action_mode="delta")
    with pytest.raises(ExportError, match="so101_reach: action_mode: .*'delta'"):
        export_package(task, task.reference_reward_body(), tmp_path, ExportOptions("mjlab"))


def test_a_candidate_reading_what_the_engine_lacks_is_rejected_not_the_run(tmp_path):
    from robosmith.agent.loop import LoopSettings, RewardLoop

    command = engine_command("isaaclab", _fake_isaaclab_sh(tmp_path, "2.3.2"))
    settings = LoopSettings(candidates=1, max_iterations=1, backend="isaaclab", engine_python=command[0],
                            isaaclab_version="2.3", baseline=False)
    loop = RewardLoop.create(tmp_path / "run", load_task("so101_lift"), settings, None)
    state = {"iteration": 0, "history": [], "best": None}
    state.update(loop.propose(state))
    folder = loop.folder(state["candidates"][0])
    CandidateFolder(folder).reward_body.write_text(
        "def compute_reward(s):\n    return -torch.sum((s.prev_action - s.prev_prev_action) ** 2, dim=-1), {}\n")
    state.update(loop.validate(state))
    (candidate,) = state["candidates"]
    assert candidate["status"] == "rejected" and "reads s.prev_prev_action" in candidate["reason"]
    assert not CandidateFolder(folder).job.exists()


def test_tasks_reading_the_third_last_action_are_refused_by_name(tmp_path):
    import dataclasses

    from robosmith.engines.export import ExportError

    task = load_task("so101_reach")
    observing = dataclasses.replace(task, observations=(*task.observations, "prev_prev_action"))
    with pytest.raises(ExportError, match="so101_reach: observations: prev_prev_action is kept by the CPU backend"):
        export_package(observing, task.reference_reward_body(), tmp_path, ExportOptions("mjlab"))
    body = "return -torch.sum((s.prev_action - s.prev_prev_action) ** 2, dim=-1), {}"
    with pytest.raises(ExportError, match="so101_reach: reward: reads s.prev_prev_action"):
        export_package(task, body, tmp_path, ExportOptions("isaaclab"))
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_bench_train_measures_both_backends_in_one_run(mjlab_python, tmp_path):
    from typer.testing import CliRunner

    from robosmith.cli import app

    result = CliRunner().invoke(app, ["bench-train", "--task", "so101_reach", "--backends", "cpu,mjlab",
                                      "--num-envs", "8", "--minutes", "0.15", "--eval-episodes", "4",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "bench_train.json").read_text())
    assert [r["backend"] for r in rows] == ["cpu", "mjlab"]
    for r in rows:
        assert r["iterations"] >= 1 and r["env_steps_per_s"] > 0 and r["num_envs"] == 8
        assert r["env_steps"] == r["iterations"] * 8 * load_task("so101_reach").train.steps_per_iteration
    assert rows[1]["env_steps_per_s_ratio_to_cpu"] == round(rows[1]["env_steps_per_s"] / rows[0]["env_steps_per_s"], 3)

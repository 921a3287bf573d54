"""Perception, sim against sim: camera files, the renderer placing a camera as the file says, ChArUco
calibration and location at a hidden pose, the cube from randomized frames, `robosmith perceive`."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from robosmith.cli import app
from robosmith.perception.camera import (
    CameraError,
    CameraModel,
    camera_renderer,
    load_camera,
    nominal_camera,
    save_camera,
    with_camera,
)
from robosmith.perception.charuco import Board, board_in_base
from robosmith.perception.cube import estimator_for
from robosmith.perception.in_the_loop import CameraObserver
from robosmith.perception.synthetic import Look, SyntheticCamera, held_board_views, table_board_views
from robosmith.reward.load import load_reward
from robosmith.sim.render import SceneRenderer
from robosmith.task import load_task
from robosmith.task.load import task_from_dict
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import play_episodes

from .test_robustness import ReachByIK


@pytest.fixture(scope="module")
def lift():
    return load_task("so101_lift")


@pytest.fixture(scope="module")
def nominal(lift) -> CameraModel:
    return nominal_camera(lift.scene)


def _rot(v) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(v, dtype=float))[0]


def _hidden(nominal: CameraModel, seed: int) -> CameraModel:
    """A camera near the scene's own, with intrinsics and a pose nobody told the code under test."""
    rng = np.random.default_rng(seed)
    return CameraModel(640, 480, 520.0, 523.0, 324.0, 235.0).with_pose(
        _rot(rng.normal(0, 0.05, 3)) @ nominal.rotation, np.asarray(nominal.pos) + rng.normal(0, 0.02, 3))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1.0, 1.0))))


def _write(folder, frames) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_camera_file_round_trip_and_bad_files(tmp_path, nominal):
    path = save_camera(nominal, tmp_path / "camera.yaml")
    again = load_camera(path)
    assert again.fx == pytest.approx(nominal.fx) and np.allclose(again.rotation, nominal.rotation)
    pixels = np.array([[100.0, 50.0], [400.0, 300.0]])
    on_table = again.on_plane(pixels, 0.0)
    assert np.allclose(on_table[:, 2], 0.0) and np.allclose(again.project(on_table), pixels, atol=1e-6)

    raw = yaml.safe_load(path.read_text())
    for field, value, said in (("fx", -3, "'fx' must be a positive number"), ("quat", [0, 0, 0, 0], "unit quaternion"),
                               ("pos", [1, 2], "'pos' must be a list of 3"), ("zoom", 2, "unknown field 'zoom'")):
        bad = tmp_path / f"bad_{field}.yaml"
        bad.write_text(yaml.safe_dump({**raw, field: value}))
        with pytest.raises(CameraError, match=said) as e:
            load_camera(bad)
        assert str(bad) in str(e.value) and "\n" not in str(e.value)
    intrinsics = tmp_path / "intrinsics.yaml"
    intrinsics.write_text(yaml.safe_dump({k: v for k, v in raw.items() if k not in ("pos", "quat")}))
    with pytest.raises(CameraError, match="locate the camera first"):
        load_camera(intrinsics)
    assert not load_camera(intrinsics, need_pose=False).located


def test_the_renderer_projects_as_the_camera_file_says(tmp_path, lift, nominal):
    """The cube's rendered pixels against the silhouette the camera model computes, off-centre intrinsics."""
    camera = _hidden(nominal, seed=3)
    renderer = camera_renderer(lift.scene, camera)
    qpos = renderer.model.qpos0.copy()
    cube = int(renderer.model.jnt_qposadr[renderer.model.body("cube").jntadr[0]])
    centre = np.array([0.21, 0.07, lift.scene.cube_size / 2])
    qpos[cube:cube + 3] = centre
    rgb = renderer.render(qpos, None)
    renderer.close()
    mask = (rgb[..., 0].astype(int) - rgb[..., 1]) > 80
    ys, xs = np.nonzero(mask)
    unit = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    corners = centre + unit * lift.scene.cube_size / 2
    hull = cv2.convexHull(camera.project(corners).astype(np.float32))
    m = cv2.moments(hull)
    assert abs(xs.mean() - m["m10"] / m["m00"]) < 0.5 and abs(ys.mean() - m["m01"] / m["m00"]) < 0.5
    assert abs(mask.sum() / m["m00"] - 1) < 0.05
    # The same frame from the uncalibrated scene camera puts the cube elsewhere: the placement matters.
    assert np.linalg.norm(nominal.project(centre) - camera.project(centre)) > 10

    # A task carrying the camera (`--camera FILE`) renders its front camera so at any size, and keeps it
    # through the run's saved config.
    task = task_from_dict(with_camera(lift, camera).to_dict())
    small = SceneRenderer(task.scene, 320, 240)
    rgb = small.render(qpos, None)
    small.close()
    ys, xs = np.nonzero((rgb[..., 0].astype(int) - rgb[..., 1]) > 80)
    expected = (np.array([m["m10"], m["m01"]]) / m["m00"] + 0.5) / 2 - 0.5
    assert np.abs(np.array([xs.mean(), ys.mean()]) - expected).max() < 0.5

    # A photo of the real scene (here: a blue one) replaces the table behind the arm and the cube.
    photo = np.zeros((480, 640, 3), np.uint8)
    photo[..., 2] = 200
    cv2.imwrite(str(tmp_path / "empty.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    composited = SceneRenderer(with_camera(lift, camera, tmp_path / "empty.png").scene, 320, 240)
    over = composited.render(qpos, None)
    composited.close()
    blue = (over[..., 2] == 200) & (over[..., 0] == 0)
    arm_or_cube = (np.abs(rgb.astype(int) - over).sum(axis=-1) == 0) & ~blue
    assert blue.mean() > 0.5 and arm_or_cube.mean() > 0.05
    cube = (rgb[..., 0].astype(int) - rgb[..., 1]) > 80
    assert cube.any() and np.all(over[cube] == rgb[cube])


def test_calibrate_and_locate_a_hidden_camera_from_synthetic_board_frames(tmp_path, lift, nominal):
    camera = _hidden(nominal, seed=7)
    renderer = camera_renderer(lift.scene, camera)
    background = renderer.render(renderer.model.qpos0.copy(), None)
    renderer.close()
    board, rng = Board(), np.random.default_rng(0)
    _write(tmp_path / "calib", held_board_views(background, camera, board, 16, rng))
    rot, pos = board_in_base((0.10, 0.12, 0.0), 0.0)
    _write(tmp_path / "locate", table_board_views(background, camera, board, rot, pos, 3, rng))

    runner = CliRunner()
    result = runner.invoke(app, ["camera", "calibrate", str(tmp_path / "calib"), "--out", str(tmp_path / "intr.yaml")])
    assert result.exit_code == 0, result.output
    intr = str(tmp_path / "intr.yaml")
    intrinsics = load_camera(intr, need_pose=False)
    assert intrinsics.fx == pytest.approx(camera.fx, rel=0.01) and intrinsics.cy == pytest.approx(camera.cy, abs=3)
    result = runner.invoke(app, ["camera", "locate", str(tmp_path / "locate"), "--intrinsics", intr,
                                 "--board-pos", "0.10,0.12,0.0", "--out", str(tmp_path / "camera.yaml")])
    assert result.exit_code == 0, result.output
    located = load_camera(tmp_path / "camera.yaml")
    assert np.linalg.norm(np.asarray(located.pos) - camera.pos) < 0.01  # the target: 1 cm, 1 degree
    assert _angle_deg(located.rotation, camera.rotation) < 1.0
    # A board said to lie 5 cm further along x gives a camera 5 cm further too: the board pose is used.
    result = runner.invoke(app, ["camera", "locate", str(tmp_path / "locate"), "--intrinsics", intr,
                                 "--board-pos", "0.15,0.12,0.0", "--out", str(tmp_path / "moved.yaml")])
    moved = load_camera(tmp_path / "moved.yaml")
    assert np.asarray(moved.pos)[0] - located.pos[0] == pytest.approx(0.05, abs=1e-6)

    result = runner.invoke(app, ["camera", "calibrate", str(tmp_path / "locate"), "--out", str(tmp_path / "x.yaml"),
                                 "--squares", "7by5"])
    assert result.exit_code != 0 and "--squares must look like 7x5" in result.output


def test_cube_from_randomized_frames_and_the_perceive_command(tmp_path, lift, nominal):
    camera = _hidden(nominal, seed=11)
    synthetic = SyntheticCamera(lift, camera, Look(held=0.25))
    rng = np.random.default_rng(5)
    frames = [synthetic.frame(rng) for _ in range(30)]
    synthetic.close()
    estimator = estimator_for(lift, camera)
    errors, missed = [], 0
    for f in frames:
        if f.visible < 0.5:
            continue
        e = estimator.estimate(f.rgb, f.tool_pos)
        if not e.found:
            missed += 1
            continue
        errors.append(np.linalg.norm(np.asarray(e.pos) - f.cube_pos))
    assert len(errors) >= 20 and missed == 0
    assert np.median(errors) < 0.005 and max(errors) < 0.02
    # Without the arm's joints a held cube is taken to lie on the table: the tool point is what tells them apart.
    held = next(f for f in frames if f.cube_pos[2] > 0.04 and f.visible > 0.8)
    assert np.linalg.norm(np.asarray(estimator.estimate(held.rgb).pos) - held.cube_pos) > 0.02

    camera_file = save_camera(camera, tmp_path / "camera.yaml")
    empty = frames[0].rgb.copy()
    empty[estimator.mask(empty) > 0] = (120, 120, 120)  # the cube painted over: nothing to find
    on_table = [f for f in frames if f.cube_pos[2] < 0.02 and f.visible > 0.9][:2]
    _write(tmp_path / "images", [f.rgb for f in on_table] + [empty])
    result = CliRunner().invoke(app, ["perceive", str(tmp_path / "images"), "--camera", str(camera_file), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)["images"]
    assert [r["found"] for r in out] == [True, True, False]
    for r, f in zip(out, on_table, strict=False):
        assert np.linalg.norm(np.asarray(r["pos"]) - f.cube_pos) < 0.005
        assert abs((r["yaw"] - f.cube_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4) < np.radians(10)


@pytest.mark.slow
def test_perceived_cube_reaches_the_policy_and_a_wrong_calibration_shows(lift, nominal):
    task = dataclasses.replace(lift, episode_length=25)
    wrong = nominal.with_pose(nominal.rotation, np.asarray(nominal.pos) + (0.03, 0.0, 0.0))
    misses = {}
    for name, actual in (("calibrated", None), ("off by 3 cm", wrong)):
        env = TaskEnv(task, load_reward(task.reference_reward_body()), 2, seed=3, auto_reset=False)
        observer = CameraObserver(task, nominal, seed=0, actual=actual)
        # Reads where the cube is once, then sends the tool 5 cm above it: where it ends up shows what it read.
        play_episodes(env, ReachByIK(task, "object_pos", (0.0, 0.0, 0.05)), progress=False, observe=observer)
        figures = observer.figures()
        observer.close()
        tool, cube = env.state.ee_pos.numpy(), env.state.object_pos.numpy()
        misses[name] = np.linalg.norm(tool[:, :2] - cube[:, :2], axis=1).max()
        if actual is None:
            assert figures["found_share"] > 0.95 and figures["median_mm"] < 6
        else:
            assert figures["median_mm"] > 20
        env.close()
    assert misses["calibrated"] < 0.02 < misses["off by 3 cm"]

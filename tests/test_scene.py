"""The task scenes keep the SO-101 description's kinematics, joints and limits, and the gripper really grasps."""

import mujoco
import numpy as np
import pytest
import torch

from robosmith.robot.ik import solve_ik, top_down_quat
from robosmith.robot.so101 import GRIPPER_BODY, JOINT_NAMES, load_original_spec
from robosmith.sim.batched_env import BatchedEnv, EnvConfig
from robosmith.sim.scene import compile_scene
from robosmith.task.spec import ResetConfig, SceneConfig

LEROBOT_SO101_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


@pytest.mark.parametrize("visual", [False, True])
def test_forward_kinematics_match_the_original_model(visual):
    original = load_original_spec().compile()
    scene = compile_scene(SceneConfig(cube=True), visual=visual)
    d_orig, d_scene = mujoco.MjData(original), mujoco.MjData(scene)
    rng = np.random.default_rng(0)
    bodies = [original.body(i).name for i in range(1, original.nbody)]
    for _ in range(50):
        q = np.array([rng.uniform(*original.joint(j).range) for j in JOINT_NAMES])
        for model, data in ((original, d_orig), (scene, d_scene)):
            for j, value in zip(JOINT_NAMES, q, strict=True):
                data.qpos[model.joint(j).qposadr[0]] = value
            mujoco.mj_kinematics(model, data)
        for name in bodies:
            np.testing.assert_allclose(d_scene.body(name).xpos, d_orig.body(name).xpos, atol=1e-9)
            np.testing.assert_allclose(np.abs(d_scene.body(name).xquat @ d_orig.body(name).xquat), 1.0, atol=1e-9)


def test_joint_names_order_and_limits_are_lerobots():
    original = load_original_spec().compile()
    scene = compile_scene(SceneConfig())
    assert JOINT_NAMES == LEROBOT_SO101_JOINTS
    assert [scene.joint(i).name for i in range(6)] == list(JOINT_NAMES)
    assert [scene.actuator(i).name for i in range(scene.nu)] == list(JOINT_NAMES)
    for j in JOINT_NAMES:
        np.testing.assert_allclose(scene.joint(j).range, original.joint(j).range)


def test_physics_model_has_no_meshes_and_cheap_collisions():
    scene = compile_scene(SceneConfig(cube=True))
    assert scene.nmesh == 0
    collision_types = {int(scene.geom_type[i]) for i in range(scene.ngeom) if scene.geom_contype[i]}
    assert int(mujoco.mjtGeom.mjGEOM_MESH) not in collision_types


def test_scene_has_cameras_and_cube():
    visual = compile_scene(SceneConfig(cube=True, cube_size=0.025), visual=True)
    assert {visual.camera(i).name for i in range(visual.ncam)} == {"front", "wrist"}
    np.testing.assert_allclose(visual.geom("cube").size, [0.0125] * 3)


def test_gripper_grasps_and_lifts_the_cube():
    """A scripted top-down grasp on the training model (pad boxes, position servos) lifts the cube 8 cm."""
    reset = ResetConfig(object_x=(0.24, 0.24), object_y=(0.05, 0.05), object_yaw=(0.3, 0.3), joint_noise=0.0)
    cfg = EnvConfig(num_envs=1, action_mode="absolute", action_scale=1.0, nthread=1)
    env = BatchedEnv(SceneConfig(cube=True), cfg, reset, has_goal=False)
    cube = env.state().object_pos[0].numpy().astype(float)
    q = env.home.copy()

    def hold(pos, gripper, steps):
        nonlocal q
        q, _ = solve_ik(env.model, np.asarray(pos, float), top_down_quat(0.3), q)
        q[5] = gripper
        for _ in range(steps):
            state, _ = env.step(torch.as_tensor(q - env.home, dtype=torch.float32)[None])
        return state

    hold(cube + [0, 0, 0.08], 1.2, 40)  # above, jaws open
    hold(cube, 1.2, 30)  # down around the cube
    grasped = hold(cube, -0.1, 20)  # close
    assert grasped.finger_contact[0].tolist() == [1.0, 1.0]
    lifted = hold(cube + [0, 0, 0.10], -0.1, 40)
    assert lifted.object_pos[0, 2] > cube[2] + 0.08
    assert torch.norm(lifted.object_pos[0] - lifted.ee_pos[0]) < 0.02  # still between the pads
    assert env.model.body(GRIPPER_BODY).id > 0

"""The batched CPU backend: shapes, partial resets, per-environment physics, actions, exploding physics."""

import numpy as np
import pytest
import torch

from robosmith.contract.state import FIELD_DOCS
from robosmith.sim.batched_env import BatchedEnv, EnvConfig
from robosmith.task import load_task
from robosmith.task.spec import ResetConfig, SceneConfig


def make_env(num_envs=4, cube=True, **cfg):
    cfg.setdefault("nthread", 2)
    return BatchedEnv(SceneConfig(cube=cube), EnvConfig(num_envs=num_envs, **cfg), ResetConfig(), has_goal=True)


def test_state_shapes_follow_the_contract():
    env = make_env(5)
    s, unstable = env.step(torch.zeros(5, 6))
    for name in s.present_fields():
        assert getattr(s, name).shape == (5, *FIELD_DOCS[name][0]), name
        assert getattr(s, name).dtype in (torch.float32, torch.int64)
    assert unstable.shape == (5,) and not unstable.any()
    np.testing.assert_allclose(torch.norm(s.ee_quat, dim=1), 1.0, atol=1e-5)


def test_the_state_holds_the_last_three_actions_newest_first_and_a_reset_clears_them():
    env = make_env(3)
    actions = [torch.full((3, 6), v) for v in (0.1, -0.2, 0.3, 0.4)]
    for a in actions:
        s, _ = env.step(a)
    assert torch.equal(s.action, actions[3]) and torch.equal(s.prev_action, actions[2])
    assert torch.equal(s.prev_prev_action, actions[1])
    env.reset(np.array([1]))
    s = env.state()
    assert not s.prev_prev_action[1].any() and torch.equal(s.prev_prev_action[0], actions[1][0])


def test_partial_reset_touches_only_the_given_environments():
    env = make_env(4)
    for _ in range(10):
        env.step(torch.ones(4, 6) * 0.5)
    before = env.state()
    env.reset(np.array([1, 3]))
    after = env.state()
    for i in (0, 2):
        assert torch.equal(before.joint_pos[i], after.joint_pos[i])
        assert after.episode_step[i] == 10
    for i in (1, 3):
        assert after.episode_step[i] == 0
        assert not torch.equal(before.object_pos[i], after.object_pos[i])


def test_per_environment_physics_changes_only_that_environment():
    env = make_env(2, action_mode="absolute", action_scale=1.0)
    env.reset(np.array([0, 1]))
    env._state[1] = env._state[0]  # same start in both environments
    env.set_physics({"actuator_kp": np.array([17.8, 3.0])})
    action = torch.tensor([[0.5, 0.5, -0.5, 0.0, 0.0, 0.0]] * 2)
    for _ in range(5):
        s, _ = env.step(action)
    assert torch.norm(s.joint_pos[0] - s.joint_pos[1]) > 0.05
    with pytest.raises(ValueError, match="'warp_drive' is not a physical parameter"):
        env.set_physics({"warp_drive": np.ones(2)})


def test_actions_are_clipped_to_joint_limits_in_both_modes():
    for mode in ("absolute", "delta"):
        env = make_env(2, action_mode=mode, action_scale=5.0)
        for _ in range(3):
            env.step(torch.full((2, 6), 10.0))
        assert (env.target <= env.joint_high + 1e-12).all()
        assert np.allclose(env.target, env.joint_high)


def test_exploding_environment_is_reset_and_counted():
    env = make_env(3)
    nq = env.model.nq
    env._state[1, 1 + nq] = 1e6  # an absurd joint velocity in environment 1
    s, unstable = env.step(torch.zeros(3, 6))
    assert unstable.tolist() == [False, True, False]
    assert env.unstable_resets == 1
    assert s.episode_step.tolist() == [1, 0, 1]
    assert torch.isfinite(s.joint_vel).all() and s.joint_vel.abs().max() < 50


def test_a_coarser_time_step_is_measured_against_the_task_s_own():
    """The same time step gives the same episodes exactly; coarser steps part from them, the more the coarser."""
    from typer.testing import CliRunner

    from robosmith.cli import app
    from robosmith.sim.timestep import compare_timesteps

    task = load_task("so101_lift")
    same = compare_timesteps(task, task.scene.timestep, num_envs=4)
    assert same["joint_error_deg"]["max"] == 0.0 and same["cube_error_mm"]["max"] == 0.0
    finer = compare_timesteps(task, 1 / 180, num_envs=4)
    coarser = compare_timesteps(task, 1 / 120, num_envs=4)
    assert 0.0 < finer["tool_error_mm"]["mean"] < coarser["tool_error_mm"]["mean"]
    assert 0.0 < finer["joint_error_deg"]["mean"] < coarser["joint_error_deg"]["mean"]
    bad = CliRunner().invoke(app, ["bench-timestep", "so101_reach", "--timestep", "0.007"])
    assert bad.exit_code == 2 and "is not a whole number of physics steps" in bad.output

"""SAC (skrl) beside PPO: the same run folder, metrics, checkpoint and policy interface."""

import dataclasses
import json

import pytest
import torch

from robosmith.errors import ConfigError
from robosmith.task import load_task
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import evaluate_run
from robosmith.train.policy import load_policy
from robosmith.train.ppo import TrainSettings, train


def test_sac_run_is_a_policy_like_ppos(tmp_path):
    task = load_task("so101_reach")
    task.train.sac = dataclasses.replace(task.train.sac, batch_size=64, learning_starts=6, hidden_dims=(32, 32))
    settings = TrainSettings.from_task(task, algo="sac", num_envs=8, steps_per_iteration=6, max_iterations=3,
                                       eval_episodes=4)
    assert settings.num_envs == 8 and TrainSettings.from_task(task, algo="sac").num_envs == task.train.sac.num_envs
    last = train(task, task.reference_reward_body(), tmp_path, settings, progress=False, threads=1)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2] and last["env_steps"] == 3 * 6 * 8
    assert "loss/critic" not in rows[0] and all(torch.isfinite(torch.tensor(r["loss/critic"])) for r in rows[1:])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["settings"]["algo"] == "sac" and config["sac"]["hidden_dims"] == [32, 32]

    policy = load_policy(tmp_path, task)  # the loader every command uses (eval, robustness, rapp, deploy)
    env = TaskEnv(task, lambda s: torch.zeros(s.joint_pos.shape[0]), 5, auto_reset=False)
    observation = env.observation(policy.spec)
    first, again = policy.act(observation), policy.act(observation)
    assert first.shape == (5, 6) and torch.equal(first, again) and first.abs().max() <= 1.0
    env.close()
    result = evaluate_run(tmp_path, episodes=4, video_episodes=0, progress=False, threads=1)
    assert result["episodes"] == 4 and result["env_steps"] == last["env_steps"]


def test_unknown_algorithms_and_sac_residuals_are_refused(tmp_path):
    task = load_task("so101_reach")
    with pytest.raises(ConfigError, match="algo 'td3': one of ppo, sac"):
        TrainSettings.from_task(task, algo="td3")
    settings = TrainSettings.from_task(task, algo="sac", max_iterations=1)
    with pytest.raises(ConfigError, match="PPO only"):
        train(task, task.reference_reward_body(), tmp_path, settings, init_policy=lambda ppo: None)

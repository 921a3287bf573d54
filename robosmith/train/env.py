"""A task on the batched simulator, as the vectorized environment rsl-rl trains on.

`TaskEnv` adds to `BatchedEnv` what a task defines: the reward, the success check at the end of each
episode, episode time limits and the policy's observations (built by the contract's code, as on every
backend and on the real arm). An `EpisodeRecorder` keeps the statistics metrics.jsonl and eval.json report,
so the trainer never has to parse anything.
"""

from __future__ import annotations

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from robosmith.contract.metrics import EpisodeRecorder
from robosmith.contract.observations import observation_vector, sensed_state
from robosmith.contract.reward_call import call_reward
from robosmith.contract.state import SimState
from robosmith.reward.load import RewardFn
from robosmith.sim.batched_env import BatchedEnv, env_config
from robosmith.sim.render import SceneRenderer
from robosmith.task.load import eval_success
from robosmith.task.spec import TaskSpec
from robosmith.train.curriculum import Curriculum
from robosmith.train.policy import Observation, PolicySpec
from robosmith.train.widening import Widening


class TaskEnv(VecEnv):
    """N environments of one task with one reward function.

    auto_reset=False leaves finished environments as they are (evaluation runs each environment for
    exactly one episode and reads the final states).
    """

    def __init__(
        self,
        task: TaskSpec,
        reward_fn: RewardFn,
        num_envs: int,
        seed: int = 0,
        auto_reset: bool = True,
        nthread: int = 0,
        randomize: bool = False,
        curriculum: Curriculum | None = None,
        widening: Widening | None = None,
    ) -> None:
        self.task, self.reward_fn, self.auto_reset = task, reward_fn, auto_reset
        self.curriculum, self.widening = curriculum, widening
        cfg = env_config(task, num_envs, seed)
        cfg.nthread = nthread
        randomization = task.domain_randomization if randomize else ()
        self.sim = BatchedEnv(task.scene, cfg, task.reset, task.has_goal, randomization)
        if widening is not None and self.sim.randomizer is not None:
            self.sim.randomizer.width = widening.width
            self.sim.pop_sampled()  # the first worlds drawn again, from the narrowed ranges
            self.sim.reset(np.arange(num_envs))
        self.num_envs = num_envs
        self.num_actions = 6
        self.max_episode_length = task.episode_length
        self.device = "cpu"
        self.cfg = {"task": task.name}
        self.state: SimState = self.sim.state()
        self.noise_gen = torch.Generator().manual_seed(seed + 1)
        self.recorder = EpisodeRecorder(num_envs)
        self._renderers: dict[tuple[int, int], SceneRenderer] = {}

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.sim.episode_step

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.sim.episode_step[:] = value

    # ------------------------------------------------------------------------------------ observations
    def sensed(self, s: SimState) -> SimState:
        """The state as the policy's sensors report it: the task's sensor noise, and the sensor effects
        (noise, calibration offsets) set or randomized per environment."""
        noise: dict[str, float | torch.Tensor] = dict(self.task.obs_noise)
        effect_noise, offset = self.sim.sensing()
        for name, std in effect_noise.items():
            noise[name] = torch.sqrt(std**2 + noise.get(name, 0.0) ** 2)  # independent sources add in variance
        return sensed_state(s, noise, self.noise_gen, offset)

    def observe(self, s: SimState) -> torch.Tensor:
        """The task's observation vector of a state, as the sensors report it."""
        return observation_vector(self.sensed(s), self.task.observations, self.max_episode_length)

    def get_observations(self) -> TensorDict:
        return TensorDict({"policy": self.observe(self.state)}, batch_size=[self.num_envs])

    def observation(self, spec: PolicySpec) -> Observation:
        """What a policy of the interface receives now: the state as the sensors report it and the camera
        images it asks for, rendered at its sizes."""
        images = {camera: self.render(camera, size) for camera, size in spec.cameras.items()}
        return Observation(self.sensed(self.state), images, torch.from_numpy(self.sim.target.copy()))

    def render(self, camera: str, size: tuple[int, int]) -> torch.Tensor:
        """(N, H, W, 3) uint8 images of every environment from one of the scene's cameras."""
        if size not in self._renderers:
            self._renderers[size] = SceneRenderer(self.task.scene, width=size[1], height=size[0])
        renderer, goal = self._renderers[size], self.state.goal_pos
        frames = [renderer.render(self.sim.qpos_of(i), None if goal is None else goal[i].numpy(), camera)
                  for i in range(self.num_envs)]
        return torch.from_numpy(np.stack(frames))

    # --------------------------------------------------------------------------------------------- step
    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        s, unstable = self.sim.step(actions)
        # What training and evaluation measure comes from the state before the reward runs; the reward gets
        # a copy, and a write into it fails the run (robosmith.contract.reward_call).
        time_out = s.episode_step >= self.max_episode_length
        success = eval_success(self.task.success, s)
        reward, components = call_reward(self.reward_fn, s)
        if self.curriculum is not None:
            reward = self.curriculum.reward(reward, components)
            self.curriculum.record(s, time_out & ~unstable, success)
        if self.widening is not None:
            self.widening.record(success, time_out & ~unstable, torch.from_numpy(self.sim.drawn_width))
        reward = self.recorder.record(reward, components, time_out, success, s.episode_step, unstable)
        time_out = time_out & ~unstable
        dones = time_out | unstable
        if self.auto_reset and bool(time_out.any()):
            self.sim.reset(torch.nonzero(time_out).squeeze(1).numpy())
            s = self.sim.state()
        self.state = s
        extras = {"time_outs": time_out.float()}
        return self.get_observations(), reward, dones, extras

    def set_world(self, values: dict) -> None:
        """Give the environments registry values (see `BatchedEnv.set_physics`) and start fresh episodes in that
        world: cube sizes and calibration offsets shape the initial states."""
        if values:
            self.sim.set_physics(values)
        self.sim.reset(np.arange(self.num_envs))
        self.state = self.sim.state()

    def pop_stats(self) -> tuple[int, dict]:
        """(environment steps, statistics) since the last call: a trainer calls it once per iteration, which is
        also when a curriculum may move on to its next stage and widening ranges may grow."""
        steps, summary = self.recorder.steps, self.recorder.summary()
        if self.widening is not None and self.sim.randomizer is not None:
            summary.update(self.widening.end_iteration())
            self.sim.randomizer.width = self.widening.width
        self.recorder.clear()
        if self.curriculum is not None:
            summary.update(self.curriculum.end_iteration())
        sampled = self.sim.pop_sampled()
        if sampled:
            summary["randomization"] = sampled
        return steps, summary

    def close(self) -> None:
        self.sim.close()
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

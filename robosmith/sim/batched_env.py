"""N SO-101 environments stepped together by MuJoCo's native multithreaded rollout.

One `step` is one control period: a single `mujoco.rollout` call advances every environment by all its
physics substeps in C++ threads, with no Python per environment per substep. The result comes back as one
SimState of torch tensors.

Timing note: MuJoCo evaluates sensors at the start of a physics step, so the snapshot read after a control
period is the state one substep (one `timestep`) before the period's end. Every SimState field comes from
that same snapshot, so they agree with each other; the lag is like a small sensor latency.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import mujoco
import mujoco.rollout
import numpy as np
import torch

from robosmith.contract.actions import ActionMap
from robosmith.contract.state import SimState
from robosmith.errors import ConfigError
from robosmith.robot.params import CUBE_BODY, PARAMS, param
from robosmith.robot.so101 import JOINT_NAMES
from robosmith.robot.units import from_lerobot, to_lerobot
from robosmith.sim.command_limits import CommandLimits, joint_limits, model_tool_positions
from robosmith.sim.randomization import Randomizer, sample_statistics
from robosmith.sim.scene import compile_scene
from robosmith.task.spec import DRParam, Range, ResetConfig, SafetyLimits, SceneConfig, TaskSpec

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS
# Beyond these a state is treated as exploded physics and the environment is reset.
MAX_ABS_QVEL = 200.0
MAX_ABS_QPOS = 10.0
# Effects: registry parameters that are no model field; the environment applies them between the policy and the
# physics (delay, action noise, calibration offsets) or between the physics and the policy (sensor noise).
EFFECTS = tuple(name for name, entry in PARAMS.items() if entry.where == "effect")
MAX_DELAY = int(PARAMS["action_delay_steps"].high)


@dataclass
class EnvConfig:
    num_envs: int = 64
    control_hz: float = 30.0
    episode_length: int = 50  # control steps
    action_mode: str = "delta"  # "delta": target += scale * a;  "absolute": target = home + scale * a
    action_scale: float = 0.1  # rad
    obs_noise: dict[str, float] = field(default_factory=dict)  # std per SimState field, policy obs only
    nthread: int = 0  # 0: one per CPU core
    seed: int = 0
    command_limits: SafetyLimits | None = None  # the task's safety rules on every command (None: joint range only)

    def __post_init__(self) -> None:
        if self.num_envs < 1 or self.episode_length < 1:
            raise ConfigError("num_envs and episode_length must be >= 1")


def env_config(task: TaskSpec, num_envs: int, seed: int) -> EnvConfig:
    """The simulator settings of a task."""
    return EnvConfig(
        num_envs=num_envs,
        control_hz=task.control_hz,
        episode_length=task.episode_length,
        action_mode=task.action_mode,
        action_scale=task.action_scale,
        obs_noise=dict(task.obs_noise),
        seed=seed,
        command_limits=task.safety if task.safety.in_simulation else None,
    )


class BatchedEnv:
    """Physics, resets and SimState for N environments. Knows nothing of rewards or policies."""

    def __init__(
        self,
        scene: SceneConfig,
        cfg: EnvConfig,
        reset: ResetConfig,
        has_goal: bool,
        randomization: tuple[DRParam, ...] = (),
    ) -> None:
        self.scene, self.cfg, self.reset_cfg, self.has_goal = scene, cfg, reset, has_goal
        self.model = compile_scene(scene, visual=False)
        self.substeps = round(1.0 / (cfg.control_hz * scene.timestep))
        if self.substeps < 1 or abs(self.substeps * scene.timestep * cfg.control_hz - 1.0) > 1e-6:
            raise ConfigError(
                f"control_hz {cfg.control_hz} is not a whole number of physics steps of {scene.timestep} s"
            )
        n = self.num_envs = cfg.num_envs
        m = self.model
        self.nthread = cfg.nthread or os.cpu_count() or 1
        # One model per environment (the same object until set_physics gives each its own copy).
        self.models: list[mujoco.MjModel] = [m] * n
        self._own_models = False
        self._datas = [mujoco.MjData(m) for _ in range(self.nthread)]
        self._fwd_data = mujoco.MjData(m)
        self._pool = mujoco.rollout.Rollout(nthread=self.nthread) if self.nthread > 1 else None
        self.nstate = mujoco.mj_stateSize(m, STATE_SPEC)
        self._state = np.zeros((n, self.nstate))
        self._sens = np.zeros((n, m.nsensordata))
        self._out_state = np.zeros((n, self.substeps, self.nstate))
        self._out_sens = np.zeros((n, self.substeps, m.nsensordata))
        self._control = np.zeros((n, self.substeps, m.nu))
        self.rng = np.random.default_rng(cfg.seed)
        self.torch_gen = torch.Generator().manual_seed(cfg.seed)

        self.has_object = scene.cube
        self.joint_low = m.jnt_range[: len(JOINT_NAMES), 0].copy()
        self.joint_high = m.jnt_range[: len(JOINT_NAMES), 1].copy()
        self.action_map = ActionMap(cfg.action_mode, cfg.action_scale, tuple(reset.home), tuple(self.joint_low),
                                    tuple(self.joint_high))
        self.home = np.asarray(self.action_map.home)
        self.command_limits = None
        if cfg.command_limits is not None:
            low, high = joint_limits(None, cfg.command_limits.joint_margin)
            self.command_limits = CommandLimits(cfg.command_limits, cfg.control_hz, low, high,
                                                model_tool_positions(), num_arms=n)
        self.target = np.zeros((n, 6))
        self.action = torch.zeros(n, 6)
        self.prev_action = torch.zeros(n, 6)
        self.prev_prev_action = torch.zeros(n, 6)
        self.episode_step = torch.zeros(n, dtype=torch.long)
        self.goal_pos = torch.zeros(n, 3)
        self._sensor_slices = self._index_sensors()
        # The per-joint sensors' columns, gathered by one indexing op per step instead of six slices and a cat.
        self._joint_columns = {
            kind: torch.cat([torch.arange(sl.start, sl.stop)
                             for sl in (self._sensor_slices[f"{j}_{kind}"] for j in JOINT_NAMES)])
            for kind in ("pos", "vel")
        }
        self.unstable_resets = 0
        # Effects per environment, at the registry's defaults (no effect) until set or randomized.
        self.effects = {name: (np.zeros((n, 6)) if PARAMS[name].per_joint else np.zeros(n)) for name in EFFECTS}
        self._sent = np.zeros((MAX_DELAY + 1, n, 6))  # servo targets sent, newest first: the delay line
        self.cube_half = np.full(n, scene.cube_size / 2)
        self.randomizer = Randomizer(randomization, cfg.seed) if randomization else None
        self._sampled: dict[str, list[np.ndarray]] = {p.name: [] for p in randomization}
        self.drawn_width = np.ones(n)  # the randomization width each environment's world was drawn at
        if scene.effects:
            self.set_physics(dict(scene.effects))
        self.reset(np.arange(n))

    # ----------------------------------------------------------------------------------------- physics
    def _index_sensors(self) -> dict[str, slice]:
        m = self.model
        out = {}
        for i in range(m.nsensor):
            adr, dim = int(m.sensor_adr[i]), int(m.sensor_dim[i])
            out[m.sensor(i).name] = slice(adr, adr + dim)
        return out

    def set_physics(self, values: dict[str, object], ids: np.ndarray | None = None) -> None:
        """Give environments their own values of registry parameters: model fields and effects alike.

        A value is one number for every environment or one per environment (k,); for per-joint parameters also
        one per joint (6,) for every environment, or per environment and joint (k, 6) or (k, 1). `ids` names the
        environments (default: all of them).
        """
        ids = np.arange(self.num_envs) if ids is None else np.asarray(ids, dtype=np.int64)
        for name, value in values.items():
            entry = param(name)
            shape = (ids.size, len(JOINT_NAMES)) if entry.per_joint else (ids.size,)
            per_env = np.asarray(value, float)
            if entry.per_joint and per_env.ndim == 1 and per_env.shape[0] != len(JOINT_NAMES):
                per_env = per_env[:, None]  # one per environment; a 1-D array of six is one per joint
            per_env = np.broadcast_to(per_env, shape)
            if entry.where == "effect":
                self.effects[name][ids] = per_env
                continue
            if not self._own_models:
                self.models = [copy.copy(self.model) for _ in range(self.num_envs)]
                self._own_models = True
            for env, v in zip(ids, per_env, strict=True):
                entry.set_model(self.models[env], self.model, v)
            if name == "cube_size":
                self.cube_half[ids] = per_env / 2
        if any(param(name).derived for name in values):
            for env in ids:
                mujoco.mj_setConst(self.models[env], self._fwd_data)

    def pop_sampled(self) -> dict[str, dict[str, float]]:
        """Statistics of the randomized values drawn since the last call (what metrics.jsonl records)."""
        stats = sample_statistics(self._sampled)
        for chunks in self._sampled.values():
            chunks.clear()
        return stats

    def _physics_step(self, control: np.ndarray) -> None:
        self._control[:] = control[:, None, :]  # hold the target through the control period
        kwargs = dict(
            control=self._control,
            nstep=self.substeps,
            state=self._out_state,
            sensordata=self._out_sens,
            skip_checks=True,
        )
        if self._pool is not None:
            self._pool.rollout(self.models, self._datas, self._state, **kwargs)
        else:
            mujoco.rollout.rollout(self.models, self._datas[0], self._state, **kwargs)
        self._state = self._out_state[:, -1].copy()
        self._sens = self._out_sens[:, -1].copy()

    def _unstable(self) -> np.ndarray:
        m = self.model
        qpos = self._state[:, 1 : 1 + m.nq]
        qvel = self._state[:, 1 + m.nq : 1 + m.nq + m.nv]
        finite = np.isfinite(self._state).all(axis=1) & np.isfinite(self._sens).all(axis=1)
        with np.errstate(invalid="ignore"):
            bounded = (np.abs(qvel) < MAX_ABS_QVEL).all(axis=1) & (np.abs(qpos) < MAX_ABS_QPOS).all(axis=1)
        return ~(finite & bounded)

    # ------------------------------------------------------------------------------------------ resets
    def _uniform(self, r: Range, k: int) -> np.ndarray:
        return self.rng.uniform(r[0], r[1], size=k)

    def reset(self, ids: np.ndarray) -> None:
        """Sample new initial states for the given environments and compute their sensors exactly."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        k, rc, m = ids.size, self.reset_cfg, self.model
        if self.randomizer is not None:
            values = self.randomizer.sample(k)
            self.drawn_width[ids] = self.randomizer.width
            self.set_physics(values, ids)
            for name, v in values.items():
                self._sampled[name].append(v)
        qpos = np.zeros((k, m.nq))
        qpos[:, :6] = self.home + self.rng.uniform(-rc.joint_noise, rc.joint_noise, size=(k, 6))
        qpos[:, :6] = np.clip(qpos[:, :6], self.joint_low, self.joint_high)
        if self.has_object:
            adr = m.joint(m.body(CUBE_BODY).jntadr[0]).qposadr[0]
            yaw = self._uniform(rc.object_yaw, k)
            qpos[:, adr] = self._uniform(rc.object_x, k)
            qpos[:, adr + 1] = self._uniform(rc.object_y, k)
            qpos[:, adr + 2] = self.cube_half[ids]
            qpos[:, adr + 3] = np.cos(yaw / 2)
            qpos[:, adr + 6] = np.sin(yaw / 2)
        if self.has_goal:
            goal = np.stack([self._uniform(r, k) for r in (rc.goal_x, rc.goal_y, rc.goal_z)], axis=1)
            if self.has_object and rc.goal_min_distance > 0:
                for _ in range(100):
                    near = np.hypot(*(goal[:, :2] - qpos[:, adr : adr + 2]).T) < rc.goal_min_distance
                    if not near.any():
                        break
                    goal[near, :2] = np.stack([self._uniform(r, int(near.sum())) for r in (rc.goal_x, rc.goal_y)], 1)
                else:
                    raise ConfigError(
                        f"reset.goal_min_distance: {rc.goal_min_distance} m cannot be kept with the goal_x/goal_y "
                        "and object_x/object_y ranges"
                    )
            self.goal_pos[torch.as_tensor(ids)] = torch.as_tensor(goal, dtype=torch.float32)
        self._write_states(ids, qpos, np.zeros((k, m.nv)), qpos[:, :6])
        # The arm reports q + offset, so its first targets are its readings (which send the servos to q).
        self.target[ids] = qpos[:, :6] + self.effects["joint_zero_offset"][ids]
        self._sent[:, ids] = qpos[None, :, :6]
        if self.command_limits is not None:
            self.command_limits.reset(ids, _lerobot(self.target[ids]))
        t_ids = torch.as_tensor(ids)
        self.action[t_ids] = 0.0
        self.prev_action[t_ids] = 0.0
        self.prev_prev_action[t_ids] = 0.0
        self.episode_step[t_ids] = 0

    def _write_states(self, ids: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, ctrl: np.ndarray) -> None:
        d = self._fwd_data
        for row, env in enumerate(ids):
            model = self.models[env]
            mujoco.mj_resetData(model, d)
            d.qpos[:] = qpos[row]
            d.qvel[:] = qvel[row]
            d.ctrl[:] = ctrl[row]
            mujoco.mj_forward(model, d)
            mujoco.mj_getState(model, d, self._state[env], STATE_SPEC)
            self._sens[env] = d.sensordata

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray, targets: np.ndarray | None = None) -> None:
        """Put every environment into a given physical state (N, nq), (N, nv) with servo targets (N, 6) rad
        (default: where the joints are); sensors, contact forces included, are computed exactly.

        Used to compare engines on the same states and to replay recorded states.
        """
        qpos = np.asarray(qpos, float)
        targets = qpos[:, :6] if targets is None else np.asarray(targets, float)
        targets = np.clip(targets, self.joint_low, self.joint_high)
        # What the servos hold: the targets through the calibration error, as every later step sends them.
        servo = np.clip(targets - self.effects["joint_zero_offset"], self.joint_low, self.joint_high)
        self._write_states(np.arange(self.num_envs), qpos, np.asarray(qvel, float), servo)
        self.target[:] = targets
        self._sent[:] = servo[None]
        if self.command_limits is not None:
            self.command_limits.reset(np.arange(self.num_envs), _lerobot(targets))

    # -------------------------------------------------------------------------------------------- step
    def step(self, action: torch.Tensor) -> tuple[SimState, torch.Tensor]:
        """Apply actions in [-1, 1] for one control period.

        Returns the new state and a bool mask of environments whose physics blew up; those were reset
        already and the returned state holds their fresh initial state.
        """
        a = torch.clamp(action.detach().to(torch.float32), -1.0, 1.0)
        applied = a
        noise = self.effects["action_noise"]
        if noise.any():
            draw = torch.randn(a.shape, generator=self.torch_gen)
            applied = torch.clamp(a + torch.as_tensor(noise, dtype=torch.float32)[:, None] * draw, -1.0, 1.0)
        self.target = self.action_map.targets(applied, torch.from_numpy(self.target)).numpy()
        if self.command_limits is not None:  # what the deploy loop's safety layer would send the arm instead
            sent = self.command_limits.apply(_lerobot(self.target), _lerobot(self.joint_reading()))
            self.target = from_lerobot(torch.from_numpy(sent)).numpy()
        self.prev_prev_action, self.prev_action, self.action = self.prev_action, self.action, a
        return self._advance()

    def step_targets(self, joint_targets: np.ndarray) -> tuple[SimState, torch.Tensor]:
        """One control period with servo targets (N, 6) rad given directly, clipped to the joint limits: how a
        recorded episode's commands are replayed. The same servo path as `step` (offsets, delay) follows."""
        self.target = np.clip(np.asarray(joint_targets, dtype=float), self.joint_low, self.joint_high)
        return self._advance()

    def _advance(self) -> tuple[SimState, torch.Tensor]:
        self._physics_step(self.servo_targets())
        self.episode_step += 1
        unstable = self._unstable()
        if unstable.any():
            self.unstable_resets += int(unstable.sum())
            self.reset(np.flatnonzero(unstable))
        return self.state(), torch.as_tensor(unstable)

    def servo_targets(self) -> np.ndarray:
        """What reaches the servos this control period: the commanded targets through the calibration error
        (the arm is driven to target - offset) and the delay line (the targets of `delay` periods ago)."""
        sent = self.target
        offset, delay = self.effects["joint_zero_offset"], self.effects["action_delay_steps"]
        if offset.any():
            sent = np.clip(sent - offset, self.joint_low, self.joint_high)
        if not delay.any():
            return sent
        self._sent[1:] = self._sent[:-1].copy()
        self._sent[0] = sent
        return self._sent[delay.astype(np.int64), np.arange(self.num_envs)]

    def joint_reading(self) -> np.ndarray:
        """(N, 6) rad: the joint positions the arm reports (through its calibration error), without noise."""
        return self._sens[:, self._joint_columns["pos"].numpy()] + self.effects["joint_zero_offset"]

    def sensing(self) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The sensor effects per environment: noise std per SimState field (N,), and the joint zero offsets
        (N, 6) the arm's readings carry (None: none)."""
        noise = {}
        for name, fieldname in (("joint_pos_noise", "joint_pos"), ("object_pos_noise", "object_pos")):
            if self.effects[name].any():
                noise[fieldname] = torch.as_tensor(self.effects[name], dtype=torch.float32)
        offset = self.effects["joint_zero_offset"]
        return noise, (torch.as_tensor(offset, dtype=torch.float32) if offset.any() else None)

    def action_for_targets(self, joint_targets: np.ndarray) -> torch.Tensor:
        """The actions in [-1, 1] that set the servo targets to `joint_targets` (N, 6) rad, as near as allowed.

        Policies that speak in joint targets (scripted demonstrators, LeRobot policies) drive the env this way.
        """
        return self.action_map.actions_for(torch.as_tensor(joint_targets), torch.from_numpy(self.target))

    def state(self) -> SimState:
        sens = torch.as_tensor(self._sens, dtype=torch.float32)
        sl = self._sensor_slices
        s = SimState(
            joint_pos=sens[:, self._joint_columns["pos"]],
            joint_vel=sens[:, self._joint_columns["vel"]],
            ee_pos=sens[:, sl["ee_pos"]],
            ee_quat=sens[:, sl["ee_quat"]],
            action=self.action.clone(),
            prev_action=self.prev_action.clone(),
            episode_step=self.episode_step.clone(),
            goal_pos=self.goal_pos.clone() if self.has_goal else None,
            prev_prev_action=self.prev_prev_action.clone(),
        )
        if self.has_object:
            s.object_pos = sens[:, sl["object_pos"]]
            s.object_quat = sens[:, sl["object_quat"]]
            s.object_linvel = sens[:, sl["object_linvel"]]
            fixed, moving = sens[:, sl["fixed_jaw_pad_contact"]], sens[:, sl["moving_jaw_pad_contact"]]
            s.finger_contact = torch.stack([fixed[:, 0], moving[:, 0]], dim=1).clamp(max=1.0)
            # The net force, not one contact's: engines split a pad's pinch over different contact points.
            s.finger_force = torch.stack([fixed[:, 1:4].norm(dim=1), moving[:, 1:4].norm(dim=1)], dim=1)
        return s

    # ------------------------------------------------------------------------------ rendering support
    def physical_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(qpos (N, nq), qvel (N, nv)) of every environment: what `set_state` takes back."""
        m = self.model
        return self._state[:, 1 : 1 + m.nq].copy(), self._state[:, 1 + m.nq : 1 + m.nq + m.nv].copy()

    def qpos_of(self, env: int) -> np.ndarray:
        return self._state[env, 1 : 1 + self.model.nq].copy()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _lerobot(joint_rad: np.ndarray) -> np.ndarray:
    return to_lerobot(torch.from_numpy(np.asarray(joint_rad, dtype=np.float64))).numpy()

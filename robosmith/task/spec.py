"""Task specs: what a task is, as typed data. `robosmith.task.load` builds them from YAML and validates them once.

Everything downstream (simulator, trainer, agent, deployment) receives a validated `TaskSpec` and never
re-checks it. Lengths in m, angles in rad, masses in kg, times in s.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robosmith.contract.actions import ActionMap
from robosmith.reward.terms import RewardTerm, terms_to_body
from robosmith.robot.params import ParamError, RobotParams
from robosmith.robot.so101 import joint_limits

Range = tuple[float, float]


@dataclass
class SceneConfig:
    """What stands on the table. Lengths in m, masses in kg."""

    cube: bool = False
    cube_size: float = 0.025  # edge length
    cube_mass: float = 0.03
    cube_friction: float = 1.0
    goal_marker: str = "point"  # "point" (a small sphere), "zone" (a flat disc) or "none"
    goal_radius: float = 0.02
    timestep: float = 1 / 240  # s; 8 physics steps per control step at 30 Hz
    robot: RobotParams = field(default_factory=RobotParams)
    # Effects the arm always has (registry names: lag, calibration offsets, noise), as a robot-params file or
    # system identification gives them; domain randomization, where on, draws over them at each reset.
    effects: dict[str, Any] = field(default_factory=dict)
    # The real front camera (a camera file's fields: width, height, fx, fy, cx, cy, distortion, pos, quat in
    # OpenCV axes): every render of the scene's front camera is placed and projected as it (`--camera FILE`).
    camera: dict[str, Any] | None = None
    # A photo of the real scene from that camera without the arm in front of it (an image file): composited
    # behind the front camera's renders in place of the simulated table (`--background FILE`).
    background: str | None = None

    def __post_init__(self) -> None:
        if self.goal_marker not in ("point", "zone", "none"):
            raise ValueError(f"goal_marker must be point, zone or none, got {self.goal_marker!r}")
        if not 0.01 <= self.cube_size <= 0.06:
            raise ValueError(f"cube_size must be within [0.01, 0.06] m, got {self.cube_size}")
        if not 0.0005 <= self.timestep <= 0.01:
            raise ValueError(f"timestep must be within [0.0005, 0.01] s, got {self.timestep}")
        if self.camera is not None:
            missing = {"width", "height", "fx", "fy", "cx", "cy", "pos", "quat"} - set(self.camera)
            if missing:
                raise ValueError(f"camera lacks {', '.join(sorted(missing))}")


@dataclass
class ResetConfig:
    """Initial-state distribution, sampled uniformly at each reset. Angles in rad, lengths in m."""

    home: tuple[float, ...] = (0.0, -0.4, 0.25, 1.3, 0.0, 0.5)
    joint_noise: float = 0.1
    object_x: Range = (0.2, 0.3)
    object_y: Range = (-0.08, 0.08)
    object_yaw: Range = (-0.5, 0.5)
    goal_x: Range = (0.15, 0.3)
    goal_y: Range = (-0.15, 0.15)
    goal_z: Range = (0.05, 0.25)
    # Horizontal distance the goal keeps from the object; resampled until met (pick-and-place zones that
    # start under the cube would make the task solved before it begins).
    goal_min_distance: float = 0.0


@dataclass
class DRParam:
    """A registry parameter domain randomization varies: its nominal value and the range it is sampled in."""

    name: str
    nominal: float
    low: float
    high: float
    # "uniform", or "log_uniform" for a quantity spanning a decade (a cube of 10-100 g): as many draws between
    # 10 and 30 g as between 30 and 100 g, where uniform draws put four of five above 30 g.
    distribution: str = "uniform"

    def as_dict(self) -> dict:
        """The schema of a task's `domain_randomization` entries and of `--dr` files."""
        out = {"name": self.name, "nominal": self.nominal, "bounds": [self.low, self.high]}
        if self.distribution != "uniform":  # written only when set: files without it read back the same
            out["distribution"] = self.distribution
        return out


@dataclass
class PPOConfig:
    """rsl-rl PPO hyper-parameters (names as rsl-rl's PPO takes them)."""

    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    value_loss_coef: float = 1.0
    entropy_coef: float = 0.005
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    schedule: str = "adaptive"
    desired_kl: float = 0.01
    # The clipped loss stops the gradient of every state whose value moved more than clip_param (0.2, in return
    # units) from the last iteration's: made for rewards of about 1 per step, as reach's. Lift's returns run to
    # hundreds and its task file turns it off (25 min, one core each: clipped 55%, not 71%; README).
    use_clipped_value_loss: bool = True


@dataclass(frozen=True)
class SafetyLimits:
    """What the deploy loop's safety layer allows on the real arm (robosmith.deploy.safety); a task's `safety:`.
    The command rules among them hold in simulation too (robosmith.sim.command_limits, `in_simulation`).

    Joint values are in LeRobot's units (degrees for the five arm joints, 0-100 for the gripper), lengths in m
    in the robot's base frame (the table top is z = 0), times in s.
    """

    joint_margin: float = 3.0  # kept clear of each end of a joint's calibrated range
    # Policies trained in simulation move their targets in jumps (absolute actions: up to ~90 degrees in one
    # step; the servos' own position loop turns them into full-speed moves), so the defaults let such steps
    # through and stop only what no trained policy asks for. Tighten them for a first run on a new arm.
    max_step: float = 90.0  # largest change of a target in one control step, per motor
    max_velocity: float = 2700.0  # per s, of the commanded targets
    max_acceleration: float = 200000.0  # per s², of the commanded targets
    workspace_low: tuple[float, float, float] = (-0.10, -0.40, 0.005)  # box the tool point must stay in
    workspace_high: tuple[float, float, float] = (0.50, 0.40, 0.45)
    gripper_stall_steps: int = 10  # a closing that makes no progress this long is a stall (grasping)
    gripper_stall_squeeze: float = 8.0  # then the target is held this far inside the stalled position at most
    max_temperature: float = 60.0  # °C, read from the bus; over it on two reads in a row the episode stops
    max_load: float = 95.0  # % of the servo's rated torque, read from the bus; sustained over it: stop
    max_load_steps: int = 12  # reads over max_load in a row (every 5th step) before stopping: a stall of 2 s
    stale_observation: float = 0.25  # s without a fresh reading: stop
    max_missed_deadlines: int = 10  # control periods in a row that ran late: stop
    start_speed: float = 30.0  # per s: the slow move to the start pose before each episode
    # The simulator applies the command rules above (joint limits, per-step, velocity, acceleration, workspace,
    # gripper stall) in training and evaluation too, so that policies learn inside the limits the arm enforces.
    in_simulation: bool = True

    def __post_init__(self) -> None:
        for name in ("max_step", "max_velocity", "max_acceleration", "stale_observation", "start_speed"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be above 0")
        if self.joint_margin < 0:
            raise ValueError("joint_margin: must be 0 or more")
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3 or any(
            lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high, strict=True)):
            raise ValueError("workspace_low/workspace_high: three numbers each, low below high")


@dataclass
class SACConfig:
    """skrl SAC hyper-parameters (`robosmith train --algo sac`): off-policy, so fewer environments than PPO and one
    gradient step per control step of all of them."""

    num_envs: int = 64
    hidden_dims: tuple[int, ...] = (128, 128)
    batch_size: int = 1024
    learning_rate: float = 1e-3
    gamma: float = 0.98
    polyak: float = 0.005
    replay_size: int = 1_000_000  # transitions, all environments together
    learning_starts: int = 50  # control steps (of all environments at once) before the first update
    gradient_steps: int = 1  # per control step of all environments
    initial_entropy: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.hidden_dims, list):
            self.hidden_dims = tuple(self.hidden_dims)


@dataclass
class RandomizedTraining:
    """What changes in `train` when the world is randomized (`robosmith train` without `--no-randomize`, the loop's
    randomization phase); None keeps the nominal setting. Many worlds take longer to learn than one: so101_reach
    has 82% training success under its ranges at 4 min where the nominal world passes 95% in 90 s (README)."""

    max_minutes: float | None = None
    # Widening ranges (robosmith.train.widening): training starts in worlds within `widen_from` of each range's
    # width around its nominal value, and the ranges grow by `widen_step` each time training success over the last
    # 10 iterations reaches `widen_at`, up to the whole range. 1.0: the whole range from the start.
    widen_from: float = 1.0
    widen_step: float = 0.1
    widen_at: float = 0.7

    def __post_init__(self) -> None:
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError("max_minutes: must be above 0")
        for name in ("widen_from", "widen_step", "widen_at"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.widen_from < 1.0 and self.widen_step <= 0.0:
            raise ValueError("widen_step: must be above 0 where widen_from is below 1")


@dataclass(frozen=True)
class CurriculumStage:
    """One stage of training the task's own reward in stages (robosmith.train.curriculum): the terms it pays and
    what moves training on to the next stage. The last stage trains the whole reward towards the task's success."""

    name: str
    terms: tuple[str, ...] = ()  # names of the task's reward terms this stage pays; none listed: all of them
    success: str = ""  # the stage's goal, an expression over `s` like the task's success; "": the task's
    advance_at: float | None = None  # the stage's training success (last 10 iterations) that moves on


@dataclass
class TrainDefaults:
    num_envs: int = 256
    steps_per_iteration: int = 24  # control steps each environment collects per PPO update
    max_iterations: int = 300
    max_minutes: float = 5.0
    hidden_dims: tuple[int, ...] = (128, 128)
    init_noise_std: float = 1.0
    eval_episodes: int = 100
    seed: int = 0
    ppo: PPOConfig = field(default_factory=PPOConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    randomized: RandomizedTraining = field(default_factory=RandomizedTraining)
    curriculum: tuple[CurriculumStage, ...] = ()  # stages of the task's own reward; none: the whole reward at once

    def for_world(self, randomize: bool) -> TrainDefaults:
        """These defaults as a run uses them: with `randomized`'s settings where the world is randomized."""
        if not randomize or self.randomized.max_minutes is None:
            return self
        return dataclasses.replace(self, max_minutes=self.randomized.max_minutes)


@dataclass
class TaskSpec:
    name: str
    description: str
    scene: SceneConfig
    episode_length: int
    control_hz: float
    success: str  # expression over SimState `s`, true where an episode has succeeded; checked at its end
    success_target: float  # evaluation success rate at which the task counts as solved
    params: dict[str, float]  # named numbers the task's expressions use as `{name}` (a sentence may set them)
    observations: tuple[str, ...]  # what the policy sees: SimState fields and relative positions, in order
    reward: tuple[RewardTerm, ...]  # the reference reward, written by us
    reset: ResetConfig
    action_mode: str
    action_scale: float
    obs_noise: dict[str, float]
    domain_randomization: tuple[DRParam, ...]
    train: TrainDefaults
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    source: Path | None = None

    @property
    def has_goal(self) -> bool:
        return self.scene.goal_marker != "none"

    def action_map(self) -> ActionMap:
        """How this task's actions become servo targets (the same mapping in simulation and on the arm)."""
        low, high = joint_limits()
        return ActionMap(self.action_mode, self.action_scale, tuple(self.reset.home), low, high)

    def reference_reward_body(self) -> str:
        return terms_to_body(self.reward)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as saved into a run folder; `task_from_dict` reads it back."""
        out = dataclasses.asdict(self)
        out.pop("source")
        out["domain_randomization"] = [p.as_dict() for p in self.domain_randomization]
        return _lists(out)


def _lists(value: Any) -> Any:
    """Tuples to lists, recursively: the dict is then exactly what YAML or JSON would give back."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def with_robot_params(task: TaskSpec, values: dict) -> TaskSpec:
    """The task with a robot-params file applied: robot entries replace the arm's description, scene entries
    the objects' (cube mass, size and friction), effects (lag, calibration offsets, noise) the arm's effects."""
    from robosmith.robot.params import PARAMS, ParamError, robot_params_of

    on_cube = [k for k in values if PARAMS[k].needs_cube]
    if on_cube and not task.scene.cube:
        raise ParamError(f"{', '.join(on_cube)}: {task.name} has no cube")
    scene_values = {k: float(v) for k, v in values.items() if PARAMS[k].where == "scene"}
    effects = {**task.scene.effects, **{k: v for k, v in values.items() if PARAMS[k].where == "effect"}}
    scene = dataclasses.replace(task.scene, robot=robot_params_of(values, task.scene.robot), effects=effects,
                                **scene_values)
    return dataclasses.replace(task, scene=scene, domain_randomization=centred_on(task.domain_randomization, values))


def centred_on(ranges: tuple[DRParam, ...], values: dict) -> tuple[DRParam, ...]:
    """Randomization ranges about an arm as identified: each named range's nominal value becomes the value and its
    bounds grow to hold it, so that ranges which widen as training succeeds start from that arm, not from the task
    file's. A range is one number for all joints: values per joint centre it on their mean."""
    out = []
    for p in ranges:
        if p.name in values:
            v = values[p.name]
            vs = [float(x) for x in v] if isinstance(v, list | tuple) else [float(v)]
            low, high = min(p.low, *vs), max(p.high, *vs)
            if p.distribution == "log_uniform" and low <= 0.0:
                raise ParamError(f"{p.name}: {min(vs):g} lies outside the task's log-uniform range, which holds "
                                 "positive values only")
            # Clamped: the mean of six equal values can come out a rounding step above them.
            p = dataclasses.replace(p, nominal=min(max(math.fsum(vs) / len(vs), low), high), low=low, high=high)
        out.append(p)
    return tuple(out)

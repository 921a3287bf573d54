"""A scripted demonstrator with human-like imperfection, for the cube tasks (lift, pick and place).

It plans joint-space waypoints with inverse kinematics (above the cube, down around it, close, lift, and for
pick and place: carry over the zone, lower, open, retreat) and moves between them with smooth, minimum-jerk
like interpolation, the way a person on a leader arm moves. So that behaviour cloning has something to
learn beyond one perfect trajectory, each episode varies the way people do: speed, a pause now and then,
low-frequency hand tremor, and sometimes a misjudged grasp that misses the cube, noticed when the jaws close
on nothing, followed by a second try.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robosmith.contract.state import SimState
from robosmith.errors import ConfigError
from robosmith.robot.ik import solve_ik, top_down_quat
from robosmith.sim.batched_env import BatchedEnv
from robosmith.task import TaskSpec

GRIPPER_OPEN = 1.2  # rad: wide enough around a 2.5 cm cube
GRIPPER_CLOSED = -0.1  # rad: past contact, so the position servo squeezes
ABOVE = 0.05  # m above the cube before going down
LIFT = 0.09  # m above the table when lifted or carried
PLACE = 0.018  # m: tool height when letting go in the zone (cube centre rests at 0.0125)


@dataclass
class DemoStyle:
    """How much the demonstrations vary; `DemoStyle.perfect()` switches all of it off."""

    speed: tuple[float, float] = (0.85, 1.2)  # multiplier on every segment's duration, drawn per episode
    pause_prob: float = 0.3  # chance that an episode has one pause at a segment boundary
    pause_s: tuple[float, float] = (0.12, 0.4)
    tremor_std: float = 0.01  # rad on the arm joints, low-pass filtered
    tremor_smoothing: float = 0.85  # AR(1) coefficient of the tremor per control step
    fumble_prob: float = 0.2  # chance the first grasp is aimed off the cube
    fumble_offset: tuple[float, float] = (0.015, 0.025)  # m, horizontal
    max_retries: int = 1  # new grasps after the jaws closed on nothing

    @staticmethod
    def perfect() -> DemoStyle:
        return DemoStyle(speed=(1.0, 1.0), pause_prob=0.0, tremor_std=0.0, fumble_prob=0.0)


@dataclass
class _Segment:
    name: str
    target: np.ndarray  # (6,) joint positions at the segment's end
    seconds: float


@dataclass
class _Step:
    """A segment timed in control steps of the task."""

    name: str
    target: np.ndarray
    steps: int


@dataclass
class _Plan:
    segments: list[_Step]
    start: np.ndarray  # joint targets where the current segment began
    index: int = 0
    step: int = 0
    retries: int = 0
    speed: float = 1.0
    tremor: np.ndarray = field(default_factory=lambda: np.zeros(6))


def _grasp_yaw(object_quat: np.ndarray) -> float:
    """Yaw of the cube folded into [-pi/4, pi/4]: a cube looks the same every quarter turn."""
    w, _, _, z = object_quat
    yaw = 2.0 * math.atan2(z, w)
    return (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4


class ScriptedDemonstrator:
    """Joint targets for every environment of a `BatchedEnv` running a cube task, one control step at a time."""

    def __init__(self, task: TaskSpec, env: BatchedEnv, style: DemoStyle, seed: int = 0) -> None:
        if not task.scene.cube:
            raise ConfigError(f"{task.name}: the scripted demonstrator handles cube tasks (lift, pick and place)")
        self.task, self.env, self.style = task, env, style
        self.place = task.has_goal  # a goal zone on the table: carry the cube there and let go
        self.rng = np.random.default_rng(seed)
        self.plans: list[_Plan] = []

    # ------------------------------------------------------------------------------------------ planning
    def _ik(self, pos: np.ndarray, yaw: float, seed_q: np.ndarray, gripper: float, upright: bool = True) -> np.ndarray:
        """Joints that put the tool at `pos`; `upright` also points it straight down, which the arm cannot do
        high above the far half of the workspace (the wrist reaches its limit), so lifting lets it tilt."""
        q, _ = solve_ik(self.env.model, pos, top_down_quat(yaw) if upright else None, seed_q)
        q[5] = gripper
        return q

    def _grasp_segments(
        self, cube: np.ndarray, yaw: float, q: np.ndarray, aim: np.ndarray, goal: np.ndarray | None
    ) -> list[_Segment]:
        """From wherever the arm is: over the cube, down, close, lift (and on to the zone when placing)."""
        above = self._ik(aim + [0, 0, ABOVE], yaw, q, GRIPPER_OPEN)
        down = self._ik(aim, yaw, above, GRIPPER_OPEN)
        closed = down.copy()
        closed[5] = GRIPPER_CLOSED
        lifted = self._ik(np.array([cube[0], cube[1], LIFT]), yaw, closed, GRIPPER_CLOSED, upright=False)
        segments = [
            _Segment("approach", above, 0.64),
            _Segment("descend", down, 0.4),
            _Segment("close", closed, 0.32),
            _Segment("squeeze", closed, 0.12),  # let the jaws settle before judging the grasp
            _Segment("lift", lifted, 0.6),
        ]
        if goal is not None:
            over = self._ik(np.array([goal[0], goal[1], LIFT]), yaw, lifted, GRIPPER_CLOSED, upright=False)
            lowered = self._ik(np.array([goal[0], goal[1], PLACE]), yaw, over, GRIPPER_CLOSED)
            released = lowered.copy()
            released[5] = GRIPPER_OPEN
            retreat = self._ik(np.array([goal[0], goal[1], LIFT]), yaw, released, GRIPPER_OPEN, upright=False)
            segments += [
                _Segment("carry", over, 1),
                _Segment("lower", lowered, 0.48),
                _Segment("release", released, 0.24),
                _Segment("retreat", retreat, 0.4),
            ]
        return segments

    def _goal_of(self, state: SimState, i: int) -> np.ndarray | None:
        return state.goal_pos[i].numpy().astype(float) if self.place and state.goal_pos is not None else None

    def _scaled(self, segments: list[_Segment], speed: float) -> list[_Step]:
        """Segments in control steps at the task's rate, slowed or sped up by `speed`."""
        return [_Step(s.name, s.target, max(2, round(s.seconds * speed * self.task.control_hz))) for s in segments]

    def begin(self, state: SimState) -> None:
        """Plan a fresh episode for every environment (call right after a reset of all of them)."""
        st = self.style
        self.plans = []
        for i in range(self.env.num_envs):
            cube = state.object_pos[i].numpy().astype(float)
            yaw = _grasp_yaw(state.object_quat[i].numpy().astype(float))
            aim = cube.copy()
            if self.rng.random() < st.fumble_prob:
                angle = self.rng.uniform(0, 2 * math.pi)
                aim[:2] += self.rng.uniform(*st.fumble_offset) * np.array([math.cos(angle), math.sin(angle)])
            q = self.env.target[i].copy()
            speed = float(self.rng.uniform(*st.speed))
            segments = self._scaled(self._grasp_segments(cube, yaw, q, aim, self._goal_of(state, i)), speed)
            if self.rng.random() < st.pause_prob:
                at = int(self.rng.integers(0, len(segments)))
                hold = segments[at - 1].target if at > 0 else q
                pause = _Step("pause", hold, round(float(self.rng.uniform(*st.pause_s)) * self.task.control_hz))
                segments.insert(at, pause)
            self.plans.append(_Plan(segments, start=q, speed=speed))

    def _retry(self, i: int, state: SimState) -> None:
        """The jaws closed on nothing: open while rising, so they neither shove nor sweep the cube, then
        (in `_regrasp`, once the arm is clear) grasp again where the cube is by then."""
        plan = self.plans[i]
        q = plan.start  # where the squeeze ended
        yaw = _grasp_yaw(state.object_quat[i].numpy().astype(float))
        reopen = self._ik(state.ee_pos[i].numpy().astype(float) + [0, 0, 0.04], yaw, q, GRIPPER_OPEN)
        plan.segments = self._scaled([_Segment("reopen", reopen, 0.24)], plan.speed)
        plan.start, plan.index, plan.step = q, 0, 0
        plan.retries += 1

    def _regrasp(self, i: int, state: SimState) -> None:
        plan = self.plans[i]
        cube = state.object_pos[i].numpy().astype(float)
        yaw = _grasp_yaw(state.object_quat[i].numpy().astype(float))
        segments = self._grasp_segments(cube, yaw, plan.start, cube, self._goal_of(state, i))
        segments[0].seconds = 0.32  # the arm is already near: a shorter approach
        plan.segments = self._scaled(segments, plan.speed)
        plan.index, plan.step = 0, 0

    # ------------------------------------------------------------------------------------------- acting
    def targets(self, state: SimState) -> np.ndarray:
        """Joint targets (N, 6) rad for this control step; advances every plan by one step."""
        st = self.style
        out = np.zeros((self.env.num_envs, 6))
        for i, plan in enumerate(self.plans):
            if plan.index < len(plan.segments):
                seg = plan.segments[plan.index]
                t = (plan.step + 1) / seg.steps
                smooth = t * t * t * (10 - 15 * t + 6 * t * t)  # minimum-jerk profile
                out[i] = plan.start + (seg.target - plan.start) * smooth
                plan.step += 1
                if plan.step >= seg.steps:
                    plan.start, plan.index, plan.step = seg.target, plan.index + 1, 0
                    missed = float(state.finger_contact[i].min()) < 0.5
                    if seg.name == "squeeze" and missed and plan.retries < st.max_retries:
                        self._retry(i, state)
                    elif seg.name == "reopen":
                        self._regrasp(i, state)
            else:
                out[i] = plan.start  # done: hold
            a = st.tremor_smoothing
            plan.tremor = a * plan.tremor + math.sqrt(1 - a * a) * st.tremor_std * self.rng.standard_normal(6)
            plan.tremor[5] = 0.0
            out[i] += plan.tremor
        return np.clip(out, self.env.joint_low, self.env.joint_high)

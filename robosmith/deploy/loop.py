"""`robosmith deploy`: a policy on an SO-101 through LeRobot's robot interface, every episode recorded and judged.

One loop serves the real arm (LeRobot's `SOFollower` on its serial port), our simulated arm behind the same
interface (`--sim`, and the rehearsal before a real run) and the emulated servos of the tests:

    read the arm (LeRobot units) -> SimState (joints in rad, velocities from the servos, the tool pose by
    forward kinematics, the episode's goal) -> policy.act -> the task's ActionMap -> servo targets ->
    safety layer -> robot.send_action -> the LeRobot dataset (state as read, action as sent)

Fields the real arm cannot measure (the cube's pose, finger contacts) come from the simulator with `--sim`;
on hardware a policy that needs them is refused. Ctrl-C, SIGTERM or any exception: the arm holds where it
is, torque goes off as LeRobot does on disconnect, and the episodes saved so far stay a readable dataset.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from robosmith.contract.io import write_json
from robosmith.contract.metrics import wilson_interval
from robosmith.contract.state import SimState
from robosmith.deploy.report import write_deploy_report
from robosmith.deploy.safety import Intervention, SafetyLayer, SafetyStop
from robosmith.errors import RobosmithError
from robosmith.perception.camera import CameraModel
from robosmith.perception.cube import CubeTracker, tracker_for
from robosmith.perception.in_the_loop import PERCEIVED_FIELDS
from robosmith.robot.kinematics import ToolKinematics
from robosmith.robot.units import LEROBOT_JOINT_NAMES, MotorCalibration, from_lerobot, to_lerobot
from robosmith.sim2real.dataset import ACTION, STATE, UNITS_FILE, image_key, so101_features
from robosmith.task.spec import TaskSpec
from robosmith.train.policy import Observation, Policy, PolicyError

DEPLOY_FILE = "deploy.json"
SAFETY_LOG = "safety.jsonl"
# What no sensor of the arm measures: only a simulator (or, later, the perception estimator) provides them.
SIM_ONLY_FIELDS = ("object_pos", "object_quat", "object_linvel", "finger_contact", "finger_force")
HEALTH_EVERY = 5  # control steps between reads of temperature and load (they change slowly; the bus is shared)
BUS_RETRIES = 3  # a Feetech bus drops a status packet now and then; LeRobot's follower retries its reads too


class DeployError(RobosmithError, ValueError):
    """Bad deploy input (one line)."""


class DeployInterrupted(RobosmithError, KeyboardInterrupt):
    """SIGINT or SIGTERM during a deploy."""


@dataclass(frozen=True)
class DeploySettings:
    episodes: int = 10
    seed: int = 12345  # with --sim, the same initial states as `robosmith eval --seed` of the same policy
    sim: bool = False
    realtime: bool = True  # pace the loop at the task's control rate (off in --sim: as fast as the CPU goes)
    camera_name: str = "front"  # the robot's camera a camera file (`deploy(camera=...)`) describes
    rehearse: bool = True
    yes: bool = False  # confirm the rehearsal without asking


@dataclass
class EpisodeResult:
    episode: int
    success: bool
    steps: int
    interventions: dict[str, int] = field(default_factory=dict)
    stopped_by: str | None = None


# ----------------------------------------------------------------------------------------------- the arm
class Arm:
    """One connected LeRobot robot, in degrees mode whatever it speaks (range mode goes through its calibration)."""

    def __init__(self, robot, calibration: dict[str, MotorCalibration] | None, range_mode: bool) -> None:
        self.robot, self.calibration, self.range_mode = robot, calibration, range_mode
        self.cameras = [k for k, v in robot.observation_features.items() if isinstance(v, tuple)]
        self.last_read = time.monotonic()

    def _to_degrees(self, values: np.ndarray) -> np.ndarray:
        if not self.range_mode:
            return values
        from robosmith.robot.units import range_to_degrees

        return range_to_degrees(torch.as_tensor(values), self.calibration).numpy()

    def _from_degrees(self, values: np.ndarray) -> np.ndarray:
        if not self.range_mode:
            return values
        from robosmith.robot.units import degrees_to_range

        return degrees_to_range(torch.as_tensor(values), self.calibration).numpy()

    def read(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(joints as the robot reports them, the same in degrees mode, camera frames)."""
        obs = self.robot.get_observation()
        raw = np.array([float(obs[k]) for k in LEROBOT_JOINT_NAMES])
        self.last_read = time.monotonic()
        return raw, self._to_degrees(raw), {c: np.asarray(obs[c]) for c in self.cameras if c in obs}

    def send(self, command_degrees: np.ndarray) -> np.ndarray:
        """Send one command; returns what the robot says it sent, in its own units."""
        values = self._from_degrees(command_degrees)
        sent = self.robot.send_action(dict(zip(LEROBOT_JOINT_NAMES, map(float, values), strict=True)))
        return np.array([float(sent[k]) for k in LEROBOT_JOINT_NAMES])

    def velocity(self) -> np.ndarray | None:
        """(6,) rad/s from the servos' velocity registers (None: the robot has none)."""
        if hasattr(self.robot, "joint_velocity"):
            return self.robot.joint_velocity()
        bus = getattr(self.robot, "bus", None)
        if bus is None:
            return None
        ticks = bus.sync_read("Present_Velocity", normalize=False, num_retry=BUS_RETRIES)
        # Raw registers skip LeRobot's normalization, so an inverted motor (drive_mode 1) is turned here.
        sign = np.array([-1.0 if self.calibration and self.calibration[name].drive_mode else 1.0
                         for name in bus.motors])
        return sign * np.array([ticks[name] for name in bus.motors]) * (2 * np.pi / 4096)

    def health(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(temperature °C, load % of rated torque) per servo, when the robot has a bus to ask."""
        bus = getattr(self.robot, "bus", None)
        if bus is None:
            return None, None
        temperature = bus.sync_read("Present_Temperature", normalize=False, num_retry=BUS_RETRIES)
        load = bus.sync_read("Present_Load", normalize=False, num_retry=BUS_RETRIES)
        return (np.array([temperature[m] for m in bus.motors], float),
                np.array([load[m] for m in bus.motors], float) / 10.0)

    def hold(self, layer: SafetyLayer | None = None) -> None:
        """Command the arm to stay where it reads (within the layer's joint limits, which every command keeps)."""
        _, degrees, _ = self.read()
        self.send(degrees if layer is None else np.clip(degrees, layer.low, layer.high))

    def close(self) -> None:
        if self.robot.is_connected:
            self.robot.disconnect()


# --------------------------------------------------------------------------------------- observations
class StateBuilder:
    """A SimState of the one arm from its readings: what a policy of the contract reads on hardware."""

    def __init__(self, task: TaskSpec, sim_robot=None, camera: CameraModel | None = None,
                 camera_name: str = "front") -> None:
        """`camera` (a located camera file) puts the cube's pose from the estimator on the frames of the robot's
        `camera_name` camera into `object_pos` and `object_quat`; otherwise, with `sim_robot`, they are the
        simulator's."""
        self.task, self.sim_robot = task, sim_robot
        self.camera, self.camera_name = camera, camera_name
        self.fk = ToolKinematics()
        self.previous_q: np.ndarray | None = None
        self.tracker: CubeTracker | None = None

    def start_episode(self) -> None:
        self.previous_q = None
        self.tracker = tracker_for(self.task, self.camera) if self.camera is not None else None

    def build(self, degrees: np.ndarray, velocity: np.ndarray | None, actions: list[torch.Tensor], step: int,
              goal: np.ndarray | None, images: dict[str, np.ndarray] | None = None) -> SimState:
        """The state a policy reads this step; `actions`: the policy's last three, newest first."""
        action, prev_action, prev_prev_action = actions
        q = from_lerobot(torch.as_tensor(degrees, dtype=torch.float64)).numpy()
        if velocity is None:  # no velocity registers: finite differences over one control period
            velocity = np.zeros(6) if self.previous_q is None else (q - self.previous_q) * self.task.control_hz
        self.previous_q = q
        pos, quat = self.fk.pose(q)
        row = lambda v: torch.as_tensor(np.asarray(v), dtype=torch.float32)[None]  # noqa: E731
        s = SimState(joint_pos=row(q), joint_vel=row(velocity), ee_pos=row(pos), ee_quat=row(quat),
                     action=action.clone(), prev_action=prev_action.clone(),
                     prev_prev_action=prev_prev_action.clone(),
                     episode_step=torch.tensor([step]), goal_pos=None if goal is None else row(goal))
        if self.sim_robot is not None:
            true = self.sim_robot.sim_state()
            for name in SIM_ONLY_FIELDS:
                if getattr(true, name, None) is not None:
                    setattr(s, name, getattr(true, name).clone())
        if self.tracker is not None:
            frame = (images or {}).get(self.camera_name)
            if frame is None:
                raise DeployError(f"the robot sent no {self.camera_name!r} camera frame; the camera file is for it "
                                  "(--robot.cameras, or --camera-name)")
            self.tracker.see(np.asarray(frame), pos)
            s.object_pos, s.object_quat = row(self.tracker.pos), row(self.tracker.quat)
        return s


def refuse_unmeasurable(policy: Policy, sim: bool, perceived: tuple[str, ...] = ()) -> list[str]:
    """The fields this policy reads that only a simulator has (`perceived` ones come from the camera); on
    hardware any of them is a one-line refusal."""
    needed = [f for f in policy.spec.state_fields if f in SIM_ONLY_FIELDS and f not in perceived]
    if needed and not sim:
        source = (f"the camera gives {', '.join(perceived)}" if perceived
                  else f"{', '.join(PERCEIVED_FIELDS)} need a camera file: --camera FILE")
        raise PolicyError(f"the {policy.spec.kind} policy for {policy.spec.task} reads {', '.join(needed)}, which "
                          f"the real arm cannot measure ({source}); try it with --sim")
    return needed


# ------------------------------------------------------------------------------------------- recording
def dataset_features(arm: Arm) -> dict[str, dict]:
    """What `lerobot-record` writes for an SO-101: joints as read and as sent, camera videos."""
    return so101_features({camera: tuple(arm.robot.observation_features[camera]) for camera in arm.cameras})


class _Signals:
    """SIGINT/SIGTERM stop the deploy at the next control step (so the arm is held and the dataset closed
    between LeRobot's writes, never inside one); while the operator is asked something, at once."""

    def __init__(self) -> None:
        self.asked: str | None = None
        self.waiting = False

    def __enter__(self) -> _Signals:
        def handler(signum, frame):  # noqa: ARG001
            self.asked = signal.Signals(signum).name
            if self.waiting:
                raise DeployInterrupted(f"stopped by {self.asked}")

        self.previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def check(self) -> None:
        if self.asked:
            raise DeployInterrupted(f"stopped by {self.asked}")

    def ask(self, prompt: Callable[[str], str], message: str) -> str:
        self.check()
        self.waiting = True
        try:
            return prompt(message)
        finally:
            self.waiting = False

    def __exit__(self, *exc) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------------------ the episode
def run_episode(arm: Arm, policy: Policy, task: TaskSpec, layer: SafetyLayer, builder: StateBuilder,
                start: np.ndarray | None, goal: np.ndarray | None, realtime: bool,
                on_step: Callable[[np.ndarray, np.ndarray, dict], None] | None = None,
                log: Callable[[int, Intervention], None] | None = None,
                check_stop: Callable[[], None] = lambda: None) -> tuple[int, dict[str, int], str | None]:
    """One episode on `arm`: the slow move to `start` (LeRobot degrees; None: stay), then the policy for the
    task's episode length. Returns (steps, interventions per rule, the rule that stopped it or None)."""
    period, action_map = 1.0 / task.control_hz, task.action_map()
    _, present, _ = arm.read()
    if start is not None and float(np.max(np.abs(start - present))) > 0.5:
        for command in layer.start_path(present, start, task.control_hz):
            arm.send(command)
            if realtime:
                time.sleep(period)
        _, present, _ = arm.read()
    layer.reset(present)
    builder.start_episode()
    policy.reset()
    targets = from_lerobot(torch.as_tensor(present, dtype=torch.float64))[None]
    actions = [torch.zeros(1, 6)] * 3  # the last three, newest first
    counts: dict[str, int] = {}
    deadline, missed = time.monotonic(), 0
    for step in range(task.episode_length):
        check_stop()
        raw, degrees, images = arm.read()
        try:
            if step % HEALTH_EVERY == 0:
                temperature, load = arm.health()
                layer.check_health(temperature, load)
            s = builder.build(degrees, arm.velocity(), actions, step, goal, images)
            frames = {c: torch.as_tensor(images[c])[None] for c in images}
            with torch.inference_mode():
                action = policy.act(Observation(s, frames, targets.float())).float()
            action = torch.where(torch.isfinite(action), action.clamp(-1, 1), action)  # NaN stays for the layer
            actions = [action, *actions[:2]]
            targets = action_map.targets(action, targets)
            wanted = to_lerobot(targets[0]).numpy()
            if not np.isfinite(action.numpy()).all():
                wanted = np.full(6, np.nan)
            command, interventions = layer.filter(wanted, degrees)
            if realtime:  # (a simulated arm waits for us: no reading goes stale)
                layer.check_timing(time.monotonic() - arm.last_read, missed)  # the reading the command is based on
        except SafetyStop as stop:
            if log is not None:
                log(step, Intervention(stop.limit, None, None, None, 0.0))
            arm.hold(layer)
            return step, counts, stop.limit
        for item in interventions:
            counts[item.limit] = counts.get(item.limit, 0) + 1
            if log is not None:
                log(step, item)
        sent = arm.send(command)
        targets = from_lerobot(torch.as_tensor(command, dtype=torch.float64))[None]  # what the servos hold
        if on_step is not None:
            on_step(raw, sent, images)
        if realtime:
            deadline += period
            late = time.monotonic() - deadline
            if late > 0:  # a period ran over: count it, and start the next one now (no catching up in bursts)
                missed, deadline = missed + 1, time.monotonic()
            else:
                missed = 0
                time.sleep(-late)
    return task.episode_length, counts, None


def sim_initial_states(task: TaskSpec, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(qpos, qvel, goal) of each episode: exactly the initial states `robosmith eval --seed` starts from."""
    from robosmith.sim.batched_env import BatchedEnv, env_config

    env = BatchedEnv(task.scene, env_config(task, episodes, seed), task.reset, task.has_goal)
    qpos, qvel = env.physical_state()
    goal = env.goal_pos.numpy().copy() if task.has_goal else None
    env.close()
    return qpos, qvel, goal


def _sampled_goal(task: TaskSpec, rng: np.random.Generator) -> np.ndarray | None:
    if not task.has_goal:
        return None
    rc = task.reset
    return np.array([rng.uniform(*r) for r in (rc.goal_x, rc.goal_y, rc.goal_z)])


def deploy(policy: Policy, task: TaskSpec, robot, out_dir: Path, settings: DeploySettings,
           calibration: dict[str, MotorCalibration] | None = None, range_mode: bool = False,
           judge: Callable[[int], bool] | None = None, prompt: Callable[[str], str] = input,
           progress: bool = True, policy_path: Path | None = None, camera: CameraModel | None = None) -> dict:
    """Run `settings.episodes` episodes of `policy` on `robot` (a LeRobot Robot, connected here) and record them
    as a LeRobot dataset in `out_dir`; writes deploy.json, safety.jsonl and deploy.html there; returns deploy.json.

    `judge(episode)` says whether an episode succeeded (default: the task's success check with --sim, else the
    operator's key); `prompt` asks the operator between episodes (and for the rehearsal's confirmation).
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DeployError(f"{out_dir}: already exists; choose a new --record folder")
    if policy.spec.task != task.name:
        raise DeployError(f"the policy was trained for {policy.spec.task}, not {task.name}")
    perceived = tuple(f for f in PERCEIVED_FIELDS if f in policy.spec.state_fields) if camera is not None else ()
    sim_fields = refuse_unmeasurable(policy, settings.sim, perceived)
    if settings.sim and not hasattr(robot, "sim_state"):
        raise DeployError("--sim needs the simulated arm (robot type robosmith_so101_sim)")
    torch.manual_seed(settings.seed)
    result: dict = {
        "task": task.name, "policy": str(policy_path) if policy_path else None, "kind": policy.spec.kind,
        "robot_type": robot.name, "sim": settings.sim, "seed": settings.seed,
        "privileged_fields": sim_fields, "privileged_source": "simulator" if sim_fields else None,
        "perceived_fields": list(perceived), "camera": settings.camera_name if perceived else None,
        "units": "range" if range_mode else "degrees", "episodes": [], "success_rate": None, "ci95": None,
        "sim_success_rate": None, "rehearsal": None, "interrupted": False, "error": None,
    }
    if not robot.is_connected:
        robot.connect()  # before anything is written: a robot that cannot start leaves no folder behind
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / DEPLOY_FILE, result)
    if settings.rehearse and not settings.sim:
        result["rehearsal"] = rehearse(policy, task, robot, calibration, range_mode, out_dir / "rehearsal")
        write_json(out_dir / DEPLOY_FILE, result)
        if not settings.yes and prompt("run this policy on the arm? [y/N] ").strip().lower() not in ("y", "yes"):
            result["error"] = "not confirmed after the rehearsal"
            write_json(out_dir / DEPLOY_FILE, result)
            robot.disconnect()  # the arm never moved; torque off as LeRobot leaves it
            return result

    arm = Arm(robot, calibration, range_mode)
    layer = SafetyLayer.for_arm(task.safety, task.control_hz, calibration)
    builder = StateBuilder(task, robot if settings.sim else None, camera if perceived else None, settings.camera_name)
    dataset = LeRobotDataset.create(repo_id=f"robosmith/{out_dir.name}", fps=int(round(task.control_hz)),
                                    features=dataset_features(arm), root=out_dir / "dataset",
                                    robot_type=robot.name, use_videos=True)
    write_json(out_dir / "dataset" / UNITS_FILE, {"units": result["units"], "task": task.name})
    safety_log = (out_dir / SAFETY_LOG).open("a")
    if settings.sim:
        qpos, qvel, goals = sim_initial_states(task, settings.episodes, settings.seed)
    rng = np.random.default_rng(settings.seed)
    home = to_lerobot(torch.tensor(task.reset.home, dtype=torch.float64)).numpy()
    bar = tqdm(total=settings.episodes, desc=f"deploy {task.name}", unit="episode", disable=not progress)
    try:
        with _Signals() as signals:
            for ep in range(settings.episodes):
                if settings.sim:
                    goal = None if goals is None else goals[ep]
                    robot.start_episode(qpos[ep], qvel[ep], goal)
                    start = None
                else:
                    reset = f"episode {ep}: reset the scene, then Enter (q: stop) "
                    if ep and signals.ask(prompt, reset).strip() == "q":
                        break
                    goal, start = _sampled_goal(task, rng), home

                def record(raw, sent, images):
                    frame = {STATE: raw.astype(np.float32), ACTION: sent.astype(np.float32),
                             "task": task.description}
                    frame.update({image_key(c): img for c, img in images.items()})
                    dataset.add_frame(frame)

                def log(step, item, ep=ep):
                    safety_log.write(json.dumps({"episode": ep, "step": step, **item.as_dict()}) + "\n")

                steps, counts, stopped = run_episode(arm, policy, task, layer, builder, start, goal,
                                                     settings.realtime, record, log, signals.check)
                safety_log.flush()
                if settings.sim:
                    from robosmith.task.load import eval_success

                    success = bool(eval_success(task.success, robot.sim_state())[0]) and stopped is None
                else:
                    success = bool(judge(ep)) if judge else _ask_success(lambda m: signals.ask(prompt, m), ep)
                recorded = dataset.writer.episode_buffer["size"] >= 2 if dataset.has_pending_frames() else False
                if recorded:
                    dataset.save_episode()
                elif dataset.has_pending_frames():  # stopped at its first step: nothing worth a dataset episode
                    dataset.clear_episode_buffer()
                result["episodes"].append({**EpisodeResult(ep, success, steps, counts, stopped).__dict__,
                                           "recorded": recorded})
                _summarise(result)
                write_json(out_dir / DEPLOY_FILE, result)
                bar.update(1)
                bar.set_postfix(success=f"{result['success_rate']:.2f}")
    except DeployInterrupted as e:
        result["interrupted"] = True
        result["error"] = str(e)
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        bar.close()
        try:
            if robot.is_connected:
                arm.hold(layer)  # stay where it is; torque goes off on disconnect below
        finally:
            arm.close()
            if dataset.has_pending_frames():
                dataset.clear_episode_buffer()  # an episode cut short is not recorded
            dataset.finalize()
            safety_log.close()
            result["sim_success_rate"] = _sim_success_rate(policy_path)
            _summarise(result)
            write_json(out_dir / DEPLOY_FILE, result)
            write_deploy_report(out_dir)
    return result


def _ask_success(prompt: Callable[[str], str], ep: int) -> bool:
    while True:
        answer = prompt(f"episode {ep}: success? [y/n] ").strip().lower()
        if answer in ("y", "n"):
            return answer == "y"


def _summarise(result: dict) -> None:
    n = len(result["episodes"])
    k = sum(e["success"] for e in result["episodes"])
    result["success_rate"] = k / n if n else None
    result["ci95"] = list(wilson_interval(k, n)) if n else None
    result["n"] = n


def _sim_success_rate(policy_path: Path | None) -> float | None:
    """The policy's success in simulation, from its own eval.json (`robosmith eval` / `bc eval`)."""
    from robosmith.compare import CompareError, read_outcome

    if policy_path is None:
        return None
    try:
        outcome = read_outcome(policy_path)
    except CompareError:
        return None
    return outcome.successes / outcome.episodes if outcome.where == "simulation" and outcome.episodes else None


# -------------------------------------------------------------------------------------------- rehearsal
def rehearse(policy: Policy, task: TaskSpec, robot, calibration, range_mode: bool, out_dir: Path) -> dict:
    """The deploy loop against the simulated SO-101 from the arm's measured pose: a video and the safety
    interventions the policy would need. Writes out_dir/rehearsal.mp4 and rehearsal.json."""
    from robosmith.deploy.sim_robot import SimSO101, SimSO101Config
    from robosmith.sim.render import SceneRenderer, write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    if not robot.is_connected:
        robot.connect()
    _, measured, _ = Arm(robot, calibration, range_mode).read()
    sim = SimSO101(SimSO101Config(task=str(task.source or task.name), calibration_dir=out_dir, id="rehearsal"))
    sim.connect()
    qpos, qvel, goals = sim_initial_states(task, 1, 0)
    qpos[0, :6] = from_lerobot(torch.as_tensor(measured, dtype=torch.float64)).numpy()
    sim.start_episode(qpos[0], qvel[0], None if goals is None else goals[0])
    arm = Arm(sim, None, False)
    layer = SafetyLayer.for_arm(task.safety, task.control_hz, calibration)
    builder = StateBuilder(task, sim)
    renderer = SceneRenderer(task.scene)
    goal = None if goals is None else goals[0]
    frames = [renderer.render(sim.qpos(), goal)]
    log: list[dict] = []
    home = to_lerobot(torch.tensor(task.reset.home, dtype=torch.float64)).numpy()
    steps, counts, stopped = run_episode(
        arm, policy, task, layer, builder, home, goal, False,
        on_step=lambda *_: frames.append(renderer.render(sim.qpos(), goal)),
        log=lambda step, item: log.append({"step": step, **item.as_dict()}))
    renderer.close()
    sim.disconnect()
    video = write_video(frames, out_dir / "rehearsal.mp4", fps=task.control_hz)
    summary = {"video": str(video), "steps": steps, "interventions": counts, "stopped_by": stopped,
               "start_pose": measured.tolist()}
    write_json(out_dir / "rehearsal.json", {**summary, "log": log})
    print(f"rehearsal: {steps} steps in simulation, interventions {counts or 'none'}"
          f"{', stopped by ' + stopped if stopped else ''}; video {video}")
    return summary

"""`robosmith bc collect`: demonstrations in simulation, written as a LeRobot dataset (format v3.0).

Episodes run in batches on the batched simulator; only the ones that succeed are kept, as people keep the
good takes when they record with a leader arm. The demonstrator is scripted (inverse kinematics along
minimum-jerk segments, with human-like noise) or a trained policy (`--policy RUN`: an RL run that reads no
camera), which then acts on the state its sensors report, as it would on the arm. Camera frames are rendered
afterwards from the recorded joint and object positions, for the kept episodes only (rendering is the slow part
on a CPU).
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from robosmith.bc.demonstrator import DemoStyle, ScriptedDemonstrator
from robosmith.bc.features import CAMERAS, ENV_STATE, IMAGE_SIZE, camera_renderer, dataset_features, observation_batch
from robosmith.contract.observations import sensed_state
from robosmith.robot.units import degrees_to_range, load_calibration, to_lerobot
from robosmith.runs import write_json
from robosmith.sim.batched_env import BatchedEnv, env_config
from robosmith.sim.render import SceneRenderer

# beside LeRobot's meta/, UNITS_FILE says the units and how the demonstrations were made
from robosmith.sim2real.dataset import ACTION, STATE, UNITS_FILE, image_key
from robosmith.task import TaskSpec, eval_success
from robosmith.train.policy import Observation, Policy, PolicyError, load_policy

# What a dataset's `action` holds (robosmith_collect.json's "action"), by demonstrator.
SCRIPTED_ACTION = "demonstrator targets before the command rules, as lerobot-record stores the leader's positions"
POLICY_ACTION = "the command the arm was sent (the policy's targets through the command rules)"


@dataclass
class _Episode:
    state: np.ndarray  # (T, 6) LeRobot units
    env_state: np.ndarray  # (T, k)
    action: np.ndarray  # (T, 6) LeRobot units: SCRIPTED_ACTION or POLICY_ACTION
    qpos: np.ndarray  # (T, nq) for rendering
    goal: np.ndarray | None  # (3,)


class _StopRequest:
    """Ctrl-C or SIGTERM asks to stop; collection stops between episodes, never inside a write."""

    def __init__(self) -> None:
        self.asked = False

    def __call__(self, signum, frame) -> None:  # noqa: ARG002
        self.asked = True


def collect(
    task: TaskSpec,
    out_dir: Path,
    episodes: int,
    style: DemoStyle | None = None,
    policy: Path | None = None,
    seed: int = 0,
    batch_envs: int = 16,
    with_images: bool = True,
    progress: bool = True,
    image_size: tuple[int, int] = IMAGE_SIZE,
    calibration: Path | None = None,
) -> dict:
    """Record `episodes` successful demonstrations of `task` into a new LeRobot dataset at `out_dir`, made by
    the scripted demonstrator in `style` or by the policy stored at `policy` (one that reads no camera).

    The task's effects (`scene.effects`: lag, noise, calibration offsets, e.g. from --robot-params) act on the
    arm as on a real one: the state recorded is what its sensors report. With `calibration` (a LeRobot
    calibration file) the joints are written in range mode, as LeRobot < 0.5 recorded them; else in degrees.
    """
    from datasets import disable_progress_bars
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # heavy import, only for this command

    # The datasets library draws a bar for every saved episode, which buries ours (and ignores --no-progress).
    disable_progress_bars()

    if out_dir.exists():
        raise FileExistsError(f"{out_dir}: already exists; choose a new --out folder")
    cal = load_calibration(calibration) if calibration else None  # a bad file fails before anything is written
    demonstrator = load_policy(policy, task) if policy is not None else None
    if demonstrator is not None and (style is not None or demonstrator.spec.cameras):
        demonstrator.close()
        why = (f"it reads the cameras {', '.join(demonstrator.spec.cameras)}, which are rendered only after the "
               "episodes" if demonstrator.spec.cameras else "a policy demonstrates as it is, with no style")
        raise PolicyError(f"{policy}: cannot demonstrate: {why}")
    style = style or DemoStyle()
    dataset = LeRobotDataset.create(
        repo_id=repo_id(out_dir),
        fps=int(round(task.control_hz)),
        features=dataset_features(task, image_size if with_images else None),
        root=out_dir,
        robot_type="so101_follower",
        use_videos=True,
    )
    renderer = camera_renderer(task, image_size) if with_images else None
    started = time.monotonic()
    attempts = succeeded = kept = 0
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=episodes, desc=f"collect {task.name}", unit="episode", disable=not progress)
    # Every batch gets its own independent stream, and different --seed values never share episodes.
    batch_seeds = np.random.SeedSequence(seed)
    try:
        while kept < episodes and not stop.asked:
            batch_seed = int(batch_seeds.spawn(1)[0].generate_state(1)[0])
            for ep in _run_batch(task, style, batch_envs, batch_seed, demonstrator):
                if kept >= episodes or stop.asked:
                    break
                attempts += 1
                if ep is None:
                    continue
                succeeded += 1
                _save_episode(dataset, task, ep, renderer, cal)
                kept += 1
                bar.update(1)
                bar.set_postfix(demonstrator_success=f"{succeeded / attempts:.2f}")
            if attempts >= 20 * episodes:
                raise RuntimeError(f"{task.name}: the demonstrator succeeded {kept} times in {attempts} episodes")
        if stop.asked:
            print(f"\nstopped: the dataset keeps the {kept} episodes saved so far")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bar.close()
        dataset.finalize()  # writes the parquet footers: without it nothing saved so far could be read
        if renderer:
            renderer.close()
        if demonstrator is not None:
            demonstrator.close()
    info = {
        "task": task.name,
        "episodes": kept,
        "attempts": attempts,
        "demonstrator_success_rate": succeeded / max(attempts, 1),
        "demonstrator": "scripted" if demonstrator is None else f"{demonstrator.spec.kind} policy {policy}",
        "style": asdict(style) if demonstrator is None else None,
        "seed": seed,
        "with_images": with_images,
        "image_size": list(image_size) if with_images else None,
        "wall_s": round(time.monotonic() - started, 1),
        "units": "range" if cal else "degrees",  # how the joints are written (robosmith gap reads this)
        "action": SCRIPTED_ACTION if demonstrator is None else POLICY_ACTION,
        "effects": {k: list(v) if isinstance(v, tuple) else v for k, v in task.scene.effects.items()},
    }
    write_json(out_dir / UNITS_FILE, info)
    return info


def _run_batch(task: TaskSpec, style: DemoStyle, n: int, seed: int, policy: Policy | None = None
               ) -> list[_Episode | None]:
    """One episode in each of n environments, by the scripted demonstrator or `policy`; the failed ones come
    back as None."""
    env = BatchedEnv(task.scene, env_config(task, n, seed), task.reset, task.has_goal)
    noise, offset = env.sensing()
    noise_gen = torch.Generator().manual_seed(seed + 1)
    s = env.state()
    if policy is None:
        demonstrator = ScriptedDemonstrator(task, env, style, seed=seed)
        demonstrator.begin(s)
    else:
        policy.reset()
    states, env_states, actions, qpos = [], [], [], []
    for _ in range(task.episode_length):
        # What the arm's sensors report, as a policy trained on these demonstrations will see it.
        sensed = sensed_state(s, noise, noise_gen, offset)
        observation = observation_batch(task, sensed)
        states.append(observation[STATE])
        env_states.append(observation[ENV_STATE])
        qpos.append(np.stack([env.qpos_of(i) for i in range(n)]))
        if policy is None:
            targets = torch.as_tensor(demonstrator.targets(s), dtype=torch.float32)
            action = env.action_for_targets(targets)
        else:
            action = policy.act(Observation(sensed, {}, torch.from_numpy(env.target.copy())))
        s, _ = env.step(action)
        if policy is None:
            # The scripted demonstrator's record is what it asked, not what the command rules let through:
            # lerobot-record stores the leader arm's positions. Holding the cube, a person closes the leader fully
            # while the follower stalls on the cube and the stall rule holds its squeeze.
            actions.append(to_lerobot(targets))
        else:
            # An RL policy's ask is no pose: it drives its targets to the joint limits and back (median 58-76 deg
            # from the joints on pick-and-place) and the rules' rate limits make the motion. What it demonstrates
            # is the command the arm was sent.
            actions.append(to_lerobot(torch.from_numpy(env.target)).float())  # a new tensor: no alias of the target
    # An environment whose physics diverged was reset mid-episode (its step count restarted): not a demonstration.
    success = eval_success(task.success, s) & (env.episode_step == task.episode_length)
    env.close()
    stack = lambda xs: torch.stack(xs, dim=1).numpy()  # noqa: E731  (N, T, ...)
    st, es, ac, qp = stack(states), stack(env_states), stack(actions), np.stack(qpos, axis=1)
    goal = s.goal_pos
    return [
        _Episode(st[i], es[i], ac[i], qp[i], None if goal is None else goal[i].numpy()) if bool(success[i]) else None
        for i in range(n)
    ]


def _save_episode(dataset, task: TaskSpec, ep: _Episode, renderer: SceneRenderer | None,
                  calibration: dict | None = None) -> None:
    state, action = ep.state, ep.action
    if calibration:
        state = degrees_to_range(torch.as_tensor(state), calibration).numpy().astype(np.float32)
        action = degrees_to_range(torch.as_tensor(action), calibration).numpy().astype(np.float32)
    for t in range(len(ep.state)):
        frame = {STATE: state[t], ENV_STATE: ep.env_state[t], ACTION: action[t], "task": task.description}
        if renderer:
            for camera in CAMERAS:
                frame[image_key(camera)] = renderer.render(ep.qpos[t], ep.goal, camera)
        dataset.add_frame(frame)
    dataset.save_episode()


def repo_id(root: Path) -> str:
    """The LeRobot repo id of a local dataset folder (never pushed anywhere)."""
    return f"robosmith/{root.name}"


def dataset_info(root: Path) -> dict:
    path = root / UNITS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}

"""Vision in the loop: a policy evaluated in simulation with the cube's pose read from camera frames, as on the
real arm, instead of from the simulator.

Every control step, every environment is rendered from the camera (each episode with its own lighting, table
and cube colours, and its own small error of the camera's pose against the calibration the estimator uses),
degraded like a camera frame, and the estimator's position and yaw replace `object_pos` and `object_quat` in
what the policy reads, through the same `CubeTracker` the deploy loop uses on the real arm. The physics, the
success check and everything else stay the simulator's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from robosmith.perception.camera import CameraError, CameraModel, place
from robosmith.perception.cube import CubeTracker, tracker_for
from robosmith.perception.synthetic import Look, Style, SyntheticCamera, degrade
from robosmith.runs import TrainingRun, write_json
from robosmith.task.spec import TaskSpec
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import evaluate
from robosmith.train.policy import Observation, PolicySpec, RLPolicy

PERCEIVED_FIELDS = ("object_pos", "object_quat")


class CameraObserver:
    """`observe(env, spec)` for `play_episodes`: the environment's observations with the cube as perceived."""

    def __init__(self, task: TaskSpec, camera: CameraModel, seed: int = 0, look: Look | None = None,
                 pose_error_m: float = 0.001, pose_error_deg: float = 0.15, actual: CameraModel | None = None) -> None:
        """`camera` is the calibration the estimator uses; frames come from `actual` (default: the same camera)
        moved by a random error of `pose_error_*` per episode."""
        self.task, self.camera, self.look = task, camera, look or Look(held=0.0)
        self.actual = actual or camera
        self.synthetic = SyntheticCamera(task, camera, self.look)
        self.rng = np.random.default_rng(seed)
        # Per axis, std: the calibration's error as scripts/perception_bench.py measures it (1.4 mm and 0.2 deg
        # on average), a bias that lasts the episode, as the real camera's stays until it is calibrated again.
        self.pose_error = (pose_error_m, np.radians(pose_error_deg))
        self.styles: list[Style] = []
        self.cameras: list[CameraModel] = []
        self.trackers: list[CubeTracker] = []
        self.errors: list[float] = []  # m, of found estimates against the truth

    def _start(self, n: int) -> None:
        """Each environment (one episode each in an evaluation) gets its own look and its own camera error."""
        self.styles = [self.synthetic.draw_style(self.rng) for _ in range(n)]
        pos_err, rot_err = self.pose_error
        actual = self.actual
        self.cameras = [actual.with_pose(cv2.Rodrigues(self.rng.normal(0, rot_err, 3))[0] @ actual.rotation,
                                         np.asarray(actual.pos) + self.rng.normal(0, pos_err, 3))
                        for _ in range(n)]
        self.trackers = [tracker_for(self.task, self.camera) for _ in range(n)]

    def __call__(self, env: TaskEnv, spec: PolicySpec) -> Observation:
        obs = env.observation(spec)
        state = obs.state
        if state.object_pos is None:
            return obs
        n = env.num_envs
        if len(self.styles) != n:
            self._start(n)
        renderer, truth = self.synthetic.renderer, env.state.object_pos.numpy()
        tools = state.ee_pos.numpy()  # on the arm: forward kinematics of the measured joints
        for i in range(n):
            self.synthetic.apply_style(self.styles[i])
            place(renderer, self.cameras[i])
            rgb = degrade(renderer.render(env.sim.qpos_of(i), None), self.rng, self.look)
            tracker = self.trackers[i]
            if tracker.see(rgb, tools[i]).found:
                self.errors.append(float(np.linalg.norm(tracker.pos - truth[i])))
        dtype = state.object_pos.dtype
        perceived = dataclasses.replace(
            state, object_pos=torch.as_tensor(np.stack([t.pos for t in self.trackers]), dtype=dtype),
            object_quat=torch.as_tensor(np.stack([t.quat for t in self.trackers]), dtype=dtype))
        return dataclasses.replace(obs, state=perceived)

    def figures(self) -> dict:
        err = 1000 * np.asarray(self.errors) if self.errors else np.full(1, np.nan)
        frames = sum(t.frames for t in self.trackers)
        return {"frames": frames, "found_share": round(sum(t.found for t in self.trackers) / max(frames, 1), 4),
                "median_mm": round(float(np.median(err)), 2), "p95_mm": round(float(np.percentile(err, 95)), 2)}

    def close(self) -> None:
        self.synthetic.close()


def evaluate_perceived(run_dir: Path, camera: CameraModel, episodes: int = 100, seed: int = 12345,
                       progress: bool = True, threads: int = 0, camera_file: str | None = None) -> dict:
    """The run's policy with true state and with perceived state, the same initial states: eval_perceived.json."""
    folder = TrainingRun(run_dir)
    result: dict = {"episodes": episodes, "seed": seed, "camera": camera_file or "the scene's front camera"}
    for key in ("true_state", "perceived"):
        policy = RLPolicy(run_dir)
        task = policy.task
        if not any(f in policy.spec.state_fields for f in PERCEIVED_FIELDS):
            policy.close()
            raise CameraError(f"{run_dir}: the policy reads no cube pose; nothing to perceive")
        observer = CameraObserver(task, camera, seed) if key == "perceived" else None
        try:
            r = evaluate(policy, task, run_dir, episodes, seed, video_episodes=0, progress=progress,
                         threads=threads, reward_body=policy.reward_body, observe=observer)
        finally:
            if observer:
                result["estimator"] = observer.figures()
                observer.close()
        result["task"] = task.name
        result[key] = {k: r[k] for k in ("success_rate", "ci95", "successes")}
    result["difference"] = round(result["true_state"]["success_rate"] - result["perceived"]["success_rate"], 4)
    write_json(folder.eval_perceived, result)
    return result

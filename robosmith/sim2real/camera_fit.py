"""Fitting a located camera to a recording by aligning the rendered arm with the filmed one.

PnP on a board places the camera as well as the board was placed: a board laid 1 cm off moves the camera by
about as much. Where the arm's joint states are known (a recorded dataset), the arm itself is the target: the
camera pose is moved until the simulated arm's silhouette, rendered at the recorded joints, lies on the arm's
silhouette in the video.

The objective is the symmetric chamfer distance between the two silhouettes' outlines (pixels): the mean
distance from each rendered outline pixel to the nearest filmed one and back. Unlike the overlap (IoU) it keeps
a slope when the silhouettes hardly overlap and does not reward a thin arm for hiding inside a fat mask. It is
minimised over the camera's position and orientation by a pattern search (Hooke and Jeeves: a step each way
along each of the six coordinates, then the sum of the good steps again; the steps halved when none
improves): no gradients through the renderer, and every evaluation is a handful of renders.

What it fixes is what the cube estimator needs: where a pixel meets the table. A sideways shift of the camera
and a turn that brings the image back look almost alike in an arm's silhouette, so the pose itself can stay
off by millimetres along that valley while the table, seen through it, falls into place
(scripts/camera_fit_bench.py measures both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import mujoco
import numpy as np

from robosmith.perception.camera import CameraModel, place
from robosmith.sim2real.dataset import RealDataset
from robosmith.sim2real.video_gap import (
    ArmRenderer,
    check_size,
    episode_frames,
    iou,
    median_background,
    median_sample,
    real_masks,
)
from robosmith.task.spec import SceneConfig

START_STEP_M = 0.008  # a board placed by hand is off by about a centimetre
START_STEP_RAD = np.deg2rad(0.8)
MIN_STEP_M = 0.0002
MAX_EVALUATIONS = 400  # each renders every frame once; the search usually ends on MIN_STEP_M before


@dataclass
class Refinement:
    camera: CameraModel
    chamfer_px_before: float
    chamfer_px_after: float
    iou_before: float
    iou_after: float
    evaluations: int
    frames: int

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(self).items() if k != "camera"}


def boundary(mask: np.ndarray) -> np.ndarray:
    """The silhouette's boundary pixels (bool)."""
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def distance_to(edges: np.ndarray) -> np.ndarray:
    """Per pixel, the distance in pixels to the nearest edge pixel."""
    return cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)


def chamfer(sim_edges: np.ndarray, real_edges: np.ndarray, real_distance: np.ndarray) -> float:
    """Symmetric mean distance between two outlines, each pixel's distance capped at 1/32 of the image width:
    what only one side has (the cube, a cable, a shadow in the filmed mask) costs a constant, not a pull.
    An empty outline costs the cap."""
    cap = sim_edges.shape[1] / 32
    if not sim_edges.any() or not real_edges.any():
        return float(cap)
    forward = np.minimum(real_distance[sim_edges], cap).mean()
    backward = np.minimum(distance_to(sim_edges)[real_edges], cap).mean()
    return float(0.5 * (forward + backward))


def table_error_m(camera: CameraModel, truth: CameraModel, height: float = 0.0125) -> float:
    """Mean distance (m) over the arm's workspace, on the plane of a cube's centre, between where `truth` sees a
    point and where `camera` puts that pixel: the error a cube estimate inherits from the camera file."""
    xs, ys = np.meshgrid(np.linspace(0.10, 0.35, 6), np.linspace(-0.15, 0.15, 7))
    points = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, height)], axis=1)
    return float(np.linalg.norm(camera.on_plane(truth.project(points), height) - points, axis=1).mean())


def perturbed(camera: CameraModel, delta: np.ndarray) -> CameraModel:
    """The camera moved by delta[:3] (m, base frame) and turned by the rotation vector delta[3:] (rad, its own
    axes)."""
    turn = np.zeros(9)
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, delta[3:] / (np.linalg.norm(delta[3:]) or 1.0), float(np.linalg.norm(delta[3:])))
    mujoco.mju_quat2Mat(turn, quat)
    return camera.with_pose(camera.rotation @ turn.reshape(3, 3), np.asarray(camera.pos) + delta[:3])


def refine_camera(arm: ArmRenderer, camera: CameraModel, joints: np.ndarray, filmed: np.ndarray,
                  ignore: np.ndarray | None = None, max_evaluations: int = MAX_EVALUATIONS,
                  progress: Callable[[int, float], None] | None = None) -> Refinement:
    """Move `camera` until the arm rendered at `joints` (N, 6 rad) matches the `filmed` masks (N, H, W bool).

    `ignore` (H, W bool): pixels left out of both masks (where the filmed mask cannot be trusted). `arm` renders
    at the camera's size; its camera is left at the refined pose.
    """
    keep = ~ignore if ignore is not None else np.ones(filmed.shape[1:], bool)
    real_masks = filmed & keep
    real_edges = [boundary(m) for m in real_masks]
    real_distance = [distance_to(e) for e in real_edges]

    def cost(cam: CameraModel) -> tuple[float, np.ndarray]:
        place(arm.renderer, cam)
        masks = np.stack([arm.mask(q) for q in joints]) & keep
        return float(np.mean([chamfer(boundary(m), e, d) for m, e, d in
                              zip(masks, real_edges, real_distance, strict=True)])), masks

    best, best_masks = cost(camera)
    start_cost, start_iou = best, float(iou(best_masks, real_masks).mean())
    steps = np.array([START_STEP_M] * 3 + [START_STEP_RAD] * 3)
    current, evaluations = camera, 1
    while steps[0] >= MIN_STEP_M and evaluations < max_evaluations:
        # Hooke and Jeeves: a step along each coordinate that lowers the cost, then the sum of them once more.
        moved = np.zeros(6)
        for axis in range(6):
            for sign in (1.0, -1.0):
                delta = np.zeros(6)
                delta[axis] = sign * steps[axis]
                trial = perturbed(current, delta)
                value, masks = cost(trial)
                evaluations += 1
                if value < best - 1e-4:
                    best, best_masks, current = value, masks, trial
                    moved += delta
                    break
        if moved.any():
            trial = perturbed(current, moved)
            value, masks = cost(trial)
            evaluations += 1
            if value < best - 1e-4:
                best, best_masks, current = value, masks, trial
        else:
            steps = steps / 2
        if progress:
            progress(evaluations, best)
    place(arm.renderer, current)
    return Refinement(current, start_cost, best, start_iou, float(iou(best_masks, real_masks).mean()), evaluations,
                      len(joints))


def fit_camera_to_dataset(dataset: RealDataset, camera: CameraModel, background: np.ndarray | None = None,
                          frames: int = 12, camera_name: str = "front", max_evaluations: int = MAX_EVALUATIONS,
                          progress: Callable[[int, float], None] | None = None) -> Refinement:
    """`camera` refined on `frames` frames spread over the dataset's episodes (joint states in rad).

    The filmed arm is what differs from `background` (a photo of the scene without the arm); without one, from
    the median of the frames, which is the arm wherever the arm stays half the time: those pixels (as the
    starting camera sees the arm) are left out.
    """
    # `frames` frames in all: a few from each episode, or one from each of `frames` episodes spread over many.
    # Only those episodes' videos are decoded, one at a time, keeping the picked frames and the median's sample.
    n = len(dataset.episodes)
    chosen = sorted({int(k) for k in np.linspace(0, n - 1, min(frames, n))})
    per_episode = max(1, round(frames / len(chosen)))
    images, joints, samples = [], [], []
    for k in chosen:
        ep = dataset.episodes[k]
        video = episode_frames(dataset.root, ep.index, camera_name)
        check_size(dataset.root, video, camera, camera_name)
        for i in np.linspace(0, len(ep.state) - 1, per_episode).astype(int):
            images.append(video[min(i, len(video) - 1)])
            joints.append(ep.state[i])
        samples.append(median_sample(video))
    joints = np.stack(joints)
    arm = ArmRenderer(SceneConfig(), camera)
    try:
        ignore = None
        if background is None:
            background = median_background(samples)
            ignore = np.stack([arm.mask(q) for q in joints]).mean(axis=0) > 0.5
        return refine_camera(arm, camera, joints, real_masks(np.stack(images), background), ignore,
                             max_evaluations, progress)
    finally:
        arm.close()

"""The video gap: a dataset's camera video against the simulator's render of the same recorded joint states.

For each episode: the front camera's frames (decoded from the dataset's video), the simulated arm rendered
from the calibrated camera at every recorded joint state, and
- the arm's silhouette overlap (IoU) per frame: the sim mask from the renderer's segmentation, the real mask
  by background subtraction (a photo of the scene without the arm in front of it, `--background`, else the
  per-pixel median over the episodes' frames; that one is the arm wherever the arm stays half the time, so
  those pixels are left out of both masks);
- the video's lag behind the joint states: the motion in the video (mean optical-flow magnitude per frame)
  cross-correlated with the motion of the render; a camera that lags shows its motion late;
- side-by-side and overlay videos (the sim silhouette's outline drawn over the real frames), and per episode
  its key frame, the one where the silhouettes differ most, as a picture (real | sim | outline) for the critique.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import mujoco
import numpy as np

from robosmith.perception.camera import CameraModel, camera_renderer
from robosmith.robot.params import CUBE_BODY
from robosmith.sim.render import write_video
from robosmith.sim.scene import GOAL_BODY
from robosmith.sim2real.dataset import DatasetError, RealDataset, image_key
from robosmith.task.spec import SceneConfig

MAX_VIDEO_LAG_FRAMES = 10
MEDIAN_FRAMES_PER_EPISODE = 60
DIFF_THRESHOLD = 30  # 8-bit levels (max over channels) that make a pixel differ from the background


def episode_frames(root: Path, episode: int, camera: str = "front") -> np.ndarray:
    """(T, H, W, 3) uint8 frames of one episode's camera video (LeRobot v3: episodes share video files)."""
    import av
    import pyarrow.parquet as pq

    key = image_key(camera)
    metas = sorted((Path(root) / "meta" / "episodes").rglob("*.parquet"))
    columns = ["episode_index", f"videos/{key}/chunk_index", f"videos/{key}/file_index",
               f"videos/{key}/from_timestamp", f"videos/{key}/to_timestamp"]
    for meta in metas:
        table = pq.read_table(meta)
        if columns[1] not in table.column_names:
            raise DatasetError(f"{root}: no {key!r} video (the dataset was recorded without that camera)")
        rows = table.select(columns).to_pydict()
        if episode in rows["episode_index"]:
            i = rows["episode_index"].index(episode)
            chunk, file, start, end = (rows[c][i] for c in columns[1:])
            break
    else:
        raise DatasetError(f"{root}: no episode {episode} in meta/episodes")
    path = Path(root) / "videos" / key / f"chunk-{chunk:03d}" / f"file-{file:03d}.mp4"
    if not path.is_file():
        raise DatasetError(f"{path}: missing (the dataset's videos were not copied?)")
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if start - 1e-3 <= t < end - 1e-3:
                frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def check_size(root: Path, frames: np.ndarray, camera: CameraModel, camera_name: str) -> None:
    """One line if a video's frames are not the size the camera file describes."""
    if frames.shape[1:3] != (camera.height, camera.width):
        raise DatasetError(f"{root}: the {camera_name} video is {frames.shape[2]}x{frames.shape[1]}, the camera file "
                           f"{camera.width}x{camera.height}")


class ArmRenderer:
    """Renders the simulated arm at recorded joint states from a calibrated camera: images and arm masks."""

    def __init__(self, scene: SceneConfig, camera: CameraModel) -> None:
        self.renderer = camera_renderer(scene, camera)
        model = self.renderer.model
        others = {0, model.body(GOAL_BODY).id} | ({model.body(CUBE_BODY).id} if scene.cube else set())
        self.arm_geoms = np.array([g for g in range(model.ngeom) if model.geom_bodyid[g] not in others])
        self.qpos = model.qpos0.copy()
        if scene.cube:  # the recording does not say where the cube was: out of sight, under the table
            adr = int(model.jnt_qposadr[model.body(CUBE_BODY).jntadr[0]])
            self.qpos[adr:adr + 3] = (0.0, 0.0, -1.0)

    def background(self) -> np.ndarray:
        """The scene without the arm: in simulation, what a photo of the empty real scene is for the real arm."""
        model = self.renderer.model
        alpha = model.geom_rgba[self.arm_geoms, 3].copy()
        model.geom_rgba[self.arm_geoms, 3] = 0.0
        try:
            return self.renderer.render(self.qpos, None)
        finally:
            model.geom_rgba[self.arm_geoms, 3] = alpha

    def render(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The image and the arm's mask at these joint positions (rad)."""
        return self.renderer.render(self._qpos(joints), None), self.mask(joints)

    def mask(self, joints: np.ndarray) -> np.ndarray:
        """(H, W) bool: the arm's pixels at these joint positions (rad)."""
        seg = self.renderer.segmentation(self._qpos(joints), None)
        return (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & np.isin(seg[..., 0], self.arm_geoms)

    def _qpos(self, joints: np.ndarray) -> np.ndarray:
        qpos = self.qpos.copy()
        qpos[:6] = joints
        return qpos

    def close(self) -> None:
        self.renderer.close()


def real_masks(frames: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: where the frames differ from the background, cleaned of specks and holes."""
    diff = np.abs(frames.astype(np.int16) - background.astype(np.int16)).max(axis=-1)
    size = max(3, round(frames.shape[2] / 128) | 1)  # 5 px at 640 wide: specks go, fingers stay
    kernel = np.ones((size, size), np.uint8)
    masks = []
    for d in diff:
        m = (d > DIFF_THRESHOLD).astype(np.uint8)
        m = cv2.morphologyEx(cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
        masks.append(m.astype(bool))
    return np.stack(masks)


def median_sample(video: np.ndarray) -> np.ndarray:
    """About MEDIAN_FRAMES_PER_EPISODE frames spread over one episode's video, for `median_background`."""
    return video[:: max(1, len(video) // MEDIAN_FRAMES_PER_EPISODE)]


def median_background(samples: list[np.ndarray]) -> np.ndarray:
    """The per-pixel median over the episodes' samples: the scene without the arm, where the arm moves about."""
    return np.median(np.concatenate(samples), axis=0).astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame intersection over union of two (T, H, W) bool stacks (1 where both are empty)."""
    inter = (a & b).reshape(len(a), -1).sum(axis=1)
    union = (a | b).reshape(len(a), -1).sum(axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def motion(frames: np.ndarray) -> np.ndarray:
    """(T,) mean optical-flow magnitude (Farneback) from each frame to the next; the last repeats."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    out = [float(np.linalg.norm(cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0), axis=-1).mean())
           for a, b in zip(gray[:-1], gray[1:], strict=True)]
    return np.asarray(out + out[-1:])


def video_lag_frames(real_motion: np.ndarray, sim_motion: np.ndarray,
                     max_lag: int = MAX_VIDEO_LAG_FRAMES) -> int | None:
    """Frames by which the real video's motion trails the render's (negative: it leads); None without motion."""
    a, b = real_motion - real_motion.mean(), sim_motion - sim_motion.mean()
    if a.std() < 1e-6 or b.std() < 1e-6:
        return None
    n = len(a)
    scores = {}
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[:n - lag]) if lag >= 0 else (a[:n + lag], b[-lag:])
        if len(x) > 5:
            scores[lag] = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))
    return max(scores, key=scores.get)


def outline(real: np.ndarray, sim_mask: np.ndarray) -> np.ndarray:
    """The real frame with the sim silhouette's outline drawn over it (green)."""
    out = real.copy()
    contours, _ = cv2.findContours(sim_mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (40, 255, 40), 1)
    return out


def video_gap(dataset: RealDataset, scene: SceneConfig, camera: CameraModel, out: Path, camera_name: str = "front",
              background: np.ndarray | None = None, video_episodes: int = 2) -> dict:
    """The video gap of every episode of `dataset` (its joint states in rad) seen by `camera`; writes
    gap_video_ep<N>.mp4 (real | sim | overlay) for the first `video_episodes`, gap_keyframe_ep<N>.png for every
    episode, and returns the figures."""
    frames = {ep.index: episode_frames(dataset.root, ep.index, camera_name) for ep in dataset.episodes}
    for ep in dataset.episodes:
        f = frames[ep.index]
        check_size(dataset.root, f, camera, camera_name)
        if len(f) < len(ep.state) - 1:
            raise DatasetError(f"{dataset.root}: episode {ep.index} has {len(f)} frames of video and "
                               f"{len(ep.state)} joint states")
    given = background is not None
    if background is None:
        background = median_background([median_sample(f) for f in frames.values()])
    arm = ArmRenderer(scene, camera)
    episodes = []
    try:
        for k, ep in enumerate(dataset.episodes):
            real = frames[ep.index][: len(ep.state)]
            rendered = [arm.render(q) for q in ep.state[: len(real)]]
            sim_rgb = np.stack([r for r, _ in rendered])
            sim_mask = np.stack([m for _, m in rendered])
            real_mask = real_masks(real, background)
            if not given:
                # The median is the arm wherever the arm stays half the time (its base): compare elsewhere.
                still = sim_mask.mean(axis=0) > 0.5
                sim_mask, real_mask = sim_mask & ~still, real_mask & ~still
            per_frame = iou(sim_mask, real_mask)
            lag = video_lag_frames(motion(real), motion(sim_rgb))
            worst = int(per_frame.argmin())
            key = out / f"gap_keyframe_ep{ep.index}.png"
            cv2.imwrite(str(key), cv2.cvtColor(np.concatenate(
                [real[worst], sim_rgb[worst], outline(real[worst], sim_mask[worst])], axis=1), cv2.COLOR_RGB2BGR))
            episodes.append({"index": ep.index, "iou_mean": round(float(per_frame.mean()), 4),
                             "iou_min": round(float(per_frame.min()), 4),
                             "iou": [round(float(v), 4) for v in per_frame],
                             "key_frame": {"frame": worst, "iou": round(float(per_frame[worst]), 4),
                                           "image": key.name},
                             "lag_frames": lag, "lag_ms": None if lag is None else round(1000 * lag / dataset.fps, 1)})
            if k < video_episodes:
                side = [np.concatenate([r, s, outline(r, m)], axis=1) for r, s, m in zip(real, sim_rgb, sim_mask,
                                                                                          strict=True)]
                write_video(side, out / f"gap_video_ep{ep.index}.mp4", fps=dataset.fps)
    finally:
        arm.close()
    lags = [e["lag_ms"] for e in episodes if e["lag_ms"] is not None]
    return {"camera": camera_name, "iou_mean": round(float(np.mean([e["iou_mean"] for e in episodes])), 4),
            "lag_ms": float(np.median(lags)) if lags else None, "episodes": episodes,
            "background": "given" if given else "median of the frames"}


def read_background(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"{path}: not an image OpenCV can read (--background)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

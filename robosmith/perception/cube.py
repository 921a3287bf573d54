"""The cube's position and yaw from one image of a calibrated camera: what a policy reads on the real arm.

Classical and CPU-cheap, so that it runs at camera rate on a laptop:
1. the cube's pixels by colour (HSV band around the cube's hue; shading and lighting change value, not hue),
   the largest blob above a minimum area;
2. the cube's centre where the blob's centroid ray meets the plane half a cube above the table, then a fixed
   point that removes the perspective bias: the silhouette of a cube (the convex hull of its projected corners)
   has its centroid away from the projection of its centre, by an amount the hypothesis predicts;
3. yaw (modulo 90 degrees: a cube looks the same turned by a quarter) by the best overlap of that silhouette
   with the blob;
4. a cube off the table is in the gripper: with the tool point known (the arm's joints through forward
   kinematics) above the table and on the blob's ray, the cube hangs in the gripper, as deep along the ray
   as the tool point (a tracker that saw it held a frame ago allows the tool further off the ray).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from robosmith.perception.camera import CameraError, CameraModel
from robosmith.sim.scene import CUBE_RGBA
from robosmith.task.spec import TaskSpec

_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float) / 2


def cube_silhouette(camera: CameraModel, size: float, centre: np.ndarray, yaw: float) -> np.ndarray:
    """(K, 2) pixels: the convex hull of the projected corners of a cube of edge `size` turned by `yaw` about z."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    px = camera.project(np.asarray(centre) + _CORNERS * size @ rot.T).astype(np.float32)
    return cv2.convexHull(px)[:, 0, :]


@dataclass(frozen=True)
class CubeColour:
    """An HSV band: hue in degrees (0-360, red is 0), saturation and value in 0-1."""

    hue: float = 0.0
    hue_tolerance: float = 20.0
    min_saturation: float = 0.45
    min_value: float = 0.15

    @classmethod
    def of_rgb(cls, rgb: tuple[float, float, float], **kwargs) -> CubeColour:
        hsv = cv2.cvtColor(np.array([[rgb]], dtype=np.float32), cv2.COLOR_RGB2HSV)[0, 0]
        return cls(hue=float(hsv[0]), **kwargs)


@dataclass(frozen=True)
class CubeEstimate:
    found: bool
    pos: tuple[float, float, float] | None = None  # m, robot base frame: the cube's centre
    yaw: float | None = None  # rad, in [-pi/4, pi/4)
    pixels: int = 0  # area of the blob

    def as_dict(self) -> dict:
        return {"found": self.found, "pos": None if self.pos is None else [round(v, 5) for v in self.pos],
                "yaw": None if self.yaw is None else round(self.yaw, 5), "pixels": self.pixels}


class CubeEstimator:
    def __init__(self, camera: CameraModel, cube_size: float, colour: CubeColour | None = None,
                 min_pixels: int = 20, hold_height: float = 0.01, hold_tight: float = 0.015,
                 hold_radius: float = 0.05) -> None:
        self.camera, self.size = camera, cube_size
        self.colour = colour or CubeColour()
        self.min_pixels = min_pixels
        # A tool point this far above the resting cube and this near the blob's ray holds the cube (m); with a
        # tracker's word that it held the cube a frame ago, this near.
        self.hold_height, self.hold_tight, self.hold_radius = hold_height, hold_tight, hold_radius
        self._kernel = np.ones((3, 3), np.uint8)

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # uint8: hue in 0-179 (two degrees a step)
        c = self.colour
        lo_h, hi_h = (c.hue - c.hue_tolerance) / 2 % 180, (c.hue + c.hue_tolerance) / 2 % 180
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        in_hue = (h >= lo_h) | (h <= hi_h) if lo_h > hi_h else (h >= lo_h) & (h <= hi_h)
        m = in_hue & (s >= c.min_saturation * 255) & (v >= c.min_value * 255)
        return cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, self._kernel)

    def estimate(self, rgb: np.ndarray, tool: np.ndarray | None = None, held: bool | None = None) -> CubeEstimate:
        """The cube in one RGB image; `tool` (the tool point from the arm's joints, base frame) lets a cube
        held in the gripper be told from one lying on the table; `held`, a tracker's word on the last frame."""
        if rgb.shape[:2] != (self.camera.height, self.camera.width):
            raise CameraError(f"image is {rgb.shape[1]}x{rgb.shape[0]}, the camera "
                              f"{self.camera.width}x{self.camera.height}")
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(self.mask(rgb), connectivity=8)
        if n < 2:
            return CubeEstimate(False)
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[best, cv2.CC_STAT_AREA])
        if area < self.min_pixels:
            return CubeEstimate(False, pixels=area)
        x0, y0, w, h = (int(v) for v in stats[best, :4])
        pad = 4
        x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
        blob = (labels[y0:y0 + h + 2 * pad, x0:x0 + w + 2 * pad] == best).astype(np.uint8)
        tool = None if tool is None else np.asarray(tool, float)
        return self._fit(blob, (x0, y0), centroids[best], area, tool, held)

    # -- the fit ------------------------------------------------------------------------------------------------
    def _silhouette(self, centre: np.ndarray, yaw: float) -> np.ndarray:
        return cube_silhouette(self.camera, self.size, centre, yaw)

    def _centroid(self, centre: np.ndarray, yaw: float) -> np.ndarray:
        m = cv2.moments(self._silhouette(centre, yaw))
        return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])

    def _overlap(self, blob: np.ndarray, origin: tuple[int, int], centre: np.ndarray, yaw: float) -> float:
        shift = 4  # sub-pixel polygon filling: 1/16 px
        hull = np.round((self._silhouette(centre, yaw) - origin) * (1 << shift)).astype(np.int32)
        model = np.zeros_like(blob)
        cv2.fillConvexPoly(model, hull, 1, lineType=cv2.LINE_8, shift=shift)
        inter = np.count_nonzero(model & blob)
        return inter / max(np.count_nonzero(model | blob), 1)

    def _fit(self, blob: np.ndarray, origin: tuple[int, int], centroid: np.ndarray, area: int,
             tool: np.ndarray | None, held: bool | None) -> CubeEstimate:
        """On the table, or in the gripper: as deep along the blob's ray as the tool point, when the tool point
        is above the table and on the ray (within `hold_tight`), or near it (`hold_radius`) while a tracker
        says the cube was held a frame ago (`held`). A held cube is mostly hidden by the jaws, so its blob's
        size cannot tell; where it was a moment ago can."""
        rest, cam_pos = self.size / 2, np.asarray(self.camera.pos)
        depth_of = lambda ray: self._depth_on_plane(ray, rest)  # noqa: E731
        if tool is not None and tool[2] > rest + self.hold_height and held is not False:
            ray = self.camera.rays(centroid)
            off_ray = np.linalg.norm(cam_pos + np.dot(tool - cam_pos, ray) * ray - tool)
            if off_ray < (self.hold_radius if held else self.hold_tight):
                depth_of = lambda ray: float(np.dot(tool - cam_pos, ray))  # noqa: E731
        pos, yaw = self._fit_depth(blob, origin, centroid, depth_of)
        yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
        return CubeEstimate(True, tuple(float(v) for v in pos), float(yaw), area)

    def _depth_on_plane(self, ray: np.ndarray, height: float) -> float:
        return (height - self.camera.pos[2]) / ray[2] if ray[2] < -1e-6 else 10.0

    def _fit_depth(self, blob, origin, centroid, depth_of) -> tuple[np.ndarray, float]:
        """(centre, yaw) with the centre on the ray whose depth `depth_of(ray)` gives."""
        cam_pos = np.asarray(self.camera.pos)
        ray = self.camera.rays(centroid)
        pos, yaw = cam_pos + depth_of(ray) * ray, 0.0
        for _ in range(3):
            yaw = self._best_yaw(blob, origin, pos, yaw)
            model_centroid = self._centroid(pos, yaw)
            ray = self.camera.rays(centroid + self.camera.project(pos) - model_centroid)  # bias removed
            pos = cam_pos + depth_of(ray) * ray
        return pos, yaw

    def _best_yaw(self, blob: np.ndarray, origin: tuple[int, int], pos: np.ndarray, start: float) -> float:
        grid = np.radians(np.arange(0.0, 90.0, 7.5))
        scores = [self._overlap(blob, origin, pos, a) for a in grid]
        yaw, step = float(grid[int(np.argmax(scores))]), np.radians(3.75)
        best = max(scores)
        while step > np.radians(0.3):
            for cand in (yaw - step, yaw + step):
                score = self._overlap(blob, origin, pos, cand)
                if score > best:
                    best, yaw = score, cand
            step /= 2
        return yaw


def estimator_for(task: TaskSpec, camera: CameraModel, hue: float | None = None) -> CubeEstimator:
    """The estimator of `task`'s cube (its size; its colour in the scene unless `hue` is given, in degrees)."""
    if not task.scene.cube:
        raise CameraError(f"task {task.name}: has no cube to perceive")
    colour = CubeColour(hue=hue) if hue is not None else CubeColour.of_rgb(CUBE_RGBA[:3])
    return CubeEstimator(camera, task.scene.cube_size, colour)


class CubeTracker:
    """The cube of one camera over time, as a policy reads it: the last estimate holds through frames where the
    cube is not found (at first: `prior`), and a cube found at the tool point is held until it is seen apart."""

    grasp_radius = 0.03  # m: an estimate this near the tool point is in the gripper

    def __init__(self, estimator: CubeEstimator, prior: tuple[float, float, float]) -> None:
        self.estimator = estimator
        self.pos, self.yaw, self.held = np.asarray(prior, dtype=float), 0.0, False
        self.frames = self.found = 0

    def see(self, rgb: np.ndarray, tool: np.ndarray) -> CubeEstimate:
        estimate = self.estimator.estimate(rgb, tool, self.held)
        self.frames += 1
        if estimate.found:
            self.found += 1
            self.pos, self.yaw = np.asarray(estimate.pos), float(estimate.yaw)
            self.held = bool(np.linalg.norm(self.pos - np.asarray(tool)) < self.grasp_radius)
        return estimate

    @property
    def quat(self) -> np.ndarray:
        """The yaw as a quaternion (w, x, y, z): what `object_quat` holds for a cube lying flat."""
        return np.array([np.cos(self.yaw / 2), 0.0, 0.0, np.sin(self.yaw / 2)])


def tracker_for(task: TaskSpec, camera: CameraModel) -> CubeTracker:
    """A tracker of `task`'s cube, starting from the middle of the task's reset region."""
    reset = task.reset
    prior = (float(np.mean(reset.object_x)), float(np.mean(reset.object_y)), task.scene.cube_size / 2)
    return CubeTracker(estimator_for(task, camera), prior)

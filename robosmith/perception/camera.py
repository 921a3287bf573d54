"""A calibrated camera: intrinsics, distortion and its pose in the robot base frame, as one YAML file.

    width: 640
    height: 480
    fx: 600.0
    fy: 600.0
    cx: 319.5
    cy: 239.5
    distortion: [k1, k2, p1, p2, k3]   # OpenCV's order; zeros for an ideal camera
    pos: [0.52, -0.34, 0.34]           # m, robot base frame
    quat: [w, x, y, z]                 # camera -> base; OpenCV camera axes: x right, y down, z forward

Pixel coordinates follow OpenCV: the centre of the top-left pixel is (0, 0). The simulator's camera is placed
and projected as this one (`SceneRenderer.place_camera`), so a sim frame and a real frame of the same scene
line up pixel for pixel, up to the lens distortion the renderer cannot draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import mujoco
import numpy as np
import yaml

from robosmith.contract.io import write_text_atomic
from robosmith.errors import RobosmithError
from robosmith.robot.params import read_yaml

INTRINSIC_FIELDS = ("width", "height", "fx", "fy", "cx", "cy")


class CameraError(RobosmithError, ValueError):
    """A bad camera file or camera input (one line naming the file and the field)."""


@dataclass(frozen=True)
class CameraModel:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    located: bool = field(default=True, compare=False)  # False for an intrinsics-only file

    def __post_init__(self) -> None:  # plain Python numbers: what YAML writes and JSON reads
        for name in ("width", "height"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("distortion", "pos", "quat"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def dist(self) -> np.ndarray:
        return np.asarray(self.distortion, dtype=float)

    @property
    def rotation(self) -> np.ndarray:
        """Camera -> base rotation matrix (columns: the camera's x, y, z axes in the base frame)."""
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, np.asarray(self.quat, dtype=float))
        return mat.reshape(3, 3)

    def with_pose(self, rotation: np.ndarray, pos: np.ndarray) -> CameraModel:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rotation, dtype=float).ravel())
        return replace(self, pos=tuple(pos), quat=tuple(quat), located=True)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Base-frame points (..., 3) in the camera's frame."""
        return (np.asarray(points, dtype=float) - np.asarray(self.pos)) @ self.rotation

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) of base-frame points (..., 3), distortion included."""
        pts = np.asarray(points, dtype=float)
        flat = self.to_camera(pts.reshape(-1, 3))
        pixels, _ = cv2.projectPoints(flat, np.zeros(3), np.zeros(3), self.matrix, self.dist)
        return pixels.reshape(*pts.shape[:-1], 2)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """Unit directions (..., 3) in the base frame of the rays through pixels (..., 2); they start at `pos`."""
        px = np.asarray(pixels, dtype=float)
        norm = cv2.undistortPoints(px.reshape(-1, 1, 2), self.matrix, self.dist).reshape(-1, 2)
        d = np.column_stack([norm, np.ones(len(norm))]) @ self.rotation.T
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return d.reshape(*px.shape[:-1], 3)

    def on_plane(self, pixels: np.ndarray, height: float) -> np.ndarray:
        """Base-frame points (..., 3) where the rays through pixels meet the horizontal plane z = height."""
        d = self.rays(pixels)
        t = (height - self.pos[2]) / np.where(np.abs(d[..., 2]) < 1e-9, -1e-9, d[..., 2])
        return np.asarray(self.pos) + t[..., None] * d

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in INTRINSIC_FIELDS}
        out["distortion"] = list(self.distortion)
        if self.located:
            out["pos"], out["quat"] = list(self.pos), list(self.quat)
        return out


def save_camera(camera: CameraModel, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(camera.as_dict(), sort_keys=False))
    return path


def load_camera(path: Path, need_pose: bool = True) -> CameraModel:
    """A camera file (see the module's docstring); with need_pose=False an intrinsics file is enough."""
    raw = read_yaml(path, "camera file")
    if not isinstance(raw, dict):
        raise CameraError(f"{path}: a camera file is a mapping of width, height, fx, fy, cx, cy, distortion, pos, quat")
    unknown = sorted(set(raw) - {*INTRINSIC_FIELDS, "distortion", "pos", "quat"})
    if unknown:
        raise CameraError(f"{path}: unknown field {unknown[0]!r}")
    values: dict = {}
    for name in INTRINSIC_FIELDS:
        if name not in raw:
            raise CameraError(f"{path}: missing field {name!r}")
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
            raise CameraError(f"{path}: field {name!r} must be a positive number, got {value!r}")
        values[name] = int(value) if name in ("width", "height") else float(value)
    values["distortion"] = tuple(_numbers(path, "distortion", raw.get("distortion", [0.0] * 5), (4, 5, 8, 12, 14)))
    located = "pos" in raw or "quat" in raw
    if located:
        values["pos"] = tuple(_numbers(path, "pos", raw.get("pos"), (3,)))
        quat = np.array(_numbers(path, "quat", raw.get("quat"), (4,)))
        if not 0.5 < np.linalg.norm(quat) < 1.5:
            raise CameraError(f"{path}: field 'quat' must be a unit quaternion (w, x, y, z), got {quat.tolist()}")
        values["quat"] = tuple(float(v) for v in quat / np.linalg.norm(quat))
    elif need_pose:
        raise CameraError(f"{path}: missing field 'pos' (and 'quat'): locate the camera first "
                          "(`robosmith camera locate`)")
    return CameraModel(**values, located=located)


def _numbers(path: Path, name: str, value, lengths: tuple[int, ...]) -> list[float]:
    if value is None:
        raise CameraError(f"{path}: missing field {name!r}")
    if (not isinstance(value, list) or len(value) not in lengths
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value)):
        want = " or ".join(str(n) for n in lengths)
        raise CameraError(f"{path}: field {name!r} must be a list of {want} numbers, got {value!r}")
    return [float(v) for v in value]


def scene_camera(model: mujoco.MjModel, data: mujoco.MjData, name: str, width: int, height: int) -> CameraModel:
    """The camera file of one of a compiled scene's cameras (fovy, centred principal point), at its current pose."""
    cam = model.camera(name).id
    fy = height / 2 / np.tan(np.radians(model.cam_fovy[cam]) / 2)
    rot = data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    return CameraModel(width, height, fy, fy, width / 2 - 0.5, height / 2 - 0.5).with_pose(rot, data.cam_xpos[cam])


def camera_renderer(scene, camera: CameraModel, name: str = "front"):
    """A `SceneRenderer` of the task's scene whose `name` camera is `camera` (size, intrinsics, pose)."""
    from robosmith.sim.render import SceneRenderer

    renderer = SceneRenderer(scene, camera.width, camera.height)
    place(renderer, camera, name)
    return renderer


def place(renderer, camera: CameraModel, name: str = "front") -> None:
    """Make the renderer's camera `name` this one (pose, intrinsics; the size is the renderer's)."""
    renderer.place_camera(name, np.asarray(camera.pos), np.asarray(camera.quat), camera.fx, camera.fy, camera.cx,
                          camera.cy)


def nominal_camera(scene, width: int = 640, height: int = 480) -> CameraModel:
    """The scene's front camera as a camera file would describe it: the default where none is given."""
    if scene.camera:
        return CameraModel(**scene.camera)
    from robosmith.sim.scene import compile_scene

    model = compile_scene(scene, visual=True)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return scene_camera(model, data, "front", width, height)


def with_camera(task, camera: CameraModel, background: Path | None = None):
    """The task whose scene renders its front camera as `camera` (eval videos, datasets, image policies), with
    `background` (a photo of the real scene from that camera, without the arm in front) behind the arm."""
    if background is not None and not Path(background).is_file():
        raise CameraError(f"{background}: no such image (--background)")
    scene = replace(task.scene, camera=camera.as_dict(),
                    background=str(Path(background).resolve()) if background else task.scene.background)
    return replace(task, scene=scene)

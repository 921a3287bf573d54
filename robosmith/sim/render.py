"""Offscreen rendering of environment states with the visual (meshed) twin of the physics model.

Without a display MuJoCo renders through EGL (Mesa's software renderer on CPU machines; the Debian packages
libegl1 and libgl1-mesa-dri provide it). Set MUJOCO_GL=osmesa to use OSMesa instead.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import imageio.v2 as imageio
import mujoco
import numpy as np

from robosmith.sim.scene import GOAL_BODY, SceneConfig, compile_scene


class SceneRenderer:
    """Renders (qpos, goal) pairs of the physics model from the scene's cameras."""

    def __init__(self, scene: SceneConfig, width: int = 320, height: int = 240) -> None:
        self.model = compile_scene(scene, visual=True)
        # The meshes have ~320k triangles: with shadows, reflections and multisampling a software renderer
        # takes ~300 ms a frame; without them ~40 ms.
        self.model.vis.quality.offsamples = 0
        self.model.vis.global_.offwidth = max(width, self.model.vis.global_.offwidth)
        self.model.vis.global_.offheight = max(height, self.model.vis.global_.offheight)
        self.width, self.height = width, height
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, height, width)
        self._goal_mocap = int(self.model.body(GOAL_BODY).mocapid[0])
        if scene.camera:
            self.place_camera("front", **_scaled(scene.camera, width, height))
        self._table = self.model.geom("table").id
        self.background: np.ndarray | None = None
        if scene.background:
            self.set_background(imageio.imread(scene.background)[..., :3])

    def set_background(self, image: np.ndarray | None) -> None:
        """A photo (RGB) shown behind the front camera's renders wherever the simulated table or nothing is."""
        if image is not None and image.shape[:2] != (self.height, self.width):
            image = cv2.resize(np.asarray(image, np.uint8), (self.width, self.height), interpolation=cv2.INTER_AREA)
        self.background = None if image is None else np.asarray(image, np.uint8)

    def place_camera(self, name: str, pos: np.ndarray, quat: np.ndarray, fx: float, fy: float, cx: float,
                     cy: float) -> None:
        """Put a camera of the scene at `pos` with orientation `quat` (wxyz, relative to its parent body, OpenCV
        camera axes: x right, y down, z forward) and a pinhole's intrinsics in pixels at this renderer's size
        (OpenCV's convention: the top-left pixel's centre is (0, 0))."""
        cam = self.model.camera(name).id
        self.model.cam_pos[cam] = pos
        # MuJoCo's cameras look along their -z with y up: half a turn about x from OpenCV's axes.
        mujoco.mju_mulQuat(self.model.cam_quat[cam], np.asarray(quat, dtype=float), np.array([0.0, 1.0, 0.0, 0.0]))
        pitch = 1e-5  # m per pixel; any value: MuJoCo only uses the ratios
        # MuJoCo's principal point is an offset from the image centre, positive towards the left and the top.
        self.model.cam_sensorsize[cam] = (self.width * pitch, self.height * pitch)
        self.model.cam_resolution[cam] = (self.width, self.height)
        self.model.cam_intrinsic[cam] = (fx * pitch, fy * pitch, (self.width / 2 - 0.5 - cx) * pitch,
                                         (self.height / 2 - 0.5 - cy) * pitch)

    def render(self, qpos: np.ndarray, goal_pos: np.ndarray | None, camera: str = "front") -> np.ndarray:
        self._pose(qpos, goal_pos)
        rgb = self._draw(camera)
        if self.background is None or camera != "front":
            return rgb
        seg = self._segment(camera)
        behind = (seg[..., 0] == -1) | ((seg[..., 0] == self._table) & (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)))
        rgb[behind] = self.background[behind]
        return rgb

    def segmentation(self, qpos: np.ndarray, goal_pos: np.ndarray | None, camera: str = "front") -> np.ndarray:
        """(H, W, 2) int: per pixel the id and the object type (mjtObj) of what it shows; id -1 for nothing."""
        self._pose(qpos, goal_pos)
        return self._segment(camera)

    def _segment(self, camera: str) -> np.ndarray:
        self.renderer.enable_segmentation_rendering()
        try:
            return self._draw(camera)
        finally:
            self.renderer.disable_segmentation_rendering()

    def _pose(self, qpos: np.ndarray, goal_pos: np.ndarray | None) -> None:
        self.data.qpos[:] = qpos
        if goal_pos is not None:
            self.data.mocap_pos[self._goal_mocap] = goal_pos
        else:
            self.data.mocap_pos[self._goal_mocap] = (0.0, 0.0, -1.0)  # below the table, out of sight
        mujoco.mj_forward(self.model, self.data)

    def _draw(self, camera: str) -> np.ndarray:
        self.renderer.update_scene(self.data, camera)
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        return self.renderer.render().copy()

    def close(self) -> None:
        self.renderer.close()


def _scaled(camera: dict, width: int, height: int) -> dict:
    """A camera file's pose and intrinsics for images of another size (same field of view)."""
    sx, sy = width / camera["width"], height / camera["height"]
    return {"pos": np.asarray(camera["pos"], dtype=float), "quat": np.asarray(camera["quat"], dtype=float),
            "fx": camera["fx"] * sx, "fy": camera["fy"] * sy,
            "cx": (camera["cx"] + 0.5) * sx - 0.5, "cy": (camera["cy"] + 0.5) * sy - 0.5}


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(path, frames, fps=fps, codec="libx264", quality=7, macro_block_size=8)
    return path

"""Frames "as a real camera takes them", from the simulator: what perception is measured and tested on.

No real video exists on our machines, so the estimator and the camera tools are judged sim against sim:
renders of the task's scene from a calibrated camera with randomized lighting, table and cube colours, arm
poses, sensor noise, blur and JPEG compression, each with the truth it shows (the cube's pose and how much of
it is visible).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import mujoco
import numpy as np

from robosmith.perception.camera import CameraModel, camera_renderer
from robosmith.perception.cube import cube_silhouette
from robosmith.robot.params import CUBE_BODY
from robosmith.robot.so101 import TOOL_SITE
from robosmith.task.spec import TaskSpec


@dataclass(frozen=True)
class SyntheticFrame:
    rgb: np.ndarray
    cube_pos: np.ndarray  # m, base frame
    cube_yaw: float  # rad
    visible: float  # fraction of the cube's silhouette not hidden by the arm (1.0 = all of it)
    qpos: np.ndarray
    tool_pos: np.ndarray  # the tool point (forward kinematics of the joints), what the real arm knows too


@dataclass(frozen=True)
class Look:
    """How far the frames stray from the nominal scene."""

    lighting: float = 0.35  # relative change of the lights' intensity, either way
    cube_hue: float = 8.0  # degrees, either way
    table: bool = True  # random table colours (never near the cube's hue)
    noise: float = 4.0  # std of the sensor noise, in 8-bit levels
    blur: float = 0.7  # probability of a Gaussian blur of sigma 0.5-1.2 px
    jpeg: tuple[int, int] = (60, 95)  # quality range
    held: float = 0.2  # fraction of frames with the cube held in the gripper above the table


@dataclass(frozen=True)
class Style:
    """One draw of the scene's look: colours (RGB 0-1) and the lights' gains (diffuse, ambient, headlight)."""

    cube_rgb: tuple[float, float, float]
    table_rgb: tuple[float, float, float] | None
    light_gains: tuple[float, float, float]


class SyntheticCamera:
    """Randomized renders of `task`'s scene from `camera`; `frame(rng)` draws one."""

    def __init__(self, task: TaskSpec, camera: CameraModel, look: Look = Look()) -> None:
        self.task, self.camera, self.look = task, camera, look
        self.renderer = camera_renderer(task.scene, camera)
        model = self.renderer.model
        self.cube_geom = model.geom(CUBE_BODY).id
        self.table_geom = model.geom("table").id
        self.tool_site = model.site(TOOL_SITE).id
        self.cube_qpos = int(model.jnt_qposadr[model.body(CUBE_BODY).jntadr[0]])
        self._rgba = model.geom_rgba.copy()
        headlight = model.vis.headlight
        self._light = (model.light_diffuse.copy(), headlight.ambient.copy(), headlight.diffuse.copy())
        self.nominal_hue = colorsys.rgb_to_hsv(*self._rgba[self.cube_geom, :3])[0] * 360

    def frame(self, rng: np.random.Generator) -> SyntheticFrame:
        qpos = self._pose(rng)
        self.apply_style(self.draw_style(rng))
        rgb = self.renderer.render(qpos, None)
        tool = self.renderer.data.site_xpos[self.tool_site].copy()
        visible = self._visible(qpos)
        return SyntheticFrame(degrade(rgb, rng, self.look), qpos[self.cube_qpos:self.cube_qpos + 3].copy(),
                              float(self._yaw(qpos)), visible, qpos, tool)

    def close(self) -> None:
        self.renderer.close()

    def _pose(self, rng: np.random.Generator) -> np.ndarray:
        model, data, task = self.renderer.model, self.renderer.data, self.task
        qpos, a, rest = model.qpos0.copy(), self.cube_qpos, task.scene.cube_size / 2
        lo, hi = model.jnt_range[:6, 0], model.jnt_range[:6, 1]
        yaw = rng.uniform(-np.pi, np.pi)
        qpos[a + 3:a + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        held = rng.random() < self.look.held
        for _ in range(200):
            # Arm poses around home, wider than the reset's: the arm also stands between camera and cube.
            qpos[:6] = np.clip(np.asarray(task.reset.home) + rng.uniform(-0.6, 0.6, 6), lo, hi)
            if not held:
                qpos[a:a + 3] = (rng.uniform(*task.reset.object_x), rng.uniform(*task.reset.object_y), rest)
                return qpos
            data.qpos[:] = qpos
            mujoco.mj_kinematics(model, data)
            tool = data.site_xpos[self.tool_site]
            if rest + 0.01 < tool[2] < 0.15 and 0.12 < tool[0] < 0.35 and abs(tool[1]) < 0.15:
                qpos[a:a + 3] = tool
                return qpos
        raise RuntimeError("no arm pose holds the cube in view; the reset's home is far from the table")

    def _yaw(self, qpos: np.ndarray) -> float:
        w, _, _, z = qpos[self.cube_qpos + 3:self.cube_qpos + 7]
        return 2 * np.arctan2(z, w)

    def draw_style(self, rng: np.random.Generator) -> Style:
        look = self.look
        hue = (self.nominal_hue + rng.uniform(-look.cube_hue, look.cube_hue)) % 360
        cube = colorsys.hsv_to_rgb(hue / 360, rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.95))
        table = None
        if look.table:
            table_hue = (self.nominal_hue + rng.uniform(60, 300)) % 360  # far from the cube's
            table = colorsys.hsv_to_rgb(table_hue / 360, rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.9))
        gains = tuple(1 + rng.uniform(-look.lighting, look.lighting, 3))
        return Style(cube, table, gains)

    def apply_style(self, style: Style) -> None:
        model = self.renderer.model
        model.geom_rgba[:] = self._rgba
        model.geom_rgba[self.cube_geom, :3] = style.cube_rgb
        if style.table_rgb is not None:
            model.geom_rgba[self.table_geom, :3] = style.table_rgb
        model.light_diffuse[:] = self._light[0] * style.light_gains[0]
        model.vis.headlight.ambient[:] = self._light[1] * style.light_gains[1]
        model.vis.headlight.diffuse[:] = self._light[2] * style.light_gains[2]

    def _visible(self, qpos: np.ndarray) -> float:
        """The cube's rendered pixels over the pixels of its silhouette without the arm in front."""
        seg = self.renderer.segmentation(qpos, None)
        shown = np.count_nonzero((seg[..., 0] == self.cube_geom) & (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)))
        a = self.cube_qpos
        whole = cv2.contourArea(cube_silhouette(self.camera, self.task.scene.cube_size, qpos[a:a + 3], self._yaw(qpos)))
        return float(min(shown / whole, 1.0)) if whole > 0 else 0.0


def board_view(background: np.ndarray, camera: CameraModel, board_image: np.ndarray, px_per_m: float,
               rot: np.ndarray, pos: np.ndarray, rng: np.random.Generator, look: Look = Look()) -> np.ndarray:
    """`background` with a printed board drawn in, the board at (rot, pos) (board -> base frame; the board frame
    as OpenCV's: origin at a corner, z into the board), as `camera` sees it, lit and degraded like a frame."""
    r_cam = camera.rotation.T @ rot
    t_cam = camera.rotation.T @ (np.asarray(pos) - np.asarray(camera.pos))
    to_metric = np.array([[1 / px_per_m, 0, 0.5 / px_per_m], [0, 1 / px_per_m, 0.5 / px_per_m], [0, 0, 1.0]])
    homography = camera.matrix @ np.column_stack([r_cam[:, 0], r_cam[:, 1], t_cam]) @ to_metric
    size = (camera.width, camera.height)
    # Area interpolation of a fine print: the camera's pixels average the printed squares, as a lens does.
    warped = cv2.warpPerspective(board_image, homography, size, flags=cv2.INTER_AREA)
    covered = cv2.warpPerspective(np.full(board_image.shape, 255, np.uint8), homography, size, flags=cv2.INTER_AREA)
    gain = 1 + rng.uniform(-look.lighting, look.lighting) / 2
    paper = (warped.astype(np.float32) * 0.85 * gain + 20)[..., None]
    alpha = (covered.astype(np.float32) / 255)[..., None]
    out = background.astype(np.float32) * (1 - alpha) + np.repeat(paper, 3, axis=2) * alpha
    return degrade(np.clip(out, 0, 255).astype(np.uint8), rng, look)


def degrade(rgb: np.ndarray, rng: np.random.Generator, look: Look = Look()) -> np.ndarray:
    """A clean render made to look like a camera's frame: blur, sensor noise, JPEG compression."""
    img = rgb.astype(np.float32)
    if rng.random() < look.blur:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    img += rng.normal(0.0, look.noise, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(look.jpeg[0], look.jpeg[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def held_board_views(background: np.ndarray, camera: CameraModel, board, n: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """`n` frames of the board held up in front of `camera` at varied angles, distances and places in the image:
    what a person does for `robosmith camera calibrate`."""
    image, px_per_m = board.image(4.0), 4000.0
    frames = []
    for _ in range(n):
        depth = rng.uniform(0.28, 0.5)
        r_cam = cv2.Rodrigues(np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3)]))[0]
        centre = np.array([rng.uniform(-0.25, 0.25) * depth, rng.uniform(-0.18, 0.18) * depth, depth])
        t_cam = centre - r_cam @ np.array([*board.size_m, 0.0]) / 2
        frames.append(board_view(background, camera, image, px_per_m, camera.rotation @ r_cam,
                                 np.asarray(camera.pos) + camera.rotation @ t_cam, rng))
    return frames


def table_board_views(background: np.ndarray, camera: CameraModel, board, rot: np.ndarray, pos: np.ndarray, n: int,
                      rng: np.random.Generator) -> list[np.ndarray]:
    """`n` frames of the board lying on the table at (rot, pos): what `robosmith camera locate` reads."""
    image = board.image(4.0)
    return [board_view(background, camera, image, 4000.0, rot, pos, rng) for _ in range(n)]

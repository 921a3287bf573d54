"""Camera calibration with a ChArUco board (OpenCV's aruco module): intrinsics from many views, then a fixed
camera's pose in the robot base frame from views of the board lying on the table at a known place.

A board lying face up on the table: its origin (the outer corner OpenCV numbers first, top-left of the printed
board) at `pos` in the base frame, its x axis (along a row of squares) turned by `yaw` from the base's x axis.
OpenCV's board frame has y down the printed page and z into the board, so face up its z points down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from robosmith.perception.camera import CameraError, CameraModel

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Board:
    squares: tuple[int, int] = (7, 5)  # columns x rows
    square_mm: float = 30.0
    marker_mm: float = 22.0
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if min(self.squares) < 3:
            raise CameraError(f"--squares: at least 3x3 squares, got {self.squares[0]}x{self.squares[1]}")
        if not 0 < self.marker_mm < self.square_mm:
            raise CameraError(f"--marker-mm must be above 0 and below --square-mm ({self.square_mm}), "
                              f"got {self.marker_mm}")
        if not hasattr(cv2.aruco, self.dictionary):
            raise CameraError(f"--dictionary: OpenCV has no aruco dictionary {self.dictionary!r}")

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares[0] * self.square_mm / 1000, self.squares[1] * self.square_mm / 1000

    def opencv(self) -> cv2.aruco.CharucoBoard:
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(self.squares, self.square_mm / 1000, self.marker_mm / 1000, dictionary)

    def image(self, px_per_mm: float = 4.0) -> np.ndarray:
        """The printable board (grayscale, no margin), `px_per_mm` pixels per millimetre."""
        w, h = (round(v * 1000 * px_per_mm) for v in self.size_m)
        return self.opencv().generateImage((w, h), marginSize=0, borderBits=1)


def parse_squares(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CameraError(f"--squares must look like 7x5 (columns x rows), got {text!r}") from None
    return cols, rows


def board_in_base(pos: Iterable[float], yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and origin of a board lying face up on the table (see the module's docstring)."""
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0, -1.0])
    return rot, np.asarray(list(pos), dtype=float)


def read_images(source: Path) -> list[tuple[str, np.ndarray]]:
    """(name, RGB image) of an image file or of every image in a folder, sorted by name."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.is_file():
        files = [source]
    else:
        raise CameraError(f"{source}: no such image or folder")
    if not files:
        raise CameraError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)})")
    out = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CameraError(f"{f}: not an image OpenCV can read")
        out.append((f.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return out


def detect(rgb: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray]:
    """The board's inner corners seen in one image: (board-frame points Nx3 in m, pixels Nx2); N may be 0."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cv_board = board.opencv()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(cv_board).detectBoard(gray)
    if corners is None or ids is None or len(ids) == 0:
        return np.zeros((0, 3)), np.zeros((0, 2))
    obj, img = cv_board.matchImagePoints(corners, ids)
    return obj.reshape(-1, 3).astype(float), img.reshape(-1, 2).astype(float)


def calibrate(images: list[tuple[str, np.ndarray]], board: Board,
              min_corners: int = 8) -> tuple[CameraModel, float, int]:
    """Intrinsics and distortion from views of the board in varied poses: (camera without pose, RMS
    reprojection error in px, views used)."""
    h, w = images[0][1].shape[:2]
    objs, imgs = [], []
    for name, rgb in images:
        if rgb.shape[:2] != (h, w):
            raise CameraError(f"{name}: {rgb.shape[1]}x{rgb.shape[0]}, the first image is {w}x{h}; "
                              "one camera, one size")
        obj, img = detect(rgb, board)
        if len(obj) >= min_corners:
            objs.append(obj.astype(np.float32))
            imgs.append(img.astype(np.float32))
    if len(objs) < 3:
        raise CameraError(f"the board was found in {len(objs)} of {len(images)} images (at least {min_corners} "
                          "corners each); calibration needs 3 or more views at varied angles")
    # k3 stays 0: with webcam lenses and tens of views it soaks up noise rather than distortion.
    rms, k, dist, _, _ = cv2.calibrateCamera(objs, imgs, (w, h), None, None, flags=cv2.CALIB_FIX_K3)
    d = np.zeros(5)
    d[: min(5, dist.size)] = dist.ravel()[:5]
    cam = CameraModel(w, h, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), tuple(float(v) for v in d),
                      located=False)
    return cam, float(rms), len(objs)


def locate(images: list[tuple[str, np.ndarray]], intrinsics: CameraModel, board: Board,
           board_rot: np.ndarray, board_pos: np.ndarray, min_corners: int = 6) -> tuple[CameraModel, float, int]:
    """The camera's pose in the base frame from views (by a fixed camera) of the board at a known pose:
    (located camera, RMS reprojection error in px, corners used). All views' corners go into one PnP."""
    objs, imgs = [], []
    for name, rgb in images:
        if rgb.shape[:2] != (intrinsics.height, intrinsics.width):
            raise CameraError(f"{name}: {rgb.shape[1]}x{rgb.shape[0]}, the intrinsics are for "
                              f"{intrinsics.width}x{intrinsics.height}")
        obj, img = detect(rgb, board)
        if len(obj) >= min_corners:
            objs.append(obj)
            imgs.append(img)
    if not objs:
        raise CameraError(f"the board was not found in any of {len(images)} images (at least {min_corners} corners)")
    obj, img = np.concatenate(objs), np.concatenate(imgs)
    k, dist = intrinsics.matrix, intrinsics.dist
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CameraError("PnP found no camera pose for the board's corners")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, dist, rvec, tvec)
    reproj, _ = cv2.projectPoints(obj, rvec, tvec, k, dist)
    rms = float(np.sqrt(np.mean(np.sum((reproj.reshape(-1, 2) - img) ** 2, axis=1))))
    r_cam_board = cv2.Rodrigues(rvec)[0]
    # board -> camera is (r_cam_board, t); base -> board is (board_rot, board_pos): camera -> base composes them.
    rot = board_rot @ r_cam_board.T
    pos = board_pos - rot @ tvec.ravel()
    return intrinsics.with_pose(rot, pos), rms, len(obj)

"""Real SO-101 episodes from a LeRobot dataset (format v3.0, as `lerobot-record` writes it), in radians.

Only the tabular part is read (meta/info.json and the parquet files under data/): joint states and commands
need no video decoding, and a folder without its videos reads the same. Nothing in the folder is written, and
nothing is ever downloaded.

Units: LeRobot >= 0.5 records the SO-101 in degrees (zero at the middle of the calibrated range, gripper
0-100); older recordings and `use_degrees=False` hold range mode (-100..100 over each arm joint's calibrated
range), which needs the arm's calibration file to become radians. The units come from the dataset where it
says (robosmith's datasets do), from `units` where it does not; values beyond +-100 can only be degrees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robosmith.errors import RobosmithError
from robosmith.robot.units import LEROBOT_JOINT_NAMES, from_lerobot, load_calibration, range_to_degrees

STATE, ACTION = "observation.state", "action"
SO101_ROBOT_TYPES = ("so101_follower", "so101", "so_follower", "robosmith_so101_sim")
UNITS = ("degrees", "range")
UNITS_FILE = "robosmith_collect.json"  # robosmith's datasets say their units there


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def so101_features(cameras: dict[str, tuple[int, ...]] | None = None) -> dict[str, dict]:
    """The features `lerobot-record` writes for an SO-101: the six joints as read (`observation.state`) and as
    sent (`action`) in LeRobot's units, and a video per camera (name -> (height, width, channels))."""
    joints = {"dtype": "float32", "shape": (6,), "names": list(LEROBOT_JOINT_NAMES)}
    features: dict[str, dict] = {STATE: dict(joints), ACTION: dict(joints)}
    for camera, shape in (cameras or {}).items():
        features[image_key(camera)] = {"dtype": "video", "shape": tuple(shape),
                                                    "names": ["height", "width", "channels"]}
    return features


class DatasetError(RobosmithError, ValueError):
    """A dataset that cannot be read as SO-101 episodes (one line: the folder and what is wrong)."""


@dataclass
class RealEpisode:
    index: int
    state: np.ndarray  # (T, 6) rad: the follower's measured joints
    action: np.ndarray  # (T, 6) rad: the commanded joints


@dataclass
class RealDataset:
    root: Path
    fps: float
    robot_type: str
    units: str
    episodes: list[RealEpisode]


def _units_of(root: Path, info: dict, values: np.ndarray, units: str | None) -> str:
    if units is not None:
        if units not in UNITS:
            raise DatasetError(f"--units {units!r}: one of {', '.join(UNITS)}")
        return units
    said = info.get("robosmith_units")
    if said is None and (root / UNITS_FILE).is_file():
        said = json.loads((root / UNITS_FILE).read_text()).get("units", "degrees")
    if said in UNITS:
        return said
    if np.abs(values[:, :5]).max() > 100.0:  # range mode never leaves -100..100
        return "degrees"
    raise DatasetError(f"{root}: the dataset does not say whether its joints are in degrees or range mode; "
                       "give --units degrees, or --units range with --calibration FILE")


def load_dataset(root: Path, episodes: list[int] | None = None, units: str | None = None,
                 calibration: Path | None = None) -> RealDataset:
    """The dataset's episodes (all, or those listed) with joints in radians."""
    import pyarrow.parquet as pq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{info_path}: not valid JSON ({e.msg})") from None
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise DatasetError(f"{info_path}: codebase_version {version or '?'}; robosmith reads LeRobot format v3.0")
    robot_type = str(info.get("robot_type"))
    if robot_type not in SO101_ROBOT_TYPES:
        raise DatasetError(f"{info_path}: robot_type {robot_type!r} is not an SO-101 follower "
                           f"({', '.join(SO101_ROBOT_TYPES)})")
    features = info.get("features", {})
    for key in (STATE, ACTION):
        names = tuple((features.get(key) or {}).get("names") or ())
        if key not in features:
            raise DatasetError(f"{info_path}: features: no {key!r}; it holds {', '.join(features)}")
        if names != LEROBOT_JOINT_NAMES:
            raise DatasetError(f"{info_path}: features.{key}.names: expected {', '.join(LEROBOT_JOINT_NAMES)}, "
                               f"got {', '.join(map(str, names)) or 'none'}")
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or not 1 <= fps <= 1000:
        raise DatasetError(f"{info_path}: fps: expected a rate in frames per second, got {fps!r}")
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise DatasetError(f"{root}: no data/*.parquet files")
    columns = [STATE, ACTION, "episode_index", "frame_index"]
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path, columns=columns).to_pydict())
        except Exception as e:  # noqa: BLE001 - a damaged file is the dataset's fault: one line
            raise DatasetError(f"{path}: unreadable ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    data = {k: [v for t in tables for v in t[k]] for k in columns}
    state = np.asarray(data[STATE], dtype=float)
    action = np.asarray(data[ACTION], dtype=float)
    episode_index, frame_index = np.asarray(data["episode_index"]), np.asarray(data["frame_index"])
    for name, values in ((STATE, state), (ACTION, action)):
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if bad.size:
            raise DatasetError(f"{root}: {name} is not finite in episode {episode_index[bad[0]]}, frame "
                               f"{frame_index[bad[0]]} ({bad.size} rows in all)")
    units = _units_of(root, info, np.concatenate([state, action]), units)
    if units == "range":
        if calibration is None:
            raise DatasetError(f"{root}: range-mode joints need the arm's calibration file to become radians; "
                               "give --calibration FILE (LeRobot's <id>.json)")
        cal = load_calibration(calibration)
        state = range_to_degrees(torch.as_tensor(state), cal).numpy()
        action = range_to_degrees(torch.as_tensor(action), cal).numpy()
    state = from_lerobot(torch.as_tensor(state)).numpy()
    action = from_lerobot(torch.as_tensor(action)).numpy()
    present = sorted(set(episode_index.tolist()))
    chosen = present if episodes is None else episodes
    missing = [e for e in chosen if e not in present]
    if missing:
        raise DatasetError(f"{root}: no episode {missing[0]}; it holds {present[0]}..{present[-1]}")
    out = []
    for e in chosen:
        rows = np.flatnonzero(episode_index == e)
        rows = rows[np.argsort(frame_index[rows])]
        if rows.size < 2:
            raise DatasetError(f"{root}: episode {e} has {rows.size} frame; at least 2 are needed")
        out.append(RealEpisode(int(e), state[rows], action[rows]))
    return RealDataset(root, float(fps), robot_type, units, out)

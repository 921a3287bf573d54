"""The dynamics gap: real episodes replayed open-loop on the simulated arm, and where the two part ways.

Each recorded episode becomes one simulated environment: it starts in the episode's first measured joint state
and receives the recorded commands at the recording's rate, through the servo path training uses (the arm's
parameters, calibration offsets, the delay line). The measured joints of the real arm and the readings of the
simulated one are then compared frame by frame. A hypothesis of the arm's physics is a robot-params mapping
(registry names), so the gap of a dataset against its own generating parameters is near zero, and system
identification searches these same mappings.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robosmith.robot.params import PARAMS, ParamError, Value, robot_params_of
from robosmith.robot.so101 import JOINT_NAMES
from robosmith.sim.batched_env import BatchedEnv, EnvConfig
from robosmith.sim2real.dataset import RealDataset
from robosmith.task.spec import ResetConfig, SceneConfig

SUBSTEPS = 8  # physics steps per recorded frame, whatever the dataset's rate
MAX_LAG_S = 0.5  # the longest command-to-response lag the cross-correlation looks for
HOLD_FRAMES = 10  # a command held this long counts as settled (steady-state error)
STALL_RAD = 0.08  # a gripper this far short of its command, and not moving, is stalled (an object in the jaws)
GRIPPER = len(JOINT_NAMES) - 1


@dataclass
class Replay:
    """Real and simulated joint trajectories of each episode, frames 1..T-1 (frame 0 is the shared start)."""

    command: list[np.ndarray]  # (T-1, 6) rad: the command in force during the frame before
    real: list[np.ndarray]
    sim: list[np.ndarray]
    fps: float


def replay(dataset: RealDataset, params: dict[str, Value] | None = None, nthread: int = 0) -> Replay:
    """Every episode of the dataset on the simulated arm with the physics `params` describe (default: the
    shipped model), one environment per episode, all stepped together."""
    return replay_batch(dataset, [params or {}], nthread)[0]


def replay_batch(dataset: RealDataset, hypotheses: list[dict[str, Value]], nthread: int = 0) -> list[Replay]:
    """The dataset replayed under each physics hypothesis: one environment per (hypothesis, episode)."""
    episodes = dataset.episodes
    n_ep, n_hyp = len(episodes), len(hypotheses)
    on_objects = sorted({k for h in hypotheses for k in h if PARAMS[k].needs_cube})
    if on_objects:
        raise ParamError(f"{', '.join(on_objects)}: the replay has the arm alone, no objects")
    length = max(len(e.action) for e in episodes)
    # Robot entries every hypothesis shares go into the compiled model; the rest is set per environment.
    shared = {k: v for k, v in hypotheses[0].items() if PARAMS[k].where == "robot"
              and all(h.get(k) == v for h in hypotheses)}
    scene = SceneConfig(cube=False, goal_marker="none", timestep=1.0 / (dataset.fps * SUBSTEPS),
                        robot=robot_params_of(shared))
    cfg = EnvConfig(num_envs=n_ep * n_hyp, control_hz=dataset.fps, episode_length=length + 1,
                    action_mode="absolute", action_scale=1.0, nthread=nthread)
    env = BatchedEnv(scene, cfg, ResetConfig(joint_noise=0.0), has_goal=False)
    per_env = {}
    for name in sorted({k for h in hypotheses for k in h} - set(shared)):
        entry = PARAMS[name]
        values = [entry.per_joint_array(h.get(name, entry.default)) if entry.per_joint
                  else float(np.mean(h.get(name, entry.default))) for h in hypotheses]
        per_env[name] = np.repeat(np.stack(values) if entry.per_joint else np.asarray(values), n_ep, axis=0)
    if per_env:
        env.set_physics(per_env)
    offsets = env.effects["joint_zero_offset"]
    qpos = np.zeros((env.num_envs, env.model.nq))
    commands = np.zeros((env.num_envs, length, 6))
    for h in range(n_hyp):
        for e, ep in enumerate(episodes):
            i = h * n_ep + e
            qpos[i, :6] = ep.state[0] - offsets[i]  # the arm reads q + offset
            commands[i, : len(ep.action)] = ep.action
            commands[i, len(ep.action):] = ep.action[-1]  # shorter episodes hold their last command
    env.set_state(qpos, np.zeros((env.num_envs, env.model.nv)), commands[:, 0])
    readings = np.zeros((env.num_envs, length - 1, 6))
    for t in range(length - 1):
        s, _ = env.step_targets(commands[:, t])
        readings[:, t] = s.joint_pos.numpy() + offsets
    env.close()
    out = []
    for h in range(n_hyp):
        rows = [h * n_ep + e for e in range(n_ep)]
        out.append(Replay(
            command=[ep.action[:-1] for ep in episodes],
            real=[ep.state[1:] for ep in episodes],
            sim=[readings[i, : len(ep.action) - 1] for i, ep in zip(rows, episodes, strict=True)],
            fps=dataset.fps,
        ))
    return out


def rmse_deg(r: Replay) -> np.ndarray:
    """(6,) root-mean-square difference of real and simulated joints over every frame of every episode."""
    diff = np.concatenate([s - x for s, x in zip(r.sim, r.real, strict=True)])
    return np.degrees(np.sqrt((diff**2).mean(axis=0)))


def lag_ms(commands: list[np.ndarray], responses: list[np.ndarray], fps: float) -> float | None:
    """How far a joint's response trails its command: the peak of the cross-correlation of their velocities,
    summed over episodes (never across an episode's end), with parabolic refinement between frames. None where
    the joint hardly moves."""
    dcs = [np.diff(c) for c in commands if len(c) > 4]
    drs = [np.diff(r) for r, c in zip(responses, commands, strict=True) if len(c) > 4]
    if not dcs or np.std(np.concatenate(dcs)) < 1e-4 or np.std(np.concatenate(drs)) < 1e-4:
        return None
    max_lag = min(int(MAX_LAG_S * fps), min(d.size for d in dcs) - 2)
    scores = np.zeros(max_lag + 1)
    counts = np.zeros(max_lag + 1)
    for dc, dr in zip(dcs, drs, strict=True):
        for k in range(max_lag + 1):
            scores[k] += np.dot(dc[: dc.size - k], dr[k:])
            counts[k] += dc.size - k
    scores /= counts
    k = int(np.argmax(scores))
    shift = 0.0
    if 0 < k < max_lag:
        a, b, c = scores[k - 1 : k + 2]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
    return 1000.0 * (k + shift) / fps


def _episode_lags(commands: list[np.ndarray], responses: list[np.ndarray], fps: float) -> list[float | None]:
    """Per joint: the lag over all episodes."""
    out = []
    for j in range(6):
        value = lag_ms([c[:, j] for c in commands], [r[:, j] for r in responses], fps)
        out.append(None if value is None else round(value, 1))
    return out


def steady_state_error_deg(commands: list[np.ndarray], responses: list[np.ndarray]) -> list[float | None]:
    """Per joint: mean |command - response| at the end of every hold (a command unchanged for HOLD_FRAMES)."""
    out = []
    for j in range(6):
        errors = []
        for c, r in zip(commands, responses, strict=True):
            still = np.abs(np.diff(c[:, j])) < math.radians(0.1)
            run = 0
            for t, s in enumerate(still, start=1):
                run = run + 1 if s else 0
                if run == HOLD_FRAMES:
                    errors.append(abs(c[t, j] - r[t, j]))
        out.append(round(math.degrees(float(np.mean(errors))), 3) if errors else None)
    return out


def gripper_stalls(commands: list[np.ndarray], responses: list[np.ndarray], fps: float) -> int:
    """Closings that stop short of the command for at least 0.2 s: the jaws are on something."""
    stalls, need = 0, max(2, int(0.2 * fps))
    for c, r in zip(commands, responses, strict=True):
        short = (r[:, GRIPPER] - c[:, GRIPPER] > STALL_RAD)
        still = np.abs(np.gradient(r[:, GRIPPER])) * fps < 0.2
        run = 0
        for flag in short & still:
            run = run + 1 if flag else 0
            if run == need:
                stalls += 1
    return stalls


def largest_gap_phases(r: Replay, episode_ids: list[int], top: int = 3) -> list[dict]:
    """The one-second windows (half-second steps) where the arm joints' RMS gap is largest."""
    window, step = max(2, int(r.fps)), max(1, int(r.fps / 2))
    phases = []
    for e, (s, x) in enumerate(zip(r.sim, r.real, strict=True)):
        for start in range(0, max(1, len(s) - window + 1), step):
            part = s[start : start + window, :5] - x[start : start + window, :5]
            phases.append({"episode": episode_ids[e], "start_s": round((start + 1) / r.fps, 2),
                           "end_s": round((start + len(part)) / r.fps, 2),
                           "rmse_deg": round(math.degrees(float(np.sqrt((part**2).mean()))), 3)})
    return sorted(phases, key=lambda p: -p["rmse_deg"])[:top]


def gap_report(dataset: RealDataset, r: Replay, params: dict[str, Value] | None = None) -> dict:
    """The figures of gap.json."""
    ids = [e.index for e in dataset.episodes]
    real_lag = _episode_lags(r.command, r.real, r.fps)
    sim_lag = _episode_lags(r.command, r.sim, r.fps)
    real_sse = steady_state_error_deg(r.command, r.real)
    sim_sse = steady_state_error_deg(r.command, r.sim)
    rmse = rmse_deg(r)
    return {
        "dataset": str(dataset.root), "fps": dataset.fps, "units": dataset.units, "robot_type": dataset.robot_type,
        "episodes": ids, "frames": int(sum(len(x) + 1 for x in r.real)),
        "robot_params": {k: list(v) if isinstance(v, tuple) else v for k, v in (params or {}).items()},
        "rmse_deg": {j: round(float(v), 3) for j, v in zip(JOINT_NAMES, rmse, strict=True)},
        "rmse_deg_arm_mean": round(float(rmse[:5].mean()), 3),
        "rmse_deg_per_episode": {str(i): round(float(np.degrees(np.sqrt(((s - x)[:, :5] ** 2).mean()))), 3)
                                 for i, s, x in zip(ids, r.sim, r.real, strict=True)},
        "lag_ms": {j: {"real": a, "sim": b} for j, a, b in zip(JOINT_NAMES, real_lag, sim_lag, strict=True)},
        "steady_state_error_deg": {j: {"real": a, "sim": b}
                                   for j, a, b in zip(JOINT_NAMES, real_sse, sim_sse, strict=True)},
        "gripper_stalls": {"real": gripper_stalls(r.command, r.real, r.fps),
                           "sim": gripper_stalls(r.command, r.sim, r.fps)},
        "largest_gap_phases": largest_gap_phases(r, ids),
    }


def plot_episode(r: Replay, e: int, title: str, path: Path) -> Path:
    """Command, real and simulated trajectory of every joint of one episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(1, len(r.real[e]) + 1) / r.fps
    fig, axes = plt.subplots(2, 3, figsize=(12, 5.2), sharex=True)
    for j, ax in enumerate(axes.ravel()):
        ax.plot(t, np.degrees(r.command[e][:, j]), color="0.6", lw=0.9, ls="--", label="command")
        ax.plot(t, np.degrees(r.real[e][:, j]), color="tab:blue", lw=1.2, label="real")
        ax.plot(t, np.degrees(r.sim[e][:, j]), color="tab:orange", lw=1.2, label="sim")
        ax.set_title(JOINT_NAMES[j], fontsize=9)
        ax.set_ylabel("deg", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("s", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_html(report: dict, plots: list[Path], path: Path) -> Path:
    """gap.html: the table of figures and the episode plots, self-contained."""
    rows = "".join(
        f"<tr><td>{j}</td><td>{report['rmse_deg'][j]:.2f}</td><td>{_fmt(report['lag_ms'][j]['real'])}</td>"
        f"<td>{_fmt(report['lag_ms'][j]['sim'])}</td><td>{_fmt(report['steady_state_error_deg'][j]['real'])}</td>"
        f"<td>{_fmt(report['steady_state_error_deg'][j]['sim'])}</td></tr>" for j in JOINT_NAMES)
    phases = "".join(f"<li>episode {p['episode']}, {p['start_s']}-{p['end_s']} s: {p['rmse_deg']:.2f} deg</li>"
                     for p in report["largest_gap_phases"])
    images = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
                     f'style="max-width:100%">' for p in plots)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>dynamics gap</title></head><body>"
            f"<h1>Dynamics gap: {html.escape(report['dataset'])}</h1>"
            f"<p>{len(report['episodes'])} episodes, {report['frames']} frames at {report['fps']:g} fps "
            f"({html.escape(report['units'])}); simulated with "
            f"{html.escape(str(report['robot_params'] or 'the shipped model'))}. "
            f"Gripper stalls: real {report['gripper_stalls']['real']}, sim {report['gripper_stalls']['sim']}.</p>"
            "<table border=1 cellpadding=3><tr><th>joint</th><th>RMSE deg</th><th>lag real ms</th><th>lag sim ms</th>"
            f"<th>steady error real deg</th><th>steady error sim deg</th></tr>{rows}</table>"
            f"<h2>Where the gap is largest</h2><ul>{phases}</ul>{images}</body></html>")
    path.write_text(page)
    return path


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"

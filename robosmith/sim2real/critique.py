"""The rule-based analyst of the dynamics gap: from gap.json's numbers to findings, the parameters worth fitting
and randomization ranges around what the numbers suggest. The offline counterpart of the LLM's critique (the
user's approach "v1": the real recording as a clue to how the simulation should change)."""

from __future__ import annotations

from robosmith.robot.params import PARAMS

ARM = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
GRAVITY_JOINTS = ("shoulder_lift", "elbow_flex", "wrist_flex")  # the ones that hold the arm up


def video_findings(video: dict | None) -> list[str]:
    """What the video gap (`robosmith gap --camera`) says: the camera file, the video's timing, the worst frame."""
    if not video:
        return []
    out = []
    if video["iou_mean"] < 0.7:
        out.append(f"the rendered arm overlaps the filmed one by IoU {video['iou_mean']:.2f} only: check the camera "
                   "file (locate the camera again) and the joint zeros before reading anything else into the video")
    if video.get("lag_ms") is not None and abs(video["lag_ms"]) > 0:
        out.append(f"the video shows the arm {video['lag_ms']:.0f} ms {'after' if video['lag_ms'] > 0 else 'before'} "
                   "its recorded joint states: camera latency, which perception's timing must allow for")
    key = key_frames(video, limit=1)[0]
    out.append(f"the silhouettes differ most in episode {key['episode']}, frame {key['frame']} (IoU {key['iou']:.2f}): "
               f"the key frame to look at, {key['image']} (real | sim | outline)")
    return out


def key_frames(video: dict | None, limit: int = 3) -> list[dict]:
    """The key frames of the episodes whose silhouettes differ most, worst first (episode, frame, iou, image)."""
    if not video:
        return []
    ranked = sorted(video["episodes"], key=lambda e: e["key_frame"]["iou"])[:limit]
    return [{"episode": e["index"], **e["key_frame"]} for e in ranked]


def critique(gap: dict) -> dict:
    """{"findings": [sentences], "fit": [registry names], "randomization": [{name, nominal, bounds}]}."""
    frame_ms = 1000.0 / gap["fps"]
    findings, fit, ranges = [], [], []
    extra = [lag["real"] - lag["sim"] for j, lag in gap["lag_ms"].items()
             if j in ARM and lag["real"] is not None and lag["sim"] is not None]
    if extra:
        lag = sorted(extra)[len(extra) // 2]
        steps = lag / frame_ms
        if steps > 0.5:
            delay = min(round(steps), int(PARAMS["action_delay_steps"].high))
            findings.append(f"the real arm answers its commands {lag:.0f} ms later than the simulated one (median "
                            f"over the arm joints): about {steps:.1f} control steps of lag the model lacks")
            fit.append("action_delay_steps")
            ranges.append({"name": "action_delay_steps", "nominal": float(delay),
                           "bounds": [float(max(0, delay - 1)), float(delay + 1)]})
        elif steps < -0.5:
            findings.append(f"the simulated arm lags the real one by {-lag:.0f} ms: its servos are too slow "
                            "(kp too low or damping too high)")
            fit += ["actuator_kp", "joint_damping"]
    sag = [(j, e["real"] - e["sim"]) for j, e in gap["steady_state_error_deg"].items()
           if j in GRAVITY_JOINTS and e["real"] is not None and e["sim"] is not None]
    if sag and max(abs(d) for _, d in sag) > 1.0:
        joint, diff = max(sag, key=lambda x: abs(x[1]))
        weaker = diff > 0
        findings.append(f"held commands end {abs(diff):.1f} deg {'further from' if weaker else 'closer to'} the "
                        f"target on the real {joint} than in simulation: the real servos are "
                        f"{'weaker against gravity (lower kp or force limit)' if weaker else 'stiffer'}")
        fit.append("actuator_kp")
        kp = PARAMS["actuator_kp"].default
        ranges.append({"name": "actuator_kp", "nominal": kp, "bounds": [kp * 0.4, kp * 1.2] if weaker else
                       [kp * 0.8, kp * 1.6]})
    arm_rmse = [gap["rmse_deg"][j] for j in ARM]
    if max(arm_rmse) > 2.0 and "actuator_kp" not in fit:
        findings.append(f"the arm's trajectories differ by up to {max(arm_rmse):.1f} deg RMS beyond lag and sag: "
                        "friction, damping or armature differ")
        fit += ["joint_damping", "joint_frictionloss", "joint_armature"]
    if gap["gripper_stalls"]["real"] > gap["gripper_stalls"]["sim"]:
        findings.append(f"{gap['gripper_stalls']['real']} gripper closings stop short of their command on the real "
                        "arm: an object in the jaws (the replay has none), not a model error; the gripper is left "
                        "out of the fit")
    if not findings:
        findings.append(f"no gap beyond {max(arm_rmse):.1f} deg RMS: the simulated arm tracks the real one")
    findings += video_findings(gap.get("video"))
    worst = gap.get("largest_gap_phases") or []
    if worst:
        w = worst[0]
        findings.append(f"the gap is largest in episode {w['episode']} between {w['start_s']} and {w['end_s']} s "
                        f"({w['rmse_deg']:.1f} deg)")
    return {"findings": findings, "fit": list(dict.fromkeys(fit)), "randomization": ranges,
            "frame_ms": round(frame_ms, 3), "rmse_arm_max_deg": round(max(arm_rmse), 3)}

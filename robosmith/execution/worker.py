"""One candidate's training, run as its own process: `python -m robosmith.execution.worker CANDIDATE_DIR`.

The reward in the folder came from an LLM or a search and passed validation; it is loaded here through the
one checked loader, never in the agent's process. Whatever happens, result.json says how it ended.
"""

from __future__ import annotations

import ast
import json
import math
import sys
import traceback
from pathlib import Path

import torch

from robosmith.contract.reward_call import RewardContractError
from robosmith.engines.launch import render_engine_video, train_package
from robosmith.reward.check import check_static
from robosmith.reward.judge import sanitize
from robosmith.runs import CandidateFolder, write_json
from robosmith.task import task_from_dict
from robosmith.tracking import start_tracking
from robosmith.train.evaluate import evaluate_run
from robosmith.train.ppo import TrainSettings, train


def run_candidate(folder: Path) -> dict:
    candidate = CandidateFolder(folder)
    job = json.loads(candidate.job.read_text())
    if job.get("kind") == "prior":
        return run_prior(folder, job)
    task = task_from_dict(job["task"], candidate.job)
    settings = TrainSettings(**job["settings"])
    body = (folder / job["reward_file"]).read_text()
    threads = int(job.get("threads", 1))
    result: dict = {"status": "ok", "reason": ""}
    try:
        if job.get("backend", "cpu") == "cpu":
            # One tracked run per candidate: its curves, its reward code, then its evaluation and video.
            tracker = start_tracking(folder, f"{task.name}/{folder.name}", {"task": task.name}, job.get("group"))
            try:
                last = train(task, body, folder, settings, progress=False, threads=threads, tracker=tracker)
                ev = evaluate_run(folder, episodes=settings.eval_episodes, video_episodes=settings.video_episodes,
                                  progress=False, threads=threads)
                tracker.summarize(ev, candidate.video)
            finally:
                tracker.finish()
        else:
            last, ev = train_on_engine(folder, job, settings)
        losses = [v for k, v in last.items() if k.startswith("loss/")]
        if not all(math.isfinite(v) for v in losses) or not math.isfinite(last["mean_reward"]):
            result.update(status="nan", reason="training produced NaN losses or rewards")
        result.update(
            success_rate=ev["success_rate"], ci95=ev["ci95"], eval_episodes=ev["episodes"],
            mean_reward=last["mean_reward"], train_success_rate=last["success_rate"],
            env_steps=last["env_steps"], wall_s=last["wall_s"],
        )
        if job.get("robustness"):  # a randomization candidate: judged on the task's variants, here, confined
            result.update(robustness_of(folder, task, job["robustness"], settings.eval_episodes, threads))
    except RewardContractError as e:  # the reward broke a rule during training or evaluation
        result.update(status="violation", reason=f"reward broke the contract in training: {e}")
        candidate.traceback.write_text(traceback.format_exc())
    except Exception as e:  # noqa: BLE001 - any failure of a candidate is recorded, never raised to the loop
        text = f"{type(e).__name__}: {e}".splitlines()[0][:400]
        if isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower():
            result.update(status="memory", reason="the reward ran out of the trainer's memory limit")
        else:
            result.update(status="nan" if "nan" in text.lower() else "crashed", reason=sanitize(text, 400))
        candidate.traceback.write_text(traceback.format_exc())
    write_json(candidate.result, result)
    return result


def train_on_engine(folder: Path, job: dict, settings: TrainSettings) -> tuple[dict, dict]:
    """Train the exported package in the folder with the engine's interpreter; (last metrics row, eval.json).

    The package's reward module is checked again here, in the confined trainer, right before the engine
    imports it: what runs is what passed the check.
    """
    package_dir = folder / job["package"]
    check_static(reward_body_of_module((package_dir / "reward.py").read_text()))
    sys.stdout.flush()
    rows, evaluation = train_package(
        job["engine_command"], package_dir, folder, settings.num_envs, settings.max_iterations,
        settings.max_minutes, settings.eval_episodes, settings.video_episodes, settings.seed, log=sys.stdout,
    )
    task = task_from_dict(job["task"], CandidateFolder(folder).job)
    video = render_engine_video(folder, task.scene, task.control_hz)
    if video is not None:
        evaluation["video"] = video.name
        write_json(CandidateFolder(folder).evaluation, evaluation)
    return rows[-1], evaluation


def reward_body_of_module(source: str) -> str:
    """A rendered reward module without its docstring and its `import math` / `import torch`: the body."""
    tree = ast.parse(source)
    kept = [
        node for i, node in enumerate(tree.body)
        if not (i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        and not (isinstance(node, ast.Import) and [a.name for a in node.names] in (["math"], ["torch"])
                 and all(a.asname is None for a in node.names))
    ]
    return "\n\n".join(ast.get_source_segment(source, node) for node in kept) + "\n"




def robustness_of(folder: Path, task, variants: list[dict], episodes: int, threads: int) -> dict:
    """The trained policy on each variant (robustness.json in the folder); the scores selection ranks by."""
    from robosmith.sim2real.robustness import evaluate_variants, robustness_scores, variants_from, write_result
    from robosmith.train.policy import RLPolicy

    torch.set_num_threads(threads)
    result = evaluate_variants(RLPolicy(folder, task), task, variants_from(variants), folder, episodes, progress=False)
    result["policy"] = folder.name
    write_result(folder, result, "default")
    return robustness_scores(result)


def run_prior(folder: Path, job: dict) -> dict:
    """The randomization phase's prior: RAPP and robustness of a trained policy (rapp.json, robustness.json)."""
    from robosmith.sim2real.rapp import plot_rapp, rapp
    from robosmith.sim2real.robustness import evaluate_variants, plot_heatmap, variants_from, write_result
    from robosmith.train.policy import RLPolicy

    run = CandidateFolder(folder)
    result: dict = {"status": "ok", "reason": ""}
    try:
        torch.set_num_threads(int(job.get("threads", 1)))
        task = task_from_dict(job["task"], run.job)
        policy = RLPolicy(Path(job["policy"]), task)
        sweeps = rapp(policy, task, job["names"], job["points"], job["episodes"], progress=False)
        write_json(run.rapp, sweeps)
        plot_rapp(sweeps, run.rapp_plot)
        robust = evaluate_variants(policy, task, variants_from(job["variants"]), folder, job["eval_episodes"],
                                   progress=False)
        robust["policy"] = job["policy"]
        write_result(folder, robust, "default")
        plot_heatmap([("without randomization", robust)], run.robustness_plot)
    except Exception as e:  # noqa: BLE001 - recorded for the loop, which stops the phase with the reason
        result.update(status="crashed", reason=sanitize(f"{type(e).__name__}: {e}".splitlines()[0][:400], 400))
        run.traceback.write_text(traceback.format_exc())
    write_json(run.result, result)
    return result


if __name__ == "__main__":
    run_candidate(Path(sys.argv[1]))

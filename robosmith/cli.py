"""The `robosmith` command. Thin: it parses, then calls functions the tests call too.

Errors a user can fix derive from `robosmith.errors.RobosmithError`; they are caught here, in one place
(`_Group.invoke`), and printed as one line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from robosmith.errors import RobosmithError


class _Group(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RobosmithError as e:
            _fail(str(e))


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True,
                  help="Simulation-driven robot learning for the SO-101.")


def _fail(message: str) -> None:
    """Print one line and exit with status 2 (bad input)."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)


def _with_robot_params(spec, robot_params: Path | None):
    """The task with a robot-params file's values, if one is given (the arm and objects as identified)."""
    if robot_params is None:
        return spec
    from robosmith.robot.params import load_params_file
    from robosmith.task.spec import with_robot_params

    return with_robot_params(spec, load_params_file(robot_params))


_CAMERA_FILE = Annotated[Path | None, typer.Option(
    "--camera", help="camera file (`robosmith camera locate`): the front camera renders as that camera sees the scene")]
_BACKGROUND = Annotated[Path | None, typer.Option(
    help="with --camera: photo of the real scene from it without the arm, shown behind the simulated arm")]


def _with_camera(spec, camera: Path | None, background: Path | None):
    """The task whose front camera is a camera file's (and its background photo), if one is given."""
    if camera is None:
        if background is not None:
            _fail("--background goes with --camera (the photo is of that camera's view)")
        return spec
    from robosmith.perception.camera import load_camera, with_camera

    return with_camera(spec, load_camera(camera), background)


def _with_randomization(spec, dr: Path | None, randomize: bool):
    """The task with a randomization file's ranges in place of its own, if one is given."""
    if dr is None:
        return spec
    if not randomize:
        _fail("--dr and --no-randomize contradict each other")
    from robosmith.robot.params import PARAMS
    from robosmith.task.load import load_randomization_file

    ranges = load_randomization_file(dr)
    on_cube = [p.name for p in ranges if PARAMS[p.name].needs_cube]
    if on_cube and not spec.scene.cube:
        _fail(f"{dr}: {', '.join(on_cube)}: {spec.name} has no cube")
    return dataclasses.replace(spec, domain_randomization=ranges)


def _checked_reward(reward: Path | None, spec) -> str:
    """The reward body a command trains: `reward` (a file, a training run or an agent run) or the task's own.

    It gets the static check of the agent's candidates; the caller trains it with their restricted loader.
    """
    from robosmith.reward.check import RewardRejected, check_static
    from robosmith.runs import reward_body_from

    if reward is not None and not reward.exists():
        _fail(f"{reward}: no such reward file")
    body = reward_body_from(reward) if reward else spec.reference_reward_body()
    try:
        check_static(body)
    except RewardRejected as e:
        _fail(f"{reward}: {e.reason}")
    return body


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="task name (robosmith/task/tasks/*.yaml) or path to a task file")],
    reward: Annotated[Path | None, typer.Option(help="file defining compute_reward(s), a training run or an agent run")]
    = None,
    minutes: Annotated[float | None, typer.Option(help="wall-clock limit of training")] = None,
    iterations: Annotated[int | None, typer.Option(help="PPO iterations at most")] = None,
    num_envs: Annotated[int | None, typer.Option(help="parallel environments")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    eval_episodes: Annotated[int | None, typer.Option(help="episodes for the final evaluation")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/<time>-<task>, see ROBOSMITH_RUNS)")]
    = None,
    robot_params: Annotated[Path | None, typer.Option(help="robot-params file (YAML: registry name -> value)")]
    = None,
    randomize: Annotated[bool, typer.Option(help="sample the task's domain randomization at every reset")] = True,
    dr: Annotated[Path | None, typer.Option(help="randomization file (the schema of a task's domain_randomization) "
                                            "to train with instead of the task's")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    algo: Annotated[str, typer.Option(help="ppo (rsl-rl) or sac (skrl)")] = "ppo",
    camera: _CAMERA_FILE = None,
    background: _BACKGROUND = None,
) -> None:
    """Train a policy with PPO (or SAC), then evaluate it and record a video."""
    from robosmith.runs import new_run_dir
    from robosmith.task import load_task
    from robosmith.train.evaluate import evaluate_run
    from robosmith.train.ppo import TrainSettings
    from robosmith.train.ppo import train as train_policy

    # The arm's values last: they centre whichever ranges train, the task's or a --dr file's.
    spec = _with_robot_params(_with_randomization(load_task(task), dr, randomize), robot_params)
    spec = _with_camera(spec, camera, background)
    settings = TrainSettings.from_task(
        spec, max_minutes=minutes, max_iterations=iterations, num_envs=num_envs, seed=seed,
        eval_episodes=eval_episodes, randomize=randomize, algo=algo,
    )
    body = _checked_reward(reward, spec)
    run_dir = out if out else new_run_dir(spec.name)
    typer.echo(f"run folder: {run_dir}")
    last = train_policy(spec, body, run_dir, settings, progress=progress)
    typer.echo(
        f"trained {last['iteration'] + 1} iterations, {last['env_steps']} env steps in {last['wall_s']:.0f} s"
    )
    if last.get("randomization_width", 1.0) < 1.0:
        typer.echo(f"note: training ended at {last['randomization_width']:.0%} of the randomization ranges' width "
                   "(train.randomized.widen_at was not reached often enough): the policy never saw the whole ranges")
    result = evaluate_run(run_dir, episodes=settings.eval_episodes, progress=progress)
    _print_eval(run_dir, result)


@app.command("eval")
def eval_(
    run: Annotated[str, typer.Argument(help="run folder (path or name under runs/)")],
    episodes: Annotated[int, typer.Option(help="evaluation episodes")] = 100,
    video_episodes: Annotated[int, typer.Option(help="episodes shown in eval.mp4")] = 4,
    seed: Annotated[int, typer.Option()] = 12345,
    progress: Annotated[bool, typer.Option()] = True,
    robot_params: Annotated[Path | None, typer.Option(help="robot-params file (YAML: registry name -> value)")]
    = None,
    perceived: Annotated[bool, typer.Option(
        "--perceived", help="also with the cube's pose read from rendered camera frames: eval_perceived.json")] = False,
    camera: Annotated[Path | None, typer.Option(help="camera file for --perceived (default: the scene's front camera)")]
    = None,
) -> None:
    """Evaluate a run's latest checkpoint: success rate with a 95% interval, and a video."""
    from robosmith.robot.params import load_params_file
    from robosmith.runs import resolve_run
    from robosmith.train.evaluate import evaluate_run

    run_dir = resolve_run(run)
    if perceived:
        _eval_perceived(run_dir, camera, episodes, seed, progress)
        return
    params = load_params_file(robot_params) if robot_params else None
    result = evaluate_run(run_dir, episodes=episodes, video_episodes=video_episodes, seed=seed, progress=progress,
                          robot_params=params)
    _print_eval(run_dir, result)


def _eval_perceived(run_dir: Path, camera: Path | None, episodes: int, seed: int, progress: bool) -> None:
    from robosmith.perception.camera import load_camera, nominal_camera
    from robosmith.perception.in_the_loop import evaluate_perceived
    from robosmith.train.policy import RLPolicy

    cam = load_camera(camera) if camera else nominal_camera(RLPolicy(run_dir).task.scene)
    result = evaluate_perceived(run_dir, cam, episodes, seed, progress, camera_file=camera and str(camera))
    for key, label in (("true_state", "true state"), ("perceived", "perceived")):
        r = result[key]
        typer.echo(f"{label:>10}: {r['success_rate']:.1%} (95% CI {r['ci95'][0]:.1%}-{r['ci95'][1]:.1%}) "
                   f"over {episodes} episodes")
    est = result["estimator"]
    typer.echo(f"estimator: median {est['median_mm']} mm, p95 {est['p95_mm']} mm, found in {est['found_share']:.1%} "
               f"of {est['frames']} frames; wrote {run_dir / 'eval_perceived.json'}")


@app.command()
def robustness(
    runs: Annotated[list[str], typer.Argument(help="policies: RL runs, `bc train` or finetune folders")],
    variants: Annotated[Path | None, typer.Option(help="variants file (YAML list of {name, params})")] = None,
    suite: Annotated[str, typer.Option(help="the task's shipped suite when no --variants: default or test")]
    = "default",
    task: Annotated[str | None, typer.Option(help="task (default: the one the first policy was trained on)")] = None,
    episodes: Annotated[int, typer.Option(help="episodes per variant")] = 100,
    seed: Annotated[int, typer.Option(help="the initial states, the same in every variant")] = 12345,
    out: Annotated[Path | None, typer.Option(help="heat map (default: <first run>/robustness.png)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print robustness.json instead of the table")] = False,
    progress: Annotated[bool, typer.Option()] = True,
    robot_params: Annotated[Path | None, typer.Option(
        help="robot-params file: the world every variant starts from (the arm as identified)")] = None,
) -> None:
    """Success of each policy in each variant of the world: a table, robustness.json per policy, a heat map."""
    from robosmith.runs import TrainingRun
    from robosmith.sim2real.robustness import (
        evaluate_variants,
        load_variants,
        plot_heatmap,
        robustness_table,
        suite_path,
        write_result,
    )
    from robosmith.train.policy import load_policy

    folders = [_policy_folder(r) for r in runs]
    spec = _with_robot_params(_policy_task(folders[0], task), robot_params)
    variants_file = variants or suite_path(spec, suite)
    chosen = load_variants(variants_file, spec)
    if episodes < 1:
        _fail(f"--episodes must be >= 1, got {episodes}")
    results = []
    for folder in folders:
        policy = load_policy(folder, spec)
        try:
            result = evaluate_variants(policy, spec, chosen, folder, episodes, seed, progress)
        finally:
            policy.close()
        result.update(task=spec.name, policy=str(folder), variants_file=str(variants_file))
        write_result(folder, result, None if variants else suite)
        results.append(result)
        if not as_json:
            typer.echo(f"{folder} on {spec.name} ({variants_file.name}, {episodes} episodes per variant):")
            typer.echo(robustness_table(result))
    picture = plot_heatmap([(Path(r["policy"]).name, r) for r in results],
                           out or TrainingRun(folders[0]).robustness_plot)
    if as_json:
        json.dump(results[0] if len(results) == 1 else results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        typer.echo(f"heat map: {picture}")


@app.command()
def rapp(
    run: Annotated[str, typer.Argument(help="policy: an RL run, a `bc train` or finetune folder")],
    params: Annotated[str | None, typer.Option(
        help="comma-separated registry names (default: the parameters the task randomizes)")] = None,
    points: Annotated[int, typer.Option(help="grid values per parameter (whole-number ones: every value)")] = 9,
    episodes: Annotated[int, typer.Option(help="episodes per value")] = 50,
    threshold: Annotated[float | None, typer.Option(
        help="success rate that counts as succeeding (default: 80% of the nominal success)")] = None,
    task: Annotated[str | None, typer.Option(help="task (default: the one the policy was trained on)")] = None,
    seed: Annotated[int, typer.Option()] = 12345,
    as_json: Annotated[bool, typer.Option("--json", help="print rapp.json instead of the table")] = False,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """RAPP (DrEureka): sweep each physical parameter alone; the interval where the policy still succeeds."""
    from robosmith.runs import TrainingRun, write_json
    from robosmith.sim2real.rapp import plot_rapp, rapp_table
    from robosmith.sim2real.rapp import rapp as sweep
    from robosmith.train.policy import load_policy

    folder = _policy_folder(run)
    spec = _policy_task(folder, task)
    names = [n.strip() for n in params.split(",") if n.strip()] if params else [
        p.name for p in spec.domain_randomization]
    if not names:
        _fail(f"{spec.name} randomizes nothing; name the parameters with --params")
    if points < 3 or episodes < 1 or (threshold is not None and not 0 < threshold <= 1):
        _fail("--points must be >= 3, --episodes >= 1 and --threshold within (0, 1]")
    policy = load_policy(folder, spec)
    try:
        result = sweep(policy, spec, names, points, episodes, seed, threshold, progress)
    finally:
        policy.close()
    result["policy"] = str(folder)
    files = TrainingRun(folder)
    write_json(files.rapp, result)
    plot_rapp(result, files.rapp_plot)
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        typer.echo(rapp_table(result))
        typer.echo(f"wrote {files.rapp} and {files.rapp_plot}")


@app.command()
def gap(
    dataset: Annotated[Path, typer.Argument(help="LeRobot dataset folder (v3.0) recorded with an SO-101 follower")],
    out: Annotated[Path, typer.Option(help="folder for gap.json, gap.html and the plots")],
    episodes: Annotated[str | None, typer.Option(help="comma-separated episode indices (default: all)")] = None,
    robot_params: Annotated[Path | None, typer.Option(help="robot-params file: the simulated arm's physics")]
    = None,
    units: Annotated[str | None, typer.Option(help="degrees or range, where the dataset does not say")] = None,
    calibration: Annotated[Path | None, typer.Option(help="the arm's LeRobot calibration file (range mode)")]
    = None,
    camera: Annotated[Path | None, typer.Option(
        help="camera file of the dataset's front camera: also the video gap (silhouette IoU, video lag, videos)")]
    = None,
    video_camera: Annotated[str, typer.Option(help="the dataset's camera the camera file describes")] = "front",
    background: Annotated[Path | None, typer.Option(
        help="photo of the scene without the arm in front of it (default: the median of the video frames)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print gap.json")] = False,
) -> None:
    """Replay real episodes open-loop on the simulated arm: per-joint RMSE, lags, steady-state errors, stalls;
    with --camera, the video gap too."""
    from robosmith.robot.params import load_params_file
    from robosmith.runs import write_json
    from robosmith.sim2real.critique import critique
    from robosmith.sim2real.dataset import load_dataset
    from robosmith.sim2real.gap import gap_report, plot_episode, replay, write_html

    chosen = _episode_list(episodes)
    data = load_dataset(dataset, chosen, units, calibration)
    params = load_params_file(robot_params) if robot_params else {}
    result = replay(data, params)
    report = gap_report(data, result, params)
    out.mkdir(parents=True, exist_ok=True)
    if camera:
        from robosmith.perception.camera import load_camera
        from robosmith.sim2real.video_gap import read_background, video_gap
        from robosmith.task.spec import SceneConfig

        # The arm at the measured joints: its geometry is all a render needs (no cube: none was recorded).
        report["video"] = video_gap(data, SceneConfig(), load_camera(camera), out, video_camera,
                                    read_background(background) if background else None)
    report["critique"] = critique(report)
    write_json(out / "gap.json", report)
    plots = [plot_episode(result, e, f"episode {ep.index}: command, real, simulated", out / f"gap_ep{ep.index}.png")
             for e, ep in enumerate(data.episodes[:8])]
    page = write_html(report, plots, out / "gap.html")
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    typer.echo(f"{len(report['episodes'])} episodes, {report['frames']} frames at {report['fps']:g} fps "
               f"({report['units']}); gap per joint (RMSE, lag real/sim):")
    for joint, rmse in report["rmse_deg"].items():
        lag = report["lag_ms"][joint]
        typer.echo(f"  {joint:<14} {rmse:7.2f} deg   {_ms(lag['real'])} / {_ms(lag['sim'])}")
    typer.echo(f"gripper stalls: real {report['gripper_stalls']['real']}, sim {report['gripper_stalls']['sim']}")
    for finding in report["critique"]["findings"]:
        typer.echo(f"- {finding}")
    if "video" in report:
        v = report["video"]
        typer.echo(f"video gap ({v['camera']}): arm silhouette IoU {v['iou_mean']:.3f}, video lag "
                   f"{_ms(v['lag_ms'])} behind the joint states; videos in {out}")
    if report["critique"]["fit"]:
        typer.echo(f"worth fitting: robosmith sysid {dataset} --params {','.join(report['critique']['fit'])} "
                   "--out arm.yaml")
    typer.echo(f"wrote {out / 'gap.json'} and {page}")


@app.command()
def sysid(
    dataset: Annotated[Path, typer.Argument(help="LeRobot dataset folder (v3.0) recorded with an SO-101 follower")],
    out: Annotated[Path, typer.Option(help="robot-params YAML to write (sysid.json goes beside it)")],
    params: Annotated[str, typer.Option(help="comma-separated registry names to fit")]
    = "actuator_kp,joint_damping,joint_armature,joint_frictionloss,action_delay_steps",
    val_episodes: Annotated[str | None, typer.Option(help="comma-separated validation episodes (default: the last "
                                                          "quarter)")] = None,
    episodes: Annotated[str | None, typer.Option(help="comma-separated episodes to use (default: all)")] = None,
    units: Annotated[str | None, typer.Option(help="degrees or range, where the dataset does not say")] = None,
    calibration: Annotated[Path | None, typer.Option(help="the arm's LeRobot calibration file (range mode)")]
    = None,
    generations: Annotated[int, typer.Option(help="CMA-ES generations at most")] = 40,
    popsize: Annotated[int, typer.Option(help="hypotheses per generation")] = 12,
    seed: Annotated[int, typer.Option()] = 0,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Fit registry parameters to real episodes (CMA-ES over batched replays); the validation gap before/after."""
    import yaml

    from robosmith.runs import write_json
    from robosmith.sim2real.dataset import load_dataset
    from robosmith.sim2real.sysid import identify

    names = [n.strip() for n in params.split(",") if n.strip()]
    data = load_dataset(dataset, _episode_list(episodes), units, calibration)
    if generations < 1 or popsize < 4:
        _fail("--generations must be >= 1 and --popsize >= 4")
    result = identify(data, names, _episode_list(val_episodes), generations, popsize, seed, progress=progress)
    result["dataset"] = str(dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(result["params"], sort_keys=False))
    write_json(out.parent / "sysid.json", result)
    typer.echo("fitted: " + ", ".join(f"{k}={v:g}" for k, v in result["params"].items()))
    for name, interval in result["intervals"].items():
        typer.echo(f"  {name}: within 10% of the best training error over {interval}")
    for note in result["trade_offs"]:
        typer.echo(f"  note: {note}")
    typer.echo(f"validation episodes {result['val_episodes']}: arm RMSE {result['val_rmse_before_deg']:.2f} deg "
               f"with the shipped model, {result['val_rmse_after_deg']:.2f} deg fitted")
    typer.echo(f"wrote {out} and {out.parent / 'sysid.json'}")


def _ms(value: float | None) -> str:
    return "   -   " if value is None else f"{value:5.0f} ms"


def _episode_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        _fail(f"--episodes must be comma-separated whole numbers, got {text!r}")


def _policy_folder(run: str) -> Path:
    from robosmith.runs import runs_root

    path = Path(run)
    if not path.is_dir() and (runs_root() / run).is_dir():
        path = runs_root() / run
    if not path.is_dir():
        _fail(f"{run}: no such policy folder")
    return path


def _policy_task(folder: Path, task: str | None):
    """The task a policy is evaluated on: `--task`, else the one its folder's config.json names."""
    from robosmith.runs import TrainingRun
    from robosmith.task import load_task, task_from_dict

    if task is not None:
        return load_task(task)
    config = TrainingRun(folder).config
    if not config.is_file():
        _fail(f"{folder}: no {config.name} names its task; give --task")
    return task_from_dict(json.loads(config.read_text())["task"], config)


def _print_eval(run_dir: Path, result: dict) -> None:
    low, high = result["ci95"]
    typer.echo(
        f"{result['task']}: success {result['success_rate']:.1%} over {result['episodes']} episodes "
        f"(95% CI {low:.1%}-{high:.1%})"
    )
    typer.echo(f"evaluation: {run_dir / 'eval.json'}")
    if "video" in result:
        typer.echo(f"video: {run_dir / result['video']}")


def _print_straying(straying: dict) -> None:
    if straying["action_deviation"] is not None:
        typer.echo(f"actions: mean |a - a_BC| {straying['action_deviation']:.4f} "
                   f"({straying['target_deviation_deg']:.2f} deg of joint target)")
    rows = [("policy", straying["policy_paths"]), ("demonstrations", straying["demonstration_paths"])]
    for name, paths in rows:
        if paths and "error" in paths:
            typer.echo(f"{name}: {paths['error']}")
        elif paths:
            typer.echo(f"{name}: tool's highest point {paths['max_height_m']['median'] * 100:.1f} cm, path "
                       f"{paths['path_length_m']['median'] * 100:.1f} cm (medians over {paths['episodes']} episodes)")


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="a task name or file, or a sentence: 'lift the cube 10 cm'")],
    dry_run: Annotated[bool, typer.Option(help="choose and save the task, then stop")] = False,
    candidates: Annotated[int, typer.Option(help="reward candidates per iteration")] = 4,
    iterations: Annotated[int, typer.Option("--iterations", "--max-iterations", help="iterations at most")] = 3,
    train_minutes: Annotated[float, typer.Option(help="training time per candidate")] = 5.0,
    num_envs: Annotated[int | None, typer.Option(help="environments per candidate")] = None,
    parallel: Annotated[int, typer.Option(help="candidates training at once (0: one per core)")] = 0,
    max_hours: Annotated[float | None, typer.Option(help="wall-clock limit of the whole loop")] = None,
    until: Annotated[str | None, typer.Option(help="stop after this local time, HH:MM (e.g. 07:30)")] = None,
    review: Annotated[bool, typer.Option(help="pause after each iteration for `robosmith review`")] = False,
    eval_episodes: Annotated[int, typer.Option()] = 100,
    seed: Annotated[int, typer.Option()] = 0,
    offline: Annotated[bool, typer.Option(help="use the offline proposer even if an LLM is configured")] = False,
    baseline: Annotated[bool, typer.Option(
        help="also train the task's reference reward in the first iteration (a candidate that may win)")] = True,
    llm_base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint URL")] = None,
    llm_model: Annotated[str | None, typer.Option(help="model name (or ROBOSMITH_LLM_MODEL)")] = None,
    llm_temperature: Annotated[float | None, typer.Option()] = None,
    budget_usd: Annotated[float | None, typer.Option(help="stop when LLM calls have cost this much")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/<time>-<task>, see ROBOSMITH_RUNS)")]
    = None,
    backend: Annotated[str, typer.Option(help="where candidates train: cpu, mjlab or isaaclab")] = "cpu",
    mjlab_python: Annotated[Path | None, typer.Option(
        help="mjlab's python (default: $ROBOSMITH_MJLAB_PYTHON, else ./.venv-mjlab)")] = None,
    isaaclab_python: Annotated[Path | None, typer.Option(help="Isaac Lab's python, or isaaclab.sh")] = None,
    trainer_memory_mb: Annotated[int | None, typer.Option(
        help="memory limit of each candidate's trainer (default: 80% of the machine's, shared)")] = None,
    trainer_cpu_s: Annotated[int | None, typer.Option(
        help="CPU-time limit of each candidate's trainer (default: its time limit on each of its threads)")] = None,
    dr: Annotated[bool | None, typer.Option(
        "--dr/--no-dr", help="randomization phase after the reward phase (default: once the reward met its "
        "target)")] = None,
    dr_iterations: Annotated[int, typer.Option(help="iterations of the randomization phase")] = 1,
    dr_candidates: Annotated[int, typer.Option(help="randomization candidates per iteration")] = 2,
    real: Annotated[Path | None, typer.Option(
        help="LeRobot dataset of the real arm: read its gap, fit the arm, train on the fitted arm")] = None,
    real_units: Annotated[str | None, typer.Option(help="with --real: degrees or range")] = None,
    real_calibration: Annotated[Path | None, typer.Option(help="with --real: the arm's calibration file")] = None,
    algo: Annotated[str, typer.Option(help="how candidates train on the cpu backend: ppo or sac")] = "ppo",
    robot_params: Annotated[Path | None, typer.Option(
        help="robot-params file: candidates train on the arm as identified (robosmith sysid)")] = None,
    executor: Annotated[str, typer.Option(help="where candidates train: local (processes here) or ray")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="with --executor ray: auto, ray://host:port, or none to start Ray on this machine")] = None,
    shared_fs: Annotated[bool, typer.Option(
        help="with --executor ray: the nodes see the run folder at the same path (nothing is shipped)")] = False,
    camera: Annotated[Path | None, typer.Option(
        "--camera", help="camera file of the front camera: the task renders as it sees the scene; with --real, the "
        "dataset's front video is compared with the rendered arm and its key frames go to the critique")] = None,
    background: _BACKGROUND = None,
) -> None:
    """The reward-design loop: propose rewards, validate, train in parallel, reflect, iterate; then (DrEureka)
    design the domain randomization and select it by robustness."""
    from robosmith.agent.llm import LLMClient, LLMConfig
    from robosmith.agent.loop import LoopSettings, RewardLoop
    from robosmith.agent.task_from_text import choose_task
    from robosmith.runs import AgentRun, new_run_dir

    llm = None if offline else LLMConfig.from_env(
        base_url=llm_base_url, model=llm_model, temperature=llm_temperature, samples=candidates,
        budget_usd=budget_usd,
    )
    llm = llm if llm and llm.configured else None
    engine_python = _engine_python(backend, mjlab_python, isaaclab_python)
    version = "3.0"
    if backend == "isaaclab":
        from robosmith.engines.launch import engine_command, isaaclab_version

        version = isaaclab_version(engine_command(backend, engine_python))
    settings = LoopSettings(
        candidates=candidates, max_iterations=iterations, train_minutes=train_minutes, num_envs=num_envs,
        parallel=parallel, max_hours=max_hours, eval_episodes=eval_episodes, seed=seed, review=review,
        until=_parse_until(until) if until else None, backend=backend, engine_python=engine_python,
        isaaclab_version=version, trainer_memory_mb=trainer_memory_mb, trainer_cpu_s=trainer_cpu_s,
        dr=dr, dr_iterations=dr_iterations, dr_candidates=dr_candidates, baseline=baseline,
        real_dataset=str(real.resolve()) if real else None, real_units=real_units,
        real_calibration=str(real_calibration.resolve()) if real_calibration else None,
        executor=executor, ray_address=ray_address, shared_fs=shared_fs, algo=algo,
    )
    if executor != "ray" and (ray_address or shared_fs):
        _fail("--ray-address and --shared-fs go with --executor ray")
    if real is not None:  # a bad dataset fails now, in one line, before anything trains
        from robosmith.sim2real.dataset import load_dataset

        load_dataset(real, None, real_units, real_calibration)
    staging = out if out else new_run_dir("run")
    client = LLMClient(llm, AgentRun(staging).llm_calls) if llm else None
    choice = choose_task(task, client)
    choice = dataclasses.replace(choice, spec=_with_camera(_with_robot_params(choice.spec, robot_params), camera,
                                                           background))
    typer.echo(f"task: {choice.spec.name} ({choice.how}: {choice.why})")
    if choice.spec.params:
        typer.echo("parameters: " + ", ".join(f"{k}={v:g}" for k, v in choice.spec.params.items()))
    typer.echo(f"success: {choice.spec.success}")
    if out is None:  # name the folder after the task, now that it is known
        named = staging.with_name(staging.name.removesuffix("-run") + f"-{choice.spec.name}")
        staging = staging.rename(named) if not named.exists() else staging
    loop = RewardLoop.create(staging, choice.spec, settings, llm, {"input": task, "how": choice.how, "why": choice.why})
    typer.echo(f"run folder: {staging}  (task saved to task.yaml)")
    if loop.client:
        typer.echo(f"proposer: LLM {llm.model} at {llm.base_url or 'api.openai.com'}")
    else:
        typer.echo("proposer: offline (rewards composed from the term library, then searched; no LLM configured)")
    if dry_run:
        return
    _finish(loop, _interruptible(loop, resume=False))


@app.command()
def resume(
    run: Annotated[Path, typer.Argument(help="run folder of `robosmith run`")],
    ray_address: Annotated[str | None, typer.Option(
        help="a run with --executor ray: the cluster's address now, if it changed")] = None,
) -> None:
    """Continue a reward-design run that was killed or interrupted, from its last checkpoint."""
    from robosmith.agent.loop import RewardLoop

    loop = RewardLoop.open(_agent_run(run), settings_overrides={"ray_address": ray_address} if ray_address else None)
    typer.echo(f"resuming {run} (proposer: {loop.proposer.name})")
    _finish(loop, _interruptible(loop, resume=True))


@app.command()
def status(
    run: Annotated[Path, typer.Argument(help="run folder of `robosmith run`")],
    watch: Annotated[bool, typer.Option(help="refresh every 2 s until the run stops (Ctrl-C to leave)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Where a reward-design run stands: every candidate, where it runs, its progress, the best so far. Read from
    the run folder: works while the run trains (any executor), after it, and after a kill."""
    from rich.console import Console

    from robosmith.agent.status import REFRESH_S, live_status, run_status, status_table

    _agent_run(run)
    if as_json:
        typer.echo(json.dumps(run_status(run), indent=2))
        return
    if watch:
        with contextlib.suppress(KeyboardInterrupt), live_status(run):
            while run_status(run)["state"].startswith("running"):
                time.sleep(REFRESH_S)
    console = Console()
    Console(width=max(console.width, 150)).print(status_table(run_status(run)))  # a pipe is 80 wide: too narrow


def _agent_run(run: Path) -> Path:
    from robosmith.runs import AgentRun

    if not AgentRun(run).run_info.is_file():
        _fail(f"{run}: not a reward-design run (no {AgentRun.run_info})")
    return run


def _engine_python(backend: str, mjlab_python: Path | None, isaaclab_python: Path | None) -> str | None:
    """The interpreter option that belongs to the backend; the other one given is a mistake, not a fallback."""
    given = {"mjlab": mjlab_python, "isaaclab": isaaclab_python}
    for name, path in given.items():
        if path is not None and name != backend:
            _fail(f"--{name}-python: given with --backend {backend}")
    path = given.get(backend)
    return str(path) if path is not None else None


def _interruptible(loop, resume: bool) -> dict:
    try:
        return loop.run(resume=resume)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; nothing finished is lost. Continue with: robosmith resume {loop.run_dir}", err=True)
        raise typer.Exit(130) from None


def _parse_until(text: str) -> float:
    """The next moment the local clock shows HH:MM, as seconds since the epoch."""
    import datetime as dt

    try:
        hour, minute = (int(x) for x in text.split(":"))
        target = dt.datetime.now().replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        _fail(f"--until must be a time HH:MM, got {text!r}")
    if target <= dt.datetime.now():
        target += dt.timedelta(days=1)
    return target.timestamp()


def _finish(loop, state: dict) -> None:
    from robosmith.runs import CandidateFolder

    summary = loop.write_summary(state)
    if state.get("paused_for_review"):
        phase = "randomization iteration" if state.get("phase") == "randomization" else "iteration"
        it = state["dr_iteration"] if state.get("phase") == "randomization" else state["iteration"]
        typer.echo(f"paused for review after {phase} {it}: robosmith review {loop.run_dir}")
        typer.echo(f"report: {loop.files.report}")
        return
    typer.echo(f"stopped: {summary['stop_reason']}")
    history = state.get("history", [])
    typer.echo(f"tried {len(history)} candidates in {state.get('iteration', 0)} iterations: "
               f"{sum(r['status'] == 'ok' for r in history)} trained, "
               f"{sum(r['status'] == 'rejected' for r in history)} rejected, "
               f"{sum(r['status'] not in ('ok', 'rejected') for r in history)} failed; "
               f"LLM cost ${summary['llm_cost_usd']:.4f}")
    best, reference = summary["best"], summary["reference"]
    if best:
        typer.echo(f"best: candidate {best['id']} with evaluation success {best['success_rate']:.0%}")
        if reference and reference.get("success_rate") is not None:
            typer.echo(f"the task's reference reward, trained the same way: {reference['success_rate']:.0%}")
        typer.echo(f"best reward: {loop.run_dir / best['dir'] / 'reward.py'}")
        video = CandidateFolder(loop.run_dir / best["dir"]).video
        if video.is_file():
            typer.echo(f"video: {video}")
    else:
        typer.echo("no candidate trained successfully")
    real = summary.get("real")
    if real:
        typer.echo(f"real arm: gap {real['gap_before_deg']:.2f} deg before the fit, {real['gap_after_deg']:.2f} after "
                   f"({loop.run_dir / 'real'})")
    dr = summary.get("randomization")
    if dr and "without_randomization" not in dr:
        typer.echo(f"randomization phase: {dr['stop_reason']}")
    elif dr:
        plain = dr["without_randomization"]
        typer.echo(f"randomization phase: {dr['stop_reason']}; {dr['candidates_tried']} candidates; without "
                   f"randomization the best reward's policy keeps {plain['robustness_worst']:.0%} in its worst variant")
        if dr["best"]:
            top = dr["best"]
            typer.echo(f"most robust: candidate {top['id']}, worst variant {top['robustness_worst']:.0%}, mean "
                       f"{top['robustness_mean']:.0%}: {loop.run_dir / top['dir'] / CandidateFolder.randomization}")
    typer.echo(f"summary: {loop.files.summary}")
    typer.echo(f"report: {loop.files.report}")


@app.command("review")
def review_cmd(
    run: Annotated[Path, typer.Argument(help="run folder paused for review")],
    approve: Annotated[str | None, typer.Option(help="candidate id to keep, e.g. 1.2")] = None,
    reject: Annotated[bool, typer.Option(help="reject the iteration (needs --comment)")] = False,
    comment: Annotated[str, typer.Option(help="feedback for the next proposals")] = "",
    edit: Annotated[str | None, typer.Option(help="candidate id whose code you edit")] = None,
    file: Annotated[Path | None, typer.Option(help="with --edit: the edited code (else $EDITOR opens)")] = None,
) -> None:
    """Show the paused iteration as diffs against the best reward, decide, and resume the loop."""
    from robosmith.agent.loop import RewardLoop
    from robosmith.agent.review import decide, review_screen

    loop = RewardLoop.open(_agent_run(run))
    state = loop.paused_state()
    if state is None:
        _fail(f"{run}: not waiting for review")
    typer.echo(review_screen(loop, state, colour=sys.stdout.isatty()))
    if approve:
        decision = decide(loop, state, "approve", approve)
    elif reject:
        decision = decide(loop, state, "reject", comment=comment)
    elif edit:
        decision = decide(loop, state, "edit", edit, code=_edited_code(loop, state, edit, file))
    elif sys.stdin.isatty():
        decision = _ask(loop, state)
    else:
        typer.echo("no decision given: use --approve ID, --reject --comment TEXT or --edit ID --file F")
        return
    typer.echo(f"decision: {decision['action']} {decision.get('candidate', '')}".rstrip())
    _finish(loop, loop.run(decision=decision))


def _edited_code(loop, state: dict, candidate: str, file: Path | None) -> str:
    from robosmith.agent.review import editable_file

    if file is not None:
        if not file.is_file():
            _fail(f"{file}: no such file")
        return file.read_text()
    source = editable_file(loop, state, candidate)
    if source is None or not source.is_file():
        _fail(f"nothing to edit for candidate {candidate}")
    edited = typer.edit(source.read_text(), extension=source.suffix)
    if edited is None:
        _fail("the editor was closed without saving")
    return edited


def _ask(loop, state: dict) -> dict:
    from robosmith.agent.review import ReviewError, decide

    while True:
        answer = typer.prompt("decision [approve ID | reject COMMENT | edit ID]").strip()
        verb, _, rest = answer.partition(" ")
        try:
            if verb == "approve":
                return decide(loop, state, "approve", rest.strip())
            if verb == "reject":
                return decide(loop, state, "reject", comment=rest)
            if verb == "edit":
                return decide(loop, state, "edit", rest.strip(), code=_edited_code(loop, state, rest.strip(), None))
        except ReviewError as e:
            typer.echo(f"  {e}")
            continue
        typer.echo("  type approve, reject or edit")


@app.command()
def report(run: Annotated[Path, typer.Argument(help="run folder of `robosmith run`")]) -> None:
    """Write the run's self-contained HTML report (opens from disk, offline)."""
    from robosmith.report import write_report

    typer.echo(f"report: {write_report(_agent_run(run))}")


@app.command()
def export(
    source: Annotated[str, typer.Argument(help="an agent run, a training run, or a task name or file")],
    target: Annotated[str, typer.Option(help="mjlab or isaaclab")],
    out: Annotated[Path, typer.Option(help="folder the package is written into")],
    candidate: Annotated[str | None, typer.Option(help="agent run candidate, e.g. 1.2 (default: best)")] = None,
    isaaclab_version: Annotated[str, typer.Option(help="Isaac Lab the package is for: 2.3 or 3.0")] = "3.0",
    randomize: Annotated[bool, typer.Option(help="add the task's domain randomization as reset events")] = False,
    check: Annotated[bool, typer.Option(help="check every engine name it uses against the engine's wheel")] = True,
    robot_params: Annotated[Path | None, typer.Option(help="robot-params file (YAML: registry name -> value)")]
    = None,
) -> None:
    """Write a task package for mjlab or Isaac Lab: env config, registration, rsl-rl config, the same reward."""
    from robosmith.engines.export import ExportOptions, export_package, export_source
    from robosmith.reward.check import RewardRejected, check_static

    options = ExportOptions(target, isaaclab_version, randomize)
    task, body, label = export_source(source, candidate)
    task = _with_robot_params(task, robot_params)
    try:
        check_static(body)
    except RewardRejected as e:
        _fail(f"{source}: the reward does not pass the static check: {e.reason}")
    package = export_package(task, body, out, dataclasses.replace(options, label=label))
    typer.echo(f"{task.name} ({label}) for {options.flavour}: {package}")
    if check:
        from robosmith.engines.check import check_export

        try:
            results = check_export(package, options.flavour)
        except RuntimeError as e:
            _fail(f"could not fetch the engine's source for the check ({e}); --no-check skips it")
        for requirement, problems in results.items():
            typer.echo(f"checked against {requirement}: " + (f"{len(problems)} problems" if problems else "OK"))
            for problem in problems:
                typer.echo(f"  {problem}")
        if any(results.values()):
            raise typer.Exit(1)
    typer.echo(f"train it:  cd {out} && <{target} python> -m {package.name}.train --run-dir DIR")


@app.command("check-reward")
def check_reward(
    file: Annotated[Path, typer.Argument(help="a file defining compute_reward(s)")],
    task: Annotated[str, typer.Option(help="task whose states the reward is tried on")] = "so101_reach",
) -> None:
    """Run the same checks as the agent loop on a reward file: OK, or the reason it is rejected."""
    import tempfile

    from robosmith.execution.smoke import validate_reward
    from robosmith.reward.check import RewardRejected
    from robosmith.task import load_task

    if not file.is_file():
        _fail(f"{file}: no such file")
    spec = load_task(task)
    with tempfile.TemporaryDirectory(prefix="robosmith-check-") as tmp:
        try:
            stats = validate_reward(file.read_text(), spec, Path(tmp))
        except RewardRejected as e:
            typer.echo(f"REJECTED ({e.stage} check): {e.reason}")
            raise typer.Exit(1) from None
    typer.echo("OK: " + ", ".join(sorted(stats.get("components", {}))))


bc_app = typer.Typer(no_args_is_help=True, help="Behaviour cloning with LeRobot: collect, train, evaluate.")
app.add_typer(bc_app, name="bc")


@bc_app.command("collect")
def bc_collect(
    task: Annotated[str, typer.Argument(help="task name (robosmith/task/tasks/*.yaml) or path to a task file")],
    episodes: Annotated[int, typer.Option(help="successful demonstrations to record")] = 50,
    out: Annotated[Path | None, typer.Option(help="dataset folder (default: runs/bc/<task>-demos-<N>)")] = None,
    perfect: Annotated[bool, typer.Option(help="no human-like noise, pauses or fumbles")] = False,
    policy: Annotated[Path | None, typer.Option(
        help="a trained policy demonstrates instead of the script (an RL run folder; it must read no camera)")]
    = None,
    images: Annotated[bool, typer.Option(help="render the front and wrist camera videos")] = True,
    camera_size: Annotated[str, typer.Option(help="camera image size WIDTHxHEIGHT (LeRobot's SO-101 examples: "
                                                  "640x480)")] = "640x480",
    robot_params: Annotated[Path | None, typer.Option(
        help="robot-params file: record with this arm's physics (effects too: delay, noise, calibration offsets)")]
    = None,
    calibration: Annotated[Path | None, typer.Option(
        help="LeRobot calibration file: write the joints in range mode, as LeRobot < 0.5 did")] = None,
    camera: _CAMERA_FILE = None,
    background: _BACKGROUND = None,
    seed: Annotated[int, typer.Option()] = 0,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Record demonstrations in simulation as a LeRobot dataset (v3.0): scripted, or by a trained policy."""
    from robosmith.bc.collect import collect
    from robosmith.bc.demonstrator import DemoStyle
    from robosmith.runs import runs_root
    from robosmith.task import load_task

    spec = _with_camera(_with_robot_params(load_task(task), robot_params), camera, background)
    if episodes < 1:
        _fail(f"--episodes must be >= 1, got {episodes}")
    folder = out or runs_root() / "bc" / f"{spec.name}-demos-{episodes}"
    if policy is not None and perfect:
        _fail("--perfect is a style of the scripted demonstrator; a --policy demonstrates as it is")
    style = None if policy is not None else DemoStyle.perfect() if perfect else DemoStyle()
    try:
        info = collect(spec, folder, episodes, style=style, policy=policy, seed=seed, with_images=images,
                       progress=progress, image_size=_image_size(camera_size), calibration=calibration)
    except (FileExistsError, RuntimeError) as e:
        _fail(str(e))
    typer.echo(
        f"{info['episodes']} demonstrations in {folder} (the demonstrator succeeded in "
        f"{info['demonstrator_success_rate']:.0%} of {info['attempts']} episodes; {info['wall_s']:.0f} s)"
    )


def _image_size(text: str) -> tuple[int, int]:
    """(height, width) from WIDTHxHEIGHT."""
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        _fail(f"--camera-size: WIDTHxHEIGHT such as 640x480, got {text!r}")
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        _fail(f"--camera-size: {text} is outside 16x16 to 4096x4096")
    return height, width


@bc_app.command("train")
def bc_train(
    dataset: Annotated[Path, typer.Argument(help="LeRobot dataset folder (from `robosmith bc collect`)")],
    policy: Annotated[str, typer.Option(help="act or diffusion")] = "act",
    inputs: Annotated[str, typer.Option(help="state (CPU default) or images (front and wrist cameras)")] = "state",
    steps: Annotated[int, typer.Option(help="training steps")] = 4000,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option(help="learning rate")] = 1e-4,
    chunk_size: Annotated[int | None, typer.Option(
        help="actions predicted at once (ACT chunk_size, diffusion horizon); default: 20 ACT, 16 diffusion")] = None,
    n_action_steps: Annotated[int | None, typer.Option(
        help="actions played before the next prediction; default: 10 ACT, 8 diffusion")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or mps")] = "cpu",
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path | None, typer.Option(help="output folder (default: runs/bc/<dataset>-<policy>)")] = None,
) -> None:
    """Train a LeRobot policy with lerobot-train, offline. Run it again to resume a stopped training, or with a
    larger --steps to train a finished one on from its last checkpoint."""
    from robosmith.bc.train import BCTrainSettings, train_bc

    settings = BCTrainSettings(policy=policy, inputs=inputs, steps=steps, batch_size=batch_size, learning_rate=lr,
                               chunk_size=chunk_size, n_action_steps=n_action_steps, device=device, seed=seed)
    folder = out or dataset.parent / f"{dataset.name}-{policy}-{inputs}"
    try:
        checkpoint = train_bc(dataset, folder, settings)
    except FileNotFoundError as e:
        _fail(str(e))
    except subprocess.CalledProcessError as e:
        _fail(f"lerobot-train stopped (exit code {e.returncode}); run the same command again to resume")
    typer.echo(f"LeRobot checkpoint: {checkpoint}")


_TEMPORAL_ENSEMBLE = Annotated[float | None, typer.Option(
    help="ACT: predict a chunk every step and act on the chunks' weighted mean, weights exp(-this x age) (0.01 "
         "in ACT's paper); default: play the chunks as trained")]


@bc_app.command("eval")
def bc_eval(
    checkpoint: Annotated[Path, typer.Argument(help="`bc train` or `finetune` folder, or a LeRobot pretrained_model")],
    task: Annotated[str, typer.Argument(help="task name (robosmith/task/tasks/*.yaml) or path to a task file")],
    episodes: Annotated[int, typer.Option(help="evaluation episodes")] = 100,
    video_episodes: Annotated[int, typer.Option(help="episodes shown in eval.mp4")] = 4,
    seed: Annotated[int, typer.Option()] = 12345,
    out: Annotated[Path | None, typer.Option(help="folder for eval.json and eval.mp4 (default: CHECKPOINT/eval)")]
    = None,
    demos: Annotated[Path | None, typer.Option(
        help="demonstrations to compare the tool's path with (default: the dataset the BC policy trained on)")] = None,
    temporal_ensemble: _TEMPORAL_ENSEMBLE = None,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Roll a LeRobot policy (or its finetuned version) out in simulation: success with a 95% interval, and how
    far it strays from the demonstrations."""
    from robosmith.bc.evaluate import evaluate_bc
    from robosmith.task import load_task

    folder = out or checkpoint / "eval"
    result = evaluate_bc(checkpoint, load_task(task), folder, episodes, seed, video_episodes, progress, demos,
                         temporal_ensemble)
    _print_eval(folder, result)
    _print_straying(result["straying"])


camera_app = typer.Typer(no_args_is_help=True,
                         help="Cameras: intrinsics from a ChArUco board, pose in the robot base frame.")
app.add_typer(camera_app, name="camera")
_SQUARES = Annotated[str, typer.Option(help="the board's squares, columns x rows")]
_SQUARE_MM = Annotated[float, typer.Option(help="edge of a printed square, in mm (measure the print)")]
_MARKER_MM = Annotated[float, typer.Option(help="edge of a printed ArUco marker, in mm")]
_DICTIONARY = Annotated[str, typer.Option(help="OpenCV's aruco dictionary of the board")]


def _board(board: str, squares: str, square_mm: float, marker_mm: float, dictionary: str):
    from robosmith.perception.camera import CameraError
    from robosmith.perception.charuco import Board, parse_squares

    if board != "charuco":
        raise CameraError(f"--board: only charuco is known, got {board!r}")
    return Board(parse_squares(squares), square_mm, marker_mm, dictionary)


@camera_app.command("calibrate")
def camera_calibrate(
    images: Annotated[Path, typer.Argument(help="folder of images (or one image) of the board at varied angles")],
    out: Annotated[Path, typer.Option(help="intrinsics file to write (YAML)")],
    board: Annotated[str, typer.Option(help="calibration target")] = "charuco",
    squares: _SQUARES = "7x5", square_mm: _SQUARE_MM = 30.0, marker_mm: _MARKER_MM = 22.0,
    dictionary: _DICTIONARY = "DICT_5X5_100",
) -> None:
    """Intrinsics and lens distortion of a camera from views of a ChArUco board (OpenCV)."""
    from robosmith.perception.camera import save_camera
    from robosmith.perception.charuco import calibrate, read_images

    frames = read_images(images)
    camera, rms, used = calibrate(frames, _board(board, squares, square_mm, marker_mm, dictionary))
    save_camera(camera, out)
    typer.echo(f"{out}: fx {camera.fx:.1f} fy {camera.fy:.1f} cx {camera.cx:.1f} cy {camera.cy:.1f} px from "
               f"{used} of {len(frames)} images; reprojection RMS {rms:.3f} px")


@camera_app.command("locate")
def camera_locate(
    images: Annotated[Path, typer.Argument(
        help="folder of images (or one image) from the fixed camera, or a LeRobot dataset recorded with the board "
             "in view (frames of its video)")],
    intrinsics: Annotated[Path, typer.Option(help="intrinsics file of `robosmith camera calibrate`")],
    out: Annotated[Path, typer.Option(help="camera file to write (YAML)")],
    board_pos: Annotated[str, typer.Option(
        help="x,y,z in m (robot base frame) of the board's first outer corner, the board face up on the table")]
    = "0.10,0.12,0.0",
    board_yaw: Annotated[float, typer.Option(help="deg from the base's x axis to the board's rows")] = 0.0,
    board: Annotated[str, typer.Option(help="calibration target")] = "charuco",
    squares: _SQUARES = "7x5", square_mm: _SQUARE_MM = 30.0, marker_mm: _MARKER_MM = 22.0,
    dictionary: _DICTIONARY = "DICT_5X5_100",
    video_camera: Annotated[str, typer.Option(help="with a dataset: its camera to read")] = "front",
    refine: Annotated[Path | None, typer.Option(
        help="LeRobot dataset with this camera's video and the arm's joint states: after PnP, move the camera "
             "until the rendered arm lies on the filmed one (default: IMAGES itself when it is a dataset)")] = None,
    no_refine: Annotated[bool, typer.Option("--no-refine", help="PnP only, even from a dataset")] = False,
    background: Annotated[Path | None, typer.Option(
        help="with a refinement: photo of the scene without the arm from this camera (default: the median of the "
             "video's frames, which needs the arm to move about)")] = None,
    refine_frames: Annotated[int, typer.Option(help="frames of the dataset the refinement aligns")] = 12,
    units: Annotated[str | None, typer.Option(help="the refinement dataset's joint units where it does not say: "
                                              "degrees or range")] = None,
    calibration: Annotated[Path | None, typer.Option(help="with --units range: the arm's calibration file")] = None,
) -> None:
    """A fixed camera's pose in the robot base frame from views of the board lying at a known place (PnP), then
    refined on a recording of the arm where there is one."""
    from robosmith.perception.camera import CameraError, load_camera, save_camera
    from robosmith.perception.charuco import board_in_base, locate, read_images

    try:
        pos = [float(v) for v in board_pos.split(",")]
    except ValueError:
        pos = []
    if len(pos) != 3:
        raise CameraError(f"--board-pos must be x,y,z in m, got {board_pos!r}")
    rot, origin = board_in_base(pos, board_yaw)
    is_dataset = (images / "meta" / "info.json").is_file()
    refine = None if no_refine else (refine or (images if is_dataset else None))
    if refine_frames < 1:
        _fail(f"--refine-frames must be >= 1, got {refine_frames}")
    if is_dataset:
        from robosmith.sim2real.video_gap import episode_frames

        video = episode_frames(images, 0, video_camera)
        step = max(1, len(video) // 10)
        frames = [(f"episode 0, frame {i}", video[i]) for i in range(0, len(video), step)]
    else:
        frames = read_images(images)
    camera, rms, corners = locate(frames, load_camera(intrinsics, need_pose=False),
                                  _board(board, squares, square_mm, marker_mm, dictionary), rot, origin)
    typer.echo(f"PnP: camera at {', '.join(f'{v:.3f}' for v in camera.pos)} m from {corners} corners; "
               f"reprojection RMS {rms:.3f} px")
    if refine is not None:
        camera = _refined(camera, refine, background, refine_frames, video_camera, units, calibration)
    save_camera(camera, out)
    typer.echo(f"wrote {out}")


@camera_app.command("refine")
def camera_refine(
    dataset: Annotated[Path, typer.Argument(help="LeRobot dataset with the camera's video and the arm's joint states")],
    camera: Annotated[Path, typer.Option(help="camera file to start from (`robosmith camera locate`)")],
    out: Annotated[Path, typer.Option(help="camera file to write (YAML)")],
    background: Annotated[Path | None, typer.Option(
        help="photo of the scene without the arm from this camera (default: the median of the video's frames)")]
    = None,
    frames: Annotated[int, typer.Option(help="frames of the dataset to align")] = 12,
    video_camera: Annotated[str, typer.Option(help="the dataset's camera the camera file describes")] = "front",
    units: Annotated[str | None, typer.Option(help="degrees or range, where the dataset does not say")] = None,
    calibration: Annotated[Path | None, typer.Option(help="with --units range: the arm's calibration file")] = None,
) -> None:
    """Refine a located camera on a recording of the arm (after the camera was bumped, or PnP was rough): the
    camera moves until the arm rendered at the recorded joints lies on the filmed arm."""
    from robosmith.perception.camera import load_camera, save_camera

    if frames < 1:
        _fail(f"--frames must be >= 1, got {frames}")
    save_camera(_refined(load_camera(camera), dataset, background, frames, video_camera, units, calibration), out)
    typer.echo(f"wrote {out}")


def _refined(camera, dataset: Path, background: Path | None, frames: int, video_camera: str, units: str | None,
             calibration: Path | None):
    """`camera` refined on a recording: the rendered arm aligned with the filmed one (sim2real.camera_fit)."""
    import numpy as np
    from tqdm import tqdm

    from robosmith.sim2real.camera_fit import MAX_EVALUATIONS, fit_camera_to_dataset
    from robosmith.sim2real.dataset import load_dataset
    from robosmith.sim2real.video_gap import read_background

    data = load_dataset(dataset, None, units, calibration)
    bar = tqdm(desc="refine on the arm", unit="evaluation", total=MAX_EVALUATIONS)

    def shown(evaluations: int, cost: float) -> None:
        bar.update(evaluations - bar.n)
        bar.set_postfix_str(f"chamfer {cost:.2f} px")

    fit = fit_camera_to_dataset(data, camera, read_background(background) if background else None, frames,
                                video_camera, progress=shown)
    bar.close()
    moved = 1000 * float(np.linalg.norm(np.subtract(fit.camera.pos, camera.pos)))
    typer.echo(f"refined on {fit.frames} frames of {dataset}: outline distance {fit.chamfer_px_before:.2f} -> "
               f"{fit.chamfer_px_after:.2f} px, silhouette IoU {fit.iou_before:.3f} -> {fit.iou_after:.3f}; the "
               f"camera moved {moved:.1f} mm")
    return fit.camera


@app.command()
def perceive(
    images: Annotated[Path, typer.Argument(help="folder of images (or one image) from the located camera")],
    camera: Annotated[Path, typer.Option(help="camera file of `robosmith camera locate`")],
    task: Annotated[str, typer.Option(help="task whose cube (size, colour) is looked for")] = "so101_lift",
    cube_hue: Annotated[float | None, typer.Option(help="the cube's hue in degrees (default: the scene's cube)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The cube's position (m, robot base frame) and yaw in each image."""
    from robosmith.perception.camera import load_camera
    from robosmith.perception.charuco import read_images
    from robosmith.perception.cube import estimator_for
    from robosmith.task import load_task

    cam = load_camera(camera)
    estimator = estimator_for(load_task(task), cam, cube_hue)
    results = []
    for name, rgb in read_images(images):
        results.append({"image": name, **estimator.estimate(rgb).as_dict()})
    if as_json:
        json.dump({"camera": str(camera), "images": results}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    for r in results:
        where = (f"pos {', '.join(f'{v:.4f}' for v in r['pos'])} m, yaw {r['yaw']:+.3f} rad" if r["found"]
                 else "not found")
        typer.echo(f"{r['image']}: {where}")


@app.command()
def finetune(
    checkpoint: Annotated[Path, typer.Argument(help="`bc train` folder or LeRobot pretrained_model of the BC policy")],
    task: Annotated[str, typer.Argument(help="task name (robosmith/task/tasks/*.yaml) or path to a task file")],
    reward: Annotated[Path | None, typer.Option(help="reward file, training run or agent run (default: the task's)")]
    = None,
    minutes: Annotated[float, typer.Option(help="wall-clock limit of RL")] = 20.0,
    num_envs: Annotated[int | None, typer.Option(help="parallel environments (default: the task's)")] = None,
    residual_scale: Annotated[
        float, typer.Option(help="scale of the correction, as a fraction of the action range (0.1: 0.15 rad)")
    ] = 0.1,
    stray_penalty: Annotated[float, typer.Option(
        help="reward minus this x mean |a - a_BC| per step: stay near the BC policy's actions (0: off)")] = 0.0,
    init_noise_std: Annotated[float | None, typer.Option(
        help="PPO's starting exploration noise on the residual, before the scale (default 0.5: 0.05 of the "
             "action range; a strong BC policy may not survive that much)")] = None,
    temporal_ensemble: _TEMPORAL_ENSEMBLE = None,
    seed: Annotated[int | None, typer.Option()] = None,
    eval_episodes: Annotated[int, typer.Option(help="episodes for the final evaluation")] = 100,
    out: Annotated[Path | None, typer.Option(help="output folder (default: runs/<time>-<task>-finetune)")] = None,
    randomize: Annotated[bool, typer.Option(help="sample the task's domain randomization at every reset")] = True,
    dr: Annotated[Path | None, typer.Option(help="randomization file to train with instead of the task's")] = None,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Improve a BC policy with RL in simulation: PPO trains a residual on top of the frozen BC policy."""
    from robosmith.bc.evaluate import evaluate_bc
    from robosmith.bc.finetune import ResidualSettings
    from robosmith.bc.finetune import finetune as finetune_policy
    from robosmith.runs import new_run_dir
    from robosmith.task import load_task
    from robosmith.train.ppo import TrainSettings

    spec = _with_randomization(load_task(task), dr, randomize)
    settings = TrainSettings.from_task(spec, max_minutes=minutes, max_iterations=1_000_000, num_envs=num_envs,
                                       seed=seed, eval_episodes=eval_episodes, randomize=randomize)
    noise = {} if init_noise_std is None else {"init_noise_std": init_noise_std}
    residual = ResidualSettings(scale=residual_scale, stray_penalty=stray_penalty, temporal_ensemble=temporal_ensemble,
                                **noise)
    body = _checked_reward(reward, spec)
    folder = out or new_run_dir(f"{spec.name}-finetune")
    typer.echo(f"finetune folder: {folder}")
    try:
        last = finetune_policy(checkpoint, spec, folder, settings, residual, body, progress=progress)
    except FileExistsError as e:
        _fail(str(e))
    typer.echo(f"trained {last['iteration'] + 1} iterations, {last['env_steps']} env steps in {last['wall_s']:.0f} s")
    result = evaluate_bc(folder, spec, folder / "eval", eval_episodes, progress=progress)
    _print_eval(folder / "eval", result)
    _print_straying(result["straying"])


@app.command()
def deploy(
    policy: Annotated[str, typer.Argument(help="policy folder: an RL run, `bc train` or `finetune` folder")],
    task: Annotated[str, typer.Argument(help="task name (robosmith/task/tasks/*.yaml) or path to a task file")],
    record: Annotated[Path, typer.Option("--record", help="new folder: the LeRobot dataset, deploy.json, "
                                         "safety.jsonl")],
    robot_port: Annotated[str | None, typer.Option("--robot.port", help="the follower's serial port")] = None,
    robot_id: Annotated[str, typer.Option("--robot.id", help="the arm's LeRobot id (its calibration file)")]
    = "so101_follower",
    robot_cameras: Annotated[str | None, typer.Option("--robot.cameras", help="LeRobot camera configs, as for "
                             "lerobot-record: '{front: {type: opencv, index_or_path: 0, width: 640, height: 480, "
                             "fps: 30}}'")] = None,
    robot_calibration_dir: Annotated[Path | None, typer.Option("--robot.calibration_dir",
                                     help="folder of <id>.json (default: LeRobot's)")] = None,
    robot_use_degrees: Annotated[bool, typer.Option("--robot.use_degrees/--robot.range_mode",
                                 help="the follower's units")] = True,
    episodes: Annotated[int, typer.Option(help="episodes to run and record")] = 10,
    sim: Annotated[bool, typer.Option(help="our simulated SO-101 behind LeRobot's interface instead of the arm")]
    = False,
    robot_params: Annotated[Path | None, typer.Option(help="with --sim: the simulated arm's parameters")] = None,
    sim_cameras: Annotated[str | None, typer.Option(help="with --sim: cameras to render and record besides the "
                                                    "policy's own, e.g. front,wrist")] = None,
    camera_size: Annotated[str, typer.Option(help="with --sim: camera image size WIDTHxHEIGHT")] = "640x480",
    rehearse: Annotated[bool, typer.Option(help="rehearse in simulation from the arm's pose first")] = True,
    yes: Annotated[bool, typer.Option(help="confirm the rehearsal without asking")] = False,
    seed: Annotated[int, typer.Option(help="with --sim, the initial states of `robosmith eval --seed`")] = 12345,
    safety: Annotated[Path | None, typer.Option(help="YAML of safety limits replacing the task's (e.g. a smaller "
                                                "max_step for a first run)")] = None,
    camera: Annotated[Path | None, typer.Option(
        help="camera file of the robot's front camera: the cube's pose from its frames (cube tasks)")] = None,
    camera_name: Annotated[str, typer.Option(help="the robot's camera the camera file describes")] = "front",
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Run a policy on the SO-101 (or `--sim`) through LeRobot, behind the safety layer; record every episode."""
    import tempfile

    from robosmith.deploy.loop import DeploySettings
    from robosmith.deploy.loop import deploy as run_deploy
    from robosmith.task import load_task
    from robosmith.train.policy import load_policy

    spec = load_task(task)
    if safety is not None:
        from robosmith.task.load import load_safety_file

        spec = dataclasses.replace(spec, safety=load_safety_file(safety, spec.safety))
    folder = _policy_folder(policy)
    loaded = load_policy(folder, spec)
    if episodes < 1:
        _fail(f"--episodes {episodes}: at least 1")
    cam = None
    if camera:
        from robosmith.perception.camera import load_camera

        cam = load_camera(camera)
    calibration, range_mode = None, False
    if sim:
        from robosmith.deploy.sim_robot import SimSO101, SimSO101Config

        wanted = [*loaded.spec.cameras, *(c.strip() for c in (sim_cameras or "").split(",") if c.strip())]
        cameras = list(dict.fromkeys(wanted + ([camera_name] if cam else [])))
        height, width = next(iter(loaded.spec.cameras.values())) if loaded.spec.cameras else _image_size(camera_size)
        if cam:  # the estimator reads frames of the camera file's size
            height, width = cam.height, cam.width
        robot = SimSO101(SimSO101Config(
            task=task, seed=seed, robot_params=str(robot_params) if robot_params else None, sim_cameras=cameras,
            image_height=height, image_width=width, id="sim", calibration_dir=Path(tempfile.mkdtemp()),
            camera_file=str(camera) if camera else None))
    else:
        if robot_port is None:
            _fail("--robot.port: required on the arm (or run with --sim)")
        robot, calibration = _follower(robot_port, robot_id, robot_cameras, robot_calibration_dir,
                                       robot_use_degrees)
        range_mode = not robot_use_degrees
    settings = DeploySettings(episodes=episodes, seed=seed, sim=sim, realtime=not sim, rehearse=rehearse and not sim,
                              yes=yes, camera_name=camera_name)
    result = run_deploy(loaded, spec, robot, record, settings, calibration=calibration, range_mode=range_mode,
                        progress=progress, policy_path=folder, camera=cam)
    lo, hi = result["ci95"] or (0.0, 0.0)
    rate = result["success_rate"]
    typer.echo(f"{result['n']} episodes: success {rate if rate is None else f'{rate:.0%}'} (95% CI {lo:.0%}-{hi:.0%})"
               f"; in simulation {result['sim_success_rate']}; {record}/deploy.json, {record}/deploy.html")
    if result["error"]:
        _fail(result["error"])


def _follower(port: str, robot_id: str, cameras: str | None, calibration_dir: Path | None, use_degrees: bool):
    """LeRobot's SO-101 follower as `lerobot-record` would make it, and its calibration (robosmith's form)."""
    import yaml
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    from robosmith.robot.units import load_calibration

    camera_configs = {}
    if cameras:
        import draccus
        from lerobot.cameras import CameraConfig

        try:
            raw = yaml.safe_load(cameras)
            camera_configs = draccus.decode(dict[str, CameraConfig], raw)
        except Exception as e:  # noqa: BLE001 - a user's typo: one line
            _fail(f"--robot.cameras: not a camera config mapping ({type(e).__name__}: {str(e).splitlines()[0]})")
    robot = SO101Follower(SO101FollowerConfig(port=port, id=robot_id, cameras=camera_configs,
                                              use_degrees=use_degrees, calibration_dir=calibration_dir))
    if not robot.calibration_fpath.is_file():
        _fail(f"{robot.calibration_fpath}: no calibration for --robot.id {robot_id}; calibrate with "
              f"`lerobot-calibrate --robot.type=so101_follower --robot.port={port} --robot.id={robot_id}` first")
    return robot, load_calibration(robot.calibration_fpath)


@app.command("compare")
def compare_cmd(
    a: Annotated[Path, typer.Argument(help="eval.json or deploy.json (or the folder holding it): the baseline")],
    b: Annotated[Path, typer.Argument(help="the same for the policy compared with it")],
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """The gain of B over A (success rates and the difference, with 95% intervals), in simulation or on the arm."""
    from robosmith.compare import compare

    result = compare(a, b)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for key in ("a", "b"):
        r = result[key]
        typer.echo(f"{key.upper()}: {r['success_rate']:.1%} ({r['successes']}/{r['episodes']}, 95% CI "
                   f"{r['ci95'][0]:.1%}-{r['ci95'][1]:.1%}) in {r['where']}: {r['path']}")
    low, high = result["gain_ci95"]
    typer.echo(f"gain B - A on {result['task']}: {result['gain']:+.1%} (95% CI {low:+.1%} to {high:+.1%})"
               + ("" if result["significant"] else "; the interval includes 0"))


@app.command()
def curves(
    runs: Annotated[list[Path], typer.Argument(help="training run folders (metrics.jsonl; eval.json if there)")],
    out: Annotated[Path, typer.Option(help="picture to write (PNG)")] = Path("curves.png"),
    label: Annotated[list[str] | None, typer.Option(help="a legend label per run, in order (default: folder names)")]
    = None,
    title: Annotated[str | None, typer.Option(help="the picture's title")] = None,
) -> None:
    """Learning curves: each run's training success against wall-clock minutes, and its evaluation."""
    from robosmith.train.curves import plot_curves

    typer.echo(f"curves: {plot_curves(runs, out, label, title)}")


@app.command()
def bench(
    task: Annotated[str, typer.Option(help="task whose scene is stepped")] = "so101_lift",
    num_envs: Annotated[int | None, typer.Option(help="environments (default: the task's, as it trains)")] = None,
    steps: Annotated[int, typer.Option(help="control steps per measurement")] = 100,
    randomize: Annotated[bool, typer.Option(
        "--randomize", help="also measure the task's domain randomization against none (two episodes each)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Env steps/s of the batched env (with observations and reward) against raw MuJoCo stepping."""
    from robosmith.bench import run_bench
    from robosmith.task import load_task

    spec = load_task(task)
    result = run_bench(spec, num_envs=num_envs or spec.train.num_envs, control_steps=steps, randomize=randomize)
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for key, value in result.items():
            typer.echo(f"{key:>28}: {value}")


@app.command("bench-timestep")
def bench_timestep(
    task: Annotated[str, typer.Argument(help="task name or task file")],
    timestep: Annotated[float, typer.Option(help="the coarser physics time step to check, s (e.g. 0.008333)")],
    episodes: Annotated[int, typer.Option(help="episodes (environments) compared")] = 32,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The task's episodes at a coarser physics time step against its own: joint, tool-point and cube errors,
    and the speed-up, before a task file's `scene.timestep` is changed to train faster."""
    from robosmith.sim.timestep import compare_timesteps
    from robosmith.task import load_task

    spec = load_task(task)
    if episodes < 1:
        _fail(f"--episodes must be >= 1, got {episodes}")
    try:
        result = compare_timesteps(spec, timestep, episodes, seed)
    except ValueError as e:  # the scene refuses the time step, or the control period is not a whole number of it
        _fail(f"--timestep {timestep:g}: {e}")
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    typer.echo(f"{spec.name}: physics at {timestep:g} s against {spec.scene.timestep:g} s, {episodes} episodes of "
               "smooth random commands")
    for key in ("joint_error_deg", "tool_error_mm", "cube_error_mm"):
        if key in result:
            e = result[key]
            typer.echo(f"  {key:<16} mean {e['mean']:8.3f}   p95 {e['p95']:8.3f}   max {e['max']:8.3f}")
    typer.echo(f"  control steps/s: x{result['speedup']:.2f}")


@app.command("bench-train")
def bench_train(
    task: Annotated[str, typer.Option(help="task whose reference reward is trained")] = "so101_reach",
    backends: Annotated[str, typer.Option(help="comma-separated: cpu, mjlab, isaaclab")] = "cpu,mjlab",
    num_envs: Annotated[int, typer.Option()] = 256,
    minutes: Annotated[float, typer.Option(help="training time per backend")] = 5.0,
    eval_episodes: Annotated[int, typer.Option()] = 100,
    mjlab_python: Annotated[Path | None, typer.Option(
        help="mjlab's python (default: $ROBOSMITH_MJLAB_PYTHON, else ./.venv-mjlab)")] = None,
    isaaclab_python: Annotated[Path | None, typer.Option(help="Isaac Lab's python, or isaaclab.sh")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for the runs (default: runs/<time>-bench-train)")] = None,
) -> None:
    """Train the same reward on each backend in turn: env steps/s, time to the success target, ratios (JSON)."""
    from robosmith.bench import training_bench
    from robosmith.runs import new_run_dir
    from robosmith.task import load_task

    spec = load_task(task)
    out = out or new_run_dir("bench-train")
    results = []
    for backend in [b.strip() for b in backends.split(",") if b.strip()]:
        python = {"mjlab": mjlab_python, "isaaclab": isaaclab_python}.get(backend)
        typer.echo(f"training {spec.name} on {backend} for {minutes:g} min ...", err=True)
        results.append(training_bench(spec, backend, num_envs, minutes, out, python and str(python), eval_episodes))
    if len(results) > 1:
        base = results[0]["env_steps_per_s"] or 1
        for r in results:
            r[f"env_steps_per_s_ratio_to_{results[0]['backend']}"] = round(r["env_steps_per_s"] / base, 3)
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    (out / "bench_train.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    app()

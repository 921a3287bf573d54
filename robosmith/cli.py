"""The `robosmith` command. Thin: it parses, then calls functions the tests call too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulation-driven robot learning for the SO-101.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="task name (tasks/*.yaml) or path to a task file")],
    reward: Annotated[Path | None, typer.Option(help="file defining compute_reward(s)")] = None,
    minutes: Annotated[float | None, typer.Option(help="wall-clock limit of training")] = None,
    iterations: Annotated[int | None, typer.Option(help="PPO iterations at most")] = None,
    num_envs: Annotated[int | None, typer.Option(help="parallel environments")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    eval_episodes: Annotated[int | None, typer.Option(help="episodes for the final evaluation")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default: runs/<time>-<task>)")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train a policy with PPO, then evaluate it and record a video."""
    from robosmith.runs import new_run_dir
    from robosmith.task import TaskError, load_task
    from robosmith.train.evaluate import evaluate_run
    from robosmith.train.ppo import TrainSettings
    from robosmith.train.ppo import train as train_policy

    try:
        spec = load_task(task)
        settings = TrainSettings.from_task(
            spec, max_minutes=minutes, max_iterations=iterations, num_envs=num_envs, seed=seed,
            eval_episodes=eval_episodes,
        )
    except (TaskError, ValueError) as e:
        _fail(str(e))
    if reward is not None and not reward.is_file():
        _fail(f"{reward}: no such reward file")
    body = reward.read_text() if reward else spec.reference_reward_body()
    run_dir = out if out else new_run_dir(spec.name)
    typer.echo(f"run folder: {run_dir}")
    last = train_policy(spec, body, run_dir, settings, progress=progress)
    typer.echo(
        f"trained {last['iteration'] + 1} iterations, {last['env_steps']} env steps in {last['wall_s']:.0f} s"
    )
    result = evaluate_run(run_dir, episodes=settings.eval_episodes, progress=progress)
    _print_eval(run_dir, result)


@app.command("eval")
def eval_(
    run: Annotated[str, typer.Argument(help="run folder (path or name under runs/)")],
    episodes: Annotated[int, typer.Option(help="evaluation episodes")] = 100,
    video_episodes: Annotated[int, typer.Option(help="episodes shown in eval.mp4")] = 4,
    seed: Annotated[int, typer.Option()] = 12345,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Evaluate a run's latest checkpoint: success rate with a 95% interval, and a video."""
    from robosmith.runs import RunError, resolve_run
    from robosmith.train.evaluate import evaluate_run

    try:
        run_dir = resolve_run(run)
        result = evaluate_run(run_dir, episodes=episodes, video_episodes=video_episodes, seed=seed, progress=progress)
    except RunError as e:
        _fail(str(e))
    _print_eval(run_dir, result)


def _print_eval(run_dir: Path, result: dict) -> None:
    low, high = result["ci95"]
    typer.echo(
        f"{result['task']}: success {result['success_rate']:.1%} over {result['episodes']} episodes "
        f"(95% CI {low:.1%}-{high:.1%})"
    )
    typer.echo(f"evaluation: {run_dir / 'eval.json'}")
    if "video" in result:
        typer.echo(f"video: {run_dir / result['video']}")


@app.command()
def bench(
    task: Annotated[str, typer.Option(help="task whose scene is stepped")] = "so101_lift",
    num_envs: Annotated[int, typer.Option()] = 256,
    steps: Annotated[int, typer.Option(help="control steps per measurement")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Env steps/s of the batched env (with observations and reward) against raw MuJoCo stepping."""
    from robosmith.bench import run_bench
    from robosmith.task import TaskError, load_task

    try:
        spec = load_task(task)
    except TaskError as e:
        _fail(str(e))
    result = run_bench(spec, num_envs=num_envs, control_steps=steps)
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for key, value in result.items():
            typer.echo(f"{key:>28}: {value}")


if __name__ == "__main__":
    app()

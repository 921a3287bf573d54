"""Run folders: one per training run or agent run, holding everything needed to look back. Every file name of
a run is written here (and, for the files every backend writes, in `robosmith.contract.io`), once.

Runs go to `--out`, else under `$ROBOSMITH_RUNS`, else under `./runs` of the current folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from robosmith.contract.io import CHECKPOINT_FILE, EVAL_FILE, EVAL_STATES_FILE, METRICS_FILE, write_json
from robosmith.contract.io import write_text_atomic as write_text_atomic
from robosmith.errors import RobosmithError


class RunError(RobosmithError, FileNotFoundError):
    """A run folder or checkpoint that is not there (one line, names the path)."""


class _File:
    """A file of a run folder: `Folder.name` on the class is its name, `folder.name` on an instance its path."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, folder: _Folder | None, owner: type) -> str | Path:
        return self.name if folder is None else folder.path / self.name


class _Folder:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)


class TrainingRun(_Folder):
    """`robosmith train`, a candidate of the agent loop, a finetuned policy: a policy's training."""

    config = _File("config.json")  # the resolved task and settings
    reward = _File("reward.py")
    metrics = _File(METRICS_FILE)  # one row per PPO iteration
    checkpoint = _File(CHECKPOINT_FILE)
    evaluation = _File(EVAL_FILE)
    eval_perceived = _File("eval_perceived.json")  # true state against the cube seen by a camera (eval --perceived)
    video = _File("eval.mp4")
    eval_states = _File(EVAL_STATES_FILE)
    train_log = _File("train.log")
    residual = _File("residual.json")  # a finetuned BC policy: the residual's settings
    robustness = _File("robustness.json")  # success per variant of a variants file (`robosmith robustness`)
    robustness_plot = _File("robustness.png")
    rapp = _File("rapp.json")  # success per value of each parameter alone (`robosmith rapp`)
    rapp_plot = _File("rapp.png")

    def suite_robustness(self, suite: str) -> Path:
        """robustness.<suite>.json: a shipped suite's result, kept when another suite is evaluated after it (the
        loop selects on the default suite's; the test suite's, evaluated later, would overwrite robustness.json)."""
        return self.path / f"robustness.{suite}.json"

    def read_robustness(self, suite: str) -> dict:
        """A shipped suite's result: its own file, else robustness.json (runs from before the split)."""
        own = self.suite_robustness(suite)
        return json.loads((own if own.is_file() else self.robustness).read_text())


class CandidateFolder(TrainingRun):
    """One reward candidate of the agent loop: `iter_NN/cand_K/` of an agent run."""

    reward_body = _File("reward_body.py")  # the proposal as written, before rendering into reward.py
    llm_answer = _File("llm_answer.md")
    job = _File("job.json")  # what the executor runs
    result = _File("result.json")  # how the candidate's training ended
    record = _File("record.json")  # kept or dropped, and why
    traceback = _File("traceback.txt")
    live = _File("live.json")  # a candidate on a remote node: its last metrics row, sent back while it trains
    randomization = _File("randomization.yaml")  # a randomization candidate's ranges (the --dr file schema)


class AgentRun(_Folder):
    """`robosmith run`: the reward-design loop."""

    run_info = _File("run.json")  # task, loop settings, proposer, LLM settings (no key)
    task = _File("task.yaml")  # the chosen task, saved before anything trains
    graph = _File("graph.sqlite")  # langgraph checkpoints
    llm_calls = _File("llm_calls.jsonl")
    summary = _File("summary.json")
    report = _File("report.html")
    head = _File("head.json")  # which process runs the loop, and whether it ended (robosmith status)

    @staticmethod
    def candidate_dir(iteration: int, k: int) -> str:
        """A candidate's folder, relative to the run."""
        return f"iter_{iteration:02d}/cand_{k}"

    @staticmethod
    def randomization_dir(iteration: int, k: int) -> str:
        """A randomization candidate's folder, relative to the run."""
        return f"dr_{iteration:02d}/cand_{k}"

    prior = _File("dr_prior")  # the randomization phase's prior: RAPP and robustness of the best reward's policy

    def iteration_dir(self, iteration: int) -> Path:
        return self.path / f"iter_{iteration:02d}"

    def candidate(self, iteration: int, k: int) -> CandidateFolder:
        return CandidateFolder(self.path / self.candidate_dir(iteration, k))


def runs_root() -> Path:
    """Where runs go when no --out is given: $ROBOSMITH_RUNS, else ./runs."""
    return Path(os.environ.get("ROBOSMITH_RUNS") or Path.cwd() / "runs")


def new_run_dir(name: str, root: Path | None = None) -> Path:
    root = Path(root) if root else runs_root()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (f"{stamp}-{name}" if i == 0 else f"{stamp}-{name}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RunError(f"{root}: could not create a run folder there")


def resolve_run(run: str | Path) -> Path:
    """A training run given as a path, or as a folder name under the runs root."""
    path = Path(run)
    if not path.is_dir() and (runs_root() / str(run)).is_dir():
        path = runs_root() / str(run)
    if not path.is_dir():
        raise RunError(f"{run}: no such run folder")
    if not TrainingRun(path).config.is_file():
        raise RunError(f"{path}: not a training run (no {TrainingRun.config})")
    return path


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl, skipping a last line cut short by a kill."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def last_metrics_row(path: Path) -> dict | None:
    """The last complete row of a metrics.jsonl that may be being written (read from its end)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 65536))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def reward_body_from(source: Path) -> str:
    """A reward body from a file, a training run (its reward.py) or an agent run (its best candidate)."""
    if source.is_file():
        return source.read_text()
    run = AgentRun(source)
    if run.summary.is_file():
        best = json.loads(run.summary.read_text()).get("best")
        if not best:
            raise RunError(f"{run.summary}: best: the run has no trained candidate yet")
        return best["code"]
    training = TrainingRun(source)
    if training.config.is_file():
        config = json.loads(training.config.read_text())
        return (source / config.get("reward_file", TrainingRun.reward)).read_text()
    raise RunError(f"{source}: not a reward file, a training run or an agent run")


__all__ = [
    "AgentRun", "CandidateFolder", "RunError", "TrainingRun", "new_run_dir", "read_metrics", "resolve_run",
    "reward_body_from", "runs_root", "write_json", "write_text_atomic",
]

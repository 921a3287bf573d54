"""The reward-design loop as a langgraph graph: propose, validate, train, reflect, select, iterate.

Every node's result is checkpointed by langgraph's SQLite checkpointer in the run folder, so a run killed at
any point (SIGKILL included) resumes from its last finished node; the train node skips candidates that
already have a result, so nothing finished is trained twice.

Run folder (robosmith.runs.AgentRun names its files):
    run.json            task, loop settings, proposer, LLM settings (no key)
    task.yaml           the chosen task spec, saved before anything trains
    graph.sqlite        the graph checkpoints
    llm_calls.jsonl     one line per LLM call: tokens, cost, time
    iter_NN/cand_K/     reward_body.py, reward.py (rendered module), job.json, metrics.jsonl, checkpoints/,
                        eval.json, eval.mp4, result.json, record.json (kept or dropped, and why)
    dr_prior/           the randomization phase's prior: rapp.json, robustness.json (+ plots) of the best reward
    dr_NN/cand_K/       randomization.yaml (the ranges), the best reward, a run trained under the ranges,
                        robustness.json on the task's default suite, result.json, record.json
    summary.json        what was tried, what won, why the loop stopped
Candidates train through an executor (robosmith.execution): local processes by default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import yaml
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from robosmith.agent.llm import BudgetExceeded, LLMClient, LLMConfig, LLMError
from robosmith.agent.proposers import (
    REFERENCE_ORIGIN,
    LLMProposer,
    OfflineProposer,
    Proposal,
    ProposalContext,
    write_proposal,
)
from robosmith.agent.randomization import RandomizationPhase
from robosmith.agent.real import read_the_gap
from robosmith.agent.reflect import candidate_stats, reflection_text
from robosmith.agent.status import live_status, mark_ended, mark_head
from robosmith.engines.export import ExportError, ExportOptions, export_package, package_name, task_info, template_env
from robosmith.engines.launch import engine_command
from robosmith.errors import ConfigError
from robosmith.execution.confine import TrainerLimits, machine_memory_mb
from robosmith.execution.executor import Executor
from robosmith.execution.local import LocalExecutor
from robosmith.execution.smoke import batch_sizes, sample_states, validate_reward
from robosmith.report import write_report
from robosmith.reward.check import RewardRejected
from robosmith.runs import AgentRun, CandidateFolder, write_json
from robosmith.task import TaskSpec, task_from_dict
from robosmith.tracking import start_tracking
from robosmith.train.ppo import ALGOS, TrainSettings

EXECUTORS = ("local", "ray")
THREAD = {"configurable": {"thread_id": "reward-loop"}, "recursion_limit": 10_000}


@dataclass
class LoopSettings:
    candidates: int = 4  # reward candidates per iteration
    max_iterations: int = 3
    train_minutes: float = 5.0  # per candidate
    num_envs: int | None = None  # per candidate; default: the task's (for the algorithm)
    algo: str = "ppo"  # how candidates train on the cpu backend: ppo or sac
    parallel: int = 0  # candidates training at once; 0: one per CPU core
    threads_per_candidate: int = 0  # 0: the machine's cores shared by the candidates training at once
    max_hours: float | None = None  # wall-clock limit of the whole loop
    eval_episodes: int = 100
    video_episodes: int = 2
    seed: int = 0
    review: bool = False  # pause after each iteration for a person's decision
    baseline: bool = True  # also train the task's reference reward in the first iteration
    until: float | None = None  # stop after this wall-clock time (seconds since the epoch)
    backend: str = "cpu"  # where candidates train: cpu (MuJoCo here), mjlab or isaaclab (exported packages)
    engine_python: str | None = None  # the engine's interpreter (or isaaclab.sh); mjlab default: see engines.launch
    isaaclab_version: str = "3.0"  # which Isaac Lab the exported packages are written for
    # Limits of each candidate's trainer (None: derived). Memory: 80% of the machine's shared by the candidates
    # training at once; CPU time: the candidate's time limit on every thread it may use.
    trainer_memory_mb: int | None = None
    trainer_cpu_s: int | None = None
    # The randomization phase (DrEureka) after the reward phase: None enters it once the reward met its target,
    # True always (when a reward trained), False never.
    dr: bool | None = None
    dr_iterations: int = 1
    dr_candidates: int = 2
    dr_prior_episodes: int = 20  # episodes per value of each RAPP sweep
    # --real: a LeRobot dataset of the real arm; the loop starts by reading its gap, fitting the arm to it
    real_dataset: str | None = None
    real_units: str | None = None
    real_calibration: str | None = None
    real_generations: int = 30  # CMA-ES generations of the fit
    # Where candidates train: "local" processes here, or "ray" tasks on a cluster (robosmith.execution.ray_executor)
    executor: str = "local"
    ray_address: str | None = None  # as ray.init takes it: "auto", "ray://host:port"; None starts Ray here
    shared_fs: bool = False  # the Ray nodes see the run folder at the same path: train in place, ship nothing

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.max_iterations < 1 or self.train_minutes <= 0:
            raise ConfigError("candidates and max_iterations must be >= 1, train_minutes > 0")
        if self.dr_iterations < 1 or self.dr_candidates < 1 or self.dr_prior_episodes < 1:
            raise ConfigError("dr_iterations, dr_candidates and dr_prior_episodes must be >= 1")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor {self.executor!r}: one of {', '.join(EXECUTORS)}")
        if self.algo not in ALGOS:
            raise ConfigError(f"algo {self.algo!r}: one of {', '.join(ALGOS)}")
        if self.algo != "ppo" and self.backend != "cpu":
            raise ConfigError(f"--algo {self.algo}: the {self.backend} packages train with PPO")
        if self.dr and self.backend != "cpu":
            raise ConfigError(f"the randomization phase trains on the cpu backend only, not {self.backend}")
        if self.backend != "cpu":
            engine_command(self.backend, self.engine_python)  # fails now, with the path, not in every candidate

    @property
    def workers(self) -> int:
        if self.parallel:
            return self.parallel
        if self.backend != "cpu":  # one GPU: each engine process wants all of it
            return 1
        return max(1, (os.cpu_count() or 1) // max(1, self.threads_per_candidate))

    @property
    def threads(self) -> int:
        """Threads each candidate trains with: with --parallel 1 on 2 cores, one candidate at a time on both."""
        return self.threads_per_candidate or max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def trainer_limits(self) -> TrainerLimits:
        memory = self.trainer_memory_mb or int(0.8 * machine_memory_mb() / self.workers)
        threads = self.threads if self.backend == "cpu" else (os.cpu_count() or 1)
        cpu = self.trainer_cpu_s or int(threads * self.candidate_timeout_s)
        # GPU engines reserve and map memory in ways RLIMIT_DATA was not checked against: the watchdog holds there.
        return TrainerLimits(cpu_s=cpu, memory_mb=memory, data_limit=self.backend == "cpu")

    @property
    def candidate_timeout_s(self) -> float:
        # Training stops itself at train_minutes; evaluation, video and start-up come on top (an engine's
        # start-up includes compiling its kernels, or starting Isaac Sim).
        return 60.0 * self.train_minutes * 1.5 + (180.0 if self.backend == "cpu" else 600.0)


def make_executor(settings: LoopSettings) -> Executor:
    if settings.executor == "ray":
        from robosmith.execution.ray_executor import RayExecutor

        return RayExecutor(settings.candidate_timeout_s, settings.trainer_limits, settings.threads,
                           gpus_per_candidate=0.0 if settings.backend == "cpu" else 1.0,
                           address=settings.ray_address, shared_fs=settings.shared_fs)
    return LocalExecutor(settings.workers, settings.candidate_timeout_s, settings.trainer_limits,
                         settings.threads)


class LoopState(TypedDict, total=False):
    iteration: int
    started_at: float
    candidates: list[dict]  # this iteration's
    history: list[dict]  # every finished candidate, compact
    best: dict | None
    reflection: str
    component_stats: dict
    human_feedback: str
    stop_reason: str
    best_before: dict | None  # the best when the iteration began: a rejected iteration falls back to it
    route: str  # where the review node sends the graph next
    # The randomization phase (robosmith.agent.randomization)
    phase: str  # "reward", then "randomization"
    dr_prior: dict  # RAPP and robustness of the best reward's policy
    dr_iteration: int
    dr_candidates: list[dict]
    dr_history: list[dict]
    dr_best: dict | None
    dr_best_before: dict | None
    dr_feedback: str
    dr_stop_reason: str
    real: dict  # --real: the gap before and after the fit, the critique, the fitted parameters


class RewardLoop:
    """Holds what the graph's nodes need but the checkpoint must not: task, settings, proposer."""

    def __init__(self, run_dir: Path, task: TaskSpec, settings: LoopSettings, llm: LLMConfig | None) -> None:
        self.run_dir, self.task, self.settings = run_dir, task, settings
        self.files = AgentRun(run_dir)
        self.client = LLMClient(llm, self.files.llm_calls) if llm and llm.configured else None
        self.proposer = LLMProposer(self.client) if self.client else OfflineProposer(seed=settings.seed)
        self.templates = template_env()
        self.executor = make_executor(settings)
        self.randomization = RandomizationPhase(self)

    # ------------------------------------------------------------------------------------------ set-up
    @staticmethod
    def create(run_dir: Path, task: TaskSpec, settings: LoopSettings, llm: LLMConfig | None,
               choice: dict | None = None) -> RewardLoop:
        if settings.backend != "cpu":  # a task the engine cannot express fails now, not in every candidate
            task_info(task, ExportOptions(settings.backend, settings.isaaclab_version))
        run_dir.mkdir(parents=True, exist_ok=True)
        AgentRun(run_dir).task.write_text(yaml.safe_dump(task.to_dict(), sort_keys=False))
        loop = RewardLoop(run_dir, task, settings, llm)
        write_json(loop.files.run_info, {
            "task": task.to_dict(),
            "task_choice": choice or {},
            "settings": dataclasses.asdict(settings),
            "proposer": loop.proposer.name,
            "llm": llm.public() if llm and llm.configured else None,
        })
        return loop

    @staticmethod
    def open(run_dir: Path, llm_overrides: dict | None = None, settings_overrides: dict | None = None) -> RewardLoop:
        """An existing run, for resuming; the LLM key comes from the environment again, never from disk.
        `settings_overrides` changes where it runs (a Ray cluster's new address), not what it does."""
        run = AgentRun(run_dir)
        info = json.loads(run.run_info.read_text())
        task = task_from_dict(info["task"], run.run_info)
        settings = LoopSettings(**{**info["settings"], **(settings_overrides or {})})
        llm = None
        if info["llm"]:
            saved = {k: v for k, v in info["llm"].items() if k != "api_key"}
            llm = LLMConfig.from_env(**{**saved, **(llm_overrides or {})})
        return RewardLoop(run_dir, task, settings, llm)

    def folder(self, candidate: dict) -> Path:
        return self.run_dir / candidate["dir"]

    # ------------------------------------------------------------------------------------------- nodes
    def real_gap(self, state: LoopState) -> dict:
        """Read the real arm's gap, fit the arm, and train everything after on the fitted arm."""
        s = self.settings
        print(f"reading the gap of {s.real_dataset} and fitting the arm to it")
        task, figures = read_the_gap(self.run_dir, self.task, Path(s.real_dataset), s.real_units,
                                     Path(s.real_calibration) if s.real_calibration else None, s.real_generations,
                                     self.client)
        self.task = task
        info = json.loads(self.files.run_info.read_text())
        write_json(self.files.run_info, {**info, "task": task.to_dict()})  # a resumed run trains the fitted arm
        self.files.task.write_text(yaml.safe_dump(task.to_dict(), sort_keys=False))
        print(f"  gap {figures['gap_before_deg']:.2f} deg -> {figures['gap_after_deg']:.2f} deg with "
              + ", ".join(f"{k}={v:g}" for k, v in figures["fitted"].items()))
        return {"real": figures}

    def propose(self, state: LoopState) -> dict:
        it = state["iteration"]
        ctx = ProposalContext(
            task=self.task, iteration=it, best=state.get("best"), reflection=state.get("reflection", ""),
            component_stats=state.get("component_stats", {}), human_feedback=state.get("human_feedback", ""),
        )
        try:
            proposals = self.proposer.propose(ctx, self.settings.candidates)
        except BudgetExceeded as e:
            return {"candidates": [], "stop_reason": str(e)}
        except LLMError as e:
            return {"candidates": [], "stop_reason": f"LLM unavailable: {e}"}
        if it == 0 and self.settings.baseline:
            # The task's reference reward, trained the same way, is what the proposer's rewards are measured
            # against (neither proposer reads it; it is a candidate like the others and may win).
            proposals.append(Proposal(self.task.reference_reward_body(), REFERENCE_ORIGIN))
        candidates = []
        for k, proposal in enumerate(proposals):
            rel = AgentRun.candidate_dir(it, k)
            write_proposal(self.run_dir / rel, proposal)
            candidates.append({
                "id": f"{it}.{k}", "iteration": it, "dir": rel, "origin": proposal.origin, "genome": proposal.genome,
                "status": "proposed" if proposal.code else "rejected", "reason": proposal.reason,
            })
        return {"candidates": candidates, "best_before": state.get("best")}

    def validate(self, state: LoopState) -> dict:
        settings = TrainSettings.from_task(
            self.task, max_minutes=self.settings.train_minutes, num_envs=self.settings.num_envs,
            seed=self.settings.seed, eval_episodes=self.settings.eval_episodes, max_iterations=100_000,
            randomize=False,  # rewards are designed in the nominal world; randomization comes after (DrEureka)
            algo=self.settings.algo,
        )
        settings.video_episodes = self.settings.video_episodes
        proposed = [c for c in state["candidates"] if c["status"] == "proposed"]
        verdicts = self._smoke_all(proposed, batch_sizes(self.task, settings.num_envs, settings.eval_episodes))
        out = []
        for c in state["candidates"]:
            c = dict(c)
            folder = self.folder(c)
            if c["status"] == "proposed":
                code = CandidateFolder(folder).reward_body.read_text()
                smoke = verdicts[c["id"]]
                if isinstance(smoke, RewardRejected):
                    c.update(status="rejected", reason=f"{smoke.stage} check: {smoke.reason}")
                else:
                    components = sorted(smoke.get("components", {}))
                    module = self.templates.get_template("cpu/reward.py.j2").render(
                        task_name=self.task.name, label=f"candidate {c['id']} ({c['origin']})",
                        components=components, body=code.strip(),
                    )
                    CandidateFolder(folder).reward.write_text(module)
                    job = {
                        "task": self.task.to_dict(), "settings": dataclasses.asdict(settings),
                        "reward_file": CandidateFolder.reward, "threads": self.settings.threads,
                        "group": self.run_dir.name, "backend": self.settings.backend,
                    }
                    refused = None
                    if self.settings.backend != "cpu":
                        options = ExportOptions(self.settings.backend, self.settings.isaaclab_version,
                                                label=f"candidate {c['id']} ({c['origin']})")
                        try:  # a reward can pass the CPU smoke run and still read what the engine lacks
                            export_package(self.task, code, folder, options, components)
                        except ExportError as e:
                            refused = f"export: {e}"
                        else:
                            job["package"] = package_name(self.task)
                            job["engine_command"] = engine_command(self.settings.backend,
                                                                   self.settings.engine_python)
                    if refused:
                        c.update(status="rejected", reason=refused)
                    else:
                        write_json(CandidateFolder(folder).job, job)
                        c.update(status="valid")
            out.append(c)
        return {"candidates": out}

    def _smoke_all(self, candidates: list[dict], sizes: list[int]) -> dict[str, dict | RewardRejected]:
        """Each candidate's smoke run (its own confined process), as many at once as candidates train at once.

        The states are sampled once: every candidate is judged on the same ones, and sampling costs more than a
        smoke run's own work.
        """
        if not candidates:
            return {}
        states = sample_states(self.task)

        def judge(c: dict) -> dict | RewardRejected:
            folder = self.folder(c)
            try:
                return validate_reward(CandidateFolder(folder).reward_body.read_text(), self.task, folder,
                                       states=states, sizes=sizes)
            except RewardRejected as e:
                return e

        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            return dict(zip([c["id"] for c in candidates], pool.map(judge, candidates), strict=True))

    def train(self, state: LoopState) -> dict:
        folders = [self.folder(c) for c in state["candidates"] if c["status"] == "valid"]
        with live_status(self.run_dir):
            self.executor.run(
                folders, on_done=lambda folder, result: print(f"  {folder.relative_to(self.run_dir.resolve())}: "
                                                              f"{_outcome(result)}"),
            )
        out = []
        for c in state["candidates"]:
            c = dict(c)
            folder = self.folder(c)
            if c["status"] == "valid":
                result = json.loads(CandidateFolder(folder).result.read_text())
                c.update({k: v for k, v in result.items() if k != "status"}, status=result["status"])
                c["stats"] = candidate_stats(folder)
            out.append(c)
        return {"candidates": out}

    def reflect(self, state: LoopState) -> dict:
        trained = [c for c in state["candidates"] if c["status"] == "ok"]
        top = max(trained, key=_rank, default=None)
        stats = {k: v for k, v in (top or {}).get("stats", {}).items() if k not in ("success_rate", "episode_length")}
        return {"reflection": reflection_text(state["candidates"]), "component_stats": stats}

    def select(self, state: LoopState) -> dict:
        best = state.get("best")
        trained = [c for c in state["candidates"] if c["status"] == "ok"]
        top = max(trained, key=_rank, default=None)
        if top and (best is None or _rank(top) > _rank(best)):
            best = self.best_entry(top)
        history = list(state.get("history", []))
        for c in state["candidates"]:
            kept = best is not None and c["id"] == best["id"]
            if c["status"] != "ok":
                why = f"dropped: {c['status']}: {c['reason']}"
            elif kept:
                why = "kept: best evaluation success so far"
            else:
                why = f"dropped: evaluation success {c['success_rate']:.0%} below the best ({best['success_rate']:.0%})"
            record = {k: c.get(k) for k in ("id", "iteration", "dir", "origin", "status", "reason", "success_rate",
                                             "ci95", "mean_reward", "env_steps", "wall_s")}
            record.update(kept=kept, why=why)
            write_json(CandidateFolder(self.folder(c)).record, record)
            history.append(record)
        return {"best": best, "history": history, "route": ""}

    def best_entry(self, c: dict) -> dict:
        return {
            "id": c["id"], "iteration": c["iteration"], "dir": c["dir"], "genome": c.get("genome"),
            "code": CandidateFolder(self.folder(c)).reward_body.read_text(),
            "success_rate": c["success_rate"], "mean_reward": c["mean_reward"],
        }

    def review(self, state: LoopState) -> dict:
        """Pause for a person (a langgraph interrupt: the pause outlives the process) and apply the decision."""
        it = state["iteration"]
        decision = interrupt({"iteration": it, "candidates": [c["id"] for c in self.iteration_records(state)]})
        action = decision.get("action")
        if action == "approve":
            chosen = next(r for r in self.iteration_records(state) if r["id"] == decision["candidate"])
            best = self.best_entry(chosen)
            history = [
                {**r, "kept": r["id"] == chosen["id"],
                 "why": "approved by the reviewer" if r["id"] == chosen["id"] else r["why"].replace("kept", "was")}
                if r["iteration"] == it else r
                for r in state["history"]
            ]
            for r in history:
                if r["iteration"] == it:
                    write_json(CandidateFolder(self.folder(r)).record, r)
            return {"best": best, "history": history, "route": "advance"}
        if action == "reject":
            return {"best": state.get("best_before"), "human_feedback": decision.get("comment", ""),
                    "route": "advance"}
        if action == "edit":
            # Numbered from the checkpointed state, not the folders: a kill after the write reruns this node,
            # which then writes the same folder again instead of leaving an orphan beside a new one.
            k = sum(1 for r in state["history"] if r["iteration"] == it)
            rel = AgentRun.candidate_dir(it, k)
            edited_folder = self.files.candidate(it, k)
            edited_folder.path.mkdir(parents=True, exist_ok=True)
            edited_folder.reward_body.write_text(decision["code"])
            edited = {"id": f"{it}.{k}", "iteration": it, "dir": rel, "origin": f"edit by the reviewer of "
                      f"{decision.get('candidate', '?')}", "genome": None, "status": "proposed", "reason": ""}
            return {"candidates": [edited], "route": "validate"}
        raise ValueError(f"unknown review decision {decision!r}")

    @staticmethod
    def iteration_records(state: LoopState) -> list[dict]:
        """Every candidate of the current iteration (edits included), as recorded by select."""
        return [r for r in state.get("history", []) if r["iteration"] == state["iteration"]]

    def advance(self, state: LoopState) -> dict:
        best, it = state.get("best"), state["iteration"]
        candidates = self.iteration_records(state)
        tracker = start_tracking(self.run_dir, f"{self.run_dir.name}/loop-iter{it}", {"task": self.task.name},
                                 group=self.run_dir.name)
        tracker.log({
            "iteration": it,
            "best_success_rate": best["success_rate"] if best else 0.0,
            "candidates_ok": sum(c["status"] == "ok" for c in candidates),
            "candidates_rejected": sum(c["status"] == "rejected" for c in candidates),
            "candidates_failed": sum(c["status"] not in ("ok", "rejected") for c in candidates),
        }, step=it)
        tracker.finish()
        stop = ""
        if best and best["success_rate"] >= self.task.success_target:
            stop = f"success target met: {best['success_rate']:.0%} >= {self.task.success_target:.0%}"
        elif it + 1 >= self.settings.max_iterations:
            stop = f"iteration limit reached ({self.settings.max_iterations})"
        elif self.settings.max_hours and time.time() - state["started_at"] > 3600 * self.settings.max_hours:
            stop = f"time limit reached ({self.settings.max_hours} h)"
        elif self.settings.until and time.time() > self.settings.until:
            stop = f"reached the --until time ({time.strftime('%Y-%m-%d %H:%M', time.localtime(self.settings.until))})"
        update = {"iteration": it + 1, "stop_reason": stop}
        self.write_summary({**state, **update})  # the report follows the run as it goes
        return update

    # ------------------------------------------------------------------------------------------- graph
    def graph(self, checkpointer: SqliteSaver):
        g = StateGraph(LoopState)
        for name in ("propose", "validate", "train", "reflect", "select", "review", "advance"):
            g.add_node(name, getattr(self, name))
        g.add_node("real_gap", self.real_gap)
        g.add_edge(START, "real_gap" if self.settings.real_dataset else "propose")
        g.add_edge("real_gap", "propose")
        g.add_conditional_edges("propose", lambda s: END if s.get("stop_reason") else "validate")
        g.add_edge("validate", "train")
        g.add_edge("train", "reflect")
        g.add_edge("reflect", "select")
        g.add_conditional_edges("select", lambda s: "review" if self.settings.review else "advance")
        g.add_conditional_edges("review", lambda s: s["route"])
        g.add_conditional_edges("advance", self.after_reward_iteration)
        dr = self.randomization
        for name in ("dr_prior", "dr_propose", "dr_validate", "dr_train", "dr_select", "dr_review", "dr_advance"):
            g.add_node(name, getattr(dr, name))
        g.add_conditional_edges("dr_prior", lambda s: END if s.get("dr_stop_reason") else "dr_propose")
        g.add_conditional_edges("dr_propose", lambda s: END if s.get("dr_stop_reason") else "dr_validate")
        g.add_edge("dr_validate", "dr_train")
        g.add_edge("dr_train", "dr_select")
        g.add_conditional_edges("dr_select", lambda s: "dr_review" if self.settings.review else "dr_advance")
        g.add_conditional_edges("dr_review", lambda s: s["route"])
        g.add_conditional_edges("dr_advance", lambda s: END if s.get("dr_stop_reason") else "dr_propose")
        return g.compile(checkpointer=checkpointer)

    def after_reward_iteration(self, state: LoopState) -> str:
        if not state.get("stop_reason"):
            return "propose"
        return "dr_prior" if self.randomization.should_enter(state) else END

    def run(self, resume: bool = False, decision: dict | None = None) -> LoopState:
        """Run (or continue) the graph until it ends or pauses for review; returns the state then."""
        mark_head(self.run_dir)
        conn = sqlite3.connect(self.files.graph, check_same_thread=False)
        try:
            app = self.graph(SqliteSaver(conn))
            if decision is not None:
                app.invoke(Command(resume=decision), THREAD)
            elif resume:
                if app.get_state(THREAD).next and not self._paused(app):
                    app.invoke(None, THREAD)
            else:
                start: LoopState = {"iteration": 0, "started_at": time.time(), "history": [], "best": None,
                                    "stop_reason": "", "human_feedback": "", "route": ""}
                app.invoke(start, THREAD)
            final = dict(app.get_state(THREAD).values)
            final["paused_for_review"] = self._paused(app)
        finally:
            conn.close()
        self.write_summary(final)
        mark_ended(self.run_dir, "paused for review" if final["paused_for_review"] else "finished")
        return final

    @staticmethod
    def _paused(app) -> bool:
        return any(task.interrupts for task in app.get_state(THREAD).tasks)

    def paused_state(self) -> LoopState | None:
        """The state of a run waiting for review, or None if it is not waiting."""
        conn = sqlite3.connect(self.files.graph, check_same_thread=False)
        try:
            app = self.graph(SqliteSaver(conn))
            return dict(app.get_state(THREAD).values) if self._paused(app) else None
        finally:
            conn.close()

    def write_summary(self, state: LoopState) -> dict:
        best = state.get("best")
        summary = {
            "task": self.task.name,
            "proposer": self.proposer.name,
            "iterations": state.get("iteration", 0),
            "candidates_tried": len(state.get("history", [])),
            "stop_reason": state.get("stop_reason", "") or ("paused for review" if state.get("paused_for_review")
                                                            else ""),
            "best": {k: v for k, v in best.items() if k != "genome"} if best else None,
            "reference": next(({"id": r["id"], "success_rate": r.get("success_rate"), "status": r["status"]}
                               for r in state.get("history", []) if r.get("origin") == REFERENCE_ORIGIN), None),
            "llm_cost_usd": self.client.spent_usd() if self.client else 0.0,
            "randomization": self.randomization.summary(state),
            "real": state.get("real"),
        }
        write_json(self.files.summary, summary)
        write_report(self.run_dir)
        return summary


def _rank(c: dict) -> tuple[float, float]:
    return (c["success_rate"], c["mean_reward"])


def _outcome(result: dict) -> str:
    if result["status"] == "ok":
        return f"success {result['success_rate']:.0%}"
    return f"{result['status']}: {result['reason']}"

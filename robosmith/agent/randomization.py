"""The randomization phase of the loop (DrEureka): after the reward, design the domain randomization.

The phase starts from the best reward's policy: its RAPP intervals (each parameter alone, where does it still
succeed?) and its robustness on the task's default suite. Proposers write randomization configs: the LLM from a
prompt that shows the task, the RAPP intervals, the registry with units and bounds and the last robustness
results; offline, ranges are derived from the same numbers. Each config is checked against the registry;
candidates train the best reward under their randomization and are evaluated on the default suite in their own
confined process; selection is by robustness (worst variant first, then the mean), never by nominal success
alone. The test suite is not used here: claims are made on it afterwards.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import yaml

from robosmith.agent.llm import LLMClient
from robosmith.agent.proposers import prompt_env
from robosmith.errors import RobosmithError
from robosmith.robot.params import PARAMS, ParamError
from robosmith.sim2real.rapp import nominal_value
from robosmith.task.load import dr_ranges
from robosmith.task.spec import DRParam, TaskSpec

WIDTHS = (1.0, 0.5, 0.75, 0.3)  # offline candidates: fractions of the RAPP interval around the task's value
# A real arm's gains, damping, friction and masses lie within this factor of a fitted model's (LeRobot drives the
# STS3215 at half the gain our model's kp stands for); RAPP's intervals, one parameter at a time, reach far beyond
# (reach succeeds alone at 1-100 N·m/rad of kp, 0-2 N·m of friction), and wide ranges drawn together cost learning:
# on reach in 5 min, kp 9-35.6 kept 20% in the default suite's worst variant, kp 9-24 59% (README, Results).
PLAUSIBLE_FACTOR = 2.0
# Effects whose model value is zero have no factor to bound them: how far a real SO-101 plausibly goes. Its STS3215
# encoders read 4096 steps a turn (0.0015 rad), so 0.01 rad of noise is several steps; a hand calibration is off by
# a few degrees. RAPP's reach tolerated 0.05 rad of noise alone, and 0.025 drawn with the rest cost the worst variant
# 26 points against 0.01 (README, Results).
REAL_ARM_LIMIT = {"joint_pos_noise": 0.01, "joint_zero_offset": 0.1}
PRIOR_POINTS = 7
PRIOR_EPISODES = 20


@dataclass
class RandomizationProposal:
    ranges: tuple[DRParam, ...] | None  # None: nothing usable (reason says why)
    origin: str
    reason: str = ""
    raw: str = ""


@dataclass
class RandomizationContext:
    task: TaskSpec
    iteration: int
    rapp: dict  # robosmith.sim2real.rapp's result for the best reward's policy
    robustness: dict | None  # the last robustness result (of the best randomization so far, else the prior)
    best: dict | None = None  # {"id", "ranges", "robustness_worst", "robustness_mean"}
    human_feedback: str = ""


def ranges_yaml(ranges: tuple[DRParam, ...] | list[dict]) -> str:
    items = [p.as_dict() if isinstance(p, DRParam) else p for p in ranges]
    return "\n".join(f"- {{name: {p['name']}, nominal: {p['nominal']:.6g}, bounds: [{p['bounds'][0]:.6g}, "
                     f"{p['bounds'][1]:.6g}]" + (f", distribution: {p['distribution']}" if "distribution" in p else "")
                     + "}" for p in items)


def prior_parameters(task: TaskSpec, variants: list) -> list[str]:
    """What the prior sweeps: the parameters the task randomizes and those its default suite varies."""
    names = [p.name for p in task.domain_randomization]
    for v in variants:
        names += [n for n in v.params if n not in names]
    return [n for n in names if task.scene.cube or not PARAMS[n].needs_cube]


def registry_for_prompt(task: TaskSpec) -> list[dict]:
    return [
        {"name": name, "unit": e.unit, "low": e.low, "high": e.high, "nominal": round(nominal_value(task, name), 6),
         "per_joint": e.per_joint, "integer": e.integer, "doc": e.doc}
        for name, e in PARAMS.items() if task.scene.cube or not e.needs_cube
    ]


def parse_ranges(text: str) -> tuple[DRParam, ...]:
    """The ranges of an LLM answer: the fenced YAML block (else the whole text), checked against the registry."""
    blocks = re.findall(r"```(?:yaml|yml)?\s*\n(.*?)```", text, flags=re.DOTALL)
    try:
        raw = yaml.safe_load(blocks[0] if blocks else text)
    except yaml.YAMLError as e:
        raise ParamError(f"the answer's YAML does not parse: {str(e).splitlines()[0]}") from None
    if isinstance(raw, dict) and "domain_randomization" in raw:
        raw = raw["domain_randomization"]
    return dr_ranges(raw, "answer")


class LLMRandomizationProposer:
    name = "llm"

    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def messages(self, ctx: RandomizationContext) -> list[dict]:
        env = prompt_env()
        system = env.get_template("randomization_system.j2").render(registry=registry_for_prompt(ctx.task))
        best = dict(ctx.best, ranges_yaml=ranges_yaml(ctx.best["ranges"])) if ctx.best else None
        user = env.get_template("propose_randomization.j2").render(
            task=ctx.task, rapp=ctx.rapp, robustness=ctx.robustness, best=best, human_feedback=ctx.human_feedback)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def propose(self, ctx: RandomizationContext, k: int) -> list[RandomizationProposal]:
        answers = self.client.complete(self.messages(ctx), n=k, purpose=f"randomization iteration {ctx.iteration}")
        out = []
        for i, text in enumerate(answers):
            origin = f"llm {self.client.cfg.model} sample {i}"
            try:
                out.append(RandomizationProposal(parse_ranges(text), origin, raw=text))
            except RobosmithError as e:
                out.append(RandomizationProposal(None, origin, f"registry check: {e}", raw=text))
        return out


def plausible_interval(p: dict, hand_written: dict[str, list[float]]) -> list[float] | None:
    """Where a real arm's value of RAPP's parameter `p` plausibly lies: RAPP's measured interval, bounded by
    `PLAUSIBLE_FACTOR` (or `REAL_ARM_LIMIT`) and holding the model's value; the task's own range where RAPP
    bounds nothing; None where neither says anything."""
    # The measured interval, not the possible one: with RAPP's few episodes per value the possible interval holds
    # a world where 15 of 20 succeed (11 degrees of joint noise on reach).
    entry, nominal = PARAMS[p["name"]], p["nominal"]
    interval = p["interval"] or p["interval_possible"]
    if interval and nominal > 0 and not entry.integer:  # RAPP varies one at a time; a world varies all at once
        interval = [max(interval[0], nominal / PLAUSIBLE_FACTOR), min(interval[1], nominal * PLAUSIBLE_FACTOR)]
        # An interval that stops at the model's value says only that the grid's next point failed (reach's
        # armature: 0.028 held, 0.0079 failed); a real arm's value lies on either side of a fitted model's, so the
        # measured side is mirrored, by the same factor. Armature 0.021-0.042 kept 71% in the test suite's worst
        # variant where 0.028-0.042 kept 57% (reach, 5 min, seed 1).
        if interval[0] >= nominal or interval[1] <= nominal:
            factor = max(interval[1] / nominal, nominal / interval[0])
            interval = [nominal / factor, nominal * factor]
    if interval and p["name"] in REAL_ARM_LIMIT:
        limit = REAL_ARM_LIMIT[p["name"]]
        interval = [max(interval[0], -limit), min(interval[1], limit)]
    interval = interval or hand_written.get(p["name"])
    # A signed error (calibration offsets) may have either sign on a real arm, whichever side the grid happened to
    # fail on first (reach: 55% at -0.067 rad, 85% at +0.067): its interval is mirrored.
    if interval and is_signed(p):
        interval = [-max(-interval[0], interval[1]), max(-interval[0], interval[1])]
    return interval


def is_signed(p: dict) -> bool:
    """An error of either sign around zero (calibration offsets), not a magnitude."""
    entry = PARAMS[p["name"]]
    return p["nominal"] == 0 and entry.low == -entry.high


def offline_range(p: dict, interval: list[float], width: float, failed: list[dict],
                  previous: list[float] | None) -> tuple[float, float] | None:
    """One candidate's range of RAPP's parameter `p`: `width` of the plausible `interval` on either side of the
    model's value, widened to the values of the `failed` variants and to the `previous` best range; None where
    nothing is left to vary."""
    entry, nominal, signed = PARAMS[p["name"]], p["nominal"], is_signed(p)
    low = nominal - width * (nominal - interval[0])
    high = nominal + width * (interval[1] - nominal)
    for v in failed:  # cover the worlds that broke the last policy
        if p["name"] in v["params"]:
            values = np.asarray(v["params"][p["name"]], dtype=float)
            value = float(np.abs(values).max() if signed else values.mean())
            # RAPP measured this policy, trained without the world; one trained in it may cope (lag is the case: a
            # real arm lags ~3 steps, a nominal policy fails at 1). The whole value: the loop's reach candidate
            # with lag 0-2 kept 19% at 3 steps, with 0-3 84% and 48% (seeds 1 and 2; README, Results). Every
            # candidate covers it: one left inside RAPP's lag interval kept 0-1% in every lagging variant at both
            # seeds, so selection never took it.
            low, high = min(low, -value if signed else value), max(high, value)
    if previous:
        low, high = min(low, previous[0]), max(high, previous[1])
    low, high = max(low, entry.low), min(high, entry.high)
    if entry.integer:
        low, high = math.floor(low), math.ceil(high)
    if high - low <= 1e-9 * max(1.0, abs(nominal)):
        return None
    return float(f"{low:.4g}"), float(f"{high:.4g}")


class OfflineRandomizationProposer:
    """Ranges from the numbers alone. Each parameter gets a fraction of its measured RAPP interval around the task's
    value (one fraction per candidate: the width is what is searched), widened to cover the value of every variant
    the last policy failed in, beyond RAPP's interval too (RAPP measured a policy that never saw that world).
    Later iterations start from the most robust ranges so far and widen what still fails."""

    name = "offline"

    def propose(self, ctx: RandomizationContext, k: int) -> list[RandomizationProposal]:
        target = ctx.task.success_target
        failed = [v for v in (ctx.robustness or {}).get("variants", []) if v["success_rate"] < target]
        hand_written = {p.name: [p.low, p.high] for p in ctx.task.domain_randomization}
        log_uniform = {p.name for p in ctx.task.domain_randomization if p.distribution == "log_uniform"}
        previous = {r["name"]: r["bounds"] for r in ctx.best["ranges"]} if ctx.best else {}
        out = []
        for i in range(k):
            # Later iterations keep the widths: they add the most robust ranges so far and the worlds that still
            # fail; widening what already holds costs learning (reach, 5 min: kp 9-35.6 against 9-24 in the
            # default suite's worst variant, 20% against 59%).
            width = WIDTHS[i % len(WIDTHS)]
            ranges = []
            for p in ctx.rapp["parameters"]:
                interval = plausible_interval(p, hand_written)
                bounds = interval and offline_range(p, interval, width, failed, previous.get(p["name"]))
                if not bounds:
                    continue
                low, high = bounds
                ranges.append({"name": p["name"], "nominal": min(max(p["nominal"], low), high), "bounds": [low, high]})
                if p["name"] in log_uniform and low > 0:  # drawn as the task draws it
                    ranges[-1]["distribution"] = "log_uniform"
            origin = f"offline: {width:.2f} of the RAPP intervals"
            origin += ", widened to the failed variants" if failed else ""
            try:
                out.append(RandomizationProposal(dr_ranges(ranges, "offline proposal"), origin))
            except RobosmithError as e:
                out.append(RandomizationProposal(None, origin, f"registry check: {e}"))
        return out


class RandomizationPhase:
    """The graph nodes of the randomization phase; `loop` (a RewardLoop) holds task, settings and executor."""

    def __init__(self, loop) -> None:
        self.loop = loop
        client = loop.client
        self.proposer = LLMRandomizationProposer(client) if client else OfflineRandomizationProposer()

    @property
    def task(self) -> TaskSpec:
        return self.loop.task

    def variants(self) -> list:
        from robosmith.sim2real.robustness import load_variants, suite_path

        return load_variants(suite_path(self.task, "default"), self.task)

    def should_enter(self, state: dict) -> bool:
        """After the reward phase: when asked (--dr), or by default once the reward met its target."""
        best, wanted = state.get("best"), self.loop.settings.dr
        if best is None or wanted is False or self.loop.settings.backend != "cpu":
            return False
        return wanted is True or best["success_rate"] >= self.task.success_target

    # ------------------------------------------------------------------------------------------- nodes
    def dr_prior(self, state: dict) -> dict:
        """RAPP and robustness of the best reward's policy, in a confined process like any candidate's work."""
        from robosmith.runs import AgentRun, CandidateFolder, TrainingRun, write_json

        folder = AgentRun(self.loop.run_dir).prior
        folder.mkdir(parents=True, exist_ok=True)
        variants = self.variants()
        write_json(CandidateFolder(folder).job, {
            "kind": "prior", "task": self.task.to_dict(), "policy": str((self.loop.run_dir / state["best"]["dir"])
                                                                        .resolve()),
            "names": prior_parameters(self.task, variants), "points": PRIOR_POINTS,
            "episodes": self.loop.settings.dr_prior_episodes, "eval_episodes": self.loop.settings.eval_episodes,
            "variants": [{"name": v.name, "params": v.params} for v in variants],
            "threads": self.loop.settings.threads,
        })
        print("randomization phase: RAPP and robustness of the best reward's policy")
        self.loop.executor.run([folder])
        result = _read_json(CandidateFolder(folder).result)
        if result["status"] != "ok":
            return {"phase": "randomization", "dr_stop_reason": f"the prior failed: {result.get('reason', '')}"}
        prior = {"rapp": _read_json(TrainingRun(folder).rapp),
                 "robustness": TrainingRun(folder).read_robustness("default"), "policy": state["best"]["dir"]}
        write_json(folder / "prior.json", {k: prior[k] for k in ("policy",)} | {
            "robustness_worst": min(v["success_rate"] for v in prior["robustness"]["variants"])})
        return {"phase": "randomization", "dr_prior": prior, "dr_iteration": 0, "dr_history": [], "dr_best": None,
                "dr_stop_reason": "", "dr_feedback": ""}

    def dr_propose(self, state: dict) -> dict:
        from robosmith.agent.llm import BudgetExceeded, LLMError
        from robosmith.runs import AgentRun, CandidateFolder

        it, best = state["dr_iteration"], state.get("dr_best")
        ctx = RandomizationContext(self.task, it, state["dr_prior"]["rapp"],
                                   best["robustness"] if best else state["dr_prior"]["robustness"], best,
                                   state.get("dr_feedback", ""))
        try:
            proposals = self.proposer.propose(ctx, self.loop.settings.dr_candidates)
        except BudgetExceeded as e:
            return {"dr_candidates": [], "dr_stop_reason": str(e)}
        except LLMError as e:
            return {"dr_candidates": [], "dr_stop_reason": f"LLM unavailable: {e}"}
        candidates = []
        for k, proposal in enumerate(proposals):
            rel = AgentRun.randomization_dir(it, k)
            folder = CandidateFolder(self.loop.run_dir / rel)
            folder.path.mkdir(parents=True, exist_ok=True)
            if proposal.raw:
                folder.llm_answer.write_text(proposal.raw)
            if proposal.ranges is not None:
                folder.randomization.write_text(ranges_yaml(proposal.ranges) + "\n")
            candidates.append({
                "id": f"dr{it}.{k}", "iteration": it, "dir": rel, "origin": proposal.origin,
                "status": "proposed" if proposal.ranges is not None else "rejected", "reason": proposal.reason,
            })
        return {"dr_candidates": candidates, "dr_best_before": best}

    def dr_validate(self, state: dict) -> dict:
        import dataclasses
        import shutil

        from robosmith.runs import CandidateFolder, write_json
        from robosmith.train.ppo import TrainSettings

        reward_folder = CandidateFolder(self.loop.run_dir / state["best"]["dir"])
        settings = TrainSettings.from_task(
            self.task, max_minutes=self.loop.settings.train_minutes, num_envs=self.loop.settings.num_envs,
            seed=self.loop.settings.seed, eval_episodes=self.loop.settings.eval_episodes, max_iterations=100_000,
            randomize=True, algo=self.loop.settings.algo)
        settings.video_episodes = self.loop.settings.video_episodes
        variants = [{"name": v.name, "params": v.params} for v in self.variants()]
        out = []
        for c in state["dr_candidates"]:
            c = dict(c)
            folder = CandidateFolder(self.loop.run_dir / c["dir"])
            if c["status"] == "proposed":
                try:
                    ranges = parse_ranges(folder.randomization.read_text())
                    scene_only = [p.name for p in ranges if PARAMS[p.name].needs_cube]
                    if scene_only and not self.task.scene.cube:
                        raise ParamError(f"{', '.join(scene_only)}: {self.task.name} has no cube")
                except RobosmithError as e:
                    c.update(status="rejected", reason=f"registry check: {e}")
                else:
                    task = dataclasses.replace(self.task, domain_randomization=ranges)
                    shutil.copyfile(reward_folder.reward, folder.reward)
                    shutil.copyfile(reward_folder.reward_body, folder.reward_body)
                    write_json(folder.job, {
                        "task": task.to_dict(), "settings": dataclasses.asdict(settings),
                        "reward_file": CandidateFolder.reward, "threads": self.loop.settings.threads,
                        "group": self.loop.run_dir.name, "backend": "cpu", "robustness": variants,
                    })
                    c.update(status="valid", ranges=[p.as_dict() for p in ranges])
            out.append(c)
        return {"dr_candidates": out}

    def dr_train(self, state: dict) -> dict:
        from robosmith.agent.status import live_status
        from robosmith.runs import CandidateFolder

        folders = [self.loop.run_dir / c["dir"] for c in state["dr_candidates"] if c["status"] == "valid"]
        with live_status(self.loop.run_dir):
            self.loop.executor.run(folders, on_done=lambda folder, result: print(
                f"  {folder.relative_to(self.loop.run_dir.resolve())}: {_robust_outcome(result)}"))
        out = []
        for c in state["dr_candidates"]:
            c = dict(c)
            if c["status"] == "valid":
                folder = CandidateFolder(self.loop.run_dir / c["dir"])
                result = _read_json(folder.result)
                c.update({k: v for k, v in result.items() if k != "status"}, status=result["status"])
                if c["status"] == "ok" and "robustness_worst" not in c:
                    c.update(status="crashed", reason="no robustness result")
                if folder.robustness.is_file():
                    c["robustness"] = folder.read_robustness("default")
            out.append(c)
        return {"dr_candidates": out}

    def dr_select(self, state: dict) -> dict:
        from robosmith.runs import CandidateFolder, write_json

        best = state.get("dr_best")
        trained = [c for c in state["dr_candidates"] if c["status"] == "ok"]
        top = max(trained, key=_robust_rank, default=None)
        if top and (best is None or _robust_rank(top) > _robust_rank(best)):
            best = self.best_entry(top)
        history = list(state.get("dr_history", []))
        for c in state["dr_candidates"]:
            kept = best is not None and c["id"] == best["id"]
            if c["status"] != "ok":
                why = f"dropped: {c['status']}: {c['reason']}"
            elif kept:
                why = "kept: most robust so far (worst variant, then mean over the default suite)"
            else:
                why = (f"dropped: worst variant {c['robustness_worst']:.0%}, mean {c['robustness_mean']:.0%}; "
                       f"the best has {best['robustness_worst']:.0%}, {best['robustness_mean']:.0%}")
            record = {k: c.get(k) for k in ("id", "iteration", "dir", "origin", "status", "reason", "ranges",
                                             "success_rate", "ci95", "robustness_worst", "robustness_mean",
                                             "nominal_success", "env_steps", "wall_s")}
            record.update(kept=kept, why=why, phase="randomization")
            write_json(CandidateFolder(self.loop.run_dir / c["dir"]).record, record)
            history.append(record)
        return {"dr_best": best, "dr_history": history, "route": ""}

    @staticmethod
    def best_entry(c: dict) -> dict:
        keys = ("id", "iteration", "dir", "ranges", "robustness", "robustness_worst", "robustness_mean",
                "nominal_success", "success_rate")
        return {k: c.get(k) for k in keys}

    def iteration_records(self, state: dict) -> list[dict]:
        return [r for r in state.get("dr_history", []) if r["iteration"] == state["dr_iteration"]]

    def dr_review(self, state: dict) -> dict:
        """Pause for a person, as in the reward phase: approve a candidate, reject (with a comment the next
        proposals read), or edit a candidate's ranges (trained as a new candidate)."""
        from langgraph.types import interrupt

        from robosmith.runs import AgentRun, CandidateFolder, write_json

        it = state["dr_iteration"]
        records = self.iteration_records(state)
        decision = interrupt({"phase": "randomization", "iteration": it, "candidates": [r["id"] for r in records]})
        action = decision.get("action")
        if action == "approve":
            chosen = next(r for r in records if r["id"] == decision["candidate"])
            folder = CandidateFolder(self.loop.run_dir / chosen["dir"])
            best = self.best_entry({**chosen, "robustness": folder.read_robustness("default")})
            history = [{**r, "kept": r["id"] == chosen["id"],
                        "why": "approved by the reviewer" if r["id"] == chosen["id"] else r["why"].replace("kept",
                                                                                                            "was")}
                       if r["iteration"] == it else r for r in state["dr_history"]]
            for r in history:
                if r["iteration"] == it:
                    write_json(CandidateFolder(self.loop.run_dir / r["dir"]).record, r)
            return {"dr_best": best, "dr_history": history, "route": "dr_advance"}
        if action == "reject":
            return {"dr_best": state.get("dr_best_before"), "dr_feedback": decision.get("comment", ""),
                    "route": "dr_advance"}
        if action == "edit":
            k = sum(1 for r in state["dr_history"] if r["iteration"] == it)  # from the state: a rerun, same folder
            rel = AgentRun.randomization_dir(it, k)
            folder = CandidateFolder(self.loop.run_dir / rel)
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.randomization.write_text(decision["ranges"])
            edited = {"id": f"dr{it}.{k}", "iteration": it, "dir": rel, "status": "proposed", "reason": "",
                      "origin": f"edit by the reviewer of {decision.get('candidate', '?')}"}
            return {"dr_candidates": [edited], "route": "dr_validate"}
        raise ValueError(f"unknown review decision {decision!r}")

    def dr_advance(self, state: dict) -> dict:
        import time

        it, settings = state["dr_iteration"], self.loop.settings
        stop = ""
        if it + 1 >= settings.dr_iterations:
            stop = f"randomization iteration limit reached ({settings.dr_iterations})"
        elif settings.max_hours and time.time() - state["started_at"] > 3600 * settings.max_hours:
            stop = f"time limit reached ({settings.max_hours} h)"
        elif settings.until and time.time() > settings.until:
            stop = "reached the --until time"
        update = {"dr_iteration": it + 1, "dr_stop_reason": stop}
        self.loop.write_summary({**state, **update})
        return update

    def summary(self, state: dict) -> dict | None:
        """The phase in summary.json: the prior, the most robust randomization, what was tried."""
        prior = state.get("dr_prior")
        if not prior:
            reason = state.get("dr_stop_reason")
            return {"stop_reason": reason, "candidates_tried": 0, "best": None} if reason else None
        variants = prior["robustness"]["variants"]
        best = state.get("dr_best")
        return {
            "stop_reason": state.get("dr_stop_reason", ""),
            "iterations": state.get("dr_iteration", 0),
            "candidates_tried": len(state.get("dr_history", [])),
            "without_randomization": {"policy": prior["policy"], **{
                "robustness_worst": min(v["success_rate"] for v in variants),
                "robustness_mean": sum(v["success_rate"] for v in variants) / len(variants)}},
            "best": {k: v for k, v in best.items() if k != "robustness"} if best else None,
        }


def _read_json(path) -> dict:
    import json

    return json.loads(path.read_text())


def _robust_rank(c: dict) -> tuple[float, float, float]:
    return (c["robustness_worst"], c["robustness_mean"], c.get("success_rate") or 0.0)


def _robust_outcome(result: dict) -> str:
    if result["status"] != "ok":
        return f"{result['status']}: {result.get('reason', '')}"
    return (f"success {result['success_rate']:.0%}, worst variant {result.get('robustness_worst', 0):.0%}, "
            f"mean {result.get('robustness_mean', 0):.0%}")

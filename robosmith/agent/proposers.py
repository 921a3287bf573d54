"""Where reward candidates come from: an LLM, or (with none configured) an evolutionary search over rewards
composed from the term library. Both see the same context: the task, the best reward so far, the reflection on the
last iteration and any human feedback.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from robosmith.agent.compose import DISTANCE_KERNELS, compose, regene, round4, stalled_stage, unstall
from robosmith.agent.llm import LLMClient
from robosmith.contract.state import FIELD_DOCS, SimState
from robosmith.reward.library import library_examples, load_library
from robosmith.reward.terms import RewardTerm, terms_to_body
from robosmith.runs import CandidateFolder
from robosmith.task import TaskSpec

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
REFERENCE_ORIGIN = "the task's reference reward"
COMPOSED_ORIGIN = "offline: composed from the term library"


@dataclass
class Proposal:
    code: str | None  # None: the proposer produced no usable code (reason says why)
    origin: str  # how it was made, for the record
    reason: str = ""
    raw: str = ""  # the LLM's whole answer, kept in the candidate folder
    genome: list[dict] | None = None  # offline proposer: the terms behind the code


@dataclass
class ProposalContext:
    task: TaskSpec
    iteration: int
    best: dict | None = None  # {"id", "iteration", "code", "success_rate", "genome"?}
    reflection: str = ""
    component_stats: dict[str, dict[str, float]] = field(default_factory=dict)  # best candidate's components
    human_feedback: str = ""


def prompt_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS_DIR), undefined=jinja2.StrictUndefined, trim_blocks=True
    )


def simstate_fields(task: TaskSpec) -> list[tuple[str, tuple[int, ...], str]]:
    """The SimState API of this task's scene, as shown to the LLM."""
    present = SimState.zeros(1, has_object=task.scene.cube, has_goal=task.has_goal).present_fields()
    return [(name, FIELD_DOCS[name][0], FIELD_DOCS[name][1]) for name in FIELD_DOCS if name in present]


def extract_code(text: str) -> str | None:
    """The compute_reward function from an answer: the fenced block that defines it, else the bare def."""
    for block in re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, flags=re.DOTALL):
        if "def compute_reward" in block:
            return block.strip() + "\n"
    start = text.find("def compute_reward")
    return text[start:].strip() + "\n" if start >= 0 else None


class LLMProposer:
    name = "llm"

    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def messages(self, ctx: ProposalContext) -> list[dict]:
        env = prompt_env()
        fields = simstate_fields(ctx.task)
        system = env.get_template("system.j2").render(
            fields=fields, library=library_examples({name for name, _, _ in fields}))
        user = env.get_template("propose.j2").render(
            task=ctx.task,
            best=ctx.best,
            best_code=ctx.best["code"] if ctx.best else None,
            reflection=ctx.reflection,
            human_feedback=ctx.human_feedback,
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def propose(self, ctx: ProposalContext, k: int) -> list[Proposal]:
        answers = self.client.complete(self.messages(ctx), n=k, purpose=f"propose iteration {ctx.iteration}")
        out = []
        for i, text in enumerate(answers):
            code = extract_code(text)
            origin = f"llm {self.client.cfg.model} sample {i}"
            out.append(Proposal(code, origin, "" if code else "the answer holds no compute_reward function", text))
        return out


class OfflineProposer:
    """Rewards composed from the term library (robosmith.agent.compose), then searched: which terms, their
    weights and their parameters. The task's reference reward is never read.

    With no best reward yet, every candidate is a fresh composition. After that the parent is the best genome
    so far; reflection steers the children the way Eureka's advice steers an LLM: a stalled stage gets a
    staged answer (a bridging term, weights moved towards it, later stages gated on it), a component that
    barely varies gets its parameters mutated harder, one that dwarfs the others gets its weight pulled down,
    and a kernel may be swapped for another of its kind. Human feedback ("drop <term>") is a constraint.
    """

    name = "offline"
    WEIGHT_SIGMA = 0.35
    PARAM_SIGMA = 0.3
    TOGGLE_P = 0.15
    SWAP_P = 0.2

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @staticmethod
    def genome_code(genome: list[dict]) -> str:
        terms = [
            RewardTerm(g["name"], g["weight"], g["expr"], g["params"]) for g in genome if g["enabled"]
        ]
        return terms_to_body(terms)

    def mutate(self, parent: list[dict], rng: np.random.Generator, stats: dict[str, dict[str, float]],
               human_feedback: str) -> list[dict]:
        scale = self._magnitudes(parent, stats)
        library = load_library()
        child = []
        for gene in parent:
            gene = {**gene, "params": dict(gene["params"])}
            s = stats.get(gene["name"], {})
            flat = bool(s) and (s.get("max", 0.0) - s.get("min", 0.0)) < 0.05 * (abs(s.get("mean", 0.0)) + 1e-3)
            weight = gene["weight"] * math.exp(rng.normal(0.0, self.WEIGHT_SIGMA))
            if scale.get(gene["name"], 0.0) > 0.8:  # dominates the total: pull it down
                weight *= 0.5
            gene["weight"] = round4(weight)
            if gene.get("template") in DISTANCE_KERNELS and rng.random() < self.SWAP_P:
                kernel = str(rng.choice([k for k in DISTANCE_KERNELS if k != gene["template"]]))
                gene = regene(gene, template=kernel, params={})  # the new kernel's own defaults
            for key in gene["params"]:
                sigma = self.PARAM_SIGMA * (2.0 if flat else 1.0)
                gene["params"][key] = round4(gene["params"][key] * math.exp(rng.normal(0.0, sigma)))
            if gene.get("template") in library:
                gene["params"] = {k: round4(v) for k, v in library[gene["template"]].clamp(gene["params"]).items()}
            if gene["weight"] < 0 and rng.random() < self.TOGGLE_P:
                gene["enabled"] = not gene["enabled"]  # penalties may come and go; rewards stay
            if gene["name"] in human_feedback.lower() and re.search(
                rf"(drop|remove|no|without)\s+(the\s+)?{re.escape(gene['name'])}", human_feedback.lower()
            ):
                gene["enabled"] = False  # a reviewer's "drop <term>" is a constraint
            child.append(gene)
        if not any(g["enabled"] and g["weight"] > 0 for g in child):
            return [{**g, "enabled": True} for g in child]
        return child

    @staticmethod
    def _magnitudes(genome: list[dict], stats: dict[str, dict[str, float]]) -> dict[str, float]:
        """Each component's share of the summed absolute component means."""
        means = {g["name"]: abs(stats[g["name"]]["mean"]) for g in genome if g["name"] in stats}
        total = sum(means.values())
        return {k: v / total for k, v in means.items()} if total > 0 else {}

    def propose(self, ctx: ProposalContext, k: int) -> list[Proposal]:
        rng = np.random.default_rng([self.seed, ctx.iteration])
        parent = (ctx.best or {}).get("genome")
        if not parent:  # nothing of ours to build on yet (or the best is a reward we did not compose)
            return [Proposal(self.genome_code(g), COMPOSED_ORIGIN, genome=g)
                    for g in (compose(ctx.task, rng) for _ in range(k))]
        origin_parent = f"best of iteration {ctx.best['iteration']}"
        out = []
        stalled = stalled_stage(parent, ctx.component_stats)
        if stalled is not None:
            for bridge, gate in ((True, True), (True, False), (False, True))[:k]:
                child = unstall(parent, stalled, rng, bridge, gate)
                how = " and ".join(w for w, on in (("bridged", bridge), ("gated", gate)) if on)
                out.append(Proposal(self.genome_code(child), f"offline: {origin_parent}, stalled stage "
                                                              f"'{stalled}' {how}", genome=child))
        while len(out) < k:
            child = self.mutate(parent, rng, ctx.component_stats, ctx.human_feedback)
            out.append(Proposal(self.genome_code(child), f"offline: mutation of {origin_parent}", genome=child))
        return out


def load_prompt_template(name: str) -> jinja2.Template:
    return prompt_env().get_template(name)


def write_proposal(folder: Path, proposal: Proposal) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    candidate = CandidateFolder(folder)
    if proposal.raw:
        candidate.llm_answer.write_text(proposal.raw)
    if proposal.code is not None:
        candidate.reward_body.write_text(proposal.code)

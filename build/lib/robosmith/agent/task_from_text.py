"""From a sentence to a task spec of the library, with its parameters filled.

With an LLM: structured output (JSON) naming the task and its parameters. Without: a deterministic parser of
verbs, objects and distances. Either way the result is an ordinary validated TaskSpec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from robosmith.agent.llm import LLMClient
from robosmith.agent.proposers import load_prompt_template
from robosmith.errors import RobosmithError
from robosmith.task import TaskError, TaskSpec, available_tasks, load_task, resolve_task_path


class NoMatchingTask(RobosmithError, ValueError):
    """The sentence asks for something the library cannot do; the message lists what it can."""


@dataclass
class TaskChoice:
    spec: TaskSpec
    why: str
    how: str  # "file", "offline parser" or "llm <model>"


# Which words point at which task; checked in order, so the more specific task comes first.
KEYWORDS: list[tuple[str, tuple[str, ...]]] = [
    ("so101_pick_place", ("place", "put", "drop", "into", "zone", "move the cube to", "carry")),
    ("so101_lift", ("lift", "raise", "pick up", "pick the", "grasp", "hold the cube", "grab")),
    ("so101_reach", ("reach", "touch", "point", "target", "go to", "move the gripper")),
]
UNITS = {"mm": 0.001, "cm": 0.01, "m": 1.0}


def library_summary() -> str:
    lines = []
    for name in available_tasks():
        spec = load_task(name)
        lines.append(f"  {name}: {spec.description}")
    return "\n".join(lines)


def _distances(sentence: str) -> list[float]:
    return [float(v) * UNITS[u] for v, u in re.findall(r"(\d+(?:\.\d+)?)\s*(mm|cm|m)\b", sentence.lower())]


def parse_offline(sentence: str) -> TaskChoice:
    text = sentence.lower()
    for name, words in KEYWORDS:
        hit = next((w for w in words if w in text), None)
        if hit is None:
            continue
        params: dict[str, float] = {}
        distances = _distances(text)
        if distances:
            key = {"so101_lift": "lift_height", "so101_reach": "tolerance", "so101_pick_place": "zone_radius"}[name]
            params[key] = distances[0]
        spec = load_task(name, params)
        why = f"the words {hit!r}" + (f" and {params}" if params else "")
        return TaskChoice(spec, why, "offline parser")
    raise NoMatchingTask(f"no task matches {sentence!r}. robosmith can do:\n{library_summary()}")


def parse_with_llm(sentence: str, client: LLMClient) -> TaskChoice:
    tasks = []
    for name in available_tasks():
        raw = yaml.safe_load(resolve_task_path(name).read_text())
        tasks.append({"name": name, "description": raw["description"], "params": raw.get("params") or {}})
    prompt = load_prompt_template("task_from_sentence.j2").render(tasks=tasks, sentence=sentence)
    answer = client.complete(
        [{"role": "user", "content": prompt}], n=1, purpose="task from sentence",
        response_format={"type": "json_object"},
    )[0]
    match = re.search(r"\{.*\}", answer, flags=re.DOTALL)
    try:
        data = json.loads(match.group(0) if match else answer)
        name, params = data["task"], data.get("params") or {}
    except (json.JSONDecodeError, KeyError, TypeError):
        raise NoMatchingTask(f"the LLM's answer is not the JSON asked for: {answer[:200]!r}") from None
    if name not in available_tasks():
        raise NoMatchingTask(f"no task matches {sentence!r}. robosmith can do:\n{library_summary()}")
    try:
        spec = load_task(name, params)
    except TaskError as e:
        raise NoMatchingTask(f"the LLM chose {name} with parameters the task rejects: {e}") from None
    return TaskChoice(spec, str(data.get("why", "")), f"llm {client.cfg.model}")


def choose_task(task_or_sentence: str, client: LLMClient | None) -> TaskChoice:
    """A task file or library name is taken as it is; anything else is read as a sentence."""
    if task_or_sentence.endswith((".yaml", ".yml")) or task_or_sentence in available_tasks():
        return TaskChoice(load_task(task_or_sentence), "named directly", "file")
    if client is not None:
        return parse_with_llm(task_or_sentence, client)
    return parse_offline(task_or_sentence)

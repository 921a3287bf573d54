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


class UnreadableSentence(NoMatchingTask):
    """The sentence names a value the offline parser cannot read, or cannot give to the task: never a default."""


# Words that say what the sentence is about. Phrases match whole words; "pick it up" and the like via patterns.
OBJECT_WORDS = ("cube", "block", "object", "box", "brick", "die", "dice", "item", "piece")
PLACE_WORDS = ("place", "put", "drop", "deposit", "set down", "set it down", "into", "onto", "zone", "area",
               "region", "carry", "transport", "deliver", "relocate")
MOVE_OBJECT = r"\b(move|bring|push|slide|take|get)\b(\s+\w+){0,3}\s+(to|into|onto|towards?)\b"
LIFT_WORDS = ("lift", "raise", "pick", "grasp", "grab", "hold", "elevate", "hoist", "off the table", "up")
REACH_WORDS = ("reach", "touch", "point", "target", "go to", "move", "bring", "position", "hover", "spot",
               "location", "tip", "end of the gripper", "tool", "floating", "above", "over", "gripper",
               "end effector", "end-effector", "hand", "place the gripper")
# Lengths: numbers in digits or words, units as symbols or words (British and American spelling).
UNITS = {"mm": 0.001, "millimetre": 0.001, "millimeter": 0.001, "cm": 0.01, "centimetre": 0.01,
         "centimeter": 0.01, "m": 1.0, "metre": 1.0, "meter": 1.0, "inch": 0.0254}
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "half": 0.5, "quarter": 0.25,
}
# What each task's length parameter is called in a sentence: the words that come before the number.
PARAM_OF_TASK = {"so101_lift": "lift_height", "so101_reach": "tolerance", "so101_pick_place": "zone_radius"}
TOLERANCE_CUES = ("within", "tolerance", "accuracy", "precision", "closer than", "less than", "error")
RADIUS_CUES = TOLERANCE_CUES + ("radius", "zone of", "circle of", "area of", "wide", "across")


def library_summary() -> str:
    return "\n".join(f"  {name}: {load_task(name).description}" for name in available_tasks())


def _has(text: str, words: tuple[str, ...]) -> str | None:
    return next((w for w in words if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text)), None)


def _unit_of(token: str) -> float | None:
    token = token.rstrip(".")
    for name, size in UNITS.items():
        if token == name or (len(name) > 2 and token in (name + "s", name + "es")):
            return size
    return None


def _number(words: list[str]) -> float | None:
    """The number the words just before a unit spell (digits, or words like 'twenty-five', 'half a')."""
    if words and re.fullmatch(r"\d+(\.\d+)?", words[-1]):
        return float(words[-1])
    words = [w for w in words if w not in ("and", "a")]
    value, seen = 0.0, False
    for w in reversed(words):
        parts = w.split("-")
        if not all(p in NUMBER_WORDS for p in parts):
            break
        value += sum(NUMBER_WORDS[p] for p in parts)
        seen = True
    return value if seen else None


def lengths(sentence: str) -> list[tuple[float, str, str]]:
    """Every length the sentence names: (metres, the phrase, the words before it). A unit with no number
    the parser can read raises UnreadableSentence."""
    text = re.sub(r"(\w)['’]\w+", r"\1", sentence.lower())  # "I'm", "it's": not metres
    tokens = re.findall(r"\d+(?:\.\d+)?|[a-z]+(?:-[a-z]+)*\.?", text)
    out = []
    for i, token in enumerate(tokens):
        size = _unit_of(token)
        if size is None or (token == "m" and i == 0):
            continue
        before = tokens[max(0, i - 4) : i]
        value = _number(before)
        phrase = " ".join(tokens[max(0, i - 2) : i + 1])
        if value is None:
            raise UnreadableSentence(f"{sentence!r}: {phrase!r} names a length the offline parser cannot read; "
                                     "write it as a number (e.g. 10 cm)")
        out.append((value * size, phrase, " ".join(tokens[max(0, i - 6) : i])))
    return out


def choose_library_task(text: str) -> tuple[str, str] | None:
    """(task name, the words that decided) for a lower-case sentence, or None."""
    has_object = _has(text, OBJECT_WORDS) or re.search(r"\bpick\b(\s+\w+){0,2}\s+up\b", text) \
        or _has(text, ("grasp", "grab"))
    if has_object:
        place = _has(text, PLACE_WORDS) or (re.search(MOVE_OBJECT, text) and "move ... to")
        if place:
            return "so101_pick_place", place
        lift = _has(text, LIFT_WORDS)
        if lift:
            return "so101_lift", lift
        return None
    reach = _has(text, REACH_WORDS) or _has(text, ("raise", "lift"))
    return ("so101_reach", reach) if reach else None


def parse_offline(sentence: str) -> TaskChoice:
    text = sentence.lower()
    chosen = choose_library_task(text)
    if chosen is None:
        raise NoMatchingTask(f"no task matches {sentence!r}. robosmith can do:\n{library_summary()}")
    name, hit = chosen
    key = PARAM_OF_TASK[name]
    params: dict[str, float] = {}
    for metres, phrase, before in lengths(sentence):
        cue = _has(before, TOLERANCE_CUES) if name != "so101_pick_place" else _has(before, RADIUS_CUES)
        fits = bool(cue) if name != "so101_lift" else not _has(before, TOLERANCE_CUES)
        if not fits:
            what = {"so101_lift": "the height to lift the cube by (e.g. 'by 10 cm')",
                    "so101_reach": "the tolerance (e.g. 'within 2 cm'); the target is drawn over the workspace",
                    "so101_pick_place": "the zone's radius (e.g. 'a zone of 3 cm radius')"}[name]
            raise UnreadableSentence(f"{sentence!r}: {phrase!r} is not a length {name} can take; its one length "
                                     f"is {what}")
        if key in params and params[key] != metres:
            raise UnreadableSentence(f"{sentence!r}: two lengths for {key} ({params[key]:g} m and {metres:g} m)")
        params[key] = metres
    spec = load_task(name, params)
    why = f"the words {hit!r}" + (f" and {params}" if params else "")
    return TaskChoice(spec, why, "offline parser")


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

"""Files written atomically, so a process killed at any moment never leaves half a file behind.

Part of robosmith's contract: torch only, copied verbatim into every exported engine package.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


# The files of a training run that every backend writes (robosmith.runs names the rest of a run folder).
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
CHECKPOINT_FILE = "checkpoints/model.pt"
EVAL_STATES_FILE = "eval_states.npz"  # engines: states of a few evaluation episodes, rendered by robosmith

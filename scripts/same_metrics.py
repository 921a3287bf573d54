"""Check that a change kept training bit-for-bit the same: the first PPO iterations of reach and lift at a
fixed seed, trained by the code of two git revisions, must give identical metrics.jsonl rows (timing keys
aside).

    python scripts/same_metrics.py --base REV [--head REV] [--iterations 50] [--tasks so101_reach,so101_lift]

Each revision is checked out into a temporary worktree and trained in a subprocess with that worktree first on
PYTHONPATH, with the same threads and seed; the script prints the first row and key that differ, or "identical".
`--head` defaults to the working tree as it is. Both revisions must offer `robosmith.task.load_task` and
`robosmith.train.ppo.train(task, body, run_dir, settings, progress=False)`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TIMING_KEYS = {"wall_s", "env_steps_per_s", "collect_s", "learn_s"}
DRIVER = """
import dataclasses, json, sys, torch
from pathlib import Path
from robosmith.task import load_task
from robosmith.train.ppo import TrainSettings, train
task = load_task(sys.argv[1])
# The nominal world on both sides: revisions that randomize by default are asked not to.
nominal = {"randomize": False} if "randomize" in {f.name for f in dataclasses.fields(TrainSettings)} else {}
settings = TrainSettings.from_task(task, max_iterations=int(sys.argv[2]), max_minutes=600.0, **nominal)
train(task, task.reference_reward_body(), Path(sys.argv[3]), settings, progress=False, threads=2)
"""


def train_rows(source: Path, task: str, iterations: int, out: Path) -> list[dict]:
    env = {"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin", "WANDB_MODE": "disabled", "MUJOCO_GL": "disabled",
           "HOME": str(out)}
    subprocess.run([sys.executable, "-c", DRIVER, task, str(iterations), str(out / task)], cwd=source, env=env,
                   check=True)
    rows = [json.loads(line) for line in (out / task / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision trained first")
    parser.add_argument("--head", default=None, help="git revision to compare (default: the working tree)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--tasks", default="so101_reach,so101_lift")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="same-metrics-") as tmp:
        tmp = Path(tmp)
        sources = {}
        for label, rev in (("base", args.base), ("head", args.head)):
            if rev is None:
                sources[label] = repo
                continue
            sources[label] = tmp / label
            subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(sources[label]), rev],
                           check=True, capture_output=True)
        try:
            same = True
            for task in args.tasks.split(","):
                rows = {}
                for label, source in sources.items():
                    (tmp / f"out-{label}").mkdir(exist_ok=True)
                    rows[label] = train_rows(source, task, args.iterations, tmp / f"out-{label}")
                base, head = rows["base"], rows["head"]
                diff = next(((i, k) for i, (a, b) in enumerate(zip(base, head, strict=False))
                             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)), None)
                if len(base) != len(head) or diff:
                    same = False
                    where = f"row {diff[0]}, key {diff[1]}: {base[diff[0]].get(diff[1])!r} != " \
                            f"{head[diff[0]].get(diff[1])!r}" if diff else f"{len(base)} vs {len(head)} rows"
                    print(f"{task}: DIFFERENT ({where})")
                else:
                    print(f"{task}: identical ({len(base)} rows, {len(base[0])} keys each)")
        finally:
            for label, rev in (("base", args.base), ("head", args.head)):
                if rev is not None:
                    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(sources[label])],
                                   check=False, capture_output=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

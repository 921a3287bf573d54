"""Scheduling overhead of the Ray executor: one candidate through the local pool and through Ray on a local
cluster, alternated, same CPUs and the same training budget.

    python scripts/ray_bench.py [--minutes 1] [--rounds 3] [--task so101_reach]

Each measurement trains the task's reference reward as a loop candidate (one thread, the loop's limits) and
counts the env steps it made per second of wall-clock from submission to its result.json being back in the
run folder: what the loop sees. Ray runs on this machine with its dashboard off; the cluster is started once,
before the first measurement, as a user's cluster would be.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from robosmith.execution.confine import TrainerLimits
from robosmith.execution.local import LocalExecutor
from robosmith.execution.ray_executor import RayExecutor
from robosmith.runs import CandidateFolder, write_json
from robosmith.task import load_task
from robosmith.train.ppo import TrainSettings


def candidate(root: Path, name: str, task, minutes: float) -> Path:
    folder = CandidateFolder(root / name)
    folder.path.mkdir(parents=True)
    folder.reward_body.write_text(task.reference_reward_body())
    settings = TrainSettings.from_task(task, max_minutes=minutes, max_iterations=100_000, randomize=False)
    settings.video_episodes = 0
    write_json(folder.job, {"task": task.to_dict(), "settings": dataclasses.asdict(settings),
                            "reward_file": CandidateFolder.reward_body, "threads": 1, "backend": "cpu"})
    return folder.path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="so101_reach")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import ray

    task = load_task(args.task)
    timeout = 60 * args.minutes * 1.5 + 180
    limits = TrainerLimits(cpu_s=int(timeout), memory_mb=8192)
    executors = {"local": LocalExecutor(1, timeout, limits), "ray": RayExecutor(timeout, limits)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    root = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    rows = []
    for r in range(args.rounds):
        for name in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
            folder = candidate(root, f"{name}_{r}", task, args.minutes)
            started = time.monotonic()
            executors[name].run([folder])
            wall = time.monotonic() - started
            result = json.loads(CandidateFolder(folder).result.read_text())
            assert result["status"] == "ok", result
            rows.append({"executor": name, "round": r, "env_steps": result["env_steps"], "wall_s": round(wall, 1),
                         "env_steps_per_s": round(result["env_steps"] / wall, 1)})
            print(json.dumps(rows[-1]), flush=True)
    ray.shutdown()
    mean = {n: sum(x["env_steps_per_s"] for x in rows if x["executor"] == n) / args.rounds for n in executors}
    print(json.dumps({"task": args.task, "minutes": args.minutes, "rounds": args.rounds, **{
        f"{n}_env_steps_per_s": round(v, 1) for n, v in mean.items()}, "ratio_ray_to_local": round(
        mean["ray"] / mean["local"], 3)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`robosmith deploy --sim` of trained policies: wall time of 10 episodes, and agreement with `robosmith eval`.

    python scripts/deploy_bench.py so101_reach RUN_DIR so101_lift RUN_DIR [--episodes 10]

Prints one JSON object per policy: seconds, success, outcomes agreeing with eval of the same seed, joint RMS (deg),
the floor (eval against eval with its joint readings perturbed by 1e-6 rad: `floor_*`), the safety layer's
interventions by rule.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

from robosmith.cli import app
from robosmith.deploy.agreement import agreement
from robosmith.task import load_task
from robosmith.train.policy import load_policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pairs", nargs="+", help="TASK RUN_DIR pairs")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    for name, run in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        out = Path(tempfile.mkdtemp()) / "deploy"
        started = time.monotonic()
        result = CliRunner().invoke(app, ["deploy", run, name, "--sim", "--episodes", str(args.episodes),
                                          "--record", str(out), "--no-progress"])
        seconds = time.monotonic() - started
        if result.exit_code:
            raise SystemExit(result.output)
        task = load_task(name)
        figures = agreement(out, load_policy(Path(run), task), task)
        deployed = json.loads((out / "deploy.json").read_text())
        rules = collections.Counter(json.loads(line)["limit"] for line in (out / "safety.jsonl").open())
        print(json.dumps({"task": name, "policy": run, "episodes": args.episodes, "seconds": round(seconds, 1),
                          "success_rate": deployed["success_rate"], "sim_success_rate": deployed["sim_success_rate"],
                          **{k: v for k, v in figures.items() if k != "joint_rms_deg"},
                          "joint_rms_deg": [round(v, 2) for v in figures["joint_rms_deg"]],
                          "interventions": dict(rules), "folder": str(out)}))


if __name__ == "__main__":
    main()

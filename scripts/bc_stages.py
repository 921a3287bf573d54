"""Where a cube policy's episodes fail: the stage each failed episode reached (lab notes, #19).

    python scripts/bc_stages.py POLICY TASK [--episodes 200] [--seed 12345] [--json OUT]

POLICY is a `bc train` or `finetune` folder (or an RL run); the episodes are those of `robosmith bc eval` with the
same seed. A failed episode is counted at the first stage it never reached: both jaws on the cube, the cube raised
2 cm above its rest while held, the cube carried over the zone (within the zone's radius while held up), and for
those that got there, whether the cube was still held at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from robosmith.reward.load import load_reward
from robosmith.task import load_task
from robosmith.train.env import TaskEnv
from robosmith.train.evaluate import play_episodes
from robosmith.train.policy import load_policy

RAISED = 0.02  # m above the cube's resting centre


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", type=Path)
    parser.add_argument("task")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    task = load_task(args.task)
    policy = load_policy(args.policy, task)
    torch.manual_seed(args.seed)
    env = TaskEnv(task, load_reward(task.reference_reward_body()), args.episodes, seed=args.seed, auto_reset=False)
    n = args.episodes
    grasped, raised, over_zone = (torch.zeros(n, dtype=torch.bool) for _ in range(3))
    held_at_end = torch.zeros(n, dtype=torch.bool)
    zone_radius = float(task.params.get("zone_radius", 0.03))
    rest_z = task.scene.cube_size / 2  # the cube's centre when it lies on the table

    def on_step() -> None:
        s = env.state
        held = (s.finger_contact[:, 0] > 0) & (s.finger_contact[:, 1] > 0)
        up = held & (s.object_pos[:, 2] > rest_z + RAISED)
        grasped.logical_or_(held)
        raised.logical_or_(up)
        if s.goal_pos is not None:
            near = torch.norm(s.object_pos[:, :2] - s.goal_pos[:, :2], dim=-1) < zone_radius
            over_zone.logical_or_(up & near)
        held_at_end.copy_(held)  # every episode runs the task's whole length: the last step's value stays

    try:
        outcomes = play_episodes(env, policy, progress=True, on_step=on_step)
    finally:
        policy.close()
        env.close()
    failed = outcomes != 1
    counts = {
        "episodes": n,
        "succeeded": int((~failed).sum()),
        "never_grasped": int((failed & ~grasped).sum()),
        "grasped_never_raised": int((failed & grasped & ~raised).sum()),
        "raised_never_over_zone": int((failed & raised & ~over_zone).sum()),
        "over_zone_then_failed": int((failed & over_zone).sum()),
        "over_zone_then_failed_still_held": int((failed & over_zone & held_at_end).sum()),
    }
    width = max(map(len, counts))
    for name, value in counts.items():
        print(f"{name:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(counts, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""robosmith's metrics contract on every backend: the episode recorder, metrics.jsonl rows, eval.json.

Every environment step hands its reward, components, time-outs and successes to an `EpisodeRecorder`
(before finished environments reset); a training loop turns its sums into one metrics row per iteration
and an evaluation into eval.json, with the same keys whoever trained: the CPU trainer, mjlab or Isaac Lab.
The agent's reflection and report read those files and nothing else. Sums stay on the backend's device,
in float64, and are read once per iteration.
Part of robosmith's contract: torch only, copied verbatim into every exported engine package.
"""

from __future__ import annotations

import math

import torch

# Keys of one metrics.jsonl row (one PPO iteration), besides `reward/<component>` and `loss/<name>`.
METRICS_KEYS = (
    "iteration", "env_steps", "wall_s", "env_steps_per_s", "collect_s", "learn_s", "mean_reward", "success_rate",
    "episode_length", "episode_return", "episodes", "unstable_resets", "nonfinite_rewards", "action_std",
)
# Keys every eval.json has; evaluations add what they know of the policy (iteration, seed, video, ...).
EVAL_KEYS = ("task", "episodes", "successes", "success_rate", "ci95", "unstable_episodes", "mean_return")


class EpisodeRecorder:
    """Episode statistics of N environments since the last `clear`.

    keep_outcomes: evaluation keeps each environment's first outcome (1 success, 0 failure, -1 not ended).
    """

    def __init__(self, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.device = device
        self.returns = torch.zeros(num_envs, device=device)
        self.keep_outcomes = False
        self.outcomes = torch.full((num_envs,), -1, dtype=torch.long, device=device)
        self.clear()

    def clear(self) -> None:
        def zero(dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros((), dtype=dtype, device=self.device)

        self.steps = 0  # environment steps (num_envs per control step)
        self.reward_sum = zero(torch.float64)
        self.component_sums: dict[str, torch.Tensor] = {}
        self.episodes = zero(torch.long)
        self.successes = zero(torch.long)
        self.length_sum = zero(torch.long)
        self.return_sum = zero(torch.float64)
        self.nonfinite = zero(torch.long)
        self.unstable = zero(torch.long)

    def record(
        self,
        total: torch.Tensor,
        components: dict[str, torch.Tensor],
        time_out: torch.Tensor,
        success: torch.Tensor,
        episode_step: torch.Tensor,
        unstable: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One step of every environment; returns the reward to train on.

        Non-finite rewards are zeroed and counted (they would poison PPO's statistics). `unstable` marks
        environments whose physics diverged and were reset: their reward is zero and their episode does not
        count. An episode ends at its time-out; success is read there.
        """
        finite = torch.isfinite(total)
        self.nonfinite += (~finite).sum()
        total = torch.where(finite, total, torch.zeros_like(total)).float()
        ended = time_out.bool()
        done = ended
        if unstable is not None:
            total = torch.where(unstable, torch.zeros_like(total), total)
            ended = ended & ~unstable
            done = ended | unstable
            self.unstable += unstable.sum()
        self.steps += total.shape[0]
        self.reward_sum += total.sum()
        for name, value in components.items():
            value = torch.nan_to_num(torch.as_tensor(value, dtype=torch.float32, device=total.device), 0.0, 0.0, 0.0)
            if name not in self.component_sums:
                self.component_sums[name] = torch.zeros((), dtype=torch.float64, device=total.device)
            self.component_sums[name] += value.sum()
        self.returns += total
        self.episodes += ended.sum()
        self.successes += (success.bool() & ended).sum()
        self.length_sum += torch.where(ended, episode_step.long(), 0).sum()
        self.return_sum += torch.where(ended, self.returns.double(), 0.0).sum()
        if self.keep_outcomes:
            first = ended & (self.outcomes < 0)
            self.outcomes[first] = success.bool()[first].long()
        self.returns[done] = 0.0
        return total

    def summary(self) -> dict:
        """The statistics part of a metrics row."""
        n, episodes = max(self.steps, 1), int(self.episodes)
        out = {
            "mean_reward": float(self.reward_sum) / n,
            "success_rate": int(self.successes) / episodes if episodes else None,
            "episode_length": int(self.length_sum) / episodes if episodes else None,
            "episode_return": float(self.return_sum) / episodes if episodes else None,
            "episodes": episodes,
            "unstable_resets": int(self.unstable),
            "nonfinite_rewards": int(self.nonfinite),
        }
        out.update({f"reward/{k}": float(v) / n for k, v in self.component_sums.items()})
        return out


def metrics_row(
    iteration: int, env_steps: int, wall_s: float, steps: int, collect_s: float, learn_s: float, summary: dict,
    action_std: float | None, losses: dict, **extra: object,
) -> dict:
    """One metrics.jsonl row: `steps` environment steps were collected in `collect_s` and learned from in
    `learn_s`; `env_steps` counts every step since training began."""
    return {
        "iteration": iteration,
        "env_steps": env_steps,
        "wall_s": round(wall_s, 3),
        "env_steps_per_s": steps / max(collect_s + learn_s, 1e-9),
        "collect_s": collect_s,
        "learn_s": learn_s,
        **summary,
        "action_std": action_std,
        **{f"loss/{k}": float(v) for k, v in losses.items()},
        **extra,
    }


def eval_result(task: str, episodes: int, successes: int, unstable_episodes: int, mean_return: float | None) -> dict:
    """The figures every eval.json holds: success over `episodes` with its 95% interval."""
    low, high = wilson_interval(successes, episodes)
    return {
        "task": task,
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / max(episodes, 1),
        "ci95": [low, high],
        "unstable_episodes": unstable_episodes,
        "mean_return": mean_return,
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate; sound near 0% and 100%, unlike the normal approximation."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0% or 100% the interval's end is exactly 0 or 1, which rounding alone would miss (100/100: 0.99999...).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def difference_interval(successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = 1.96
                        ) -> tuple[float, float, float]:
    """(p_b - p_a, low, high): the gain of B over A with Newcombe's hybrid score interval (his method 10), built
    from the two Wilson intervals; sound for small samples and rates near 0 or 1, unlike the Wald interval."""
    p_a, p_b = successes_a / max(n_a, 1), successes_b / max(n_b, 1)
    low_a, high_a = wilson_interval(successes_a, n_a, z)
    low_b, high_b = wilson_interval(successes_b, n_b, z)
    d = p_b - p_a
    low = d - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = d + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    return d, max(-1.0, low), min(1.0, high)

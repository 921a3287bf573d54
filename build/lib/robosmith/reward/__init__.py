"""Rewards as code: terms that render to `compute_reward` bodies, the static check, the one loader, the judge
of what a reward returns. The smoke run that starts the judge in a confined process is in robosmith.execution.
"""

from robosmith.reward.check import RewardRejected, check_static
from robosmith.reward.load import RewardFn, load_reward
from robosmith.reward.terms import RewardTerm, terms_to_body

__all__ = ["RewardFn", "RewardRejected", "RewardTerm", "check_static", "load_reward", "terms_to_body"]

"""robosmith's contract: what every backend and the real arm share, in torch alone.

SimState (the names, units and frames rewards are written against), the observation vector a policy reads,
actions to servo targets, the guarded call of a reward, the episode recorder with the metrics and evaluation
keys, the Wilson interval and atomic writes. This package imports nothing else of robosmith and only torch
beyond the standard library: `robosmith export` copies its files verbatim into every engine package.
"""

from .actions import ACTION_MODES, ActionMap
from .io import write_json, write_text_atomic
from .metrics import EVAL_KEYS, METRICS_KEYS, EpisodeRecorder, eval_result, metrics_row, wilson_interval
from .observations import RELATIVE_OBSERVATIONS, observation_fields, observation_size, observation_vector
from .reward_call import MAX_COMPONENTS, RewardContractError, call_reward, check_output
from .state import FIELD_DOCS, OBJECT_FIELDS, REQUIRED_FIELDS, SimState

__all__ = [
    "ACTION_MODES", "EVAL_KEYS", "FIELD_DOCS", "MAX_COMPONENTS", "METRICS_KEYS", "OBJECT_FIELDS",
    "RELATIVE_OBSERVATIONS", "REQUIRED_FIELDS", "ActionMap", "EpisodeRecorder", "RewardContractError", "SimState",
    "call_reward", "check_output", "eval_result", "metrics_row", "observation_fields", "observation_size",
    "observation_vector", "wilson_interval", "write_json", "write_text_atomic",
]

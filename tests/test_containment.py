"""Reward containment, second round: the four classes of attack found by trying, several cases each, and the
other side: rewards written the way LLMs write them are accepted.

1. faked success through the state (writes into it, keyed on late steps or batch sizes);
2. memory-unsafe tensor methods (sparse views, storage, uninitialised memory);
3. the trainer unconfined (memory, CPU time, environment, floods of components);
4. state kept between calls.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from robosmith.contract.reward_call import RewardContractError, check_output
from robosmith.contract.state import SimState
from robosmith.execution.confine import TrainerLimits, trainer_environment
from robosmith.execution.smoke import sample_states
from robosmith.reward.check import RewardRejected, check_static
from robosmith.reward.judge import _Verdict, evaluate_in_process, judge, sanitize
from robosmith.reward.load import load_reward
from robosmith.runs import write_json
from robosmith.task import TaskError, load_task, task_from_dict
from robosmith.train.env import TaskEnv


def body(src: str) -> str:
    return "def compute_reward(s):\n" + textwrap.indent(textwrap.dedent(src).strip(), "    ") + "\n"


@pytest.fixture(scope="module")
def lift():
    return load_task("so101_lift")


@pytest.fixture(scope="module")
def states(lift):
    return sample_states(lift, num_envs=16)


# ------------------------------------------------------------------- 1. faked success through the state
# A reward that could write into what the success check reads would report success for a random policy.
STATE_WRITES_STATIC = [  # rejected before anything runs
    ("copy_into_alias", "p = s.object_pos\np.copy_(s.object_pos + 1.0)\nreturn p[:, 2], {}", ".copy_ is not allowed"),
    ("out_argument", "torch.add(s.object_pos, 1.0, out=s.object_pos)\nreturn s.ee_pos[:, 0], {}", "out= argument"),
    ("resize", "p = s.object_pos\np.resize_(1)\nreturn s.ee_pos[:, 0], {}", ".resize_ is not allowed"),
    ("direct_item_write", "s.object_pos[:, 2] = 1.0\nreturn s.ee_pos[:, 0], {}", "must not change s"),
    ("data_alias", "p = s.object_pos.data\nreturn p[:, 0], {}", ".data is not allowed"),
    ("fill_in_place", "s.episode_step.fill_(200)\nreturn s.ee_pos[:, 0], {}", ".fill_ is not allowed"),
]
STATE_WRITES_RUNTIME = [  # pass the static check; caught the moment they write
    ("item_write_through_alias", "p = s.object_pos\np[:, 2] = 1.0\nreturn s.ee_pos[:, 0], {}"),
    ("augmented_alias", "st = s.episode_step\nst += 200\nreturn s.ee_pos[:, 0], {}"),
    ("write_in_a_helper", "return lift(s.object_pos)[:, 0], {}"),
    ("view_of_a_view", "q = s.object_pos.view(-1, 3)[:, 2:]\nq *= 0.0\nreturn s.ee_pos[:, 0], {}"),
    ("detached_alias", "d = s.object_pos.detach()\nd[:, 2] = 5.0\nreturn s.ee_pos[:, 0], {}"),
    ("only_late_in_episodes",
     "if int(s.episode_step.max()) >= 100:\n    p = s.object_pos\n    p[:, 2] = 1.0\nreturn s.ee_pos[:, 0], {}"),
    ("only_at_evaluation_size",
     "if s.ee_pos.shape[0] == 100:\n    p = s.object_pos\n    p[:, 2] = 1.0\nreturn s.ee_pos[:, 0], {}"),
]
HELPER = "def lift(p):\n    p[:, 2] += 1.0\n    return p\n"


@pytest.mark.parametrize("code, reason", [c[1:] for c in STATE_WRITES_STATIC], ids=[c[0] for c in STATE_WRITES_STATIC])
def test_writes_into_the_state_are_rejected_statically(code, reason):
    with pytest.raises(RewardRejected, match=reason):
        check_static(body(code))


@pytest.mark.parametrize("code", [c[1] for c in STATE_WRITES_RUNTIME], ids=[c[0] for c in STATE_WRITES_RUNTIME])
def test_writes_through_aliases_fail_the_smoke_run_at_every_step_and_batch_size(code, states, lift):
    code = HELPER + body(code)
    check_static(code)
    result = evaluate_in_process(code, states, [1, lift.train.num_envs, lift.train.eval_episodes])
    assert result["ok"] is False and result["reason"].startswith("state-write: compute_reward changed s.")


def test_a_write_at_a_batch_size_the_smoke_run_never_saw_fails_training_and_evaluation(lift):
    """Evaluation with 37 episodes: no smoke run tried 37, the guard in the environment catches it."""
    code = body("if s.ee_pos.shape[0] == 37:\n    p = s.object_pos\n    p[:, 2] = 1.0\nreturn s.ee_pos[:, 0], {}")
    env = TaskEnv(lift, load_reward(code), 37, auto_reset=False)
    try:
        with pytest.raises(RewardContractError, match="state-write"):
            env.step(torch.zeros(37, 6))
    finally:
        env.close()


def test_success_is_read_from_the_state_the_reward_never_holds(lift):
    """Even a write the guard would not see could not move the cube for the success check: the reward gets a copy."""
    seen = {}

    def sneaky(s: SimState):
        seen["object_pos"] = s.object_pos
        return s.ee_pos[:, 0], {}

    env = TaskEnv(lift, sneaky, 4, auto_reset=False)
    try:
        env.step(torch.zeros(4, 6))
        assert seen["object_pos"] is not env.state.object_pos
        assert seen["object_pos"].untyped_storage().data_ptr() != env.state.object_pos.untyped_storage().data_ptr()
    finally:
        env.close()


@pytest.mark.slow
def test_a_late_step_write_that_skipped_the_smoke_run_fails_the_candidate(lift, tmp_path):
    """Trained directly (as if the smoke run had missed it), the guard stops the candidate: status violation."""
    from robosmith.execution.local import train_candidates
    from robosmith.train.ppo import TrainSettings

    code = body("if int(s.episode_step.max()) >= 110:\n    p = s.object_pos\n    p[:, 2] = 1.0\n"
                "return s.ee_pos[:, 0], {'height': s.object_pos[:, 2]}")
    folder = _job(tmp_path / "cand", lift, code, TrainSettings.from_task(lift, num_envs=8, max_iterations=20,
                                                                        steps_per_iteration=24, eval_episodes=4))
    train_candidates([folder], parallel=1, timeout_s=300, limits=TrainerLimits(cpu_s=300, memory_mb=4096))
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "violation" and "state-write" in result["reason"]


# ---------------------------------------------------------------------- 2. memory-unsafe tensor methods
UNSAFE = [
    ("to_sparse", "x = s.ee_pos.to_sparse()"), ("sparse_indices", "x = s.ee_pos.indices()"),
    ("col_indices", "x = s.ee_pos.col_indices()"), ("crow_indices", "x = s.ee_pos.crow_indices()"),
    ("to_sparse_csr", "x = s.ee_pos.to_sparse_csr()"), ("storage_type", "x = s.ee_pos.storage_type()"),
    ("new_empty", "x = s.ee_pos.new_empty(10)"), ("torch_empty", "x = torch.empty(10)"),
    ("empty_like", "x = torch.empty_like(s.ee_pos)"), ("as_strided", "x = s.ee_pos.as_strided((9,), (1,))"),
    ("torch_as_strided", "x = torch.as_strided(s.ee_pos, (9,), (1,))"),
    ("untyped_storage", "x = s.ee_pos.untyped_storage()"),
    ("data_ptr", "x = s.ee_pos.data_ptr()"), ("set_", "x = s.ee_pos.set_()"), ("numpy", "x = s.ee_pos.numpy()"),
    ("sparse_coo_tensor", "x = torch.sparse_coo_tensor([[0]], [1.0])"), ("frombuffer", "x = torch.frombuffer(b'1234')"),
    ("to_device", "x = s.ee_pos.to('cuda')"), ("device_keyword", "x = torch.zeros(3, device='meta')"),
    ("random", "x = torch.rand(3)"), ("random_like", "x = torch.randn_like(s.ee_pos)"),
    ("dlpack", "x = s.ee_pos.to_dlpack()"), ("share_memory", "x = s.ee_pos.share_memory_()"),
]


@pytest.mark.parametrize("code", [c[1] for c in UNSAFE], ids=[c[0] for c in UNSAFE])
def test_memory_unsafe_and_impure_tensor_methods_are_rejected(code):
    with pytest.raises(RewardRejected) as err:
        check_static(body(code + "\nreturn s.ee_pos[:, 0], {}"))
    assert err.value.stage == "static" and "\n" not in err.value.reason


def test_reasons_sent_to_the_llm_carry_no_tensor_values():
    message = "bad value tensor([0.1234, 0.5678]) at 0x7f3a2b4c5d60 of 3.14159 in dim 2"
    clean = sanitize(message)
    assert "0.1234" not in clean and "0x7f" not in clean and "3.14159" not in clean and "dim" not in clean
    assert sanitize("index 7 is out of bounds for dimension 1 with size 6") == \
        "index 7 is out of bounds for dimension 1 with size 6"
    result = evaluate_in_process(body("x = s.ee_pos[:, 7]\nreturn x, {}"), SimState.zeros(4, True, False))
    assert result["reason"].startswith("runtime: line 2: IndexError") and "Traceback" in result["detail"]


# ---------------------------------------------------------------------------- 3. the trainer confined
def test_the_trainer_environment_holds_no_keys_or_credentials(tmp_path, monkeypatch):
    for key in ("OPENAI_API_KEY", "ROBOSMITH_LLM_API_KEY", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN"):
        monkeypatch.setenv(key, "secret")
    monkeypatch.setenv("ROBOSMITH_TRAINER_ENV", "MY_ENGINE_HOME")
    monkeypatch.setenv("MY_ENGINE_HOME", "/opt/engine")
    env = trainer_environment(tmp_path, threads=2)
    assert "secret" not in env.values() and env["HOME"] == str(tmp_path) and env["OMP_NUM_THREADS"] == "2"
    assert env["PATH"] == os.environ["PATH"] and env["MY_ENGINE_HOME"] == "/opt/engine"
    assert env["WANDB_MODE"] in ("offline", "disabled")


def _job(folder: Path, task, code: str, settings) -> Path:
    import dataclasses

    folder.mkdir(parents=True)
    (folder / "reward.py").write_text(code)
    write_json(folder / "job.json", {"task": task.to_dict(), "settings": dataclasses.asdict(settings),
                                     "reward_file": "reward.py"})
    return folder


ALLOCATES_LATE = body("""
    if int(s.episode_step.max()) >= 100:
        x = torch.ones(10 ** 9)
        return x[: s.ee_pos.shape[0]], {}
    return s.ee_pos[:, 0], {}
""")


@pytest.mark.slow
@pytest.mark.parametrize("data_limit", [True, False], ids=["rlimit_data", "watchdog"])
def test_a_reward_that_allocates_gigabytes_late_is_stopped_by_the_memory_limit(lift, tmp_path, data_limit,
                                                                              monkeypatch):
    from robosmith.execution.local import train_candidates
    from robosmith.train.ppo import TrainSettings

    monkeypatch.setenv("OPENAI_API_KEY", "secret")
    settings = TrainSettings.from_task(lift, num_envs=8, max_iterations=30, steps_per_iteration=24, eval_episodes=4)
    folder = _job(tmp_path / "cand", lift, ALLOCATES_LATE, settings)
    seen_env: list[str] = []

    def watch_environ() -> None:  # read the running trainer's environment from outside, as ps would
        for _ in range(200):
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        if str(folder) in (proc / "cmdline").read_text() and "worker" in (proc / "cmdline").read_text():
                            seen_env.append((proc / "environ").read_text())
                            return
                    except OSError:
                        continue
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_environ)
    watcher.start()
    train_candidates([folder], parallel=1, timeout_s=300,
                     limits=TrainerLimits(cpu_s=300, memory_mb=2500, data_limit=data_limit))
    watcher.join()
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "memory" and "memory limit" in result["reason"]
    assert seen_env and "secret" not in seen_env[0] and "OPENAI_API_KEY" not in seen_env[0]


@pytest.mark.slow
def test_a_reward_that_loops_late_runs_out_of_cpu_time(lift, tmp_path):
    from robosmith.execution.local import train_candidates
    from robosmith.train.ppo import TrainSettings

    code = body("""
        x = 0.0
        if int(s.episode_step.max()) >= 100:
            for i in range(10000):
                for j in range(10000):
                    x = x + 1.0
        return s.ee_pos[:, 0] + x * 0.0, {}
    """)
    settings = TrainSettings.from_task(lift, num_envs=8, max_iterations=30, steps_per_iteration=24, eval_episodes=4)
    folder = _job(tmp_path / "cand", lift, code, settings)
    train_candidates([folder], parallel=1, timeout_s=300, limits=TrainerLimits(cpu_s=20, memory_mb=4096))
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "cpu" and "CPU-time limit of 20 s" in result["reason"]


@pytest.mark.parametrize("components, reason", [
    ({f"c{i}": None for i in range(33)}, "at most 32 components"),
    ({"x" * 41: None}, "identifiers of at most 40"),
    ({"a b": None}, "identifiers"),
    ({'quote"': None}, "identifiers"),
    ({"fine": "not a tensor"}, "must be a float tensor"),
])
def test_floods_of_components_are_stopped_at_every_call(components, reason):
    n = 4
    components = {k: (torch.zeros(n) if v is None else v) for k, v in components.items()}
    with pytest.raises(RewardContractError, match=reason):
        check_output((torch.zeros(n), components), n)


def test_a_reward_that_floods_component_names_late_fails_in_the_environment(lift):
    code = body("""
        c = {'base': s.ee_pos[:, 0]}
        if int(s.episode_step.max()) >= 2:
            for i in range(40):
                c['k' + str(i)] = s.ee_pos[:, 0]
        return s.ee_pos[:, 0], c
    """)
    env = TaskEnv(lift, load_reward(code), 4)
    try:
        env.step(torch.zeros(4, 6))
        with pytest.raises(RewardContractError, match="at most 32 components"):
            env.step(torch.zeros(4, 6))
    finally:
        env.close()


# ---------------------------------------------------------------------------- 4. state between calls
HIDDEN_STATE = [
    ("list_default", "def count(x, box=[]):\n    box.append(1)\n    return x * len(box)\n", "must be constants"),
    ("dict_default", "def count(x, memo={}):\n    return x\n", "must be constants"),
    ("call_default", "def count(x, t=torch.zeros(3)):\n    return x\n", "must be constants"),
    ("kwonly_default", "def count(x, *, memo=[]):\n    return x\n", "must be constants"),
    ("function_attribute", "def count(x):\n    count.calls = 1\n    return x\n", "assigning or deleting attributes"),
    ("nonlocal", "def outer(x):\n    n = 0\n    def inner():\n        nonlocal n\n        n = n + 1\n"
                 "    return x\n", "nonlocal statements"),
    ("global", "def count(x):\n    global calls\n    return x\n", "global statements"),
    ("recursion_through_a_helper", "def a(x):\n    return b(x)\ndef b(x):\n    return a(x)\n", "a -> b -> a"),
]


@pytest.mark.parametrize("helper, reason", [c[1:] for c in HIDDEN_STATE], ids=[c[0] for c in HIDDEN_STATE])
def test_no_state_is_kept_between_calls(helper, reason):
    with pytest.raises(RewardRejected, match=reason):
        check_static(helper + body("return s.ee_pos[:, 0], {}"))


def test_constant_defaults_are_fine():
    check_static("def scale(x, k=2.0, axes=(0, 1), name='n', off=None):\n    return x * k\n"
                 + body("return scale(s.ee_pos[:, 0]), {}"))


def test_the_smoke_run_catches_whatever_kept_state_anyway(states):
    """Defence in depth: a reward with hidden state (here a Python closure, which the static check never lets
    through) gives different values for the same states, and the judge says so."""
    calls = []

    def counting(s):
        calls.append(1)
        return s.ee_pos[:, 0] + len(calls), {}

    with pytest.raises(_Verdict, match="hidden-state"):
        judge(counting, states, [1])

    def normalizing(s):  # depends on the batch: the same state, another reward in another batch
        x = s.ee_pos[:, 0]
        return x - x.mean(), {}

    with pytest.raises(_Verdict, match="batch"):
        judge(normalizing, states, [1])


# ------------------------------------------------------------------------------ task files are untrusted
@pytest.mark.parametrize("field, value, reason", [
    ("success", "__import__('os').system('true') == 0", "success: does not pass the static check"),
    ("success", "open('/etc/passwd') is None", "success: does not pass the static check"),
    ("success", "s.object_pos.copy_(s.ee_pos)[:, 2] > 0", "success: does not pass the static check"),
])
def test_task_file_expressions_pass_the_same_check_before_anything_evaluates_them(lift, field, value, reason):
    raw = lift.to_dict()
    raw[field] = value
    with pytest.raises(TaskError, match=reason):
        task_from_dict(raw)


def test_reference_terms_from_a_task_file_are_checked_too(lift):
    raw = lift.to_dict()
    raw["reward"][0]["expr"] = "torch.load('/etc/passwd')"
    with pytest.raises(TaskError, match=r"reward\[0\]\.expr: does not pass the static check"):
        task_from_dict(raw)


# -------------------------------------------------------------------- rewards as LLMs write them, accepted
LLM_STYLE = {
    "annotated_with_imports": '''
import torch
import torch.nn.functional as F
from typing import Dict, Tuple


def compute_reward(s) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Reach, grasp and lift the cube."""
    distance: torch.Tensor = torch.norm(s.ee_pos - s.object_pos, dim=-1)
    reach = 1.0 - torch.tanh(distance / 0.05)
    grasp = s.finger_contact.to(torch.float32).prod(dim=-1)
    lift = F.relu(s.object_pos[:, 2] - 0.0125) / 0.05
    total = reach + grasp + 10.0 * lift
    return total, {"reach": reach, "grasp": grasp, "lift": lift}
''',
    "functional_losses": '''
def compute_reward(s):
    error = F.mse_loss(s.ee_pos, s.object_pos, reduction="none").sum(dim=-1)
    smooth = torch.nn.functional.smooth_l1_loss(s.action, s.prev_action, reduction="none").mean(dim=-1)
    contact = F.one_hot(s.finger_contact.sum(dim=-1).long(), num_classes=3).float()[:, 2]
    reward = torch.exp(-error / 0.01) - 0.01 * smooth + contact
    return reward, {"error": -error, "smooth": -smooth, "contact": contact}
''',
    "throwaway_underscore_and_unbind": '''
def compute_reward(s):
    x, y, z = torch.unbind(s.object_pos, dim=-1)
    _, nearest = torch.min(torch.stack([x, y], dim=-1).abs(), dim=-1)
    height = torch.clamp(z - 0.0125, min=0.0)
    for _ in range(2):
        height = height * 1.0
    return height + 0.0 * nearest.float(), {"height": height}
''',
    "quaternion_orientation": '''
def quat_angle(q1, q2):
    dot = torch.sum(q1 * q2, dim=-1).abs().clamp(max=1.0)
    return 2.0 * torch.arccos(dot)


def compute_reward(s):
    down = torch.tensor([0.0, 1.0, 0.0, 0.0]).expand_as(s.ee_quat)
    angle = quat_angle(s.ee_quat, down)
    align = 1.0 - angle / math.pi
    w, qx, qy, qz = s.object_quat.unbind(-1)
    cube_yaw = torch.arctan2(2.0 * (w * qz + qx * qy), 1.0 - 2.0 * (qy ** 2 + qz ** 2))
    yaw_term = torch.cos(2.0 * cube_yaw)
    return align + 0.1 * yaw_term, {"align": align, "yaw": 0.1 * yaw_term}
''',
    "staged_with_where": '''
def compute_reward(s: "SimState"):
    d = torch.linalg.norm(s.ee_pos - s.object_pos, dim=-1)
    reached = (d < 0.02).float()
    grasped = (s.finger_contact.sum(dim=1) >= 2).to(dtype=torch.float32)
    lifted = torch.where(s.object_pos[:, 2] > 0.05, torch.ones_like(d), torch.zeros_like(d))
    stage = reached + reached * grasped + reached * grasped * lifted
    shaping = torch.exp(-5.0 * d)
    return stage + shaping, {"stage": stage, "shaping": shaping}
''',
    "softmax_and_constants": '''
TEMPERATURE = 0.05


def compute_reward(s):
    dists = torch.stack([torch.norm(s.ee_pos - s.object_pos, dim=-1), s.object_pos[:, 2]], dim=1)
    weights = F.softmax(-dists / 0.05, dim=1)
    direction = F.normalize(s.object_pos - s.ee_pos, dim=-1)
    speed = (s.joint_vel ** 2).sum(-1)
    return weights[:, 0] + direction[:, 2] * 0.0 - 1e-3 * speed, {"near": weights[:, 0], "speed": -1e-3 * speed}
''',
    "dict_loop_total": '''
def compute_reward(s):
    components = {}
    components["reach"] = 1.0 - torch.tanh(torch.norm(s.ee_pos - s.object_pos, dim=-1) / 0.1)
    components["action_rate"] = -0.01 * torch.sum(torch.square(s.action - s.prev_action), dim=-1)
    components["joint_vel"] = -0.001 * torch.sum(s.joint_vel.pow(2), dim=-1)
    total = torch.zeros_like(components["reach"])
    for name, value in components.items():
        total = total + value
    return total, components
''',
    "numpy_style_helpers": '''
def tolerance(x, lower=0.0, upper=0.02, margin=0.05):
    inside = (x >= lower) & (x <= upper)
    outside = torch.exp(-((x - upper).clamp(min=0.0) / margin) ** 2)
    return torch.where(inside, torch.ones_like(x), outside)


def compute_reward(s):
    dist = torch.sqrt(((s.ee_pos - s.object_pos) ** 2).sum(axis=-1))
    r_reach = tolerance(dist)
    r_height = tolerance(0.1 - s.object_pos[:, 2], upper=0.05)
    r_still = torch.exp(-s.object_linvel.norm(dim=-1))
    return (r_reach * r_height * r_still).float(), {"reach": r_reach, "height": r_height, "still": r_still}
''',
    "flip_roll_linspace_eye": '''
def compute_reward(s):
    weights = torch.linspace(1.0, 0.5, 6)
    identity = torch.eye(3)
    rotated = s.ee_pos @ identity
    flipped = torch.flip(s.joint_pos, dims=[1])
    shifted = torch.roll(s.joint_pos, shifts=1, dims=1)
    posture = -(weights * (flipped - shifted) ** 2).sum(dim=1) * 0.001
    height = rotated[:, 2].clamp(0.0, 0.3)
    return height + posture, {"height": height, "posture": posture}
''',
    "item_for_a_scalar_temperature": '''
def compute_reward(s):
    temperature = float(s.ee_pos.new_ones(1).item()) * 0.1
    parts = torch.split(s.ee_pos - s.object_pos, 1, dim=-1)
    dist = torch.sqrt(sum(p.squeeze(-1) ** 2 for p in parts))
    return torch.exp(-dist / temperature), {"dist": -dist}
''',
}


def test_rewards_written_as_llms_write_them_are_accepted(states, lift):
    accepted, reasons = [], {}
    for name, code in LLM_STYLE.items():
        try:
            result = evaluate_in_process(code, states, [1, lift.train.num_envs, lift.train.eval_episodes])
        except RewardRejected as e:
            reasons[name] = e.reason
            continue
        if result["ok"]:
            accepted.append(name)
        else:
            reasons[name] = result["reason"]
    assert len(LLM_STYLE) == 10
    assert len(accepted) >= 9, reasons


# ------------------------------------------------------------- end to end through the real LLM client
GREEDY = """A reward that also keeps a large buffer of distances at the end of each episode.

```python
def compute_reward(s):
    d = torch.norm(s.ee_pos - s.goal_pos, dim=-1)
    if int(s.episode_step.max()) >= 55:
        history = torch.ones(4 * 10 ** 9)
        d = d + 0.0 * history[0]
    return 1.0 - torch.tanh(d / 0.1), {"distance": 1.0 - torch.tanh(d / 0.1)}
```
"""


@pytest.mark.slow
def test_an_llm_reward_that_allocates_gigabytes_late_fails_with_a_memory_reason(tmp_path):
    from robosmith.agent.loop import RewardLoop
    from robosmith.execution.confine import resident_mb

    from .llm_server import FakeLLMServer, Reply
    from .test_agent import GOOD, llm_config, tiny_settings

    peak = {"tree_mb": 0.0, "available_mb": float("inf")}
    done = threading.Event()

    def watch() -> None:  # this process and everything it starts, and what the machine has left
        while not done.is_set():
            peak["tree_mb"] = max(peak["tree_mb"], resident_mb(os.getpid()))
            meminfo = Path("/proc/meminfo").read_text().split()
            peak["available_mb"] = min(peak["available_mb"], int(meminfo[meminfo.index("MemAvailable:") + 1]) / 1024)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with FakeLLMServer([Reply(texts=[GREEDY, GOOD])]) as server:
            settings = tiny_settings(candidates=2, max_iterations=1, baseline=False)
            final = RewardLoop.create(tmp_path / "run", load_task("so101_reach"), settings,
                                      llm_config(server.url, samples=2)).run()
    finally:
        done.set()
        watcher.join()
    records = {r["id"]: r for r in final["history"]}
    assert records["0.0"]["status"] == "rejected" and "memory" in records["0.0"]["reason"]
    assert records["0.1"]["status"] == "ok"
    assert final["stop_reason"].startswith("iteration limit")
    assert peak["tree_mb"] < 8000  # the reward asked for 16 GB
    assert peak["available_mb"] > 2000

"""Reward code from an LLM is hostile until proven otherwise: every case here must be rejected or contained,
with a clear reason, and nothing may be written outside the candidate folder."""

import textwrap

import pytest
import torch

from robosmith.agent.sandbox import (
    RewardRejected,
    check_static,
    load_reward_fn,
    sample_states,
    smoke_test,
    validate_reward,
)
from robosmith.reward import compile_reward
from robosmith.task import load_task


@pytest.fixture(scope="module")
def task():
    return load_task("so101_lift")


@pytest.fixture(scope="module")
def states(task):
    return sample_states(task, num_envs=32, steps=20)


def body(src: str) -> str:
    return "def compute_reward(s):\n" + textwrap.indent(textwrap.dedent(src).strip(), "    ") + "\n"


OK_TAIL = "return s.ee_pos[:, 0], {}"

# Rejected by the static check: never run at all. (id, code, what the reason must say)
STATIC_CASES = [
    ("import_os", body("import os\n" + OK_TAIL), "import statements are not allowed"),
    ("from_subprocess", body("from subprocess import run\n" + OK_TAIL), "import statements"),
    ("dunder_import", body("m = __import__('socket')\n" + OK_TAIL), "__import__"),
    ("open_read", body("x = open('/etc/passwd').read()\n" + OK_TAIL), "open is not allowed"),
    ("open_write_abs", body("open('/tmp/robosmith_pwned', 'w').write('x')\n" + OK_TAIL), "open is not allowed"),
    ("torch_save", body("torch.save(s.ee_pos, '/tmp/robosmith_pwned')\n" + OK_TAIL), "torch.save is not allowed"),
    ("torch_load", body("x = torch.load('/etc/passwd')\n" + OK_TAIL), "torch.load is not allowed"),
    ("torch_from_file", body("x = torch.from_file('/etc/passwd')\n" + OK_TAIL), "torch.from_file"),
    ("torch_hub", body("m = torch.hub.load('a', 'b')\n" + OK_TAIL), "torch.hub"),
    ("torch_ops", body("x = torch.ops.aten\n" + OK_TAIL), "torch.ops"),
    ("torch_C", body("x = torch._C\n" + OK_TAIL), "underscore"),
    ("torch_cuda", body("torch.cuda.init()\n" + OK_TAIL), "torch.cuda"),
    ("torch_linalg_bad", body("x = torch.linalg.inv(s.ee_pos)\n" + OK_TAIL), "torch.linalg.inv"),
    ("subclasses", body("x = ().__class__.__bases__[0].__subclasses__()\n" + OK_TAIL), "underscore"),
    ("func_globals", body("g = compute_reward.__globals__\n" + OK_TAIL), "underscore"),
    ("state_class", body("c = s.__class__\n" + OK_TAIL), "underscore"),
    ("getattr_escape", body("f = getattr(torch, 'load')\n" + OK_TAIL), "getattr is not allowed"),
    ("eval", body("x = eval('1 + 1')\n" + OK_TAIL), "eval is not allowed"),
    ("exec", body("exec('import os')\n" + OK_TAIL), "exec is not allowed"),
    ("compile", body("c = compile('1', 'f', 'eval')\n" + OK_TAIL), "compile is not allowed"),
    ("globals", body("g = globals()\n" + OK_TAIL), "globals is not allowed"),
    ("vars", body("v = vars(s)\n" + OK_TAIL), "vars is not allowed"),
    ("type_of_state", body("t = type(s)\n" + OK_TAIL), "type is not allowed"),
    ("print", body("print('hello')\n" + OK_TAIL), "print is not allowed"),
    ("numpy_escape", body("a = s.ee_pos.numpy()\n" + OK_TAIL), ".numpy is not allowed"),
    ("storage_escape", body("a = s.ee_pos.untyped_storage()\n" + OK_TAIL), ".untyped_storage is not allowed"),
    ("format_string_trick", body("x = '{0.__class__}'.format(s)\n" + OK_TAIL), "not allowed"),
    ("dunder_in_string", body("x = '__globals__'\n" + OK_TAIL), "'__'"),
    ("format_method", body("x = '{}'.format(s)\n" + OK_TAIL), ".format is not allowed"),
    ("lambda_escape", body("f = lambda: (1).__class__\n" + OK_TAIL), "underscore"),
    ("global_stmt", body("global counter\n" + OK_TAIL), "global statements"),
    ("yield", body("yield s.ee_pos[:, 0]"), "yield is not allowed"),
    ("try_hides_errors", body("try:\n    x = 1\nexcept Exception:\n    x = 2\n" + OK_TAIL), "try statements"),
    ("class_def", "class A:\n    pass\n" + body(OK_TAIL), "only function definitions"),
    ("top_level_code", "x = open('/etc/passwd')\n" + body(OK_TAIL), "only function definitions"),
    ("no_compute_reward", "def reward(s):\n    return s.ee_pos[:, 0], {}\n", "no compute_reward"),
    ("two_parameters", "def compute_reward(s, t):\n    return s.ee_pos[:, 0], {}\n", "exactly one parameter"),
    ("syntax_error", "def compute_reward(s):\n    return torch.norm(s.ee_pos\n", "syntax error"),
    ("misspelled_field", body("return s.ee_position[:, 0], {}"), "no field 'ee_position'"),
    ("decorator", "@torch.no_grad()\n" + body(OK_TAIL), "decorators"),
    ("math_escape", body("x = math.sys\n" + OK_TAIL), "math.sys is not allowed"),
    ("rebind_torch", body("torch = None\n" + OK_TAIL), "may not be reassigned"),
    ("huge_code", body("x = 1\n" * 5000 + OK_TAIL), "the limit is"),
]


@pytest.mark.parametrize("code, reason", [c[1:] for c in STATIC_CASES], ids=[c[0] for c in STATIC_CASES])
def test_static_check_rejects_hostile_and_broken_code(code, reason):
    with pytest.raises(RewardRejected) as err:
        check_static(code)
    assert err.value.stage == "static"
    assert reason in err.value.reason
    assert "\n" not in err.value.reason


# Pass the static check, fail (or are contained) when run on real states in the limited subprocess.
SMOKE_CASES = [
    ("endless_loop", body("while True:\n    x = 1\n" + OK_TAIL), "CPU time"),
    ("memory_bomb_tensor", body("x = torch.ones(10 ** 11)\nreturn x, {}"), "memory limit"),
    ("memory_bomb_list", body("x = []\nfor i in range(10 ** 6):\n    x.append(torch.ones(2 ** 20))\n" + OK_TAIL),
     "memory limit"),
    ("recursion_bomb", body("return compute_reward(s)"), "recursion"),
    ("wrong_shape_column", body("return s.ee_pos[:, :1], {}"), "shape"),
    ("wrong_shape_scalar", body("return s.ee_pos.sum(), {}"), "shape"),
    ("integer_total", body("return s.episode_step, {}"), "floating-point"),
    ("bool_total", body("return s.ee_pos[:, 2] > 0.1, {}"), "floating-point"),
    ("nan_total", body("return s.ee_pos[:, 0] * float('nan'), {}"), "non-finite"),
    ("inf_component", body("c = s.ee_pos[:, 0] / 0.0\nreturn s.ee_pos[:, 0], {'bad': c}"), "non-finite"),
    ("components_not_dict", body("return s.ee_pos[:, 0], [s.ee_pos[:, 1]]"), "components must be a dict"),
    ("single_tensor", body("return s.ee_pos[:, 0]"), "must return a tuple"),
    ("raises", body("raise ValueError('the reward gave up')"), "ValueError: the reward gave up"),
    ("missing_goal_field", body("return torch.norm(s.ee_pos - s.goal_pos, dim=-1), {}"), "NoneType"),
]


@pytest.mark.parametrize("code, reason", [c[1:] for c in SMOKE_CASES], ids=[c[0] for c in SMOKE_CASES])
def test_smoke_run_contains_what_the_static_check_cannot_see(code, reason, task, states, tmp_path):
    check_static(code)  # these pass the static gate ...
    candidate = tmp_path / "candidate"
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(RewardRejected) as err:  # ... and are caught by the smoke run
        smoke_test(code, task, candidate, states=states, timeout_s=30, cpu_s=5)
    assert err.value.stage == "smoke"
    assert reason in err.value.reason
    assert list(outside.iterdir()) == []
    assert {p.name for p in candidate.iterdir()} <= {"smoke_states.pt", "smoke_code.py", "smoke.json"}


def test_at_least_thirty_hostile_or_broken_bodies():
    assert len(STATIC_CASES) + len(SMOKE_CASES) >= 30


@pytest.mark.parametrize("name", ["so101_reach", "so101_lift", "so101_pick_place"])
def test_reference_rewards_pass_validation(name, tmp_path):
    spec = load_task(name)
    stats = validate_reward(spec.reference_reward_body(), spec, tmp_path)
    assert set(stats["components"]) == {t.name for t in spec.reward}


def test_restricted_loader_matches_trusted_compile(task, states):
    code = task.reference_reward_body()
    total, parts = load_reward_fn(code)(states)
    total_ref, parts_ref = compile_reward(code)(states)
    assert torch.equal(total, total_ref) and parts.keys() == parts_ref.keys()


def test_restricted_loader_has_no_dangerous_builtins():
    fn = load_reward_fn(body("return s.ee_pos[:, 0], {'n': s.ee_pos[:, 0] * len([1, 2])}"))
    safe = fn.__globals__["__builtins__"]
    assert "open" not in safe and "getattr" not in safe and "exec" not in safe
    with pytest.raises(ImportError, match="not allowed"):
        safe["__import__"]("os")

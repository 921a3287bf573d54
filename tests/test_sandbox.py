"""Reward code from an LLM is hostile until proven otherwise: every case here must be rejected or contained,
with a clear reason, and nothing may be written outside the candidate folder."""

import builtins
import errno
import json
import math
import socket
import subprocess
import sys
import textwrap
import types
import warnings

import pytest
import torch

from robosmith.contract.state import SimState
from robosmith.execution.confine import landlock_abi, sandbox_preexec
from robosmith.execution.smoke import sample_states, smoke_test, validate_reward
from robosmith.reward.check import MATH_ALLOWED, TORCH_ALLOWED, TORCH_SUBMODULES, RewardRejected, check_static
from robosmith.reward.judge import evaluate_in_process
from robosmith.reward.load import SAFE_BUILTINS, load_reward
from robosmith.task import load_task


@pytest.fixture(scope="module")
def task():
    return load_task("so101_lift")


@pytest.fixture(scope="module")
def states(task):
    return sample_states(task, num_envs=16)


def body(src: str) -> str:
    return "def compute_reward(s):\n" + textwrap.indent(textwrap.dedent(src).strip(), "    ") + "\n"


OK_TAIL = "return s.ee_pos[:, 0], {}"
# Bodies that try to write somewhere name this file; the tests put it outside the candidate folder.
PWNED = "PWNED_PATH"

# Rejected by the static check: never run at all. (id, code, what the reason must say)
STATIC_CASES = [
    # imports, files, the interpreter
    ("import_os", body("import os\n" + OK_TAIL), "import statements are not allowed"),
    ("from_subprocess", body("from subprocess import run\n" + OK_TAIL), "import statements"),
    ("dunder_import_socket", body("m = __import__('socket')\n" + OK_TAIL), "__import__"),
    ("pathlib_via_dunder_import", body(f"__import__('pathlib').Path('{PWNED}').write_text('x')\n" + OK_TAIL),
     "__import__"),
    ("open_read", body("x = open('/etc/passwd').read()\n" + OK_TAIL), "open is not allowed"),
    ("open_write", body(f"open('{PWNED}', 'w').write('x')\n" + OK_TAIL), "open is not allowed"),
    ("with_open", body(f"with open('{PWNED}', 'w') as f:\n    f.write('x')\n" + OK_TAIL), "not allowed"),
    ("torch_save", body(f"torch.save(s.ee_pos, '{PWNED}')\n" + OK_TAIL), "torch.save is not allowed"),
    ("torch_load", body("x = torch.load('/etc/passwd')\n" + OK_TAIL), "torch.load is not allowed"),
    ("torch_from_file", body("x = torch.from_file('/etc/passwd')\n" + OK_TAIL), "torch.from_file"),
    ("torch_hub", body("m = torch.hub.load('a', 'b')\n" + OK_TAIL), "torch.hub"),
    ("torch_ops", body("x = torch.ops.aten\n" + OK_TAIL), "torch.ops"),
    ("torch_C", body("x = torch._C\n" + OK_TAIL), "underscore"),
    ("torch_cuda", body("torch.cuda.init()\n" + OK_TAIL), "torch.cuda"),
    ("torch_linalg_not_listed", body("x = torch.linalg.lstsq(s.ee_pos, s.ee_pos)\n" + OK_TAIL), "torch.linalg.lstsq"),
    ("eval", body("x = eval('1 + 1')\n" + OK_TAIL), "eval is not allowed"),
    ("exec", body("exec('import os')\n" + OK_TAIL), "exec is not allowed"),
    ("compile", body("c = compile('1', 'f', 'eval')\n" + OK_TAIL), "compile is not allowed"),
    ("globals", body("g = globals()\n" + OK_TAIL), "globals is not allowed"),
    ("vars", body("v = vars(s)\n" + OK_TAIL), "vars is not allowed"),
    ("breakpoint", body("breakpoint()\n" + OK_TAIL), "breakpoint is not allowed"),
    ("print", body("print('hello')\n" + OK_TAIL), "print is not allowed"),
    ("unknown_call", body("x = frozenset([3, 1])\n" + OK_TAIL), "frozenset is not defined"),
    # the object graph: dunders, introspection, aliases of torch that dodge the allowlist
    ("subclasses", body("x = ().__class__.__bases__[0].__subclasses__()\n" + OK_TAIL), "underscore"),
    ("func_globals", body("g = compute_reward.__globals__\n" + OK_TAIL), "underscore"),
    ("state_class", body("c = s.__class__\n" + OK_TAIL), "underscore"),
    ("builtins_name", body("b = __builtins__\n" + OK_TAIL), "underscore"),
    ("type_of_state", body("t = type(s)\n" + OK_TAIL), "type is not allowed"),
    ("object_base", body("o = object\n" + OK_TAIL), "object is not allowed"),
    ("getattr_escape", body("f = getattr(torch, 'load')\n" + OK_TAIL), "getattr is not allowed"),
    ("alias_torch_os", body(f"t = torch\nt.os.system('touch {PWNED}')\n" + OK_TAIL), "torch may only be used"),
    ("torch_in_a_list", body(f"m = [torch][0]\nm.os.system('touch {PWNED}')\n" + OK_TAIL), "torch may only be used"),
    ("torch_as_argument",
     "def helper(m):\n    return m.os\n" + body(f"helper(torch).system('touch {PWNED}')\n" + OK_TAIL),
     "torch may only be used"),
    ("lambda_closure_returns_torch", body(f"f = lambda: torch\nf().save(s.ee_pos, '{PWNED}')\n" + OK_TAIL),
     "lambda is not allowed"),
    ("lambda_dunder", body("f = lambda: (1).__class__\n" + OK_TAIL), "lambda is not allowed"),
    ("submodule_alias", body(f"f = torch.nn.functional\nf.torch.save(s.ee_pos, '{PWNED}')\n" + OK_TAIL),
     "is a module"),
    ("math_alias", body("m = math\n" + OK_TAIL), "math may only be used"),
    ("math_escape", body("x = math.sys\n" + OK_TAIL), "math.sys is not allowed"),
    ("generator_frame_globals",
     body(f"g = (g.gi_frame.f_back.f_back.f_globals for i in [1])\nlist(g)[0]['os'].system('touch {PWNED}')\n"
          + OK_TAIL), ".f_globals is not allowed"),
    ("generator_frame", body("fr = (i for i in [1]).gi_frame\n" + OK_TAIL), ".gi_frame is not allowed"),
    ("numpy_escape", body("a = s.ee_pos.numpy()\n" + OK_TAIL), ".numpy is not allowed"),
    ("storage_escape", body("a = s.ee_pos.untyped_storage()\n" + OK_TAIL), ".untyped_storage is not allowed"),
    ("format_string_trick", body("x = '{0.__class__}'.format(s)\n" + OK_TAIL), "not allowed"),
    ("dunder_in_string", body("x = '__globals__'\n" + OK_TAIL), "'__'"),
    ("format_method", body("x = '{}'.format(s)\n" + OK_TAIL), ".format is not allowed"),
    ("format_map", body("x = '{a}'.format_map({'a': s})\n" + OK_TAIL), ".format_map is not allowed"),
    ("match_class_pattern", body("match s:\n    case int(real=r):\n        pass\n" + OK_TAIL), "match statements"),
    # writes to shared objects
    ("monkeypatch_torch", body("torch.abs = torch.exp\n" + OK_TAIL), "assigning or deleting attributes"),
    ("state_attribute_write", body("s.ee_pos = s.joint_pos\n" + OK_TAIL), "assigning or deleting attributes"),
    ("state_subscript_write", body("s.ee_pos[:, 0] = 0.0\n" + OK_TAIL), "must not change s"),
    ("rebind_torch", body("torch = None\n" + OK_TAIL), "may not be reassigned"),
    ("shadow_torch_parameter", "def helper(torch):\n    return torch.os\n" + body(OK_TAIL), "may not be reassigned"),
    ("global_stmt", body("global counter\n" + OK_TAIL), "global statements"),
    # shapes of code that is not a plain function
    ("yield", body("yield s.ee_pos[:, 0]"), "yield is not allowed"),
    ("async_def", "async def compute_reward(s):\n    return s.ee_pos[:, 0], {}\n", "only function definitions"),
    ("try_hides_errors", body("try:\n    x = 1\nexcept Exception:\n    x = 2\n" + OK_TAIL), "try statements"),
    ("try_star", body("try:\n    x = 1\nexcept* ValueError:\n    x = 2\n" + OK_TAIL), "try statements"),
    ("class_def", "class A:\n    pass\n" + body(OK_TAIL), "only function definitions"),
    ("top_level_code", f"x = open('{PWNED}', 'w')\n" + body(OK_TAIL), "only function definitions"),
    ("underscore_function", "def _helper(x):\n    return x\n" + body(OK_TAIL), "underscore"),
    ("decorator", "@torch.no_grad()\n" + body(OK_TAIL), "decorators"),
    ("no_compute_reward", "def reward(s):\n    return s.ee_pos[:, 0], {}\n", "no compute_reward"),
    ("two_parameters", "def compute_reward(s, t):\n    return s.ee_pos[:, 0], {}\n", "exactly one parameter"),
    ("keyword_only_parameter", "def compute_reward(s, *, k=1):\n    return s.ee_pos[:, 0], {}\n",
     "exactly one parameter"),
    ("syntax_error", "def compute_reward(s):\n    return torch.norm(s.ee_pos\n", "syntax error"),
    ("null_byte", body(OK_TAIL) + "\x00", "syntax error"),
    ("misspelled_field", body("return s.ee_position[:, 0], {}"), "no field 'ee_position'; fields: joint_pos"),
    ("huge_code", body("x = 1\n" * 5000 + OK_TAIL), "the limit is"),
    # loops that might not end, and recursion: rejected before they run
    ("endless_loop", body("while True:\n    x = 1\n" + OK_TAIL), "while loops are not allowed"),
    ("memory_bomb_list", body("x = []\nfor i in range(10 ** 6):\n    x.append(torch.ones(2 ** 20))\n" + OK_TAIL),
     "range() needs bounds"),
    ("recursion_bomb", body("return compute_reward(s)"), "functions may not call themselves"),
    ("tensor_type_by_name", body("x = s.ee_pos.type('os.system')\n" + OK_TAIL), ".type is not allowed"),
]


@pytest.mark.parametrize("code, reason", [c[1:] for c in STATIC_CASES], ids=[c[0] for c in STATIC_CASES])
def test_static_check_rejects_hostile_and_broken_code(code, reason, tmp_path):
    target = tmp_path / "pwned"
    with pytest.raises(RewardRejected) as err:
        check_static(code.replace(PWNED, str(target)))
    assert err.value.stage == "static"
    assert reason in err.value.reason
    assert "\n" not in err.value.reason
    with pytest.raises(RewardRejected):  # the loader used by training applies the same check
        load_reward(code.replace(PWNED, str(target)))
    assert not target.exists()


# Pass the static check, fail (or are contained) when run on real states in the limited subprocess.
SMOKE_CASES = [
    ("cpu_bomb", body("x = 0\nfor i in range(10000):\n    for j in range(10000):\n        x = x + i * j\n" + OK_TAIL),
     "CPU time"),
    ("memory_bomb_tensor", body("x = torch.ones(10 ** 11)\nreturn x, {}"), "memory limit"),
    ("memory_bomb_bounded_list", body("x = []\nfor i in range(10000):\n    x.append(torch.ones(2 ** 20))\n"
                                      + OK_TAIL), "memory limit"),
    ("raises", body("x = 1\nraise ValueError('the reward gave up')"), "line 3: ValueError: the reward gave up"),
    ("in_place_change_of_state", body("p = s.ee_pos[:, 2]\np -= 0.1\nreturn p, {}"), "changed s.ee_pos in place"),
    ("divide_by_episode_step", body("return 1.0 / s.episode_step.float(), {}"), "non-finite"),
]


@pytest.mark.parametrize("code, reason", [c[1:] for c in SMOKE_CASES], ids=[c[0] for c in SMOKE_CASES])
def test_smoke_run_contains_what_the_static_check_cannot_see(code, reason, task, states, tmp_path):
    check_static(code)  # these pass the static gate ...
    candidate = tmp_path / "candidate"
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(RewardRejected) as err:  # ... and are caught by the smoke run
        smoke_test(code, task, candidate, states=states, timeout_s=60, cpu_s=10)
    assert err.value.stage == "smoke"
    assert reason in err.value.reason
    assert "\n" not in err.value.reason
    assert list(outside.iterdir()) == []
    assert {p.name for p in candidate.iterdir()} <= {"smoke_states.pt", "smoke_code.py", "smoke.json"}
    assert reason in json.loads((candidate / "smoke.json").read_text())["reason"]  # the verdict stays in the folder


# Harmless but broken: what they return breaks the contract. The worker's judgement is the same function run
# in this process, so these skip the subprocess (its start costs seconds each on two cores).
CONTRACT_CASES = [
    ("missing_goal_field", body("return torch.norm(s.ee_pos - s.goal_pos, dim=-1), {}"), "line 2: TypeError"),
    ("wrong_shape_column", body("return s.ee_pos[:, :1], {}"), "shape (64,)"),
    ("wrong_shape_scalar", body("return s.ee_pos.sum(), {}"), "shape (64,)"),
    ("integer_total", body("return s.episode_step, {}"), "floating-point"),
    ("bool_total", body("return s.ee_pos[:, 2] > 0.1, {}"), "floating-point"),
    ("nan_total", body("return s.ee_pos[:, 0] * float('nan'), {}"), "non-finite"),
    ("inf_component", body("c = s.ee_pos[:, 0] / 0.0\nreturn s.ee_pos[:, 0], {'bad': c}"), "non-finite"),
    ("integer_component", body("return s.ee_pos[:, 0], {'step': s.episode_step}"), "must be a float tensor"),
    ("components_not_dict", body("return s.ee_pos[:, 0], [s.ee_pos[:, 1]]"), "components must be a dict"),
    ("empty_component_name", body("return s.ee_pos[:, 0], {'': s.ee_pos[:, 0]}"), "component names"),
    ("quote_in_component_name", body("return s.ee_pos[:, 0], {'a\"\"\"b': s.ee_pos[:, 0]}"), "component names"),
    ("too_many_components",
     body("c = {}\nfor i in range(40):\n    c['c' + 'x' * i] = s.ee_pos[:, 0]\nreturn s.ee_pos[:, 0], c"),
     "at most 32 components"),
    ("single_tensor", body("return s.ee_pos[:, 0]"), "must return a tuple"),
    ("three_tuple", body("return s.ee_pos[:, 0], {}, 1"), "must return a tuple"),
]


@pytest.mark.parametrize("code, reason", [c[1:] for c in CONTRACT_CASES], ids=[c[0] for c in CONTRACT_CASES])
def test_output_contract_is_enforced(code, reason, states):
    check_static(code)
    result = evaluate_in_process(code, states)
    assert result["ok"] is False
    assert reason in result["reason"] and "\n" not in result["reason"]


def test_at_least_thirty_hostile_or_broken_bodies():
    ids = [c[0] for c in STATIC_CASES + SMOKE_CASES + CONTRACT_CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", ["so101_reach", "so101_lift", "so101_pick_place"])
def test_reference_rewards_pass_validation(name, tmp_path):
    spec = load_task(name)
    stats = validate_reward(spec.reference_reward_body(), spec, tmp_path)
    assert set(stats["components"]) == {t.name for t in spec.reward}
    assert stats["num_states"] == 4 * 64  # reset plus three snapshots of 64 environments, the last at the end
    for part in [stats["total"], *stats["components"].values()]:
        assert part["min"] <= part["mean"] <= part["max"]


def test_sampled_states_cover_the_whole_episode(task, states):
    assert states.num_envs == 4 * 16
    assert int((states.episode_step == 0).sum()) == 16
    assert int((states.episode_step == task.episode_length).sum()) == 16  # the step success is read at
    assert states.goal_pos is None and states.object_pos.shape == (64, 3)  # lift has a cube but no goal
    assert all(bool(torch.isfinite(getattr(states, f)).all()) for f in states.present_fields())


def test_restricted_loader_has_no_dangerous_builtins():
    fn = load_reward(body("return s.ee_pos[:, 0], {'n': s.ee_pos[:, 0] * len([1, 2])}"))
    safe = fn.__globals__["__builtins__"]
    assert "open" not in safe and "getattr" not in safe and "exec" not in safe
    with pytest.raises(ImportError, match="not allowed"):
        safe["__import__"]("os")


def _static_ok(attr: str) -> bool:
    try:
        check_static(body(f"y = x.{attr}\n" + OK_TAIL))
    except RewardRejected:
        return False
    return True


def test_no_module_frame_or_code_is_reachable_through_allowed_attributes():
    """Walk every attribute the static check lets through, from every kind of object a reward can hold, and
    make sure none leads to a module, a frame, code or a dangerous builtin (the ways out of the sandbox)."""

    def local_function():
        return 1

    s = SimState.zeros(4, has_object=True, has_goal=True)
    roots = [s, s.ee_pos, s.episode_step.long(), s.ee_pos > 0, s.ee_pos.dtype, s.ee_pos.device, s.ee_pos.shape,
             s.ee_pos.max(dim=0), (i for i in [1]), lambda: 1, local_function, {}, {}.values(), {}.items(), [], (),
             "text", b"bytes", 1, 1.0, True, None, range(3), zip(), enumerate([]), ValueError("x")]
    roots += [v for k, v in SAFE_BUILTINS.items() if not k.startswith("_")]
    roots += [getattr(torch, n) for n in TORCH_ALLOWED if n not in TORCH_SUBMODULES]
    roots += [getattr(torch.linalg, n) for n in TORCH_SUBMODULES["linalg"]]
    roots += [getattr(torch.nn.functional, n) for n in TORCH_SUBMODULES["functional"]]
    roots += [getattr(math, n) for n in MATH_ALLOWED]
    escapes = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)
    dangerous = {id(f) for f in (eval, exec, open, getattr, setattr, compile, builtins.__import__, torch.load)}
    allowed: dict[str, bool] = {}
    seen, queue, found = set(), [(r, type(r).__name__) for r in roots], []
    while queue:
        obj, path = queue.pop()
        key = ("class", obj) if isinstance(obj, type) else type(obj)
        if key in seen:
            continue
        seen.add(key)
        for name in dir(obj):
            if name.startswith("_") or not allowed.setdefault(name, _static_ok(name)):
                continue
            try:
                with warnings.catch_warnings():  # deprecated properties (x.T on 1-d tensors) warn
                    warnings.simplefilter("ignore")
                    value = getattr(obj, name)
            except Exception:  # noqa: BLE001 - properties that do not apply to this object
                continue
            if isinstance(value, escapes) or id(value) in dangerous:
                found.append(f"{path}.{name}")
            queue.append((value, f"{path}.{name}"))
    assert found == []
    assert len(seen) > 20  # the walk did reach tensors, dtypes, generators, ...


# Raw Python, run under the smoke run's OS limits as if it had slipped past the static check.
ESCAPED = """
import json, os, socket, sys
outside, port, out = sys.argv[1], int(sys.argv[2]), {}
def attempt(key, action):
    try:
        action()
        out[key] = "done"
    except OSError as e:
        out[key] = e.errno
attempt("write_outside", lambda: open(outside, "w").write("x"))
attempt("write_inside", lambda: open("inside.txt", "w").write("x"))
attempt("write_big", lambda: open("big.bin", "wb").write(b"0" * (32 << 20)))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=3))
attempt("signal_parent", lambda: os.kill(os.getppid(), 0))
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the OS layer is Linux-only")
def test_os_limits_contain_code_that_escaped_the_static_check(tmp_path):
    candidate, outside = tmp_path / "candidate", tmp_path / "outside"
    candidate.mkdir()
    outside.mkdir()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", ESCAPED, str(outside / "pwned"), str(server.getsockname()[1])],
            cwd=candidate, capture_output=True, text=True, timeout=60,
            preexec_fn=sandbox_preexec(candidate, cpu_s=10, memory_mb=1024),
        )
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["write_inside"] == "done"
    assert out["write_big"] == errno.EFBIG  # RLIMIT_FSIZE
    abi = landlock_abi()
    if abi == 0:
        pytest.skip("no Landlock in this kernel: only the static check keeps writes inside the candidate folder")
    assert out["write_outside"] == errno.EACCES and not (outside / "pwned").exists()
    assert out["connect"] != "done"  # an empty network namespace, or Landlock's TCP rule from ABI 4
    if abi >= 6:
        assert out["signal_parent"] == errno.EPERM


def test_check_reward_command(tmp_path):
    from typer.testing import CliRunner

    from robosmith.cli import app

    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(load_task("so101_reach").reference_reward_body())
    bad.write_text("def compute_reward(s):\n    return s.ee_pos[:, :2], {}\n")
    ok = CliRunner().invoke(app, ["check-reward", str(good), "--task", "so101_reach"])
    assert ok.exit_code == 0 and ok.output.startswith("OK: ") and "distance" in ok.output
    rejected = CliRunner().invoke(app, ["check-reward", str(bad), "--task", "so101_reach"])
    assert rejected.exit_code == 1 and rejected.output.startswith("REJECTED (smoke check): output: total must be a ")

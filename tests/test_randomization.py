"""Domain randomization on the CPU backend: values drawn per environment at each reset, within their ranges,
following the seed, and reaching each environment's physics (or its actuation and sensing path)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robosmith.cli import app
from robosmith.robot.params import PARAMS, ParamError
from robosmith.robot.so101 import JOINT_NAMES
from robosmith.sim.batched_env import BatchedEnv, EnvConfig
from robosmith.sim.randomization import Randomizer
from robosmith.task import load_task, task_from_dict
from robosmith.task.load import load_randomization_file
from robosmith.task.spec import DRParam, RandomizedTraining, ResetConfig, SceneConfig, centred_on, with_robot_params
from robosmith.train.env import TaskEnv
from robosmith.train.success_window import WINDOW
from robosmith.train.widening import Widening

RANGES = (
    DRParam("actuator_kp", 17.8, 8.0, 24.0),
    DRParam("joint_frictionloss", 0.05, 0.0, 0.2),
    DRParam("cube_mass", 0.03, 0.01, 0.1),
    DRParam("cube_size", 0.025, 0.02, 0.035),
    DRParam("action_delay_steps", 0, 0, 3),
    DRParam("joint_zero_offset", 0.0, -0.05, 0.05),
)


def make_env(n=8, seed=0, randomization=(), **cfg):
    cfg.setdefault("nthread", 2)
    return BatchedEnv(SceneConfig(cube=True), EnvConfig(num_envs=n, seed=seed, **cfg), ResetConfig(), has_goal=True,
                      randomization=randomization)


def drawn(env):
    """What each environment got: model values read back from its own model, effects from the env."""
    m = env.models
    return {
        "actuator_kp": np.array([[mi.actuator_gainprm[mi.actuator(j).id, 0] for j in JOINT_NAMES] for mi in m]),
        "joint_frictionloss": np.array([[mi.dof_frictionloss[mi.joint(j).dofadr[0]] for j in JOINT_NAMES] for mi in m]),
        "cube_mass": np.array([mi.body_mass[mi.body("cube").id] for mi in m]),
        "cube_size": np.array([2 * mi.geom_size[mi.geom("cube").id, 0] for mi in m]),
        "action_delay_steps": env.effects["action_delay_steps"].copy(),
        "joint_zero_offset": env.effects["joint_zero_offset"].copy(),
    }


def test_values_stay_in_their_ranges_follow_the_seed_and_change_at_each_reset():
    a, b, c = make_env(seed=3, randomization=RANGES), make_env(seed=3, randomization=RANGES), make_env(
        seed=4, randomization=RANGES)
    first = drawn(a)
    for p in RANGES:
        values = first[p.name]
        assert values.min() >= p.low and values.max() <= p.high, p.name
        assert values.std() > 0, f"{p.name}: every environment drew the same value"
        np.testing.assert_array_equal(values, drawn(b)[p.name])
        assert not np.array_equal(values, drawn(c)[p.name]), p.name
    # Per joint: each joint draws its own value.
    assert np.ptp(first["actuator_kp"], axis=1).min() > 0
    assert set(np.unique(first["action_delay_steps"])) <= {0.0, 1.0, 2.0, 3.0}
    a.reset(np.array([2, 5]))
    again = drawn(a)
    changed = np.flatnonzero((again["actuator_kp"] != first["actuator_kp"]).any(axis=1))
    assert changed.tolist() == [2, 5]
    for env in (a, b, c):
        env.close()


def test_randomization_changes_nothing_else():
    plain, randomized = make_env(seed=5), make_env(seed=5, randomization=(DRParam("actuator_kp", 17.8, 8.0, 24.0),))
    np.testing.assert_array_equal(plain.state().joint_pos, randomized.state().joint_pos)
    np.testing.assert_array_equal(plain.state().object_pos[:, :2], randomized.state().object_pos[:, :2])
    plain.close()
    randomized.close()


def settled(env, steps=40):
    """Every environment in the same settled state: the first one's after holding home."""
    for _ in range(steps):
        env.step(torch.zeros(env.num_envs, 6))
    qpos, qvel = env.physical_state()
    env.set_state(np.repeat(qpos[:1], env.num_envs, 0), np.repeat(qvel[:1], env.num_envs, 0),
                  np.repeat(env.target[:1], env.num_envs, 0))


def joint_trajectory(env, action, steps):
    out = []
    for _ in range(steps):
        s, _ = env.step(action)
        out.append(s.joint_pos.numpy().copy())
    return np.stack(out)  # (steps, N, 6)


def test_a_delay_of_k_steps_shifts_the_response_by_k_steps():
    env = make_env(4, action_mode="absolute", action_scale=1.0)
    settled(env)
    env.set_physics({"action_delay_steps": np.array([0, 1, 3, 0])})
    action = torch.tensor([[0.4, 0.3, -0.3, 0.2, 0.0, 0.0]] * 4)
    traj = joint_trajectory(env, action, 12)
    moved = np.abs(traj[:, 0] - traj[0, 3]).max()
    assert moved > 0.1  # the step response is large ...
    for env_id, k in ((1, 1), (2, 3)):
        # ... and the delayed arm does the very same thing k control periods later.
        np.testing.assert_allclose(traj[k:, env_id], traj[: 12 - k, 0], atol=2e-3)
        assert np.abs(traj[k - 1, env_id] - traj[k - 1, 0]).max() > 0.02
    env.close()


def test_a_slow_servo_lags_more_and_a_heavy_or_larger_cube_is_really_there():
    env = make_env(3, action_mode="absolute", action_scale=1.0)
    settled(env)
    env.set_physics({"actuator_kp": np.array([17.8, 6.0, 17.8]), "cube_size": np.array([0.025, 0.025, 0.04]),
                     "cube_mass": np.array([0.03, 0.03, 0.2])})
    start = env.state().joint_pos.numpy()[0]
    traj = joint_trajectory(env, torch.tensor([[0.5, 0.4, -0.4, 0.3, 0.0, 0.0]] * 3), 3)
    covered = np.abs(traj[-1] - start).sum(axis=1)  # how far each arm got in 0.1 s
    assert covered[1] < 0.8 * covered[0] and covered[2] == pytest.approx(covered[0], rel=0.05)
    # A fresh episode: each cube starts resting on the table at its own half size, and stays there.
    env.reset(np.arange(3))
    for _ in range(15):
        s, _ = env.step(torch.zeros(3, 6))
    np.testing.assert_allclose(s.object_pos[:, 2].numpy(), [0.0125, 0.0125, 0.02], atol=1e-3)
    assert env.models[2].body_inertia[env.models[2].body("cube").id][0] == pytest.approx(0.2 * 0.04**2 / 6)
    env.close()


def test_zero_offsets_shift_where_the_arm_goes_but_not_what_it_reports():
    env = make_env(2, action_mode="absolute", action_scale=1.0)
    offset = np.array([0.06, -0.05, 0.04, 0.05, -0.06, 0.0])
    env.set_physics({"joint_zero_offset": np.stack([np.zeros(6), offset])})
    env.reset(np.arange(2))
    s0 = env.state()
    env.set_state(np.repeat(env.physical_state()[0][:1], 2, 0), np.zeros((2, env.model.nv)))
    hold = torch.zeros(2, 6)
    for _ in range(60):
        s, _ = env.step(hold)
    true_gap = (s.joint_pos[1] - s.joint_pos[0]).numpy()
    np.testing.assert_allclose(true_gap, -offset, atol=0.01)  # driven to target - offset
    noise, reported_offset = env.sensing()
    reported = s.joint_pos + reported_offset
    np.testing.assert_allclose((reported[1] - reported[0]).numpy(), 0.0, atol=0.01)  # and reports q + offset
    assert s0.joint_pos.shape == (2, 6) and not noise
    env.close()


def test_sensor_and_action_noise_follow_their_per_environment_std():
    task = load_task("so101_lift")
    env = TaskEnv(task, lambda s: (s.joint_pos[:, 0] * 0, {}), 2, nthread=1)
    env.sim.set_physics({"joint_pos_noise": np.array([0.0, 0.05]), "object_pos_noise": np.array([0.02, 0.0])})
    reads = torch.stack([env.sensed(env.state).joint_pos for _ in range(400)]).std(dim=0).mean(dim=1)
    objects = torch.stack([env.sensed(env.state).object_pos for _ in range(400)]).std(dim=0).mean(dim=1)
    assert float(reads[0]) == 0.0 and float(reads[1]) == pytest.approx(0.05, rel=0.15)
    assert float(objects[0]) == pytest.approx(0.02, rel=0.15) and float(objects[1]) == 0.0
    # Action noise moves the servo targets of the noisy environment only.
    env.sim.set_physics({"action_noise": np.array([0.0, 0.2])})
    before = env.sim.target.copy()
    env.step(torch.zeros(2, 6))
    home = np.asarray(task.action_map().home)
    assert np.abs(env.sim.target[0] - home).max() < 1e-9 < np.abs(env.sim.target[1] - before[1]).max()
    env.close()


@pytest.mark.slow  # it trains (27 s): the fast lane keeps under its 3 minutes
def test_train_samples_the_task_randomization_and_records_it(tmp_path):
    run = tmp_path / "run"
    args = ["train", "so101_reach", "--iterations", "2", "--num-envs", "8", "--eval-episodes", "2", "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--out", str(run)])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    names = [p["name"] for p in config["randomization"]]
    assert names == [p.name for p in load_task("so101_reach").domain_randomization]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # Every reset draws one world: the 8 first ones, then one per finished episode (six joints each).
    kp = rows[0]["randomization"]["actuator_kp"]
    assert kp["n"] == 6 * (8 + rows[0]["episodes"]) and 7.0 <= kp["min"] <= kp["mean"] <= kp["max"] <= 24.0
    later = rows[1].get("randomization", {}).get("actuator_kp", {"n": 0})
    assert later["n"] == 6 * rows[1]["episodes"]

    dr = tmp_path / "dr.yaml"
    dr.write_text("- {name: action_delay_steps, nominal: 1, bounds: [0, 3]}\n")
    result = CliRunner().invoke(app, [*args, "--dr", str(dr), "--out", str(tmp_path / "dr-run")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "dr-run" / "config.json").read_text())
    assert config["randomization"] == [{"name": "action_delay_steps", "nominal": 1.0, "bounds": [0.0, 3.0]}]

    result = CliRunner().invoke(app, [*args, "--no-randomize", "--out", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["randomization"] == []
    assert "randomization" not in json.loads((tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize("text, message", [
    ("- {name: kp, nominal: 1, bounds: [0, 2]}\n", "dr.yaml[0]: 'kp' is not a physical parameter"),
    ("- {name: cube_mass, nominal: 0.03, bounds: [0.01, 3.0]}\n",
     "dr.yaml[0].bounds: [0.01, 3] must be an interval within the physical bounds of cube_mass"),
    ("- {name: cube_mass, nominal: 0.5, bounds: [0.01, 0.1]}\n", "dr.yaml[0].nominal: must be a number within"),
    ("- {name: cube_mass, bounds: [0.01, 0.1]}\n", "dr.yaml[0]: needs the keys name, nominal, bounds"),
    ("- {name: cube_mass, nominal: 0.03, bounds: [0.01, 0.1], distribution: gauss}\n",
     "dr.yaml[0].distribution: 'gauss' is not one of uniform, log_uniform"),
    ("- {name: joint_frictionloss, nominal: 0.05, bounds: [0.0, 0.2], distribution: log_uniform}\n",
     "dr.yaml[0].distribution: log_uniform needs a range of positive, not whole, numbers"),
    ("- {name: action_delay_steps, nominal: 1, bounds: [1, 3], distribution: log_uniform}\n",
     "dr.yaml[0].distribution: log_uniform needs a range of positive, not whole, numbers"),
    ("- {name: action_delay_steps, nominal: 0.5, bounds: [0.2, 0.8]}\n", "holds no whole number of control steps"),
    ("cube_mass: [0.01\n", "dr.yaml: not valid YAML"),
    ("{a: 1}\n", "dr.yaml: must be a list of {name, nominal, bounds}"),
])
def test_bad_randomization_files_get_one_line(tmp_path, text, message):
    dr = tmp_path / "dr.yaml"
    dr.write_text(text)
    result = CliRunner().invoke(app, ["train", "so101_reach", "--dr", str(dr), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_every_effect_and_model_parameter_can_be_randomized():
    ranges = tuple(DRParam(name, e.low, e.low, e.low + (e.high - e.low) / 4) for name, e in PARAMS.items())
    env = make_env(3, randomization=ranges)
    values = drawn(env)
    for p in ranges:
        if p.name in values:
            assert p.low <= values[p.name].min() and values[p.name].max() <= p.high, p.name
    high = {r.name: r.high for r in ranges}
    for name in ("action_noise", "joint_pos_noise", "object_pos_noise"):
        assert (env.effects[name] > 0).all() and (env.effects[name] <= high[name]).all()
    assert np.allclose([m.body_mass[m.body("cube").id] for m in env.models], values["cube_mass"])
    env.close()


def test_set_state_holds_the_arm_where_it_is_through_offsets_and_delay():
    env = make_env(2, action_mode="absolute", action_scale=1.0)
    settled(env)
    env.set_physics({"joint_zero_offset": np.array([[0.1, -0.08, 0.06, 0.0, 0.0, 0.0]] * 2),
                     "action_delay_steps": np.array([0, 2])})
    qpos, qvel = env.physical_state()
    readings = qpos[:, :6] + env.effects["joint_zero_offset"]  # what the arm reports, hence what it is told
    env.set_state(qpos, qvel, readings)
    for _ in range(4):
        s, _ = env.step_targets(readings)
    moved = s.joint_pos.numpy() - qpos[:, :6]
    assert np.abs(moved).max() < 0.03  # only the sag of a servo asked to hold where gravity pulls, not an offset
    np.testing.assert_allclose(moved[1], moved[0], atol=2e-3)  # and the delayed arm held the same targets
    env.close()


def test_masses_set_per_environment_keep_contacts_stable():
    """Masses and inertias enter constants MuJoCo derives at compile time; without recomputing them a heavier
    cube set per environment made contacts blow up under a flailing arm (seen in the robustness suites)."""
    env = make_env(32, action_mode="absolute", action_scale=1.5)
    env.set_physics({"cube_mass": 0.07, "cube_size": 0.022, "joint_armature": 0.04, "link_mass_scale": 1.5})
    compiled = BatchedEnv(SceneConfig(cube=True, cube_mass=0.07, cube_size=0.022), EnvConfig(num_envs=1, nthread=1),
                          ResetConfig(), has_goal=True)
    cube = env.model.body("cube").id
    np.testing.assert_allclose(env.models[0].body_invweight0[cube], compiled.model.body_invweight0[cube], rtol=1e-6)
    gen = torch.Generator().manual_seed(0)
    for _ in range(240):
        env.step(torch.rand(32, 6, generator=gen) * 2 - 1)
    assert env.unstable_resets == 0
    env.close()
    compiled.close()


def test_widening_ranges_start_at_the_nominal_world_and_grow_with_training_success():
    spec = load_task("so101_lift")
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, randomized=RandomizedTraining(
        widen_from=0.0, widen_step=0.5, widen_at=0.6)))
    widening = Widening.for_run(spec, randomize=True)
    assert Widening.for_run(spec, randomize=False) is None
    assert Widening.for_run(load_task("so101_lift"), randomize=True) is None  # whole ranges from the start
    env = TaskEnv(spec, lambda s: (s.joint_pos[:, 0], {}), 8, randomize=True, widening=widening)
    kp = spec.domain_randomization[0]
    assert kp.name == "actuator_kp"
    first = drawn(env.sim)
    np.testing.assert_allclose(first["actuator_kp"], kp.nominal)
    assert not first["action_delay_steps"].any() and not first["joint_zero_offset"].any()
    # Stepping through an episode counts every environment's ended episode towards the width it was drawn at.
    for _ in range(spec.episode_length):
        env.step(torch.zeros(8, 6))
    assert int(widening.window.episodes) == 8 and int(widening.window.successes) == 0
    widening.window.episodes.zero_()

    def iteration(successes, episodes, drawn_at=None):
        # Episodes that end in worlds drawn at `drawn_at` (default: the current width).
        width = widening.width if drawn_at is None else drawn_at
        widening.record(torch.arange(episodes) < successes, torch.ones(episodes, dtype=torch.bool),
                        torch.full((episodes,), width, dtype=torch.float64))
        return env.pop_stats()[1]["randomization_width"]

    # Below widen_at, and a window not yet full, keep the width; ten iterations at 60% widen by one step.
    assert [iteration(5, 10) for _ in range(WINDOW)] == [0.0] * WINDOW
    assert [iteration(6, 10) for _ in range(WINDOW - 1)] == [0.0] * (WINDOW - 1)
    assert iteration(6, 10) == 0.0 and env.sim.randomizer.width == 0.5
    env.sim.reset(np.arange(8))
    assert (env.sim.drawn_width == 0.5).all()
    half = drawn(env.sim)["actuator_kp"]
    low, high = kp.nominal - 0.5 * (kp.nominal - kp.low), kp.nominal + 0.5 * (kp.high - kp.nominal)
    assert low <= half.min() < kp.nominal < half.max() <= high
    # Episodes still running in worlds drawn before the step do not judge the wider ranges.
    assert [iteration(10, 10, drawn_at=0.0) for _ in range(2 * WINDOW)] == [0.5] * (2 * WINDOW)
    assert [iteration(10, 10) for _ in range(2 * WINDOW)][-1] == 1.0 and env.sim.randomizer.width == 1.0
    env.close()


def test_widening_in_steps_of_a_tenth_reaches_exactly_the_whole_ranges_after_ten_steps():
    widening = Widening(0.0, 0.1, 0.5)
    widths = []
    while widening.width < 1.0 and len(widths) < 200:
        widening.record(torch.ones(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool),
                        torch.full((4,), widening.width, dtype=torch.float64))
        widths.append(widening.end_iteration()["randomization_width"])
    assert len(widths) == 10 * WINDOW and widening.width == 1.0


def test_a_narrowed_whole_number_range_keeps_whole_numbers_about_its_nominal_value():
    randomizer = Randomizer((DRParam("action_delay_steps", 1.5, 0, 3),), seed=0)
    randomizer.width = 0.0
    assert set(randomizer.sample(50)["action_delay_steps"]) == {2.0}
    randomizer.width = 0.4  # 0.9 to 2.1 steps
    assert set(randomizer.sample(200)["action_delay_steps"]) == {1.0, 2.0}
    randomizer.width = 1.0
    assert set(randomizer.sample(200)["action_delay_steps"]) == {0.0, 1.0, 2.0, 3.0}


def test_whole_numbers_widen_gradually_and_are_equally_likely_over_the_whole_range():
    # A lag of 0 in [0, 3] steps: one more step of lag reaches a growing share of worlds, not half of them at once.
    randomizer = Randomizer((DRParam("action_delay_steps", 0, 0, 3),), seed=0)
    shares = []
    for width in (0.1, 0.2, 0.3):
        randomizer.width = width
        shares.append(float((randomizer.sample(4000)["action_delay_steps"] > 0).mean()))
    assert shares[0] == 0.0 and 0.15 < shares[1] < 0.35 and shares[1] < shares[2] < 0.6, shares
    randomizer.width = 1.0
    counts = np.bincount(randomizer.sample(8000)["action_delay_steps"].astype(int), minlength=4)
    assert len(counts) == 4 and (np.abs(counts / 8000 - 0.25) < 0.03).all(), counts
    # Bounds between whole numbers hold the whole numbers inside them, each as likely, whatever the width.
    for width in (0.99, 1.0):
        randomizer = Randomizer((DRParam("action_delay_steps", 2, 0.5, 3),), seed=0)
        randomizer.width = width
        counts = np.bincount(randomizer.sample(9000)["action_delay_steps"].astype(int), minlength=4)
        assert counts[0] == 0 and (np.abs(counts[1:] / 9000 - 1 / 3) < 0.03).all(), (width, counts)




def test_log_uniform_ranges_draw_as_many_values_in_each_decade_part_and_widen_in_the_logarithm(tmp_path):
    mass = DRParam("cube_mass", 0.03, 0.01, 0.1, "log_uniform")
    randomizer = Randomizer((mass, DRParam("cube_friction", 1.0, 0.4, 1.5)), seed=0)
    values = randomizer.sample(20000)["cube_mass"]
    assert values.min() >= 0.01 and values.max() <= 0.1
    # Half the draws below the geometric middle (31.6 g); uniform draws would put 24% there.
    assert abs(float((values < np.sqrt(0.01 * 0.1)).mean()) - 0.5) < 0.02
    assert abs(float((values < 0.03).mean()) - np.log(3) / np.log(10)) < 0.02
    randomizer.width = 0.5  # half of the way in the logarithm: 0.03 x (1/3)^0.5 to 0.03 x (10/3)^0.5
    narrowed = randomizer.sample(4000)["cube_mass"]
    assert narrowed.min() >= 0.03 / np.sqrt(3) - 1e-12 and narrowed.max() <= 0.03 * np.sqrt(10 / 3) + 1e-12
    assert narrowed.min() < 0.0185 and narrowed.max() > 0.053
    randomizer.width = 0.0
    np.testing.assert_allclose(randomizer.sample(8)["cube_mass"], 0.03)
    # The distribution is in the file's schema, the run's config and a range centred on a robot-params file.
    dr = tmp_path / "dr.yaml"
    dr.write_text("- {name: cube_mass, nominal: 0.03, bounds: [0.01, 0.1], distribution: log_uniform}\n")
    assert load_randomization_file(dr) == (mass,)
    assert mass.as_dict()["distribution"] == "log_uniform" and "distribution" not in RANGES[0].as_dict()
    assert centred_on((mass,), {"cube_mass": 0.05}) == (DRParam("cube_mass", 0.05, 0.01, 0.1, "log_uniform"),)
    friction = DRParam("joint_frictionloss", 0.05, 0.01, 0.2, "log_uniform")
    with pytest.raises(ParamError, match="joint_frictionloss: 0 lies outside the task's log-uniform range"):
        centred_on((friction,), {"joint_frictionloss": [0.0, 0.1, 0.1, 0.05, 0.05, 0.05]})


def test_ranges_centre_on_a_robot_params_file_so_widening_starts_from_that_arm():
    friction = [0.05, 0.1, 0.1, 0.05, 0.05, 0.05]
    task = with_robot_params(load_task("so101_lift"), {"actuator_kp": 9.0, "joint_frictionloss": friction,
                                                       "cube_mass": 0.2})
    ranges = {p.name: p for p in task.domain_randomization}
    assert ranges["actuator_kp"] == DRParam("actuator_kp", 9.0, 7.0, 24.0)
    assert ranges["joint_frictionloss"].nominal == pytest.approx(np.mean(friction))
    assert ranges["cube_mass"] == DRParam("cube_mass", 0.2, 0.01, 0.2)  # beyond the task's range: it grows
    # Six equal values at a bound centre the range on that bound exactly, and the run's saved task reads back.
    at_bound = with_robot_params(load_task("so101_lift"), {"joint_frictionloss": [0.2] * 6})
    assert task_from_dict(at_bound.to_dict()).domain_randomization == at_bound.domain_randomization
    randomizer = Randomizer(task.domain_randomization, seed=0)
    randomizer.width = 0.0
    drawn_at_start = randomizer.sample(4)
    np.testing.assert_allclose(drawn_at_start["actuator_kp"], 9.0)
    np.testing.assert_allclose(drawn_at_start["cube_mass"], 0.2)

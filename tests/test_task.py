"""Task files: the library loads, and malformed files stop with one line naming the file and the field."""

from pathlib import Path

import pytest
import torch
import yaml

from robosmith.contract.state import SimState
from robosmith.reward import RewardTerm, load_reward, terms_to_body
from robosmith.task import TASKS_DIR, TaskError, available_tasks, eval_success, load_task, task_from_dict


@pytest.mark.parametrize("name", ["so101_reach", "so101_lift", "so101_pick_place"])
def test_library_tasks_load_and_round_trip(name):
    task = load_task(name)
    assert task.name == name
    assert task.description and task.reward and task.domain_randomization
    again = task_from_dict(task.to_dict())
    assert again.to_dict() == task.to_dict()


def test_available_tasks_lists_the_library():
    assert {"so101_reach", "so101_lift", "so101_pick_place"} <= set(available_tasks())


def _write_broken(tmp_path, edit):
    raw = yaml.safe_load((TASKS_DIR / "so101_lift.yaml").read_text())
    edit(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda r: r.update(colour="red"), "colour: unknown key"),
        (lambda r: r.pop("success"), "success: missing"),
        (lambda r: r.update(success="s.object_pos[:, 2] > s.no_such_field"), "success: does not pass the static check"),
        (lambda r: r.update(success="s.goal_pos[:, 2] > 0.1"), "success: does not evaluate"),  # lift has no goal
        (lambda r: r.update(success="s.object_pos > 0.1"), "success: must give one bool per environment"),
        (lambda r: r["reward"][1].update(expr="torch.nope(s.ee_pos)"), "reward[1].expr: does not pass the static"),
        (lambda r: r["reward"][1].update(expr="s.goal_pos[:, 0]"), "reward[1].expr: does not evaluate"),
        (lambda r: r["reward"][0].update(wieght=2.0), "reward[0].wieght: unknown key"),
        (lambda r: r["scene"].update(cube_size=0.5), "scene: cube_size must be within"),
        (lambda r: r["train"].update(num_envs="many"), "train.num_envs: expected int"),
        (lambda r: r.update(observations=["joint_pos", "goal_pos_x"]), "observations: 'goal_pos_x' is neither"),
        (lambda r: r.update(observations=["joint_pos", "object_to_goal"]), "observations: observation 'goal_pos'"),
        (lambda r: r.update(observations=["joint_pos", "joint_pos"]), "observations: names a field twice"),
        (lambda r: r.update(obs_noise={"goal_pos": 0.01}), "obs_noise.goal_pos: not a SimState field the task's"),
        (lambda r: r["domain_randomization"][0].update(nominal=100.0), "domain_randomization[0].nominal"),
        (lambda r: r.update(episode_length=0), "episode_length: must be a whole number"),
        (lambda r: r.update(control_hz=35), "control_hz: must divide"),
        (lambda r: r["train"].update(randomized={"max_minutes": -5}), "train.randomized: max_minutes: must"),
        (lambda r: r["train"].update(randomized={"entropy": 0.01}), "train.randomized.entropy: unknown key"),
        (lambda r: r["train"].update(randomized={"max_minutes": "ten"}), "train.randomized.max_minutes: expected"),
        (lambda r: r["train"].update(randomized={"widen_from": 1.5}), "train.randomized: widen_from: must be in"),
        (lambda r: r["train"].update(randomized={"widen_from": 0.2, "widen_step": 0.0}),
         "train.randomized: widen_step: must be above 0"),
        (lambda r: r["train"].update(curriculum=[{"name": "lift", "terms": ["reach", "hold"], "advance_at": 0.5},
                                                 {"name": "all"}]), "train.curriculum[0].terms: 'hold' is not"),
        (lambda r: r["train"].update(curriculum=[{"name": "lift", "terms": ["reach"]}, {"name": "all"}]),
         "train.curriculum[0].advance_at: must be in (0, 1]"),
        (lambda r: r["train"].update(curriculum=[{"name": "lift", "advance_at": 1.5}, {"name": "all"}]),
         "train.curriculum[0].advance_at: must be in (0, 1]"),
        (lambda r: r["train"].update(curriculum=[{"name": "lift", "advance_at": 0.5},
                                                 {"name": "all", "terms": ["reach"]}]),
         "train.curriculum[1]: the last"),
        (lambda r: r["train"].update(curriculum=[{"name": "a", "advance_at": 0.5}, {"name": "a"}]),
         "train.curriculum[1].name: duplicate stage"),
        (lambda r: r["train"].update(curriculum=[{"name": "a", "advance_at": 0.5, "success": "s.goal_pos[:, 0] > 0"},
                                                 {"name": "b"}]), "train.curriculum[0].success: does not evaluate"),
        (lambda r: r["train"].update(curriculum=[{"name": "only"}]), "train.curriculum: needs at least two"),
        (lambda r: r["train"].update(curriculum=[{"name": "a", "until": 0.5}, {"name": "b"}]),
         "train.curriculum[0].until: unknown key"),
    ],
)
def test_malformed_task_names_file_and_field(tmp_path, edit, field):
    path = _write_broken(tmp_path, edit)
    with pytest.raises(TaskError) as err:
        load_task(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert field in message
    assert "\n" not in message


def test_unknown_task_lists_known_ones():
    with pytest.raises(TaskError, match="known: .*so101_reach"):
        load_task("so101_juggle")


def test_reward_terms_render_to_a_body_with_weighted_components():
    terms = (
        RewardTerm("near", 2.0, "1.0 - torch.tanh(torch.norm(s.ee_pos - s.goal_pos, dim=-1) / {std})", {"std": 0.1}),
        RewardTerm("still", -0.5, "torch.sum(s.joint_vel ** 2, dim=-1)"),
    )
    body = terms_to_body(terms)
    assert "/ 0.1)" in body and "{std}" not in body
    state = SimState.zeros(3, has_object=False, has_goal=True)
    state.goal_pos[:, 0] = 0.1
    state.joint_vel[:, 0] = 2.0
    total, parts = load_reward(body)(state)
    expected_near = 2.0 * (1 - torch.tanh(torch.tensor(1.0)))
    assert torch.allclose(parts["near"], expected_near.expand(3))
    assert torch.allclose(parts["still"], torch.full((3,), -2.0))
    assert torch.allclose(total, parts["near"] + parts["still"])


def test_a_randomized_world_trains_as_long_as_the_train_sections_randomized_block_says(tmp_path):
    from robosmith.engines.export import ExportOptions, task_info
    from robosmith.train.ppo import TrainSettings

    path = _write_broken(tmp_path, lambda r: r["train"].update(max_minutes=2.0, randomized={"max_minutes": 6}))
    task = load_task(path)
    assert TrainSettings.from_task(task, randomize=False).max_minutes == 2.0
    assert TrainSettings.from_task(task, randomize=True).max_minutes == 6.0
    assert TrainSettings.from_task(task, randomize=True, max_minutes=1.0).max_minutes == 1.0  # the command's word
    assert task_from_dict(task.to_dict()).train.randomized.max_minutes == 6.0  # saved with every run
    assert task_info(task, ExportOptions("mjlab", "3.0", randomize=True))["max_minutes"] == 6.0
    assert task_info(task, ExportOptions("mjlab", "3.0", randomize=False))["max_minutes"] == 2.0


def _pick_place_path() -> SimState:
    """One environment per stage of a pick and place, in order: arm away, at the cube, grasping, lifted,
    carried over the zone, put down in the zone still held, released with the gripper above it."""
    names = ["away", "at_cube", "grasped", "lifted", "over_zone", "placed_held", "released"]
    s = SimState.zeros(len(names), has_object=True, has_goal=True)
    cube, zone = torch.tensor([0.24, 0.0, 0.0125]), torch.tensor([0.24, 0.12, 0.0])
    lifted, over_zone = cube + torch.tensor([0.0, 0.0, 0.04]), zone + torch.tensor([0.0, 0.0, 0.0525])
    s.goal_pos[:] = zone
    s.object_quat[:, 0] = 1.0
    in_zone = zone + torch.tensor([0.0, 0.0, 0.0125])
    s.object_pos[:] = torch.stack([cube, cube, cube, lifted, over_zone, in_zone, in_zone])
    s.ee_pos[:] = s.object_pos
    s.ee_pos[0] = torch.tensor([0.12, 0.0, 0.15])
    s.ee_pos[6, 2] += 0.03
    s.finger_contact[2:6] = 1.0
    return s


LIFT_FIRST = Path(__file__).resolve().parents[1] / "docs" / "experiments" / "so101_pick_place_lift_first.yaml"


LIFT_WIDENING = LIFT_FIRST.with_name("so101_lift_widening.yaml")


def test_the_widening_experiment_is_the_library_lift_with_widening_three_actions_and_log_uniform_mass():
    # The README's #14 figures come from this file: it must stay the library's lift but for what it says it changes.
    library, experiment = load_task("so101_lift").to_dict(), load_task(LIFT_WIDENING).to_dict()
    changed = {k for k in library if library[k] != experiment[k]}
    assert changed == {"observations", "train", "domain_randomization"}, changed
    assert experiment["observations"] == library["observations"] + ["prev_action", "prev_prev_action"]
    mass = {"name": "cube_mass", "nominal": 0.03, "bounds": [0.01, 0.1]}
    assert [p for p in library["domain_randomization"] if p["name"] == "cube_mass"] == [mass]
    assert experiment["domain_randomization"] == [
        {**p, "distribution": "log_uniform"} if p == mass else p for p in library["domain_randomization"]]
    widening = experiment["train"].pop("randomized")
    library["train"].pop("randomized")
    assert experiment["train"] == library["train"]
    assert widening["widen_from"] == 0.0 and widening["widen_at"] == 0.5


def test_pick_place_reward_pays_only_a_held_cube_for_moving_and_most_for_the_cube_put_down():
    # The library's grasp-gated reward: each step towards the zone with the cube in both jaws pays more, lifted or
    # slid; the same cube pushed without a grasp earns nothing for it; put down in the zone beats held above it.
    task = load_task("so101_pick_place")
    names = ["away", "at_cube", "grasped", "held_halfway", "held_over_zone", "placed_held", "pushed_halfway"]
    s = SimState.zeros(len(names), has_object=True, has_goal=True)
    cube, zone = torch.tensor([0.24, 0.0, 0.0125]), torch.tensor([0.24, 0.12, 0.0])
    halfway, up = torch.tensor([0.0, 0.06, 0.0]), torch.tensor([0.0, 0.0, 0.04])
    in_zone = zone + torch.tensor([0.0, 0.0, 0.0125])
    s.goal_pos[:] = zone
    s.object_quat[:, 0] = 1.0
    s.object_pos[:] = torch.stack([cube, cube, cube, cube + halfway + up, in_zone + up, in_zone, cube + halfway])
    s.ee_pos[:] = s.object_pos
    s.ee_pos[0] = torch.tensor([0.12, 0.0, 0.15])
    s.finger_contact[2:6] = 1.0
    total, parts = load_reward(task.reference_reward_body())(s)
    assert (total[1:6] > total[:5]).all(), total
    assert total[6] < total[3] and parts["transport"][6] == 0, total
    # Held up pays a little more than slid along the table in the same grip.
    s.object_pos[3, 2] = s.ee_pos[3, 2] = cube[2]
    assert load_reward(task.reference_reward_body())(s)[0][3] < total[3]
    assert eval_success(task.success, s).tolist() == [False] * 5 + [True, False]


def test_lift_first_reward_pays_more_at_every_stage_and_most_for_the_cube_put_down():
    # The lift-first experiment's reward is staged: a policy that stops at any stage (pushing, hovering over the
    # zone with the cube) earns less than one that goes on, and a cube put down in the zone beats one held above.
    task = load_task(LIFT_FIRST)
    state = _pick_place_path()
    total, _ = load_reward(task.reference_reward_body())(state)
    assert (total[1:6] > total[:5]).all(), total
    assert total[6] > total[4], total
    assert eval_success(task.success, state).tolist() == [False] * 5 + [True, True]

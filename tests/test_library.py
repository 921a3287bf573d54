"""The reward-term library and the offline proposer that composes from it: every term renders and passes the
sandbox, composed rewards never read the task's reference reward, and a stalled stage gets a staged answer."""

import dataclasses

import numpy as np
import pytest

from robosmith.agent.compose import compose, distance_threshold, stage_progress, stalled_stage
from robosmith.agent.proposers import COMPOSED_ORIGIN, OfflineProposer, ProposalContext
from robosmith.errors import ConfigError
from robosmith.execution.smoke import sample_states, smoke_test
from robosmith.reward.check import check_static
from robosmith.reward.judge import evaluate_in_process
from robosmith.reward.library import KINDS, load_library
from robosmith.reward.terms import terms_to_body
from robosmith.task import load_task

TASKS = ("so101_reach", "so101_lift", "so101_pick_place")
# Slots for every template on the pick-and-place scene (it has the cube and the goal).
SLOTS = {"a": "s.object_pos", "b": "s.goal_pos", "rest": "0.0125", "dims": "3",
         "success": "torch.norm(s.object_pos - s.goal_pos, dim=-1) < 0.03"}


@pytest.mark.slow  # the confined smoke run: a subprocess that imports torch
def test_every_library_term_renders_and_passes_the_smoke_run(tmp_path):
    task = load_task("so101_pick_place")
    library = load_library()
    assert {t.kind for t in library.values()} == set(KINDS)  # every kind the issue names is there
    terms = [t.term(name, 1.0, {slot: SLOTS[slot] for slot in t.slots}) for name, t in library.items()]
    for term in terms:
        check_static(terms_to_body([term]))
    states = sample_states(task, num_envs=32)
    stats = smoke_test(terms_to_body(terms), task, tmp_path / "cand", states=states, sizes=[1, 32])
    for name, t in library.items():  # bounded kinds stay in their ranges on real states
        low, high = stats["components"][name]["min"], stats["components"][name]["max"]
        assert np.isfinite([low, high]).all(), name
        if t.kind in ("contact", "height", "success") or name in ("distance_tanh", "distance_gaussian"):
            assert -1e-6 <= low <= high <= 1.0 + 1e-6, (name, low, high)
        if t.kind in ("orientation", "shaping"):
            assert -1.0 - 1e-6 <= low <= high <= 1.0 + 1e-6, (name, low, high)
    # A template's own `{param}` fields come from its defaults, inside their ranges.
    tanh = library["distance_tanh"].term("d", 1.0, {"a": "s.ee_pos", "b": "s.goal_pos"}, {"std": 50.0})
    assert tanh.params == {"std": 0.3}


def test_a_malformed_library_entry_is_one_line_naming_the_file_and_field(tmp_path):
    bad = tmp_path / "library.yaml"
    bad.write_text("near:\n  kind: distance\n  doc: x\n  expr: '1.0'\n  params: {std: [0.5, 0.01, 0.1]}\n")
    with pytest.raises(ConfigError, match=r"library.yaml: near.params.std: must be \[default, low, high\]"):
        load_library(bad)
    bad.write_text("near:\n  kind: smell\n  doc: x\n  expr: '1.0'\n")
    with pytest.raises(ConfigError, match="near.kind: one of distance"):
        load_library(bad)


@pytest.mark.parametrize("name", TASKS)
def test_composed_rewards_never_read_the_reference_and_pass_the_judge(name):
    task = load_task(name)
    proposals = OfflineProposer(seed=1).propose(ProposalContext(task, 0), 3)
    # The same proposals for the task with its reference reward replaced: the proposer does not read it.
    blind = dataclasses.replace(task, reward=task.reward[:1])
    assert [p.code for p in OfflineProposer(seed=1).propose(ProposalContext(blind, 0), 3)] == \
        [p.code for p in proposals]
    assert len({p.code for p in proposals}) == 3 and all(p.origin == COMPOSED_ORIGIN for p in proposals)
    assert all(p.code != task.reference_reward_body() for p in proposals)
    stages = {g["stage"] for g in proposals[0].genome if g["stage"]}
    expected = {"so101_reach": {"approach", "precision"}, "so101_lift": {"reach", "grasp", "lift", "success"},
                "so101_pick_place": {"reach", "grasp", "lift", "carry", "success"}}[name]
    assert stages == expected
    # The smoke run's judge (the confined subprocess runs the same judge: one of those is enough, above).
    stats = evaluate_in_process(proposals[0].code, sample_states(task, num_envs=16), [1, 16])
    assert stats["ok"], stats["reason"]
    assert set(stats["components"]) == {g["name"] for g in proposals[0].genome if g["enabled"]}


def test_a_distance_tolerance_is_paid_by_a_kernel_as_wide_as_it_not_a_success_bonus():
    reach = load_task("so101_reach")
    assert distance_threshold(reach.success) == ("s.ee_pos", "s.goal_pos", 0.02)
    # A compound or height condition is no distance under a tolerance: those tasks close on the success term.
    assert distance_threshold(load_task("so101_pick_place").success) is None
    assert distance_threshold(load_task("so101_lift").success) is None
    assert distance_threshold("torch.norm(s.ee_pos - s.goal_pos, dim=-1) < 0.02-0.01") is None  # no number
    for tolerance in (0.02, 0.05):
        task = dataclasses.replace(reach, success=f"torch.norm(s.ee_pos - s.goal_pos, dim=-1) < {tolerance}")
        for seed in range(5):
            genes = {g["name"]: g for g in compose(task, np.random.default_rng(seed))}
            assert "success" not in genes and genes["precision"]["template"] == "distance_tanh"
            assert tolerance / 2 <= genes["precision"]["params"]["std"] <= tolerance
            assert genes["precision"]["weight"] >= genes["approach"]["weight"]  # the last stage pays the most


def test_a_stalled_stage_gets_a_bridged_and_gated_proposal():
    task = load_task("so101_lift")
    parent = compose(task, np.random.default_rng(0))
    weights = {g["name"]: g["weight"] for g in parent}
    # Reflection: the arm reaches the cube (reach near its maximum) but never grasps it; nothing after rises.
    stats = {g["name"]: {"min": 0.0, "mean": 0.0, "max": 0.0} for g in parent}
    stats["reach"] = {"min": 0.1 * weights["reach"], "mean": 0.6 * weights["reach"], "max": 0.9 * weights["reach"]}
    assert stalled_stage(parent, stats) == "grasp"
    best = {"id": "0.1", "iteration": 0, "genome": parent, "code": "", "success_rate": 0.0}
    proposals = OfflineProposer(seed=2).propose(ProposalContext(task, 1, best=best, component_stats=stats), 4)
    staged = proposals[0]
    assert "stalled stage 'grasp' bridged and gated" in staged.origin
    genes = {g["name"]: g for g in staged.genome}
    assert "grasp_bridge" in genes and genes["grasp_bridge"]["template"] == "close_when_near"
    assert "s.finger_contact[:, 0] * s.finger_contact[:, 1]" in genes["lift"]["expr"].split(") * (", 1)[1]
    assert genes["grasp"]["weight"] > weights["grasp"] and genes["reach"]["weight"] < weights["reach"]
    assert "components['grasp_bridge']" in staged.code
    assert proposals[-1].origin.startswith("offline: mutation of")  # the rest keep searching around the parent
    # Once grasping works, nothing is stalled at the grasp any more.
    stats["grasp"] = {"min": 0.0, "mean": 0.3 * weights["grasp"], "max": 0.8 * weights["grasp"]}
    assert stage_progress(parent, stats)["grasp"] == pytest.approx(0.8)
    assert stalled_stage(parent, stats) == "lift"


def test_mutation_keeps_parameters_in_range_and_honours_a_dropped_term():
    task = load_task("so101_reach")
    proposer = OfflineProposer(seed=3)
    first = proposer.propose(ProposalContext(task, 0), 2)
    best = {"id": "0.1", "iteration": 0, "genome": first[1].genome, "code": first[1].code, "success_rate": 0.5}
    library = load_library()
    for it in range(1, 6):
        for p in proposer.propose(ProposalContext(task, it, best=best), 3):
            assert p.code != first[1].code
            for g in p.genome:
                for key, value in g["params"].items():
                    _, low, high = library[g["template"]].params[key]
                    assert low <= value <= high, (g["name"], key, value)
    dropped = proposer.propose(ProposalContext(task, 7, best=best, human_feedback="please drop joint_speed"), 2)
    assert all("joint_speed" not in p.code for p in dropped)

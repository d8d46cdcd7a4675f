"""`describe` follows the parts a config picks, and `advice` says what a setting does not do."""

import pytest

from labcore.algorithms import RECIPES, advice, describe, describe_parts
from labcore.config import build


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_describe_is_assembled_from_parts(recipe):
    latex = describe(recipe)
    assert latex.startswith("$$") and latex.count("$$") % 2 == 0
    parts = [p for p, _, _ in describe_parts(build(recipe))]
    assert "advantage" in parts and "policy_loss" in parts and "objective" in parts


def test_describe_changes_with_the_parts():
    """Swapping GRPO's aggregation and scale for Dr. GRPO's changes exactly those lines of the formula."""
    grpo = describe_parts(build("grpo"))
    mixed = describe_parts(build("grpo", {"algorithm.aggregation": "seq_mean_token_sum_norm",
                                          "algorithm.scale": "none"}))
    g, m = dict((p, x) for p, x, _ in grpo), dict((p, x) for p, x, _ in mixed)
    assert r"\operatorname{std}" in g["advantage"] and r"\operatorname{std}" not in m["advantage"]
    assert "L_{\\max}" in m["aggregation"] and "L_{\\max}" not in g["aggregation"]
    assert g["policy_loss"] == m["policy_loss"]
    assert "k_{i,t}" not in describe("grpo") and r"\operatorname{agg}" in describe("grpo")
    assert "sum_t k_{i,t}" in describe("rloo")


def test_objective_names_the_divergence_whose_gradient_the_kl_estimator_follows():
    """Tang & Munos 2025: in the loss, k3 follows KL(ref || pi), k2 and k3_is KL(pi || ref), k1 nothing."""
    def why(est):
        return dict((p, w) for p, _, w in describe_parts(build("grpo", {"kl.estimator": est})))["objective"]
    assert "KL(ref || pi)" in why("k3") and "KL(pi || ref)" in why("k2") and "KL(pi || ref)" in why("k3_is")
    assert "expected gradient is 0" in why("k1")
    assert any("zero expected gradient" in n for n in advice(build("grpo", {"kl.estimator": "k1"})))
    assert not any("k1" in n for n in advice(build("grpo", {"kl.estimator": "k2"})))
    assert not any("gradient" in n and "KL" in n for n in advice(build("rloo")))  # k1 in the reward is fine


def test_value_recipes_show_the_critic_apart_and_no_weight_on_it():
    """The critic trains on detached states in its own optimiser group: the objective shows no weight on it."""
    d = dict((p, x) for p, x, _ in describe_parts(build("ppo")))
    assert "critic" in d and "V" in d["critic"] and "V" not in d["objective"]

"""Every recipe composes from its parts into a finite loss, and `describe` follows the parts."""

import pytest
import torch

from labcore import advantages, kl, losses
from labcore.algorithms import RECIPES, describe, describe_parts
from labcore.config import build


def _synthetic(P=3, K=4, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(P * K, T)
    mask[0, 3:] = 0
    mask[5, 1:] = 0
    logp = -torch.rand(P * K, T, generator=g) - 0.1
    return {
        "rewards": torch.randint(0, 2, (P, K), generator=g).float(),
        "mask": mask,
        "logp": logp.requires_grad_(),
        "old": logp.detach() + 0.05 * torch.randn(P * K, T, generator=g),
        "ref": logp.detach() + 0.1 * torch.randn(P * K, T, generator=g),
        "values": torch.randn(P * K, T, generator=g),
    }


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_composes_to_finite_loss_with_gradient(recipe):
    """Wire the recipe's parts by hand on synthetic tensors, as the trainer does, and back-propagate."""
    cfg = build(recipe)
    a, k = cfg.algorithm, cfg.kl
    d = _synthetic()
    mask = d["mask"]
    P, K = d["rewards"].shape
    kl_t = kl.estimate(d["old"], d["ref"], k.estimator) * mask
    last = (mask.cumsum(1) == mask.sum(1, keepdim=True)) & mask.bool()
    token_r = last.float() * d["rewards"].reshape(-1, 1)
    if k.placement == "reward_token":
        token_r = token_r - k.coef * kl_t
    if a.estimator == "gae":
        adv, returns = advantages.gae(token_r, d["values"], mask, a.gamma, a.lam)
    elif a.baseline in advantages.BASELINES:
        seq = advantages.group_advantages(token_r.sum(1).view(P, K), a.baseline, a.scale).reshape(-1)
        adv = advantages.sequence_to_tokens(seq, mask)
        if a.estimator == "returns":
            adv = advantages.returns_to_go(token_r, mask, a.gamma) - token_r.sum(1).mean() * mask
    else:  # moving average / greedy baselines: any constant
        adv = advantages.sequence_to_tokens(token_r.sum(1) - 0.5, mask)
    if a.whiten:
        adv = advantages.whiten(adv, mask)
    loss, info = losses.policy_loss(d["logp"], d["old"], adv, mask, kind=a.policy_loss, clip_low=a.clip_low,
                                    clip_high=a.clip_high, dual_clip=a.dual_clip or None, agg=a.aggregation)
    if k.placement == "loss":
        loss = loss + k.coef * losses.aggregate(kl.estimate(d["logp"], d["ref"], k.estimator), mask, a.aggregation)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(d["logp"].grad).all() and d["logp"].grad.abs().sum() > 0
    assert {"clip_frac", "clip_frac_low", "clip_frac_high", "approx_kl", "ratio_mean", "ratio_max"} <= set(info)


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

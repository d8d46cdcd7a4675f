"""The paired lesson probes (labcore.lesson_probes): the two KL placements' token advantages on hand tensors, the
spread measure on hand tensors, and each probe once on a real tiny trainer (one training step, one batch)."""

import dataclasses

import pytest
import torch

from labcore import advantages, parts
from labcore import lessons as L
from labcore.lesson_probes import mean_abs_diff, token_spread


def test_kl_placements_differ_per_token_by_the_kl_already_spent():
    """Rewards 1 and 0 at the end, per-token KL (0.5, 0.25, 1.0) and (2, 0, -) with beta 0.1. Per token, G_t charges
    the KL of t..T; per sequence, every G_t carries the whole sum. So G_t(token) - G_t(seq) = beta * sum_{s<t} KL_s:
    (0, 0.05, 0.075) and (0, 0.2, -). Summed per completion (the outcome view) they are the same."""
    r = torch.tensor([1.0, 0.0])
    kl_t = torch.tensor([[0.5, 0.25, 1.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    tok = parts.KL_PLACEMENTS["reward_token"](r, kl_t, mask, 0.1)
    seq = parts.KL_PLACEMENTS["reward_seq"](r, kl_t, mask, 0.1)
    assert torch.allclose(tok.sum(1), seq.sum(1))
    diff = advantages.returns_to_go(tok, mask, 1.0) - advantages.returns_to_go(seq, mask, 1.0)
    assert torch.allclose(diff, torch.tensor([[0.0, 0.05, 0.075], [0.0, 0.2, 0.0]]))
    biggest, rel = mean_abs_diff(tok.cumsum(1) * mask, seq.cumsum(1) * mask, mask)
    assert biggest > 0 and rel > 0
    assert mean_abs_diff(seq, seq, mask) == (0.0, 0.0)


def test_token_spread_on_hand_tensors():
    """Broadcast advantages (one per row) have no spread within rows; rows (1, 3) and (-1, -3): within-row std
    sqrt(2) each, over-the-batch std of (1, 3, -1, -3) = sqrt(20/3), so the ratio is sqrt(2) / sqrt(20/3)."""
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert token_spread(torch.tensor([[2.0, 2.0, 0.0], [-1.0, -1.0, 0.0]]), mask) == 0.0
    spread = token_spread(torch.tensor([[1.0, 3.0, 9.0], [-1.0, -3.0, 9.0]]), mask)  # 9s are padding
    assert spread == pytest.approx(2 ** 0.5 / (20 / 3) ** 0.5)
    assert token_spread(torch.zeros(2, 3), mask) == 0.0


def _quick(name: str, **set_):
    """The shipped lesson with one training step and one probe batch, for a cheap real run."""
    lesson = dataclasses.replace(L.load_lesson(name), steps=2, probe_batches=1)
    arm = lesson.arms[0]
    return lesson, dataclasses.replace(arm, overrides={**arm.overrides, **set_})


def test_kl_placement_probe_on_a_real_trainer():
    """After one step the policy has moved (KL != 0): one advantage per completion is the same under both
    placements, to float rounding; per-token returns are not."""
    lesson, arm = _quick("kl_placement")
    [row] = L.run_arm(lesson, arm, 0)
    assert row["kl/mean"] != 0.0
    assert row["outcome/max_diff"] <= 1e-6
    assert row["returns/max_diff"] > 1e-4 and row["returns/rel_diff"] > 0


def test_credit_spread_probe_on_a_real_trainer():
    """RLOO's advantages are constant within each completion (to float64 rounding); the critic's after one step
    are not."""
    lesson, arm = _quick("credit_spread")
    [row] = L.run_arm(lesson, arm, 0)
    assert row["spread/rloo"] <= 1e-9
    assert row["spread/gae"] > 0.0


def test_credit_spread_refuses_a_preset_without_a_critic():
    lesson, arm = _quick("credit_spread")
    lesson = dataclasses.replace(lesson, preset="grpo")
    with pytest.raises(ValueError, match="needs a preset with a critic"):
        L.run_arm(lesson, dataclasses.replace(arm, overrides={"rollout.task": "length"}), 0)


def test_paired_variance_probe_pools_the_variances():
    """The baseline lesson's claim reads `pooled/<name>`: the mean variance under a baseline over the mean
    variance without one (not the mean of per-batch ratios, which a single noisy batch dominates)."""
    lesson = dataclasses.replace(L.load_lesson("baseline_variance"), probe_batches=2)
    arm = lesson.arms[0]
    [row] = L.run_arm(lesson, dataclasses.replace(arm, overrides={**arm.overrides, "rollout.prompts_per_step": 2}), 0)
    assert row["pooled/none"] == pytest.approx(1.0)
    for name in ("batch_mean", "leave_one_out"):
        assert row[f"pooled/{name}"] == pytest.approx(row[f"var/{name}"] / row["var/none"])
        assert row[f"pooled/{name}"] > 0

"""Lesson 8's probe (labcore.lesson_probes.length_bias_probe): the per-token push of GRPO's and Dr. GRPO's
aggregations, by autograd through labcore's policy loss on hand-written advantages and lengths, then the probe once
on a real tiny-chain trainer."""

import dataclasses
import math

import pytest
import torch

from labcore import lessons as L
from labcore.lesson_probes import (
    LENGTH_NORMS,
    long_short_ratio,
    long_short_split,
    push_per_unit_advantage,
    token_push,
)
from labcore.losses import policy_loss
from labcore.recipes import RECIPES

T_MAX = 5


def _case():
    """Three completions: wrong of length 2, wrong of length 4, right of length 3 (advantages -1, -1, +2)."""
    lengths = torch.tensor([2, 4, 3])
    mask = (torch.arange(T_MAX)[None, :] < lengths[:, None]).float()                  # (3, 5)
    seq_adv = torch.tensor([-1.0, -1.0, 2.0])
    adv = seq_adv[:, None] * mask                                                       # (3, 5) broadcast
    logp = torch.log(torch.full((3, T_MAX), 0.5)) * mask
    return lengths, mask, seq_adv, adv, logp


def _push(agg: str) -> torch.Tensor:
    lengths, mask, seq_adv, adv, logp = _case()

    def objective(x):
        return policy_loss(x, logp, adv, mask, kind="clip", agg=agg, max_len=T_MAX)[0]

    return push_per_unit_advantage(token_push(objective, logp), seq_adv, mask)          # (3,)


def test_length_norms_are_the_recipes_aggregations():
    assert LENGTH_NORMS["grpo"] == RECIPES["grpo"].defaults["algorithm.aggregation"] == "seq_mean_token_mean"
    assert LENGTH_NORMS["dr_grpo"] == RECIPES["dr_grpo"].defaults["algorithm.aggregation"]
    assert LENGTH_NORMS["dr_grpo"] == "seq_mean_token_sum_norm"


def test_grpo_pushes_a_long_wrong_token_by_one_over_its_length():
    """GRPO: weight A_i / (B |o_i|) per token, so the length-4 wrong answer's tokens get half the length-2 one's."""
    lengths, mask, *_ = _case()
    per_unit = _push(LENGTH_NORMS["grpo"])
    assert per_unit.tolist() == pytest.approx([1 / (3 * 2), 1 / (3 * 4), 1 / (3 * 3)])
    long, short = long_short_split(lengths, torch.tensor([True, True, False]))
    assert long.tolist() == [False, True, False] and short.tolist() == [True, False, False]
    assert long_short_ratio(per_unit, long, short) == pytest.approx(0.5)


def test_dr_grpo_pushes_every_token_alike():
    """Dr. GRPO: weight A_i / (B T_max) per token, whatever the completion's length."""
    lengths, *_ = _case()
    per_unit = _push(LENGTH_NORMS["dr_grpo"])
    assert per_unit.tolist() == pytest.approx([1 / (3 * T_MAX)] * 3)
    long, short = long_short_split(lengths, torch.tensor([True, True, False]))
    assert long_short_ratio(per_unit, long, short) == pytest.approx(1.0)


def test_push_sign_and_empty_cases():
    """A wrong answer's tokens are pushed down (negative push); empty rows and zero advantages give nan; no wrong
    answers give empty splits and a nan ratio."""
    lengths, mask, seq_adv, adv, logp = _case()
    push = token_push(lambda x: policy_loss(x, logp, adv, mask, kind="pg", agg="token_mean")[0], logp)
    assert (push[0, :2] < 0).all() and (push[2, :3] > 0).all() and (push[mask == 0] == 0).all()
    per_unit = push_per_unit_advantage(push, torch.tensor([-1.0, 0.0, 2.0]), mask * torch.tensor([[1.0], [1.0], [0.0]]))
    assert not math.isnan(per_unit[0]) and math.isnan(per_unit[1]) and math.isnan(per_unit[2])
    long, short = long_short_split(lengths, torch.zeros(3, dtype=torch.bool))
    assert not long.any() and not short.any() and math.isnan(long_short_ratio(per_unit, long, short))


def test_length_bias_probe_on_a_real_trainer():
    """One batch of 4 prompts x 8 samples of the chain task at the base model (seed 0 has wrong answers of several
    lengths): GRPO pushes the long wrong ones' tokens less per unit of advantage, Dr. GRPO equally."""
    lesson = dataclasses.replace(L.load_lesson("length_bias_probe"), probe_batches=1)
    arm = lesson.arms[0]
    [row] = L.run_arm(lesson, dataclasses.replace(arm, overrides={**arm.overrides, "rollout.prompts_per_step": 4}), 0)
    assert row["len/long"] > row["len/short"] and 0 < row["wrong/frac"] < 1
    assert row["push/grpo"] < 0.8
    assert row["push/dr_grpo"] == pytest.approx(1.0, abs=1e-5)
    assert row["drop/relative"] == pytest.approx(row["drop/grpo"] / row["drop/dr_grpo"])


def test_length_bias_probe_needs_a_pass_mark():
    lesson = dataclasses.replace(L.load_lesson("length_bias_probe"), preset="length_eos", probe_batches=1)
    arm = dataclasses.replace(lesson.arms[0], overrides={"run.grad_variance": False})
    with pytest.raises(ValueError, match="needs a task with right and wrong answers"):
        L.run_arm(lesson, arm, 0)

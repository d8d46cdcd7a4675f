"""Lesson 9's probe (labcore.lesson_probes.difficulty_probe): the group weights sum |A| under GRPO's std scaling and
under none, checked against their closed forms on hand-written right/wrong rewards, and the probe once on a real
tiny trainer."""

import dataclasses
import math

import pytest
import torch

from labcore import lessons as L
from labcore.advantages import group_advantages
from labcore.lesson_probes import (
    difficulty_tilt,
    extreme_share,
    group_weight,
    sequence_advantages,
    weight_ratio,
)


def test_group_weights_follow_the_closed_forms():
    """K = 4, pass rates 1/4 and 1/2. No scaling: sum |A| = 2Kp(1 - p) = 1.5 and 2. Group std (unbiased,
    sqrt(K/(K-1) p(1-p)) = 1/2 and 1/sqrt(3)): 3 and 2 sqrt(3). So the lopsided group weighs 0.75 of the even one
    without scaling and sqrt(3)/2 with it: a lift of 2/sqrt(3)."""
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    p = r.mean(1)
    none = group_weight(group_advantages(r, "group_mean", "none"))
    std = group_weight(group_advantages(r, "group_mean", "group_std", eps=0.0))
    assert torch.allclose(none, torch.tensor([1.5, 2.0], dtype=torch.float64))
    assert torch.allclose(std, torch.tensor([3.0, 2 * math.sqrt(3)], dtype=torch.float64))
    assert weight_ratio(none, p) == pytest.approx(0.75)
    assert weight_ratio(std, p) == pytest.approx(math.sqrt(3) / 2)
    assert weight_ratio(std, p) / weight_ratio(none, p) == pytest.approx(2 / math.sqrt(3))
    assert difficulty_tilt(none, p) == pytest.approx(1.5 * 0.25 / 3.5)
    assert difficulty_tilt(std, p) == pytest.approx(3 * 0.25 / (3 + 2 * math.sqrt(3)))
    assert extreme_share(none, p) == pytest.approx(1.5 / 3.5)


def test_the_measures_skip_flat_groups_and_say_nan_when_a_kind_is_missing():
    """p = 0 and p = 1 are neither lopsided-but-mixed nor even; with no even group the ratio is undefined."""
    w, p = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 0.25, 1.0])
    assert math.isnan(weight_ratio(w, p))
    assert extreme_share(w, p) == pytest.approx(2 / 7)
    assert difficulty_tilt(torch.zeros(3), p) == 0.0


def test_sequence_advantages_undo_the_broadcast():
    adv = torch.tensor([[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.equal(sequence_advantages(adv, mask), torch.tensor([2.0, -1.0, 0.0]))


def test_difficulty_probe_on_a_real_trainer():
    """One batch of 4 prompts x 8 samples at the base model's weights (seed 0 has both lopsided and even groups):
    the lift is the ratio of the two recorded weight ratios and above 1, and every share lies in [0, 1]."""
    lesson = dataclasses.replace(L.load_lesson("std_difficulty"), probe_batches=1)
    arm = lesson.arms[0]
    [row] = L.run_arm(lesson, dataclasses.replace(arm, overrides={**arm.overrides, "rollout.prompts_per_step": 4}), 0)
    assert row["lift"] == pytest.approx(row["weight_ratio/group_std"] / row["weight_ratio/none"])
    # lopsided groups have the smaller p(1 - p): dividing by its square root lifts them relative to even ones
    assert row["lift"] > 1.0
    for scale in ("group_std", "none"):
        assert 0.0 <= row[f"share/extreme/{scale}"] <= 1.0 and 0.0 <= row[f"share/flat/{scale}"] <= 1.0
        assert 0.0 <= row[f"tilt/{scale}"] <= 0.5

"""Hand-computed tensors for the functions where a step's parts meet (labcore.parts).

Each test states the numbers a reader can check on paper, so a flipped sign, a wrong normaliser or a baseline
that reads the wrong reward fails here before it reaches a training run.
"""

import pytest
import torch

from labcore import parts


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


MASK = t([[1, 1, 1, 0], [1, 1, 0, 0]])  # lengths 3 and 2
KL_T = t([[0.1, 0.2, 0.3, 9.0], [0.5, -0.1, 7.0, 7.0]])  # the padding holds junk: it must never count
R = t([1.0, 0.0])


# --------------------------------------------------------------------------------------------- KL placement


def test_kl_placements_hand_values():
    """The task reward sits on the last valid token; the KL goes per token, per sequence or nowhere."""
    beta = 0.5
    none = parts.KL_PLACEMENTS["none"](R, KL_T, MASK, beta)
    assert torch.equal(none, t([[0, 0, 1.0, 0], [0, 0.0, 0, 0]]))
    tok = parts.KL_PLACEMENTS["reward_token"](R, KL_T, MASK, beta)
    assert torch.allclose(tok, t([[-0.05, -0.1, 1 - 0.15, 0], [-0.25, 0.05, 0, 0]]))
    seq = parts.KL_PLACEMENTS["reward_seq"](R, KL_T, MASK, beta)
    assert torch.allclose(seq, t([[0, 0, 1 - 0.5 * 0.6, 0], [0, -0.5 * 0.4, 0, 0]]))
    # the KL of padding (9.0, 7.0 above) never counts; in the loss the reward is untouched
    assert torch.equal(parts.KL_PLACEMENTS["loss"](R, KL_T, MASK, beta), none)
    # same total KL charge either way, placed differently (lesson 11)
    assert torch.allclose(tok.sum(1), seq.sum(1))


def test_a_larger_kl_lowers_the_reward():
    """The penalty is subtracted: raising KL_t lowers every reward placement's total (catches a flipped sign)."""
    for name in ("reward_token", "reward_seq"):
        lo = parts.KL_PLACEMENTS[name](R, KL_T, MASK, 0.5).sum(1)
        hi = parts.KL_PLACEMENTS[name](R, KL_T + 1.0 * MASK, MASK, 0.5).sum(1)
        assert (hi < lo).all(), name


# ------------------------------------------------------------------------------------------------ baselines

RP = t([[1.0, 0.0, 0.0, 1.0], [2.0, 4.0, 6.0, 8.0]])  # P = 2, K = 4
ALL = torch.ones(2, 4, dtype=torch.bool)


def test_closed_form_baselines_hand_values():
    inp = parts.BaselineInputs()
    assert torch.equal(parts.BASELINES["none"](RP, ALL, inp), torch.zeros(2, 4))
    assert torch.allclose(parts.BASELINES["batch_mean"](RP, ALL, inp), torch.full((2, 4), 22 / 8))
    assert torch.allclose(parts.BASELINES["group_mean"](RP, ALL, inp), t([[0.5] * 4, [5.0] * 4]))
    assert torch.allclose(parts.BASELINES["leave_one_out"](RP, ALL, inp),
                          t([[1 / 3, 2 / 3, 2 / 3, 1 / 3], [6.0, 16 / 3, 14 / 3, 4.0]]))


def test_unscorable_samples_never_enter_a_siblings_baseline():
    """Sample (0, 3) could not be scored (its filled-in value 99 must not matter): group mean and leave-one-out
    read the scorable siblings only, and the std scale too."""
    r = t([[1.0, 0.0, 0.0, 99.0], [2.0, 4.0, 6.0, 8.0]])
    valid = ALL.clone()
    valid[0, 3] = False
    inp = parts.BaselineInputs()
    assert torch.allclose(parts.BASELINES["group_mean"](r, valid, inp)[0], torch.full((4,), 1 / 3))
    loo = parts.BASELINES["leave_one_out"](r, valid, inp)[0]
    assert torch.allclose(loo[:3], t([0.0, 0.5, 0.5]))
    assert torch.allclose(parts.SCALES["group_std"](r, valid)[0], torch.full((4,), t([1.0, 0.0, 0.0]).std()))
    assert torch.allclose(parts.BASELINES["batch_mean"](r, valid, inp), torch.full((2, 4), 21 / 7))


def test_other_baselines_read_their_inputs():
    inp = parts.BaselineInputs(ema=0.25, greedy=t([1.0, 6.0]), values=t([[0.1] * 4, [0.2] * 4]))
    assert torch.equal(parts.BASELINES["moving_average"](RP, ALL, inp), torch.full((2, 4), 0.25))
    assert torch.equal(parts.BASELINES["greedy"](RP, ALL, inp), t([[1.0] * 4, [6.0] * 4]))
    assert torch.equal(parts.BASELINES["value"](RP, ALL, inp), inp.values)
    # the first step has no history: the moving average starts at the batch's own mean
    assert torch.allclose(parts.BASELINES["moving_average"](RP, ALL, parts.BaselineInputs()), torch.full((2, 4), 22 / 8))


def test_the_greedy_rollout_runs_only_for_the_baseline_that_reads_it():
    """The trainer passes the greedy rewards as a function: ReMax calls it, every other baseline leaves it alone;
    a baseline declares whether it needs a critic (the trainer names none)."""
    calls = []
    inp = parts.BaselineInputs(greedy=lambda: calls.append(1) or t([1.0, 6.0]))
    for name in ("none", "batch_mean", "group_mean", "leave_one_out", "moving_average"):
        parts.BASELINES[name](RP, ALL, inp)
    assert calls == []
    assert torch.equal(parts.BASELINES["greedy"](RP, ALL, inp), t([[1.0] * 4, [6.0] * 4])) and calls == [1]
    assert [n for n, fn in parts.BASELINES.items() if fn.needs_critic] == ["value"]


def test_scales_and_sequence_advantages():
    g = parts.SCALES["group_std"](RP, ALL)
    assert torch.allclose(g[1], torch.full((4,), t([2.0, 4, 6, 8]).std()))
    assert torch.allclose(parts.SCALES["batch_std"](RP, ALL), torch.full((2, 4), RP.std()))
    assert torch.equal(parts.SCALES["none"](RP, ALL), torch.ones(2, 4))
    b = parts.BASELINES["group_mean"](RP, ALL, parts.BaselineInputs())
    adv = parts.sequence_advantages(RP, b, g, divide=True)
    assert torch.allclose(adv[1], (t([2.0, 4, 6, 8]) - 5) / (t([2.0, 4, 6, 8]).std() + 1e-6))
    assert torch.equal(parts.sequence_advantages(RP, b, g, divide=False), RP - b)  # no eps shrink without a scale


def test_positives_is_rejection_sampling():
    assert torch.equal(parts.positives(t([[1.2, 0.2, 1.0, 0.0]]), 1.0), t([[1.0, 0.0, 1.0, 0.0]]))


# ------------------------------------------------------------------------------------------- reward shaping


def test_shape_rewards_hand_values():
    r, eos, lengths = t([1.0, 1.0, 0.0]), torch.tensor([True, False, True]), t([2.0, 6.0, 5.0])
    out, norm = parts.shape_rewards(r, eos, lengths, missing_eos_penalty=0.5, max_len=6, overlong_buffer=2,
                                    overlong_penalty_factor=1.0, clip=0.0, normalize=False)
    # lengths 2, 6, 5 with max 6 and buffer 2: penalties 0, -1, -0.5; the second also misses EOS
    assert torch.allclose(out, t([1.0, 1.0 - 0.5 - 1.0, -0.5])) and norm is None
    clipped, _ = parts.shape_rewards(t([3.0, -3.0]), torch.tensor([True, True]), t([1.0, 1.0]), missing_eos_penalty=0,
                                     max_len=6, overlong_buffer=0, overlong_penalty_factor=1, clip=2.0, normalize=False)
    assert torch.equal(clipped, t([2.0, -2.0]))


def test_normalising_a_second_batch_with_the_first_ones_statistics():
    """ReMax: the greedy answer's reward goes through the sampled batch's transform, so a sample that ties the
    greedy answer gets the same shaped reward (advantage 0); its own one-element statistics would give 0 - 0."""
    common = dict(missing_eos_penalty=0.0, max_len=4, overlong_buffer=0, overlong_penalty_factor=1.0, clip=0.0,
                  normalize=True)
    sampled, norm = parts.shape_rewards(t([0.0, 1.0, 1.0, 2.0]), torch.ones(4, dtype=torch.bool), t([1.0] * 4),
                                        **common)
    greedy, same = parts.shape_rewards(t([2.0]), torch.ones(1, dtype=torch.bool), t([1.0]), norm=norm, **common)
    assert same == norm and norm.mean == 1.0
    assert sampled.tolist() == pytest.approx([-1.2247, 0.0, 0.0, 1.2247], abs=1e-4)  # (r - 1) / sqrt(2/3)
    assert greedy.item() == pytest.approx(sampled[3].item())
    assert greedy.item() != 0.0


# ------------------------------------------------------------------------------------------------ loss mask


def test_flat_groups_read_the_task_score():
    """DAPO keeps a group iff its task rewards differ (eq. 11): a group whose shaped rewards differ only by KL
    is flat; one unscorable sample does not make a group vary."""
    scores = t([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    valid = torch.tensor([True, True, True, True, True, False])
    assert torch.equal(parts.flat_groups(scores, valid, K=2), torch.tensor([True, False, True]))


def test_loss_mask_combines_its_rules():
    mask = torch.ones(4, 3)
    valid = torch.tensor([True, True, False, True])
    eos = torch.tensor([True, False, True, True])
    flat = torch.tensor([False, True])
    keep = parts.loss_mask(mask, valid, eos, flat, 2, mask_truncated=False, drop_flat=False)
    assert keep[:, 0].tolist() == [1, 1, 0, 1]
    keep = parts.loss_mask(mask, valid, eos, flat, 2, mask_truncated=True, drop_flat=False)
    assert keep[:, 0].tolist() == [1, 0, 0, 1]
    keep = parts.loss_mask(mask, valid, eos, flat, 2, mask_truncated=False, drop_flat=True)
    assert keep[:, 0].tolist() == [1, 1, 0, 0]
    assert torch.equal(parts.loss_mask(mask, valid, eos, None, 2, mask_truncated=False, drop_flat=True)[:, 0],
                       t([1.0, 1.0, 0.0, 1.0]))


def test_top_entropy_mask_keeps_the_highest_entropy_tokens():
    entropy = t([[0.1, 0.9, 0.5, 5.0], [0.8, 0.2, 0.3, 0.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 1, 1]])  # 7 valid tokens; the 5.0 is padding
    keep = parts.top_entropy_mask(entropy, mask, 0.3)  # round(2.1) = 2 tokens: 0.9 and 0.8
    assert torch.equal(keep, t([[0, 1, 0, 0], [1, 0, 0, 0]]))
    assert torch.equal(parts.top_entropy_mask(entropy, mask, 0.0), mask)


# --------------------------------------------------------------------------------- importance correction


def test_importance_corrections_hand_values():
    log_w = torch.log(t([[0.5, 3.0, 1.0], [1.0, 1.5, 2.0]]))
    mask = t([[1, 1, 1], [1, 1, 0]])
    assert torch.allclose(parts.IS_CORRECTIONS["token_tis"](log_w, mask, 2.0), t([[0.5, 2.0, 1.0], [1.0, 1.5, 2.0]]))
    assert torch.allclose(parts.IS_CORRECTIONS["token_mis"](log_w, mask, 2.0), t([[0.5, 0.0, 1.0], [1.0, 1.5, 2.0]]))
    # sequences: products 1.5 and 1.5 (the padded 2.0 does not count)
    assert torch.allclose(parts.IS_CORRECTIONS["seq_tis"](log_w, mask, 2.0), torch.full((2, 3), 1.5))
    assert torch.allclose(parts.IS_CORRECTIONS["seq_tis"](log_w, mask, 1.2), torch.full((2, 3), 1.2))
    assert torch.allclose(parts.IS_CORRECTIONS["seq_mis"](log_w, mask, 1.2), torch.zeros(2, 3))
    assert torch.equal(parts.IS_CORRECTIONS["none"](log_w, mask, 2.0), torch.ones(2, 3))


# --------------------------------------------------------------------------------------- gradient variance


def test_gradient_variance_is_the_variance_of_the_mean_estimate():
    """Two group gradients (1, 0) and (3, 0): mean (2, 0), squared deviations sum 2, / (G-1) = 2 is the
    per-group variance, / G = 1 the variance of their mean."""
    assert parts.gradient_variance(t([[1.0, 0.0], [3.0, 0.0]])) == pytest.approx(1.0)
    g = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    assert parts.gradient_variance(g) == pytest.approx(float(g.var(0, unbiased=True).sum() / 4), rel=1e-5)


def test_every_choice_dict_entry_has_a_docstring_the_ui_can_show():
    for choices in (parts.BASELINES, parts.SCALES, parts.KL_PLACEMENTS, parts.IS_CORRECTIONS):
        for name, fn in choices.items():
            assert fn.__doc__ and fn.__doc__.strip(), name

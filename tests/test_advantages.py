"""Hand-computed checks and equivalences for labcore.advantages."""

import pytest
import torch

from labcore import advantages as A


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


# ---------------------------------------------------------------- returns_to_go


def test_returns_to_go_hand_values():
    """G_t = r_t + gamma * G_{t+1}: [1, 0, 2] with gamma 0.5 -> [1 + 0.5*1, 0 + 0.5*2, 2]."""
    out = A.returns_to_go(t([[1.0, 0.0, 2.0]]), t([[1.0, 1.0, 1.0]]), 0.5)
    torch.testing.assert_close(out, t([[1.5, 1.0, 2.0]]))


def test_returns_to_go_padding_contributes_nothing():
    """Padding rewards (5, even inf) must not leak into the returns, and padded positions output 0."""
    out = A.returns_to_go(
        t([[1.0, 2.0, 5.0], [3.0, float("inf"), float("inf")]]), t([[1, 1, 0], [1, 0, 0]]), 0.5
    )
    torch.testing.assert_close(out, t([[2.0, 2.0, 0.0], [3.0, 0.0, 0.0]]))


def test_returns_to_go_skips_a_masked_gap():
    """A gap inside the mask is skipped, not discounted over: [1, (9), 2] -> G_0 = 1 + 0.5 * 2."""
    out = A.returns_to_go(t([[1.0, 9.0, 2.0]]), t([[1, 0, 1]]), 0.5)
    torch.testing.assert_close(out, t([[2.0, 0.0, 2.0]]))


def test_returns_to_go_all_masked_row_and_float64():
    """An all-masked row gives zeros (no NaN) and float64 inputs stay float64."""
    out = A.returns_to_go(
        t([[1.0, 2.0], [float("nan"), 1.0]], torch.float64), t([[1, 1], [0, 0]], torch.float64), 1.0
    )
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, t([[3.0, 2.0], [0.0, 0.0]], torch.float64))


# ---------------------------------------------------------------- group_advantages

R = [[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]]


def test_group_mean_no_scale():
    """Dr. GRPO: subtract the group mean (2 and 4/3), divide by nothing."""
    out = A.group_advantages(t(R), "group_mean", "none")
    torch.testing.assert_close(out, t([[-1.0, 0.0, 1.0], [-4 / 3, -4 / 3, 8 / 3]]))


def test_group_mean_group_std_is_grpo():
    """GRPO: group 2 has unbiased std sqrt(((16+16+64)/9)/2) = 4/sqrt(3), so advantages -1/sqrt(3), 2/sqrt(3)."""
    out = A.group_advantages(t(R), "group_mean", "group_std", eps=0.0)
    torch.testing.assert_close(out, t([[-1.0, 0.0, 1.0], [-0.5773503, -0.5773503, 1.1547005]]))


def test_group_std_uses_eps():
    """eps is added to the std, not the variance: group 1 std 1 -> advantage 1 / (1 + 0.5)."""
    out = A.group_advantages(t([[1.0, 2.0, 3.0]]), "group_mean", "group_std", eps=0.5)
    torch.testing.assert_close(out, t([[-2 / 3, 0.0, 2 / 3]]))


def test_leave_one_out_hand_values():
    """RLOO: baseline of [1,2,3] is [2.5, 2, 1.5]; of [0,0,4] is [2, 2, 0]."""
    out = A.group_advantages(t(R), "leave_one_out", "none")
    torch.testing.assert_close(out, t([[-1.5, 0.0, 1.5], [-2.0, -2.0, 4.0]]))


def test_batch_mean_and_batch_std():
    """Batch mean is 10/6 = 5/3; batch unbiased std of the six rewards is sqrt((120/9)/5) = sqrt(8/3)."""
    out = A.group_advantages(t(R), "batch_mean", "none")
    torch.testing.assert_close(out, t(R) - 5 / 3)
    out = A.group_advantages(t(R), "group_mean", "batch_std", eps=0.0)
    torch.testing.assert_close(out, t([[-0.6123724, 0.0, 0.6123724], [-0.8164966, -0.8164966, 1.6329932]]))


def test_no_baseline_no_scale_is_raw_reward():
    """REINFORCE: the advantage is the reward itself."""
    torch.testing.assert_close(A.group_advantages(t(R), "none", "none"), t(R))


def test_rloo_equals_scaled_group_mean():
    """Book identity (ch. 6): RLOO advantage = K/(K-1) * (r - group mean)."""
    g = torch.Generator().manual_seed(0)
    r = torch.randn(5, 4, generator=g, dtype=torch.float64)
    rloo = A.group_advantages(r, "leave_one_out", "none")
    dr = A.group_advantages(r, "group_mean", "none")
    torch.testing.assert_close(rloo, 4 / 3 * dr)


def test_equal_rewards_give_zero_advantage_without_nan():
    """A group where every sample got the same reward carries no signal: advantage 0, not NaN (0/0)."""
    out = A.group_advantages(t([[2.0, 2.0, 2.0], [0.0, 1.0, 2.0]]), "group_mean", "group_std")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], t([0.0, 0.0, 0.0]))
    out = A.group_advantages(t([[2.0, 2.0], [2.0, 2.0]]), "batch_mean", "batch_std")
    torch.testing.assert_close(out, torch.zeros(2, 2))


def test_k1_leave_one_out_raises_with_fix():
    """Leave-one-out has no other sample to average with K=1; the error says what to change."""
    with pytest.raises(ValueError, match="at least 2 samples per prompt"):
        A.group_advantages(t([[1.0], [2.0]]), "leave_one_out", "none")


def test_k1_group_mean_gives_zero():
    """With K=1 the group mean is the reward itself, so the advantage is 0; group_std of one element is 0."""
    out = A.group_advantages(t([[1.0], [2.0]]), "group_mean", "group_std")
    torch.testing.assert_close(out, torch.zeros(2, 1))


def test_unknown_names_list_the_allowed_ones():
    """Errors name the allowed values so the UI/config can show them."""
    with pytest.raises(ValueError, match="leave_one_out"):
        A.group_advantages(t(R), "median", "none")
    with pytest.raises(ValueError, match="group_std"):
        A.group_advantages(t(R), "group_mean", "mad")


def test_dicts_list_every_choice():
    """The UI dropdowns enumerate these dicts; every name must be accepted by group_advantages."""
    assert {"none", "batch_mean", "group_mean", "leave_one_out"} <= set(A.BASELINES)
    assert {"none", "group_std", "batch_std"} <= set(A.SCALES)
    for b in A.BASELINES:
        for s in A.SCALES:
            assert torch.isfinite(A.group_advantages(t(R), b, s)).all()


def test_group_advantages_keeps_float64():
    """float64 rewards give float64 advantages (no silent downcast)."""
    assert A.group_advantages(t(R, torch.float64), "leave_one_out", "group_std").dtype == torch.float64


# ---------------------------------------------------------------- whiten


def test_whiten_hand_values():
    """[1,2,3,4]: mean 2.5, unbiased var 5/3, so (x - 2.5) / sqrt(5/3) = +-1.161895, +-0.387298."""
    out = A.whiten(t([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(out, t([-1.161895, -0.387298, 0.387298, 1.161895]))


def test_whiten_masked_ignores_padding_and_zeroes_it():
    """Padding values (100, -7) must not move the statistics, and come out as 0."""
    out = A.whiten(t([[1.0, 2.0, 100.0], [3.0, 4.0, -7.0]]), t([[1, 1, 0], [1, 1, 0]]))
    torch.testing.assert_close(out, t([[-1.161895, -0.387298, 0.0], [0.387298, 1.161895, 0.0]]))


def test_whiten_without_shift_mean_adds_mean_back():
    """shift_mean=False only rescales: the mean 2.5 is added back."""
    out = A.whiten(t([1.0, 2.0, 3.0, 4.0]), shift_mean=False)
    torch.testing.assert_close(out, t([1.338105, 2.112702, 2.887298, 3.661895]))


def test_whiten_degenerate_masks_are_finite():
    """All-masked and single-token inputs have no variance: zeros, not NaN (verl would raise)."""
    x = t([[1.0, 2.0], [3.0, 4.0]])
    torch.testing.assert_close(A.whiten(x, torch.zeros(2, 2)), torch.zeros(2, 2))
    torch.testing.assert_close(A.whiten(x, t([[0, 1], [0, 0]])), torch.zeros(2, 2))
    assert A.whiten(x.double(), torch.ones(2, 2, dtype=torch.float64)).dtype == torch.float64


# ---------------------------------------------------------------- gae


def test_gae_hand_values():
    """gamma 1, lam 0.5, V = [1,2,3], r = [0,1,2]: deltas [1, 2, -1], A = [1.75, 1.5, -1], returns A + V."""
    adv, ret = A.gae(t([[0.0, 1.0, 2.0]]), t([[1.0, 2.0, 3.0]]), t([[1, 1, 1]]), 1.0, 0.5)
    torch.testing.assert_close(adv, t([[1.75, 1.5, -1.0]]))
    torch.testing.assert_close(ret, t([[2.75, 3.5, 2.0]]))


def test_gae_padding_and_all_masked_row():
    """The value after the last valid token is 0 (padding value 7 ignored); padding and an all-masked row are 0."""
    r = t([[0.0, 1.0, 2.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
    v = t([[1.0, 2.0, 3.0, 7.0], [float("nan")] * 4])
    adv, ret = A.gae(r, v, t([[1, 1, 1, 0], [0, 0, 0, 0]]), 1.0, 0.5)
    torch.testing.assert_close(adv, t([[1.75, 1.5, -1.0, 0.0], [0.0] * 4]))
    torch.testing.assert_close(ret, t([[2.75, 3.5, 2.0, 0.0], [0.0] * 4]))


def test_gae_lam1_zero_values_is_returns_to_go():
    """With V = 0 and lam = 1, GAE telescopes to the discounted return (Monte Carlo)."""
    g = torch.Generator().manual_seed(1)
    r = torch.randn(3, 5, generator=g, dtype=torch.float64)
    mask = t([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], torch.float64)
    for gamma in (1.0, 0.9):
        adv, ret = A.gae(r, torch.zeros_like(r), mask, gamma, 1.0)
        torch.testing.assert_close(adv, A.returns_to_go(r, mask, gamma))
        torch.testing.assert_close(ret, adv)


def test_gae_lam0_is_one_step_td_error():
    """With lam = 0, A_t = r_t + gamma V_{t+1} - V_t, the one-step TD error (V = 0 after the end)."""
    r = t([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]])
    v = t([[0.5, 1.0, 1.5], [2.0, 1.0, 3.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    adv, _ = A.gae(r, v, mask, 0.9, 0.0)
    expected = t(
        [[1.0 + 0.9 * 1.0 - 0.5, 0.0 + 0.9 * 1.5 - 1.0, 2.0 - 1.5], [0.5 + 0.9 * 1.0 - 2.0, 1.0 - 1.0, 0.0]]
    )
    torch.testing.assert_close(adv, expected)


def test_gae_skips_a_masked_gap():
    """A gap inside the mask is skipped: same result as the sequence with the gap removed."""
    adv, _ = A.gae(t([[0.0, 5.0, 1.0, 2.0]]), t([[1.0, 8.0, 2.0, 3.0]]), t([[1, 0, 1, 1]]), 1.0, 0.5)
    torch.testing.assert_close(adv, t([[1.75, 0.0, 1.5, -1.0]]))


# ---------------------------------------------------------------- broadcasting and length shaping


def test_sequence_to_tokens():
    """One advantage per sequence goes to each of its valid tokens and nowhere else."""
    out = A.sequence_to_tokens(t([2.0, -1.0]), t([[1, 1, 0], [1, 0, 0]]))
    torch.testing.assert_close(out, t([[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]]))


def test_overlong_penalty_hand_values():
    """max_len 10, buffer 4: free up to 6, then (6 - |y|)/4 down to -1 at 10, and -1 beyond."""
    out = A.overlong_penalty(torch.tensor([5, 6, 7, 8, 10, 11]), 10, 4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, t([0.0, 0.0, -0.25, -0.5, -1.0, -1.0]))


def test_overlong_penalty_off_and_dtype():
    """buffer 0 turns the penalty off; float64 lengths give float64 penalties; a negative buffer is an error."""
    torch.testing.assert_close(A.overlong_penalty(torch.tensor([5, 20]), 10, 0), t([0.0, 0.0]))
    assert A.overlong_penalty(t([5.0, 9.0], torch.float64), 10, 4).dtype == torch.float64
    with pytest.raises(ValueError):
        A.overlong_penalty(torch.tensor([5]), 10, -1)

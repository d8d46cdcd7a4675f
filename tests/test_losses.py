"""Hand-computed values, equivalences and gradient facts for labcore.losses."""

import math

import pytest
import torch

from labcore import losses as L


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


INF = float("inf")

# ---------------------------------------------------------------- aggregate

LOSS = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
MASK = [[1, 1, 1], [1, 0, 0]]


def test_aggregate_hand_values():
    """Lengths 3 and 1: token mean 10/4; per-sequence means (2, 4) -> 3; sums (6, 4) -> 5; Dr. GRPO 10/(2*3)."""
    lt, m = t(LOSS), t(MASK)
    assert L.aggregate(lt, m, "token_mean").item() == pytest.approx(2.5)
    assert L.aggregate(lt, m, "seq_mean_token_mean").item() == pytest.approx(3.0)
    assert L.aggregate(lt, m, "seq_mean_token_sum").item() == pytest.approx(5.0)
    assert L.aggregate(lt, m, "seq_mean_token_sum_norm").item() == pytest.approx(10 / 6)
    assert L.aggregate(lt, m, "seq_mean_token_sum_norm", max_len=5).item() == pytest.approx(1.0)


def test_aggregate_all_masked_row_and_batch():
    """An empty row (padding inf) is skipped by both per-sequence means (a fully masked row is no sequence: it must
    not dilute the others, as in the token and sequence means); the constant normaliser of Dr. GRPO keeps B;
    an empty batch gives 0."""
    lt, m = t(LOSS + [[INF, INF, INF]]), t(MASK + [[0, 0, 0]])
    assert L.aggregate(lt, m, "token_mean").item() == pytest.approx(2.5)
    assert L.aggregate(lt, m, "seq_mean_token_mean").item() == pytest.approx(3.0)
    assert L.aggregate(lt, m, "seq_mean_token_sum").item() == pytest.approx(10 / 2)
    assert L.aggregate(lt, m, "seq_mean_token_sum_norm").item() == pytest.approx(10 / 9)
    for mode in L.AGGREGATIONS:
        assert L.aggregate(lt, torch.zeros(3, 3), mode).item() == 0.0


def test_seq_mean_token_mean_equals_token_mean_for_equal_lengths():
    """With every sequence the same length, averaging per sequence first changes nothing."""
    g = torch.Generator().manual_seed(0)
    lt = torch.randn(4, 5, generator=g)
    m = t([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [1, 0, 1, 0, 1], [1, 1, 1, 0, 0]])
    torch.testing.assert_close(L.aggregate(lt, m, "seq_mean_token_mean"), L.aggregate(lt, m, "token_mean"))


def test_dr_grpo_norm_is_token_mean_times_mean_length_over_t():
    """sum(lm)/(B*T) = [sum(lm)/N] * (N/B)/T: Dr. GRPO is the token mean scaled by mean length / T."""
    g = torch.Generator().manual_seed(1)
    lt = torch.randn(3, 6, generator=g, dtype=torch.float64)
    m = t([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], torch.float64)
    mean_len = m.sum(1).mean()
    torch.testing.assert_close(
        L.aggregate(lt, m, "seq_mean_token_sum_norm", max_len=6),
        L.aggregate(lt, m, "token_mean") * mean_len / 6,
    )


def test_aggregate_unknown_mode():
    """An unknown mode names the allowed ones."""
    with pytest.raises(ValueError, match="token_mean"):
        L.aggregate(t(LOSS), t(MASK), "sum")


# ---------------------------------------------------------------- policy_loss values

RATIOS = [1.5, 0.5, 1.1, 1.5]
ADV = [[1.0, -1.0, 2.0, -1.0]]


def batch(ratios, logp=None, dtype=torch.float32):
    """logp and old_logp with exp(logp - old_logp) = ratios."""
    logp = t([[-1.0] * len(ratios)] if logp is None else [logp], dtype)
    return logp, logp - t([ratios], dtype).log()


def test_clip_loss_hand_values():
    """Per token -min(rA, clip(r)A): r=1.5,A=1 -> -1.2 (high clip); r=0.5,A=-1 -> 0.8 (low clip);
    r=1.1,A=2 -> -2.2; r=1.5,A=-1 -> 1.5 (unclipped side wins). Mean -1.1/4."""
    logp, old = batch(RATIOS)
    loss, info = L.policy_loss(logp, old, t(ADV), torch.ones(1, 4), kind="clip")
    assert loss.item() == pytest.approx(-0.275, abs=1e-6)
    assert info["clip_frac_low"] == pytest.approx(0.25)
    assert info["clip_frac_high"] == pytest.approx(0.25)
    assert info["clip_frac"] == pytest.approx(0.5)
    assert info["ratio_mean"] == pytest.approx(1.15)
    assert info["ratio_max"] == pytest.approx(1.5)
    # (r - 1) - ln r: 0.0945349, 0.1931472, 0.0046898, 0.0945349
    assert info["approx_kl"] == pytest.approx(0.0967267, abs=1e-6)
    assert all(isinstance(v, float) for v in info.values())


def test_asymmetric_clip_higher():
    """DAPO clip-higher: clip_high 0.6 lets r=1.5, A=1 through (-1.5) while the low side stays at 0.8."""
    logp, old = batch([1.5, 0.5])
    loss, info = L.policy_loss(logp, old, t([[1.0, -1.0]]), torch.ones(1, 2), clip_low=0.2, clip_high=0.6)
    assert loss.item() == pytest.approx((-1.5 + 0.8) / 2, abs=1e-6)
    assert info["clip_frac_high"] == 0.0 and info["clip_frac_low"] == 0.5


def test_dual_clip_caps_negative_advantage_loss():
    """Ye et al.: r=10, A=-1 has clip loss 10; dual-clip c=3 caps it at -cA = 3. A>0 tokens are untouched."""
    logp, old = batch([10.0, 1.5])
    loss, _ = L.policy_loss(
        logp, old, t([[-1.0, 1.0]]), torch.ones(1, 2), dual_clip=3.0, agg="seq_mean_token_sum"
    )
    assert loss.item() == pytest.approx(3.0 - 1.2, abs=1e-5)


def test_pg_hand_values_and_ratio_stats():
    """REINFORCE: -A * logp = [1, -2] -> mean -0.5; ratio stats are still reported."""
    logp, old = batch([2.0, 1.0], logp=[-1.0, -2.0])
    loss, info = L.policy_loss(logp, old, t([[1.0, -1.0]]), torch.ones(1, 2), kind="pg")
    assert loss.item() == pytest.approx(-0.5)
    assert info["ratio_max"] == pytest.approx(2.0)
    assert info["ratio_mean"] == pytest.approx(1.5)


def test_cispo_hand_values():
    """CISPO: -clip(r) * A * logp = -1.2*1*(-1) = 1.2 and -0.8*(-1)*(-2) = -1.6 -> mean -0.2."""
    logp, old = batch([1.5, 0.5], logp=[-1.0, -2.0])
    loss, info = L.policy_loss(logp, old, t([[1.0, -1.0]]), torch.ones(1, 2), kind="cispo")
    assert loss.item() == pytest.approx(-0.2, abs=1e-6)
    assert info["clip_frac"] == pytest.approx(1.0)


def test_gspo_hand_values():
    """GSPO: sequence 1 has token ratios (2, 1) -> s = sqrt(2), A = 1 -> -min(1.414, 1.2) = -1.2;
    sequence 2 has r = 0.9, A = -2 -> 1.8; the empty third sequence is ignored. Mean 0.3."""
    logp = t([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    old = logp - t([[2.0, 1.0, 1.0], [0.9, 1.0, 1.0], [1.0, 1.0, 1.0]]).log()
    adv = t([[1.0, 1.0, 0.0], [-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = t([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    loss, info = L.policy_loss(logp, old, adv, mask, kind="gspo")
    assert loss.item() == pytest.approx(0.3, abs=1e-6)
    assert info["clip_frac_high"] == pytest.approx(0.5)
    assert info["clip_frac_low"] == 0.0
    assert info["ratio_mean"] == pytest.approx((math.sqrt(2) + 0.9) / 2, abs=1e-6)
    assert info["ratio_max"] == pytest.approx(math.sqrt(2), abs=1e-6)


def test_policy_loss_all_masked_row_every_kind():
    """An all-masked row (padding -inf / NaN) gives a finite loss, finite gradients and finite info for every kind."""
    logp = t([[-1.0, -2.0, 0.0], [-INF, float("nan"), -INF]]).requires_grad_()
    old = t([[-1.2, -1.5, 0.0], [-INF, -INF, 5.0]])
    adv = t([[1.0, 1.0, 0.0], [float("nan"), 1.0, 1.0]])
    mask = t([[1, 1, 0], [0, 0, 0]])
    for kind in L.POLICY_LOSSES:
        for agg in L.AGGREGATIONS:
            loss, info = L.policy_loss(logp, old, adv, mask, kind=kind, agg=agg, dual_clip=3.0)
            (grad,) = torch.autograd.grad(loss, logp)
            assert torch.isfinite(loss) and torch.isfinite(grad).all(), (kind, agg)
            assert all(math.isfinite(v) for v in info.values()), (kind, agg)
            assert grad[1].abs().sum() == 0
        loss, info = L.policy_loss(logp, old, adv, torch.zeros(2, 3), kind=kind)
        assert loss.item() == 0.0 and info["clip_frac"] == 0.0


def test_policy_loss_float64_and_errors():
    """float64 stays float64; dual_clip <= 1 and unknown kinds are rejected with the allowed values."""
    logp, old = batch(RATIOS, dtype=torch.float64)
    for kind in L.POLICY_LOSSES:
        loss, _ = L.policy_loss(
            logp, old, t(ADV, torch.float64), torch.ones(1, 4, dtype=torch.float64), kind=kind
        )
        assert loss.dtype == torch.float64
    with pytest.raises(ValueError, match="dual_clip"):
        L.policy_loss(logp, old, t(ADV, torch.float64), torch.ones(1, 4), dual_clip=1.0)
    with pytest.raises(ValueError, match="cispo"):
        L.policy_loss(logp, old, t(ADV, torch.float64), torch.ones(1, 4), kind="ppo")


# ---------------------------------------------------------------- policy_loss gradients


def grad_of(kind, logp, old, adv, mask, **kw):
    logp = logp.clone().requires_grad_()
    loss, _ = L.policy_loss(logp, old, adv, mask, kind=kind, **kw)
    (g,) = torch.autograd.grad(loss, logp)
    return g


def test_clipped_branch_passes_no_gradient():
    """PPO's trust region: at r = 1.5 with A > 0 and clip 0.2 the loss is the constant -1.2A, gradient 0."""
    logp, old = batch([1.5])
    g = grad_of("clip", logp, old, t([[2.0]]), torch.ones(1, 1))
    assert g.item() == 0.0


def test_clip_at_ratio_one_has_the_pg_gradient():
    """On the first epoch (logp == old_logp) PPO's gradient is exactly REINFORCE's: -A / N per valid token."""
    g_ = torch.Generator().manual_seed(2)
    logp = -torch.rand(3, 4, generator=g_)
    adv = torch.randn(3, 4, generator=g_)
    mask = t([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    g_clip = grad_of("clip", logp, logp.clone(), adv, mask)
    g_pg = grad_of("pg", logp, logp.clone(), adv, mask)
    torch.testing.assert_close(g_clip, g_pg)
    torch.testing.assert_close(g_clip, -adv * mask / 6)
    g_gspo = grad_of("gspo", logp, logp.clone(), adv, mask)
    assert torch.isfinite(g_gspo).all()


def test_cispo_gradient_is_clipped_weight_times_advantage():
    """CISPO keeps every token's gradient, weighted by the detached clipped ratio: -clip(r) * A / N."""
    logp, old = batch([1.5, 0.5, 1.1], logp=[-1.0, -2.0, -0.5])
    adv = t([[1.0, -1.0, 2.0]])
    g = grad_of("cispo", logp, old, adv, torch.ones(1, 3))
    torch.testing.assert_close(g, -t([[1.2, 0.8, 1.1]]) * adv / 3)
    g = grad_of("cispo", logp, old, adv, torch.ones(1, 3), agg="seq_mean_token_sum_norm", max_len=6)
    torch.testing.assert_close(g, -t([[1.2, 0.8, 1.1]]) * adv / 6)


def test_dual_clip_has_zero_gradient_when_capped():
    """Once the dual-clip cap -cA is active the loss is constant in logp, so a runaway ratio pushes no further."""
    logp, old = batch([10.0])
    logp = logp.requires_grad_()
    loss, _ = L.policy_loss(logp, old, t([[-1.0]]), torch.ones(1, 1), dual_clip=3.0)
    assert loss.item() == pytest.approx(3.0)
    (g,) = torch.autograd.grad(loss, logp)
    assert g.item() == 0.0


# ---------------------------------------------------------------- value loss, entropy, explained variance


def test_value_loss_hand_values():
    """V=[1.5,0,0.9], V_old=[1,0.5,0], R=1, clip 0.2: squared errors [0.25,1,0.01], clipped [0.04,0.49,0.64];
    the max is [0.25,1,0.64] -> 0.5*mean = 0.315 with the clipped term larger on 1 of 3 tokens."""
    v, v_old, r, m = t([[1.5, 0.0, 0.9]]), t([[1.0, 0.5, 0.0]]), t([[1.0, 1.0, 1.0]]), torch.ones(1, 3)
    loss, info = L.value_loss(v, v_old, r, m, clip=0.2)
    assert loss.item() == pytest.approx(0.315)
    assert info["clip_frac"] == pytest.approx(1 / 3)
    loss, info = L.value_loss(v, v_old, r, m)
    assert loss.item() == pytest.approx(0.21)
    assert info["clip_frac"] == 0.0


def test_value_loss_all_masked_row():
    """Padding values (NaN) and an all-masked row give a finite loss and gradient."""
    v = t([[1.5, float("nan")], [float("nan"), float("nan")]]).requires_grad_()
    loss, info = L.value_loss(
        v, t([[1.0, 0.0], [0.0, 0.0]]), t([[1.0, 1.0], [1.0, 1.0]]), t([[1, 0], [0, 0]]), clip=0.2
    )
    (g,) = torch.autograd.grad(loss, v)
    assert loss.item() == pytest.approx(0.125)
    assert torch.isfinite(g).all() and math.isfinite(info["clip_frac"])


def test_entropy_hand_values():
    """Uniform over 4 -> ln 4; p = (1/4, 3/4) -> 0.5623351; a -inf logit (top-k) contributes 0, not NaN."""
    logits = t([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -INF, -INF], [1.0, 1.0, -INF, -INF]]])
    torch.testing.assert_close(L.entropy_from_logits(logits), t([[math.log(4.0), 0.5623351, math.log(2.0)]]))
    assert L.entropy_from_logits(logits.double()).dtype == torch.float64


def test_explained_variance_hand_values():
    """Perfect critic -> 1; zero critic -> 0; V=[1,2,3,5] vs R=[1,2,3,4]: 1 - 0.75/5 = 0.85; constant R -> 0."""
    r, m = t([[1.0, 2.0, 3.0, 4.0]]), torch.ones(1, 4)
    assert L.explained_variance(r, r, m) == pytest.approx(1.0)
    assert L.explained_variance(torch.zeros(1, 4), r, m) == pytest.approx(0.0)
    assert L.explained_variance(t([[1.0, 2.0, 3.0, 5.0]]), r, m) == pytest.approx(0.85)
    assert L.explained_variance(r, torch.ones(1, 4), m) == 0.0
    assert L.explained_variance(r, r, torch.zeros(1, 4)) == 0.0
    masked = L.explained_variance(
        t([[1.0, 2.0, 3.0, 5.0, 99.0]]), t([[1.0, 2.0, 3.0, 4.0, 0.0]]), t([[1, 1, 1, 1, 0]])
    )
    assert masked == pytest.approx(0.85)


# ---------------------------------------------------------------- the 2025 losses and the IS weights


def test_ratio_loss_is_trpos_surrogate():
    """-rho * A: at rho = 1.5, A = 2 the loss is -3 and its gradient in log pi is -rho * A = -3."""
    logp, old = batch([1.5])
    loss, _ = L.policy_loss(logp, old, t([[2.0]]), torch.ones(1, 1), kind="ratio")
    assert loss.item() == pytest.approx(-3.0)
    assert grad_of("ratio", logp, old, t([[2.0]]), torch.ones(1, 1)).item() == pytest.approx(-3.0)


def test_cispo_clip_fraction_counts_every_clipped_weight():
    """CISPO clips the weight whatever the advantage's sign: ratios 1.5 (A < 0) and 0.5 (A > 0) with range
    [0.8, 1.2] are both clipped (a PPO-style count would report 0)."""
    logp, old = batch([1.5, 0.5, 1.0])
    _, info = L.policy_loss(logp, old, t([[-1.0, 1.0, 1.0]]), torch.ones(1, 3), kind="cispo", clip_low=0.2,
                            clip_high=0.2)
    assert info["clip_frac_high"] == pytest.approx(1 / 3) and info["clip_frac_low"] == pytest.approx(1 / 3)
    _, ppo = L.policy_loss(logp, old, t([[-1.0, 1.0, 1.0]]), torch.ones(1, 3), kind="clip")
    assert ppo["clip_frac"] == 0.0


def test_gmpo_hand_values():
    """GMPO: token log-ratios log 2 and log 0.5 with A = 1 and eps 0.4: sgn-aware clip gives min(log 2, 0.4) =
    0.4 and min(-log 2, -0.4) = -log 2; their mean (0.4 - log 2) / 2, exponentiated, times -A."""
    logp, old = batch([2.0, 0.5])
    loss, _ = L.policy_loss(logp, old, t([[1.0, 1.0]]), torch.ones(1, 2), kind="gmpo", clip_low=0.4, clip_high=0.4)
    assert loss.item() == pytest.approx(-math.exp((0.4 - math.log(2)) / 2), rel=1e-6)
    # A < 0 flips which side binds: max(log 2, ...) keeps log 2 ... clip(-0.4) -> -0.4
    loss, _ = L.policy_loss(logp, old, t([[-1.0, -1.0]]), torch.ones(1, 2), kind="gmpo", clip_low=0.4, clip_high=0.4)
    assert loss.item() == pytest.approx(math.exp((math.log(2) - 0.4) / 2), rel=1e-6)


def test_sapo_gate_has_ppos_gradient_at_ratio_one_and_fades_away_from_it():
    """f(r) = 4/tau sigmoid(tau (r - 1)): df/dr at r = 1 is 1, so the first step is REINFORCE's; at r = 3 the
    gradient is 4 sigmoid'(2) = 0.42 of it (a hard clip would give 0)."""
    one, old1 = batch([1.0])
    assert grad_of("sapo", one, old1, t([[1.0]]), torch.ones(1, 1)).item() == pytest.approx(-1.0)
    three, old3 = batch([3.0])
    s = 1 / (1 + math.exp(-2.0))
    g = grad_of("sapo", three, old3, t([[1.0]]), torch.ones(1, 1)).item()  # d/dlogp = f'(r) * r
    assert g == pytest.approx(-4 * s * (1 - s) * 3.0, rel=1e-5)
    loss, _ = L.policy_loss(one, old1, t([[-1.0]]), torch.ones(1, 1), kind="sapo")
    assert loss.item() == pytest.approx(4 / 1.05 * 0.5)  # A < 0 uses tau 1.05


def test_importance_weights_multiply_the_token_loss():
    """weights scale each token's loss (detached); 0 drops a token."""
    logp = t([[-1.0, -2.0]]).requires_grad_()
    loss, _ = L.policy_loss(logp, logp.detach(), t([[1.0, 1.0]]), torch.ones(1, 2), kind="pg",
                            agg="token_mean", weights=t([[0.5, 0.0]]))
    assert loss.item() == pytest.approx(0.5 * 1.0 / 2)
    (g,) = torch.autograd.grad(loss, logp)
    assert g.tolist() == [[-0.25, 0.0]]


def test_every_loss_declares_its_level_and_whether_it_clips():
    for name, fn in L.POLICY_LOSSES.items():
        assert fn.level in ("token", "sequence") and isinstance(fn.clips, bool), name
    assert L.POLICY_LOSSES["gspo"].level == L.POLICY_LOSSES["gmpo"].level == "sequence"

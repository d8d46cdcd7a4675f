"""Hand-computed and Monte Carlo checks for labcore.kl."""

import math

import pytest
import torch

from labcore import kl


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


def test_estimators_hand_values():
    """logp - ref_logp = 1: k1 = 1, k2 = 0.5, k3 = e^-1 - (-1) - 1 = e^-1; and = -1: k3 = e - 2."""
    logp, ref = t([-1.0, -2.0]), t([-2.0, -1.0])
    torch.testing.assert_close(kl.estimate(logp, ref, "k1"), t([1.0, -1.0]))
    torch.testing.assert_close(kl.estimate(logp, ref, "k2"), t([0.5, 0.5]))
    torch.testing.assert_close(kl.estimate(logp, ref, "k3"), t([0.3678794, 0.7182818]))


def test_k3_is_nonnegative():
    """k3 = x - 1 - log x >= 0 for every x > 0, so it never reports a negative KL per token."""
    g = torch.Generator().manual_seed(0)
    logp, ref = torch.randn(1000, generator=g) * 3, torch.randn(1000, generator=g) * 3
    assert (kl.estimate(logp, ref, "k3") >= 0).all()


def test_k3_is_stable_for_large_log_ratios():
    """rlhf-book stability test: logp - ref_logp = +-50 must not overflow; d is clamped to [-20, 20]."""
    out = kl.estimate(t([0.0, -50.0]), t([-50.0, 0.0]), "k3")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], t(19.0))  # expm1(-20) + 20
    torch.testing.assert_close(out[1], t(math.expm1(20.0) - 20.0))


def test_k1_and_k3_are_unbiased_monte_carlo():
    """Sampling from p, mean k1 and mean k3 estimate KL(p||q) = 0.3 ln 2.5 = 0.274887 (fixed seed)."""
    p, q = t([0.5, 0.3, 0.2]), t([0.2, 0.3, 0.5])
    g = torch.Generator().manual_seed(0)
    idx = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, ref = p.log()[idx], q.log()[idx]
    assert kl.estimate(logp, ref, "k1").mean().item() == pytest.approx(0.274887, abs=0.01)
    assert kl.estimate(logp, ref, "k3").mean().item() == pytest.approx(0.274887, abs=0.01)


def test_estimate_keeps_float64_and_rejects_unknown():
    """float64 stays float64; an unknown estimator names the allowed ones."""
    for kind in kl.ESTIMATORS:
        assert kl.estimate(t([-1.0], torch.float64), t([-2.0], torch.float64), kind).dtype == torch.float64
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl.estimate(t([0.0]), t([0.0]), "k4")


def test_adaptive_controller_hand_values():
    """Ziegler et al.: target 6, horizon 10000, beta 0.1. KL 12 -> e = 1 clipped to 0.2: 0.1 * 1.02 = 0.102.
    KL 5.4 over 2000 samples -> e = -0.1: 0.102 * 0.98 = 0.09996. KL 0 -> e = -1 clipped to -0.2: * 0.98."""
    c = kl.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    c.update(12.0, n_steps=1000)
    assert c.value == pytest.approx(0.102)
    c.update(5.4, n_steps=2000)
    assert c.value == pytest.approx(0.09996)
    c.update(0.0, n_steps=1000)
    assert c.value == pytest.approx(0.0979608)


def test_controllers_value_can_be_set_live():
    """The UI sets .value directly; the fixed controller keeps it, the adaptive one continues from it."""
    f = kl.FixedKLController(0.05)
    f.update(100.0, 1000)
    assert f.value == 0.05
    f.value = 0.2
    f.update(0.0, 1000)
    assert f.value == 0.2
    a = kl.AdaptiveKLController(0.1, target=1.0, horizon=100)
    a.value = 0.5
    a.update(torch.tensor(2.0), n_steps=10)  # e = 0.2 (clipped from 1.0)
    assert a.value == pytest.approx(0.5 * 1.02)
    assert set(kl.CONTROLLERS) == {"fixed", "adaptive"}


# ---- what each estimator's gradient is, in the loss (Tang & Munos 2025), by exact expectation


def _expected_grad(kind):
    """E_{y ~ pi}[grad_theta k(y)] for a softmax policy over 4 tokens, exactly (a sum over the vocabulary). The
    samples come from pi, so differentiating the expectation of a loss term c(y) means E[grad c] (the sampling
    distribution is not differentiated: that is what putting the estimator in the loss does)."""
    theta = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(torch.tensor([0.0, 0.4, -0.3, 0.2], dtype=torch.float64), 0)
    logp = torch.log_softmax(theta, 0)
    probs = logp.exp().detach()
    k = kl.estimate(logp, ref, kind)  # per token of the vocabulary, as if each were sampled
    (g,) = torch.autograd.grad((probs * k).sum(), theta)
    return g, theta, ref


def _true_grad(direction):
    theta = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(torch.tensor([0.0, 0.4, -0.3, 0.2], dtype=torch.float64), 0)
    logp = torch.log_softmax(theta, 0)
    value = (logp.exp() * (logp - ref)).sum() if direction == "pi||ref" else (ref.exp() * (ref - logp)).sum()
    (g,) = torch.autograd.grad(value, theta)
    return g


def test_k1_in_the_loss_has_zero_expected_gradient():
    g, _, _ = _expected_grad("k1")
    assert torch.allclose(g, torch.zeros(4, dtype=torch.float64), atol=1e-12)


def test_k2_in_the_loss_follows_kl_pi_ref():
    assert torch.allclose(_expected_grad("k2")[0], _true_grad("pi||ref"), atol=1e-12)


def test_k3_in_the_loss_follows_kl_ref_pi():
    g = _expected_grad("k3")[0]
    assert torch.allclose(g, _true_grad("ref||pi"), atol=1e-12)
    assert not torch.allclose(g, _true_grad("pi||ref"), atol=1e-3)


def test_importance_corrected_k3_follows_kl_pi_ref_with_k3s_value():
    g = _expected_grad("k3_is")[0]
    assert torch.allclose(g, _true_grad("pi||ref"), atol=1e-12)
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    assert torch.equal(kl.estimate(logp, ref, "k3_is"), kl.estimate(logp, ref, "k3"))  # on-policy: same value
    assert kl.LOSS_GRADIENT.keys() == kl.ESTIMATORS.keys()


def test_k3_keeps_its_digits_at_small_log_ratios_in_float32():
    """At log-ratios of 1e-4 (early training) the naive ratio - 1 - log ratio in float32 is more than 2x off;
    expm1(d) - d keeps float64's value to 1e-3 relative."""
    d64 = torch.full((5,), 1e-4, dtype=torch.float64) * torch.arange(1, 6)
    exact = torch.expm1(d64) - d64
    logp = torch.zeros(5)
    got = kl.estimate(logp, d64.float(), "k3").double()
    naive = (d64.float().exp() - 1 - d64.float()).double()
    assert torch.allclose(got, exact, rtol=1e-3)
    assert ((naive - exact).abs() / exact).max() > 1.0

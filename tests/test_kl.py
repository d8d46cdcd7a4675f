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

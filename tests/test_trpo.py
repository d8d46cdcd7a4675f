"""Hand-computed checks for the TRPO helpers in labcore.trpo."""

import math

import pytest
import torch

from labcore import trpo


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def test_conjugate_gradient_solves_3x3_spd():
    """A = [[4,1,0],[1,3,1],[0,1,2]], b = [1,2,3] has solution (2/9, 1/9, 13/9); CG finds it in 3 steps."""
    A = t([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
    x = trpo.conjugate_gradient(lambda v: A @ v, t([1.0, 2.0, 3.0]))
    torch.testing.assert_close(x, t([2 / 9, 1 / 9, 13 / 9]))
    x3 = trpo.conjugate_gradient(lambda v: A @ v, t([1.0, 2.0, 3.0]), iters=3)
    torch.testing.assert_close(x3, t([2 / 9, 1 / 9, 13 / 9]))


def test_conjugate_gradient_zero_rhs():
    """b = 0 stops at once with x = 0 (no 0/0)."""
    x = trpo.conjugate_gradient(lambda v: 2 * v, torch.zeros(3))
    torch.testing.assert_close(x, torch.zeros(3))


def test_natural_gradient_step_hand_values():
    """F = diag(2, 8), g = (1, 1), no damping: s = F^-1 g = (0.5, 0.125), s^T F s = 0.625, so the step is
    -sqrt(0.02 / 0.625) s = (-0.0894427, -0.0223607) with 0.5 step^T F step = max_kl = 0.01 and expected
    loss decrease -g . step = 0.1118034."""
    F = t([[2.0, 0.0], [0.0, 8.0]])
    step, expected = trpo.natural_gradient_step(t([1.0, 1.0]), lambda v: F @ v, max_kl=0.01, damping=0.0)
    torch.testing.assert_close(step, t([-0.0894427191, -0.0223606798]))
    assert expected == pytest.approx(0.1118033989)
    assert 0.5 * float(step @ F @ step) == pytest.approx(0.01)


def test_natural_gradient_step_with_damping_meets_damped_budget():
    """Damping solves (F + dI) s = g and scales with the damped matrix, so 0.5 step^T (F + dI) step = max_kl."""
    F = t([[2.0, 0.0], [0.0, 0.0]])  # singular: damping keeps it solvable
    step, expected = trpo.natural_gradient_step(t([1.0, 1.0]), lambda v: F @ v, max_kl=0.05, damping=0.1)
    Fd = F + 0.1 * torch.eye(2, dtype=torch.float64)
    assert 0.5 * float(step @ Fd @ step) == pytest.approx(0.05)
    assert expected > 0
    zero, e0 = trpo.natural_gradient_step(torch.zeros(2), lambda v: F.float() @ v, max_kl=0.05)
    assert e0 == 0.0 and torch.equal(zero, torch.zeros(2))


def quadratic(x):
    return float((x**2).sum())


def kl_to_x0(x0):
    return lambda x: 0.5 * float(((x - x0) ** 2).sum())


def test_line_search_accepts_full_step_on_quadratic():
    """f = |x|^2 from (1, 1) with step (-1, -1): improvement 2 vs expected 4 (ratio 0.5 >= 0.1), KL 1 <= 1."""
    x0 = t([1.0, 1.0])
    x, info = trpo.line_search(quadratic, x0, t([-1.0, -1.0]), 4.0, kl_to_x0(x0), max_kl=1.0)
    torch.testing.assert_close(x, t([0.0, 0.0]))
    assert info == {"accepted": True, "step_frac": 1.0, "kl": 1.0, "improvement": 2.0, "backtracks": 0}


def test_line_search_backtracks_when_kl_too_large():
    """Same problem with max_kl 0.3: the full step has KL 1, the half step KL 0.25 and improvement 1.5."""
    x0 = t([1.0, 1.0])
    x, info = trpo.line_search(quadratic, x0, t([-1.0, -1.0]), 4.0, kl_to_x0(x0), max_kl=0.3)
    torch.testing.assert_close(x, t([0.5, 0.5]))
    assert info == {"accepted": True, "step_frac": 0.5, "kl": 0.25, "improvement": 1.5, "backtracks": 1}


def test_line_search_rejects_when_nothing_improves():
    """An uphill step never lowers the loss: the search gives back x0 and says it did not accept."""
    x0 = t([1.0, 1.0])
    x, info = trpo.line_search(quadratic, x0, t([1.0, 1.0]), 4.0, kl_to_x0(x0), max_kl=10.0)
    assert torch.equal(x, x0)
    assert info["accepted"] is False and info["step_frac"] == 0.0 and info["backtracks"] == 10


def test_line_search_rejects_too_little_improvement():
    """A step that improves by far less than the linear model promised is backtracked (accept_ratio)."""
    x0 = t([1.0, 1.0])
    # expected 100 is wildly optimistic: improvements 2, 1.5, 0.875 fall short of 0.1 * (100, 50, 25).
    x, info = trpo.line_search(
        quadratic, x0, t([-1.0, -1.0]), 100.0, kl_to_x0(x0), max_kl=10.0, max_backtracks=3
    )
    assert info["accepted"] is False and torch.equal(x, x0)


def test_flat_params_round_trip_and_flat_grad():
    """flat_grad of (w.x + b) wrt [w, b, unused] is [x, 1, 0, 0]; set_flat_params inverts flat_params."""
    w = torch.nn.Parameter(t([[1.0, 2.0]]))
    b = torch.nn.Parameter(t([0.5]))
    unused = torch.nn.Parameter(t([7.0, 8.0]))
    params = [w, b, unused]
    out = (w @ t([3.0, 4.0]) + b).sum()
    torch.testing.assert_close(trpo.flat_grad(out, params), t([3.0, 4.0, 1.0, 0.0, 0.0]))
    flat = trpo.flat_params(params)
    torch.testing.assert_close(flat, t([1.0, 2.0, 0.5, 7.0, 8.0]))
    trpo.set_flat_params(params, flat * 2)
    torch.testing.assert_close(w.data, t([[2.0, 4.0]]))
    torch.testing.assert_close(unused.data, t([14.0, 16.0]))
    with pytest.raises(ValueError):
        trpo.set_flat_params(params, torch.zeros(4, dtype=torch.float64))


def test_fisher_vector_product_via_double_backprop_drives_a_trpo_step():
    """End to end on a 3-way softmax: the Fisher of KL(old||new) at old is built with flat_grad(create_graph)
    and the TRPO step lowers the surrogate loss within the KL budget."""
    logits = torch.nn.Parameter(t([0.0, 0.0, 0.0]))
    old_p = torch.softmax(logits.detach(), 0)
    adv = t([1.0, 0.0, -1.0])

    def loss_at(z):
        return -(torch.softmax(z, 0) / old_p * old_p * adv).sum()

    def kl_at(z):
        return (old_p * (old_p.log() - torch.log_softmax(z, 0))).sum()

    g = trpo.flat_grad(loss_at(logits), [logits])
    grad_kl = trpo.flat_grad(kl_at(logits), [logits], create_graph=True)

    def fvp(v):
        return trpo.flat_grad(grad_kl @ v, [logits], retain_graph=True)

    step, expected = trpo.natural_gradient_step(g, fvp, max_kl=0.01, damping=1e-3)
    x0 = trpo.flat_params([logits])
    x, info = trpo.line_search(
        lambda z: loss_at(z), x0, step, expected, lambda z: kl_at(z), max_kl=0.01 * 1.5
    )
    assert info["accepted"] and info["improvement"] > 0
    assert info["kl"] == pytest.approx(0.01, rel=0.3)
    assert math.isfinite(info["kl"])
    trpo.set_flat_params([logits], x)
    assert float(loss_at(logits.detach())) < float(loss_at(x0))

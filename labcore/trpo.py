"""Trust-region policy optimisation helpers (Schulman et al. 2015, TRPO, arXiv:1502.05477).

Implements conjugate gradient for F s = g given only Fisher-vector products, the natural-gradient step
scaled to a KL budget (TRPO sec. 6 and appendix C), the backtracking line search of appendix C, and
helpers to move between a parameter list and one flat vector.

Sign convention: everything works on a LOSS to minimise. `g` is the gradient of the loss, the step
points along -F^{-1} g, and "improvement" means the loss went down (f(x0) - f(x) > 0), both for the
expected improvement returned by `natural_gradient_step` and the actual one measured by `line_search`.

Left out on purpose: building the Fisher-vector product (the trainer does it with double backprop of the
mean KL, since it owns the model), value-function fitting, and the TRPO trainer loop itself.
"""

from collections.abc import Callable, Iterable

import torch


def conjugate_gradient(
    Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10, tol: float = 1e-10
) -> torch.Tensor:
    """Solve A x = b for a symmetric positive definite A known only through v -> A v.

    Stops after `iters` iterations or when the squared residual |b - A x|^2 drops below `tol`.

    Shape: b (N,) -> x (N,)
    """
    x = torch.zeros_like(b)  # (N,)
    r = b.clone()  # residual b - A x, with x = 0
    p = b.clone()  # search direction
    rr = r @ r
    for _ in range(iters):
        if float(rr) < tol:
            break
        Ap = Avp(p).detach()  # (N,)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def natural_gradient_step(
    g: torch.Tensor,
    Fvp: Callable[[torch.Tensor], torch.Tensor],
    max_kl: float,
    cg_iters: int = 10,
    damping: float = 0.1,
) -> tuple[torch.Tensor, float]:
    """Full natural-gradient step for a loss with gradient g, scaled to the KL budget.

    Solves (F + damping I) s = g by conjugate gradient, then full_step = -sqrt(2 max_kl / s^T F s) * s,
    so the quadratic KL model 0.5 step^T F step equals max_kl. The damped F is used in s^T F s too
    (as Spinning Up and pytorch-trpo do), which keeps it positive when F is singular.
    expected_improve = -g . full_step > 0 is the first-order predicted decrease of the loss, the number
    `line_search` compares actual improvements against. A zero gradient gives a zero step.

    Shape: g (N,) -> full_step (N,), expected_improve float
    """

    def damped(v: torch.Tensor) -> torch.Tensor:
        return Fvp(v).detach() + damping * v

    s = conjugate_gradient(damped, g, iters=cg_iters)  # (N,)
    sFs = float(s @ damped(s))
    if sFs <= 0.0:
        return torch.zeros_like(g), 0.0
    full_step = -((2.0 * max_kl / sFs) ** 0.5) * s  # (N,)
    return full_step, float(-(g @ full_step))


def line_search(
    f: Callable[[torch.Tensor], torch.Tensor | float],
    x0: torch.Tensor,
    full_step: torch.Tensor,
    expected_improve: float,
    constraint: Callable[[torch.Tensor], torch.Tensor | float],
    max_kl: float,
    max_backtracks: int = 10,
    accept_ratio: float = 0.1,
    backtrack_coef: float = 0.5,
) -> tuple[torch.Tensor, dict]:
    """Backtracking line search on a loss f (Schulman et al. 2015, appendix C).

    Tries x0 + coef^i * full_step for i = 0 .. max_backtracks-1 and accepts the first point whose
    improvement f(x0) - f(x) is > 0 and >= accept_ratio * coef^i * expected_improve, and whose
    constraint(x) (the KL to the old policy) is <= max_kl. If none passes, returns x0 unchanged.
    info: accepted (bool), step_frac (coef^i, 0.0 if rejected), kl, improvement, backtracks (i).

    Shape: x0 (N,), full_step (N,) -> x_new (N,), info
    """
    with torch.no_grad():
        f0 = float(f(x0))
        for i in range(max_backtracks):
            frac = backtrack_coef**i
            x = x0 + frac * full_step  # (N,)
            improvement = f0 - float(f(x))
            kl = float(constraint(x))
            if improvement > 0 and improvement >= accept_ratio * frac * expected_improve and kl <= max_kl:
                info = {
                    "accepted": True,
                    "step_frac": frac,
                    "kl": kl,
                    "improvement": improvement,
                    "backtracks": i,
                }
                return x, info
    info = {"accepted": False, "step_frac": 0.0, "kl": 0.0, "improvement": 0.0, "backtracks": max_backtracks}
    return x0, info


def flat_params(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate parameters into one detached vector. Shape: -> (N,)"""
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_params(params: Iterable[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy a flat vector (N,) back into the parameters, in order, in place."""
    params = list(params)
    total = sum(p.numel() for p in params)
    if total != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} elements but the parameters hold {total}")
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n


def flat_grad(
    output: torch.Tensor,
    params: Iterable[torch.Tensor],
    create_graph: bool = False,
    retain_graph: bool | None = None,
) -> torch.Tensor:
    """Gradient of a scalar output wrt params as one vector; parameters it does not use get zeros.

    create_graph=True keeps the graph so the result can be differentiated again (Fisher-vector products).

    Shape: output () -> (N,)
    """
    params = list(params)
    grads = torch.autograd.grad(
        output, params, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True
    )
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])

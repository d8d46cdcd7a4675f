"""KL estimators and KL-coefficient controllers.

Implements Schulman's per-token estimators k1, k2 and k3 of KL(pi_theta || pi_ref) from samples of
pi_theta (http://joschu.net/blog/kl-approx.html) and the adaptive KL controller of Ziegler et al. 2019
(arXiv:1909.08593), identical in TRL v1, OpenRLHF and verl.

k3_is is DeepSeek-V3.2's importance-corrected k3 (TRL `use_bias_correction_kl`); LOSS_GRADIENT says which
divergence each estimator's gradient follows when it is put in the loss.
Left out on purpose: the "abs" and full-vocabulary estimators, verl's straight-through "k1+"/"k3+"
variants, and output clamping of k3 to [-10, 10] (verl and OpenRLHF do it; here the clamp of the log-ratio
is enough to stay finite, and an unclamped value shows the lab's user how large the drift really is).
Where the KL goes (reward or loss) is decided by the trainer, not here.
"""

import torch

ESTIMATORS = {
    "k1": "log(pi/pi_ref): unbiased, high variance, can be negative per token.",
    "k2": "0.5 * log(pi/pi_ref)^2: biased, low variance, always >= 0; its gradient is the KL gradient.",
    "k3": "pi_ref/pi - 1 - log(pi_ref/pi): unbiased, low variance, always >= 0 (GRPO's choice).",
    "k3_is": "k3 times the ratio pi/pi_old (old detached): the same value on-policy, the gradient of KL(pi || ref) "
             "(DeepSeek-V3.2; TRL use_bias_correction_kl).",
}

# Which divergence's gradient an estimator follows when it is put in the LOSS (samples from pi, differentiated
# through log pi only). Tang & Munos 2025 ("On a few pitfalls in KL divergence gradient estimation for RL"):
# E[grad k1] = E[grad log pi] = 0; E[grad k2] = E[log(pi/ref) grad log pi] = grad KL(pi || ref);
# E[grad k3] = E[(1 - ref/pi) grad log pi] = -E_ref[grad log pi] = grad KL(ref || pi); k3 times the ratio
# pi/sg(pi_old) adds k3's score-function term back, which gives grad KL(pi || ref). tests/test_kl.py checks each
# by exact expectation over a small categorical policy.
LOSS_GRADIENT = {
    "k1": "none: its expected gradient is 0, so in the loss it does not pull towards the reference",
    "k2": "KL(pi || ref), the reverse KL the penalty is meant to be",
    "k3": "KL(ref || pi), the forward KL (not the KL(pi || ref) whose value it estimates)",
    "k3_is": "KL(pi || ref), the reverse KL the penalty is meant to be",
}

CONTROLLERS = {
    "fixed": "Keep the KL coefficient constant.",
    "adaptive": "Steer the coefficient so the measured KL tracks a target (Ziegler et al. 2019).",
}


def estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str,
             old_logp: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token KL estimate from log-probs of the sampled tokens under the policy and the reference.

    k3 is computed as expm1(d) - d with d = ref_logp - logp clamped to [-20, 20] first (verl clamps the
    same way), so it stays finite and accurate for tiny and huge log-ratios (the naive ratio - 1 - log ratio
    loses most digits in float32 at the log-ratios of early training). k3_is multiplies k3 by
    exp(logp - old_logp), old_logp (the sampling policy's log-probs, default logp itself) taken as constant.

    Shape: logp (B, T), ref_logp (B, T) -> (B, T)   (any shape works, elementwise)
    """
    if kind == "k1":
        return logp - ref_logp
    if kind == "k2":
        return 0.5 * (logp - ref_logp) ** 2
    if kind == "k3":
        d = (ref_logp - logp).clamp(-20.0, 20.0)
        return torch.expm1(d) - d
    if kind == "k3_is":
        old = (logp if old_logp is None else old_logp).detach()
        return torch.exp((logp - old).clamp(-20.0, 20.0)) * estimate(logp, ref_logp, "k3")
    raise ValueError(f"unknown KL estimator {kind!r}; allowed: {', '.join(ESTIMATORS)}")


class FixedKLController:
    """A constant KL coefficient; `update` does nothing. `.value` may be set directly."""

    def __init__(self, coef: float) -> None:
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """No-op, so the trainer can call every controller the same way."""


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019, arXiv:1909.08593, sec. 2.2).

    e = clip(KL / target - 1, -0.2, 0.2);  value <- value * (1 + e * n_steps / horizon).
    `.value` may be set directly (the UI changes it live); updates continue from the new value.
    """

    def __init__(self, init_coef: float, target: float, horizon: float) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError(f"adaptive KL needs target > 0 and horizon > 0, got {target=} {horizon=}")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Move the coefficient towards keeping `current_kl` at the target; n_steps = samples seen."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

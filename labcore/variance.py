"""Paired gradient variance of policy-gradient estimators: several baselines, one batch, the same weights.

Two runs' gradient-variance charts compare trajectories (different weights, different batches), so the textbook
claim "a baseline cuts the variance" (Williams 1992; Sutton & Barto 2018, section 13.4 and fig. 13.2) is lost in
the noise between runs. Here every estimator is measured on the SAME sampled batch at the SAME weights: the
per-sequence score gradients g_i = grad sum_t log pi(y_i,t) are taken once, and each baseline only changes the
weight w_i = r_i - b_i of each g_i.

For weights w (B,) and score gradients G (B, D), the estimator is g_hat = (1/B) sum_i w_i g_i. The prompts are
drawn independently, the K samples of one prompt are not (a group baseline ties them), so the unit is the prompt:
X_p = (1/K) sum_{i in p} w_i g_i, g_hat = mean_p X_p, and we report the trace of its covariance

    Var[g_hat] ~= (1 / (P (P - 1))) * sum_p ||X_p - X_bar||^2

(the batch-mean baseline still ties prompts together through one number; with P = 8 that is a small effect).
Left out: per-token returns and KL in the reward (the weights are the task's sequence rewards), and the std
scaling of GRPO.
"""

from __future__ import annotations

import torch

from labcore.advantages import BASELINES, group_advantages


def estimate_variance(units: torch.Tensor) -> float:
    """Trace of the covariance of the mean of P independent `units`. Shape: (P, D) -> float (0 for P < 2)."""
    P = units.size(0)
    if P < 2:
        return 0.0
    return float(((units - units.mean(0)) ** 2).sum() / (P * (P - 1)))


def estimator_variances(score_grads: torch.Tensor, rewards: torch.Tensor,
                        baselines: tuple[str, ...] = ("none", "batch_mean", "group_mean", "leave_one_out"),
                        ) -> dict[str, float]:
    """Gradient variance of the REINFORCE estimator under each baseline, on one batch (prompts as units).

    score_grads[i] is grad_theta log pi(y_i) (prompt-major: rows P*k .. P*k + K - 1 share prompt k).
    Returns {baseline: trace of Var[g_hat]}.

    Shape: score_grads (B, D), rewards (P, K) with B = P*K.
    """
    P, K = rewards.shape
    if score_grads.size(0) != P * K:
        raise ValueError(f"score_grads has {score_grads.size(0)} rows but rewards is {P} x {K} = {P * K} samples")
    out = {}
    for name in baselines:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
        w = group_advantages(rewards, name, "none").reshape(-1, 1)                  # (B, 1)
        units = (w * score_grads).view(P, K, -1).mean(1)                             # (P, D)
        out[name] = estimate_variance(units)
    return out


def score_gradients(lm, batch, params: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """grad_theta sum_t log pi(y_i,t) for every sequence i of `batch`, flattened over `params`.

    One forward, then one backward per sequence through the shared graph. Shape: -> (B, D)
    """
    from labcore.rollout import token_logprobs

    logp = token_logprobs(lm, batch, temperature)["logp"]                           # (B, T)
    seq = (logp * batch.mask).sum(1)                                                 # (B,)
    rows = []
    for i in range(seq.size(0)):
        grads = torch.autograd.grad(seq[i], params, retain_graph=i < seq.size(0) - 1, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                               for g, p in zip(grads, params)]))
    return torch.stack(rows)                                                         # (B, D)


def paired_probe(trainer, batches: int,
                 baselines: tuple[str, ...] = ("none", "batch_mean", "group_mean", "leave_one_out"),
                 ) -> dict[str, float]:
    """Sample `batches` fresh batches at the trainer's current weights (no update) and measure each baseline's
    gradient variance on each. Returns the mean variance per baseline (`var/<name>`), the mean per-batch
    ratio to no baseline (`ratio/<name>`) and the ratio of the mean variances (`pooled/<name>`)."""
    cfg = trainer.cfg
    P, K = cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt
    sums: dict[str, float] = {}
    for _ in range(batches):
        rows = trainer.prompts(P)
        with torch.no_grad():
            trainer.mode(train=False)
            batch = trainer.sample(rows, K)
        batch.logprobs = None
        scores, _, _ = trainer.score(rows, batch, K)                                 # (B,)
        trainer.mode(train=True)
        grads = score_gradients(trainer.lm, batch, trainer.params, trainer.live.temperature)
        var = estimator_variances(grads, scores.view(P, K).float(), baselines)
        for name, v in var.items():
            sums[f"var/{name}"] = sums.get(f"var/{name}", 0.0) + v / batches
            ratio = v / var["none"] if var.get("none") else float("nan")
            sums[f"ratio/{name}"] = sums.get(f"ratio/{name}", 0.0) + ratio / batches
    for name in baselines:  # the ratio of the mean variances: steadier than the mean of per-batch ratios
        none = sums.get("var/none", 0.0)
        sums[f"pooled/{name}"] = sums[f"var/{name}"] / none if none else float("nan")
    return sums

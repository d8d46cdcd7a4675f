"""Policy and value losses, loss aggregation, entropy and explained variance.

Implements the per-token policy-gradient surrogates REINFORCE ("pg"), PPO clip (Schulman et al. 2017,
arXiv:1707.06347) with asymmetric clip ranges (DAPO clip-higher, Yu et al. 2025) and dual-clip (Ye et al.
2019, arXiv:1912.09729), CISPO (MiniMax-M1, arXiv:2506.13585) and GSPO (Zheng et al. 2025,
arXiv:2507.18071); the clipped value loss (OpenAI baselines PPO2); and the aggregation modes that separate
GRPO, Dr. GRPO and DAPO (verl `agg_loss`).

GMPO (Zhao et al. 2025) and SAPO (Gao et al. 2025) are the 2025 losses added as one function and one entry each.
Left out on purpose: Clip-Cov/KL-Cov, DPPO, VESPO, TRL's delta clip, verl's GSPO-token variant, and data-parallel normalisation (one process sees the
whole batch here).

Vocabulary: B sequences, T completion tokens, V vocabulary; `mask` is 1.0 on valid completion tokens.
Every loss returns (loss, info) with info holding plain Python floats.
"""

import math

import torch

AGGREGATIONS = {
    "token_mean": "Sum over all valid tokens / number of valid tokens: every token weighs the same (DAPO).",
    "seq_mean_token_mean": "Mean over tokens within each sequence, then mean over sequences (original GRPO).",
    "seq_mean_token_sum": "Sum over tokens within each sequence, then mean over sequences with a token (verl).",
    "seq_mean_token_sum_norm": "Sum over all valid tokens / (B * max_len), a constant normaliser (Dr. GRPO).",
}

# verl and OpenRLHF clamp the log-ratio before exp so a stale or broken sample cannot overflow.
_LOG_RATIO_CLAMP = 20.0


def _zero_pad(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where, not x * mask: padding may hold inf/NaN and inf * 0 is NaN.
    return torch.where(mask > 0, x, torch.zeros_like(x))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over valid positions; 0 where there are none. mask is binary, so clamping the count to 1
    changes only the empty case."""
    m = (mask > 0).to(x.dtype)
    if dim is None:
        return _zero_pad(x, mask).sum() / m.sum().clamp(min=1.0)
    return _zero_pad(x, mask).sum(dim) / m.sum(dim).clamp(min=1.0)


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, mode: str, max_len: int | None = None
) -> torch.Tensor:
    """Reduce a per-token loss to a scalar with one of AGGREGATIONS.

    token_mean: sum(l m) / sum(m).  seq_mean_token_mean: mean over sequences with at least one valid
    token of sum_t(l m) / sum_t(m).  seq_mean_token_sum: mean over the sequences with a valid token of sum_t(l m).
    seq_mean_token_sum_norm: sum(l m) / (B * max_len), max_len defaulting to T. An all-masked batch
    gives 0, never NaN.

    Shape: per_token (B, T), mask (B, T) -> ()
    """
    lm = _zero_pad(per_token, mask)  # (B, T)
    B, T = per_token.shape
    if mode == "token_mean":
        return _masked_mean(per_token, mask)
    if mode == "seq_mean_token_mean":
        seq = _masked_mean(per_token, mask, dim=1)  # (B,)
        has_token = ((mask > 0).sum(1) > 0).to(per_token.dtype)  # (B,)
        return (seq * has_token).sum() / has_token.sum().clamp(min=1.0)
    if mode == "seq_mean_token_sum":  # over sequences with a valid token, as seq_mean_token_mean
        has_token = ((mask > 0).sum(1) > 0).to(per_token.dtype)  # (B,)
        return lm.sum(1).sum() / has_token.sum().clamp(min=1.0)
    if mode == "seq_mean_token_sum_norm":
        return lm.sum() / (B * (T if max_len is None else max_len))
    raise ValueError(f"unknown aggregation {mode!r}; allowed: {', '.join(AGGREGATIONS)}")


def normaliser(mask: torch.Tensor, mode: str, max_len: int | None = None) -> torch.Tensor:
    """The denominator `aggregate(x, mask, mode, max_len)` divides by: aggregate = (a sum over rows) / normaliser.

    Rows split into micro-batches m: aggregate over all rows = sum_m aggregate(rows m) * normaliser(mask_m) /
    normaliser(mask), so gradient accumulation reproduces the whole minibatch's step (and a sequence-level loss,
    a mean over sequences with a valid token, uses seq_mean_token_sum's). An empty mask gives 1, as in aggregate.

    Shape: mask (B, T) -> ()
    """
    B, T = mask.shape
    if mode == "token_mean":
        return (mask > 0).sum().to(mask.dtype).clamp(min=1.0)
    if mode in ("seq_mean_token_mean", "seq_mean_token_sum"):
        return ((mask > 0).sum(1) > 0).sum().to(mask.dtype).clamp(min=1.0)
    if mode == "seq_mean_token_sum_norm":
        return torch.tensor(float(B * (T if max_len is None else max_len)), dtype=mask.dtype)
    raise ValueError(f"unknown aggregation {mode!r}; allowed: {', '.join(AGGREGATIONS)}")


def _ratio_info(
    ratio: torch.Tensor,
    log_ratio: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    sign_aware: bool = True,
) -> dict[str, float]:
    """Clip fractions, approximate KL and ratio stats over valid positions (tokens or sequences).

    sign_aware: a PPO-style clip binds only where the advantage pushes the ratio further out (low: ratio below
    1 - clip_low with A < 0; high: above 1 + clip_high with A > 0). A clipped weight (CISPO) binds whatever the
    sign, so there every ratio outside the range counts."""
    with torch.no_grad():
        valid = mask > 0
        below, above = ratio < 1 - clip_low, ratio > 1 + clip_high
        if sign_aware:
            below, above = below & (adv < 0), above & (adv > 0)
        low = _masked_mean(below.to(ratio.dtype), mask)
        high = _masked_mean(above.to(ratio.dtype), mask)
        any_valid = bool(valid.any())
        return {
            "clip_frac_low": float(low),
            "clip_frac_high": float(high),
            "clip_frac": float(low + high),
            # Schulman's k3 of KL(old || new) from samples of old: (r - 1) - log r >= 0.
            "approx_kl": float(_masked_mean((ratio - 1) - log_ratio, mask)),
            "ratio_mean": float(_masked_mean(ratio, mask)) if any_valid else 1.0,
            "ratio_max": float(ratio[valid].max()) if any_valid else 1.0,
        }


# ------------------------------------------------------------------------------------------ policy losses
# Each takes log-probs, old log-probs, advantages and the mask, all (B, T) with padding already zeroed, and the
# log-ratio (B, T) clamped; it returns (loss per token (B, T) or per sequence (B,), info). `level` says which:
# token losses are reduced by the chosen aggregation, sequence losses by a mean over sequences. Adding a loss is
# one function and one entry in POLICY_LOSSES; its docstring's first line is what the UI shows.


def _seq_mask(mask: torch.Tensor) -> torch.Tensor:
    return ((mask > 0).sum(1) > 0).to(mask.dtype)  # (B,) sequences with a valid token


def pg_loss(logp, old_logp, adv, mask, log_ratio, eps_low, eps_high, dual_clip):
    """REINFORCE: -A * log pi. No ratio and no clipping; right for one on-policy step."""
    return -adv * logp, _ratio_info(log_ratio.exp(), log_ratio, adv, mask, eps_low, eps_high)


def ratio_loss(logp, old_logp, adv, mask, log_ratio, eps_low, eps_high, dual_clip):
    """Importance-sampled surrogate -rho * A, unclipped (TRPO's objective, Schulman et al. 2015 eq. 14)."""
    ratio = log_ratio.exp()
    return -ratio * adv, _ratio_info(ratio, log_ratio, adv, mask, eps_low, eps_high)


def clip_loss(logp, old_logp, adv, mask, log_ratio, eps_low, eps_high, dual_clip):
    """PPO clipped surrogate -min(rA, clip(r, 1-e_low, 1+e_high)A), optional dual-clip."""
    ratio = log_ratio.exp()  # (B, T)
    per_token = torch.maximum(-ratio * adv, -ratio.clamp(1 - eps_low, 1 + eps_high) * adv)  # (B, T)
    if dual_clip is not None:
        per_token = torch.where(adv < 0, torch.minimum(per_token, -dual_clip * adv), per_token)
    return per_token, _ratio_info(ratio, log_ratio, adv, mask, eps_low, eps_high)


def cispo_loss(logp, old_logp, adv, mask, log_ratio, eps_low, eps_high, dual_clip):
    """CISPO: -sg(clip(r)) * A * log pi; clips the weight, never drops a token's gradient."""
    ratio = log_ratio.exp()
    per_token = -ratio.clamp(1 - eps_low, 1 + eps_high).detach() * adv * logp
    return per_token, _ratio_info(ratio, log_ratio, adv, mask, eps_low, eps_high, sign_aware=False)


def gspo_loss(logp, old_logp, adv, mask, log_ratio, eps_low, eps_high, dual_clip):
    """GSPO: one clipped ratio per sequence, the geometric mean of its token ratios."""
    seq_log_ratio = _masked_mean(log_ratio, mask, dim=1)  # (B,)
    s = torch.exp(seq_log_ratio)  # (B,)
    seq_adv = _masked_mean(adv, mask, dim=1)  # (B,)
    seq_loss = torch.maximum(-s * seq_adv, -s.clamp(1 - eps_low, 1 + eps_high) * seq_adv)  # (B,)
    return seq_loss, _ratio_info(s, seq_log_ratio, seq_adv, _seq_mask(mask), eps_low, eps_high)


def gmpo_loss(logp, old_logp, adv, mask, log_ratio, eps_low, eps_high, dual_clip):
    """GMPO: geometric mean of token ratios, each clipped in log space to [-e_low, e_high] first.

    Zhao et al. 2025, Geometric-Mean Policy Optimization (arXiv:2507.20673), eq. 4 and verl's `geo_mean`: the
    clip is sign-aware per token (min of sgn(A) * log r and sgn(A) * clip(log r)), then the clipped log-ratios
    are averaged over the sequence and exponentiated, so one outlier token moves the sequence ratio less than
    in GRPO's arithmetic mean. The paper's range is e^(+-0.4)."""
    sgn = torch.sign(adv)  # (B, T)
    clipped = sgn * torch.minimum(sgn * log_ratio, sgn * log_ratio.clamp(-eps_low, eps_high))  # (B, T)
    seq_ratio = torch.exp(_masked_mean(clipped, mask, dim=1))  # (B,)
    seq_adv = _masked_mean(adv, mask, dim=1)  # (B,)
    info = _ratio_info(log_ratio.exp(), log_ratio, adv, mask, 1 - math.exp(-eps_low), math.exp(eps_high) - 1)
    return -seq_adv * seq_ratio, info


def sapo_loss(logp, old_logp, adv, mask, log_ratio, eps_low, eps_high, dual_clip):
    """SAPO: a soft sigmoid gate f(r) = 4/tau * sigmoid(tau (r - 1)) instead of a hard clip.

    Gao et al. 2025, Soft Adaptive Policy Optimization (arXiv:2511.20347): l = -f(r) A, with tau = 1.0 for A > 0
    and 1.05 for A < 0 (TRL `sapo_temperature_pos/neg`, verl `tau_pos/tau_neg`). At r = 1 the gradient equals
    PPO's; away from 1 it fades smoothly instead of dropping to 0. The clip fractions report where the gate
    has fallen below half strength (outside 1 +- the clip range) for comparison with PPO."""
    ratio = log_ratio.exp()  # (B, T)
    tau = torch.where(adv > 0, torch.full_like(adv, SAPO_TAU[0]), torch.full_like(adv, SAPO_TAU[1]))
    gate = 4.0 / tau * torch.sigmoid(tau * (ratio - 1))  # (B, T)
    return -gate * adv, _ratio_info(ratio, log_ratio, adv, mask, eps_low, eps_high)


SAPO_TAU = (1.0, 1.05)  # (A > 0, A < 0), the paper's and TRL's defaults

# level: what the loss is computed per; clips: whether it has clip fractions to report.
for _fn in (gspo_loss, gmpo_loss):
    _fn.level, _fn.clips = "sequence", True
for _fn in (clip_loss, cispo_loss, sapo_loss):
    _fn.level, _fn.clips = "token", True
for _fn in (pg_loss, ratio_loss):
    _fn.level, _fn.clips = "token", False

POLICY_LOSSES = {
    "pg": pg_loss,
    "ratio": ratio_loss,
    "clip": clip_loss,
    "cispo": cispo_loss,
    "gspo": gspo_loss,
    "gmpo": gmpo_loss,
    "sapo": sapo_loss,
}


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    kind: str = "clip",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    agg: str = "token_mean",
    max_len: int | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy-gradient loss of one of POLICY_LOSSES, aggregated with `agg` (sequence losses: mean over sequences).

    ratio = exp(logp - old_logp) per token. `dual_clip` = c > 1 caps the "clip" loss of tokens with
    adv < 0 at -c * adv (Ye et al. 2019); the other kinds ignore it. Sequence-level losses (gspo, gmpo) work
    on the masked mean of the token log-ratios and of adv, and their loss is the mean over sequences with at
    least one valid token. `weights` (B, T), detached, multiply the per-token loss (importance weights that
    correct a sampler/learner mismatch; 0 masks a token); for sequence losses the row's first weight is used.
    info: clip_frac_low, clip_frac_high, clip_frac, approx_kl, ratio_mean, ratio_max.

    Shape: logp (B, T), old_logp (B, T), adv (B, T), mask (B, T) -> loss (), info
    """
    if kind not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {kind!r}; allowed: {', '.join(POLICY_LOSSES)}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (typically 3.0) or None to turn it off, got {dual_clip}")
    fn = POLICY_LOSSES[kind]
    logp = _zero_pad(logp, mask)  # (B, T)
    adv = _zero_pad(adv, mask)  # (B, T)
    log_ratio = _zero_pad(logp - old_logp, mask).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)  # (B, T)
    loss, info = fn(logp, old_logp, adv, mask, log_ratio, clip_low, clip_high, dual_clip)
    if fn.level == "sequence":
        seq_mask = _seq_mask(mask)  # (B,)
        if weights is not None:
            loss = loss * weights.detach()[:, 0]
        return (loss * seq_mask).sum() / seq_mask.sum().clamp(min=1.0), info
    if weights is not None:
        loss = loss * weights.detach()
    return aggregate(loss, mask, agg, max_len), info


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = None,
    agg: str = "token_mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Value loss 0.5 * max((V - R)^2, (clip(V, V_old - clip, V_old + clip) - R)^2), or 0.5 * (V - R)^2.

    info: clip_frac = share of valid tokens where the clipped term is the larger one (0 without clip).

    Shape: values (B, T), old_values (B, T), returns (B, T), mask (B, T) -> loss (), info
    """
    # Zero the padding first: NaN there would reach the gradient through (V - R)^2 even if masked later.
    values, old_values, returns = (_zero_pad(x, mask) for x in (values, old_values, returns))
    unclipped = (values - returns) ** 2  # (B, T)
    if clip is None:
        per_token = 0.5 * unclipped
        clip_frac = torch.zeros((), dtype=values.dtype)
    else:
        v_clipped = torch.clamp(values, old_values - clip, old_values + clip)  # (B, T)
        clipped = (v_clipped - returns) ** 2  # (B, T)
        per_token = 0.5 * torch.maximum(unclipped, clipped)
        clip_frac = _masked_mean((clipped > unclipped).to(values.dtype), mask)
    return aggregate(per_token, mask, agg), {"clip_frac": float(clip_frac)}


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax over the last dimension: logsumexp(z) - sum softmax(z) * z.

    Logits of -inf (top-k/top-p masking) have zero probability and contribute 0, not NaN.

    Shape: logits (B, T, V) -> (B, T)
    """
    probs = torch.softmax(logits, dim=-1)  # (B, T, V)
    safe = torch.where(probs > 0, logits, torch.zeros_like(logits))  # (B, T, V)
    return torch.logsumexp(logits, dim=-1) - (probs * safe).sum(-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - var(R - V) / var(R) over valid tokens: 1 is a perfect critic, 0 no better than a constant.

    Returns 0.0 when var(R) is 0 or fewer than 2 tokens are valid (nothing to explain).

    Shape: values (B, T), returns (B, T), mask (B, T) -> float
    """
    with torch.no_grad():

        def var(x: torch.Tensor) -> torch.Tensor:
            centred = _zero_pad(x - _masked_mean(x, mask), mask)
            return (centred**2).sum()  # the 1/(N-1) factor cancels in the ratio

        var_r = var(returns)
        if int((mask > 0).sum()) < 2 or float(var_r) == 0.0:
            return 0.0
        return float(1.0 - var(returns - values) / var_r)

"""Policy and value losses, loss aggregation, entropy and explained variance.

Implements the per-token policy-gradient surrogates REINFORCE ("pg"), PPO clip (Schulman et al. 2017,
arXiv:1707.06347) with asymmetric clip ranges (DAPO clip-higher, Yu et al. 2025) and dual-clip (Ye et al.
2019, arXiv:1912.09729), CISPO (MiniMax-M1, arXiv:2506.13585) and GSPO (Zheng et al. 2025,
arXiv:2507.18071); the clipped value loss (OpenAI baselines PPO2); and the aggregation modes that separate
GRPO, Dr. GRPO and DAPO (verl `agg_loss`).

Left out on purpose: SAPO, GMPO, Clip-Cov/KL-Cov, DPPO, VESPO, TRL's delta clip, verl's GSPO-token variant,
sampler/learner importance-sampling corrections, and data-parallel normalisation (one process sees the
whole batch here).

Vocabulary: B sequences, T completion tokens, V vocabulary; `mask` is 1.0 on valid completion tokens.
Every loss returns (loss, info) with info holding plain Python floats.
"""

import torch

AGGREGATIONS = {
    "token_mean": "Sum over all valid tokens / number of valid tokens: every token weighs the same (DAPO).",
    "seq_mean_token_mean": "Mean over tokens within each sequence, then mean over sequences (original GRPO).",
    "seq_mean_token_sum": "Sum over tokens within each sequence, then mean over sequences (verl).",
    "seq_mean_token_sum_norm": "Sum over all valid tokens / (B * max_len), a constant normaliser (Dr. GRPO).",
}

POLICY_LOSSES = {
    "pg": "REINFORCE: -A * log pi. No ratio and no clipping; right for one on-policy step.",
    "clip": "PPO clipped surrogate -min(rA, clip(r, 1-e_low, 1+e_high)A), optional dual-clip.",
    "cispo": "CISPO: -sg(clip(r)) * A * log pi; clips the weight, never drops a token's gradient.",
    "gspo": "GSPO: one clipped ratio per sequence, the geometric mean of its token ratios.",
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
    token of sum_t(l m) / sum_t(m).  seq_mean_token_sum: mean over all B sequences of sum_t(l m).
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
    if mode == "seq_mean_token_sum":
        return lm.sum(1).mean()
    if mode == "seq_mean_token_sum_norm":
        return lm.sum() / (B * (T if max_len is None else max_len))
    raise ValueError(f"unknown aggregation {mode!r}; allowed: {', '.join(AGGREGATIONS)}")


def _ratio_info(
    ratio: torch.Tensor,
    log_ratio: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> dict[str, float]:
    """Clip fractions, approximate KL and ratio stats over valid positions (tokens or sequences)."""
    with torch.no_grad():
        valid = mask > 0
        low = _masked_mean(((ratio < 1 - clip_low) & (adv < 0)).to(ratio.dtype), mask)
        high = _masked_mean(((ratio > 1 + clip_high) & (adv > 0)).to(ratio.dtype), mask)
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
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy-gradient loss of one of POLICY_LOSSES, aggregated with `agg` (gspo ignores `agg`).

    ratio = exp(logp - old_logp) per token. `dual_clip` = c > 1 caps the "clip" loss of tokens with
    adv < 0 at -c * adv (Ye et al. 2019); the other kinds ignore it. gspo works per sequence: its ratio is
    exp(masked mean of the token log-ratios), its advantage the masked mean of adv over the sequence,
    and the loss is the mean over sequences with at least one valid token; its info is per sequence.
    info: clip_frac_low (ratio < 1-clip_low and adv < 0), clip_frac_high (ratio > 1+clip_high and
    adv > 0), clip_frac, approx_kl, ratio_mean, ratio_max.

    Shape: logp (B, T), old_logp (B, T), adv (B, T), mask (B, T) -> loss (), info
    """
    if kind not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {kind!r}; allowed: {', '.join(POLICY_LOSSES)}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (typically 3.0) or None to turn it off, got {dual_clip}")
    logp = _zero_pad(logp, mask)  # (B, T)
    adv = _zero_pad(adv, mask)  # (B, T)
    log_ratio = _zero_pad(logp - old_logp, mask).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)  # (B, T)

    if kind == "gspo":
        seq_mask = ((mask > 0).sum(1) > 0).to(logp.dtype)  # (B,)
        seq_log_ratio = _masked_mean(log_ratio, mask, dim=1)  # (B,)
        s = torch.exp(seq_log_ratio)  # (B,)
        seq_adv = _masked_mean(adv, mask, dim=1)  # (B,)
        seq_loss = torch.maximum(-s * seq_adv, -s.clamp(1 - clip_low, 1 + clip_high) * seq_adv)  # (B,)
        loss = (seq_loss * seq_mask).sum() / seq_mask.sum().clamp(min=1.0)
        return loss, _ratio_info(s, seq_log_ratio, seq_adv, seq_mask, clip_low, clip_high)

    ratio = torch.exp(log_ratio)  # (B, T)
    clipped_ratio = ratio.clamp(1 - clip_low, 1 + clip_high)  # (B, T)
    if kind == "pg":
        per_token = -adv * logp
    elif kind == "cispo":
        per_token = -clipped_ratio.detach() * adv * logp
    else:
        per_token = torch.maximum(-ratio * adv, -clipped_ratio * adv)  # (B, T)
        if dual_clip is not None:
            per_token = torch.where(adv < 0, torch.minimum(per_token, -dual_clip * adv), per_token)
    loss = aggregate(per_token, mask, agg, max_len)
    return loss, _ratio_info(ratio, log_ratio, adv, mask, clip_low, clip_high)


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

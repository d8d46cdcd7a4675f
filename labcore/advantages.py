"""Advantage estimators for policy-gradient RLHF.

Implements the per-prompt-group baselines and scalings behind REINFORCE, RLOO (Kool et al. 2019;
Ahmadian et al. 2024), GRPO (Shao et al. 2024) and Dr. GRPO (Liu et al. 2025), discounted returns-to-go
(REINFORCE++, Hu 2025), masked whitening (verl `masked_whiten`), GAE (Schulman et al. 2016) and DAPO's soft
overlong penalty (Yu et al. 2025).

Left out on purpose: ReMax, OPO, GPG, pass@k, GDPO and the optimal token baseline (see
reference/algorithms.md B1), multi-reward normalisation, and any distributed reduction: every function
sees the whole batch.

Vocabulary: P prompts, K samples per prompt, B = P*K sequences, T completion tokens; `mask` is 1.0 on valid
completion tokens and 0.0 on padding. Every function accepts float32 or float64 and keeps the dtype.
"""

import torch

BASELINES = {
    "none": "No baseline: the advantage is the raw reward (REINFORCE).",
    "batch_mean": "Subtract the mean reward of the whole batch (all P*K samples).",
    "group_mean": "Subtract the mean reward of the K samples of the same prompt (GRPO, Dr. GRPO).",
    "leave_one_out": "Subtract the mean reward of the other K-1 samples of the same prompt (RLOO).",
}

SCALES = {
    "none": "No division: keep the reward scale (Dr. GRPO, RLOO).",
    "group_std": "Divide by the std of the K rewards of the same prompt (GRPO).",
    "batch_std": "Divide by the std of all P*K rewards in the batch (TRL scale_rewards='batch').",
}


def _check_choice(name: str, allowed: dict, what: str) -> None:
    if name not in allowed:
        raise ValueError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")


def safe_std(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased (N-1) std that is 0 instead of NaN when there are fewer than 2 elements."""
    n = x.numel() if dim is None else x.shape[dim]
    if n < 2:
        return torch.zeros_like(x) if dim is None else torch.zeros_like(x.select(dim, 0)).unsqueeze(dim)
    return x.std() if dim is None else x.std(dim=dim, keepdim=True)


def _masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    # where, not x * mask: padding may hold inf/NaN and inf * 0 is NaN.
    xm = torch.where(mask > 0, x, torch.zeros_like(x))
    return xm.sum() if dim is None else xm.sum(dim)


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted return G_t = sum_{t'>=t} gamma^(t'-t) r_t' over the valid tokens of each sequence.

    Masked positions contribute nothing and get 0. The discount counts valid tokens only: a masked gap
    inside a sequence is skipped, not discounted over (verl carries the running value the same way).

    Shape: rewards (B, T), mask (B, T) -> (B, T)
    """
    valid = mask > 0  # (B, T)
    running = torch.zeros_like(rewards[:, 0])  # (B,)
    out = torch.zeros_like(rewards)  # (B, T)
    for t in reversed(range(rewards.shape[1])):
        running = torch.where(valid[:, t], rewards[:, t] + gamma * running, running)  # (B,)
        out[:, t] = torch.where(valid[:, t], running, torch.zeros_like(running))
    return out


def group_advantages(rewards: torch.Tensor, baseline: str, scale: str, eps: float = 1e-6) -> torch.Tensor:
    """Sequence advantages (r - b) / (std + eps) for rewards grouped by prompt.

    `baseline` is one of BASELINES, `scale` one of SCALES. The std is the unbiased (N-1) std of the
    rewards over the group (K) or the batch (P*K), taken as 0 when there is a single element. With
    scale "none" nothing is divided, so eps has no effect.

    Shape: rewards (P, K) -> (P, K)
    """
    _check_choice(baseline, BASELINES, "baseline")
    _check_choice(scale, SCALES, "scale")
    K = rewards.shape[1]
    if baseline == "none":
        b = torch.zeros_like(rewards)  # (P, K)
    elif baseline == "batch_mean":
        b = rewards.mean().expand_as(rewards)  # (P, K)
    elif baseline == "group_mean":
        b = rewards.mean(1, keepdim=True)  # (P, 1)
    else:
        if K < 2:
            raise ValueError(
                f"leave_one_out needs at least 2 samples per prompt, got K={K}; "
                "raise samples per prompt to 2 or more, or pick the group_mean baseline"
            )
        b = (rewards.sum(1, keepdim=True) - rewards) / (K - 1)  # (P, K)
    adv = rewards - b  # (P, K)
    if scale == "group_std":
        adv = adv / (safe_std(rewards, dim=1) + eps)  # (P, K) / (P, 1)
    elif scale == "batch_std":
        adv = adv / (safe_std(rewards) + eps)
    return adv


def whiten(
    x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Masked whitening (x - mean) / sqrt(var + eps), as verl's `masked_whiten`.

    mean and var are taken over the valid positions of the whole tensor; var is the unbiased masked
    variance (times N/(N-1)), taken as 0 when fewer than 2 positions are valid, so a single valid token or
    an all-masked tensor gives zeros instead of NaN. With shift_mean=False the mean is added back (only
    the scale changes). Masked positions of the output are 0.

    Shape: x (...), mask (...) or None -> (...)
    """
    if mask is None:
        mask = torch.ones_like(x)
    n = (mask > 0).sum().to(x.dtype)
    mean = _masked_sum(x, mask) / n.clamp(min=1.0)
    centred = torch.where(mask > 0, x - mean, torch.zeros_like(x))
    var = (centred**2).sum() / (n - 1).clamp(min=1.0)  # unbiased; 0 when n < 2 since centred is 0
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask > 0, out, torch.zeros_like(out))


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016, arXiv:1506.02438).

    delta_t = r_t + gamma * V_{t+1} - V_t and A_t = delta_t + gamma * lam * A_{t+1}, with V = 0 after the
    last valid token; returns = A + V. Masked positions are skipped (the next value and the running
    advantage carry over them, as in verl), so a mask with gaps still works; they are 0 in both outputs.

    Shape: rewards (B, T), values (B, T), mask (B, T) -> advantages (B, T), returns (B, T)
    """
    valid = mask > 0  # (B, T)
    zeros = torch.zeros_like(rewards[:, 0])  # (B,)
    next_value, last_adv = zeros, zeros
    adv = torch.zeros_like(rewards)  # (B, T)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        a = delta + gamma * lam * last_adv  # (B,)
        next_value = torch.where(valid[:, t], values[:, t], next_value)
        last_adv = torch.where(valid[:, t], a, last_adv)
        adv[:, t] = torch.where(valid[:, t], a, zeros)
    returns = torch.where(valid, adv + values, torch.zeros_like(adv))  # (B, T)
    return adv, returns


def sequence_to_tokens(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Broadcast one advantage per sequence to its valid tokens (0 on padding).

    Shape: adv (B,), mask (B, T) -> (B, T)
    """
    return adv[:, None] * mask.to(adv.dtype)  # (B, T)


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int) -> torch.Tensor:
    """DAPO soft overlong penalty (Yu et al. 2025, arXiv:2503.14476, eq. 13).

    0 when |y| <= max_len - buffer, ((max_len - buffer) - |y|) / buffer inside the buffer (falls linearly
    to -1 at max_len), -1 beyond max_len. buffer 0 turns the penalty off (all zeros). Integer lengths
    give the default float dtype; float lengths keep theirs.

    Shape: lengths (B,) -> (B,)
    """
    if buffer < 0 or buffer > max_len:
        raise ValueError(f"overlong buffer must be in [0, max_len={max_len}], got {buffer}")
    dtype = lengths.dtype if lengths.is_floating_point() else torch.get_default_dtype()
    lengths = lengths.to(dtype)  # (B,)
    if buffer == 0:
        return torch.zeros_like(lengths)
    start = max_len - buffer
    ramp = (start - lengths) / buffer  # (B,)
    penalty = torch.where(lengths <= start, torch.zeros_like(lengths), ramp)
    return torch.where(lengths > max_len, -torch.ones_like(lengths), penalty)

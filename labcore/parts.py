"""The pure functions where a training step's parts meet: reward shaping, KL placement, baselines, the loss mask,
importance weights and the gradient-variance estimate.

`labcore.trainer.Trainer.train_step` calls these in order; each takes tensors and plain numbers (never a config)
and is pinned by hand-computed tests in tests/test_parts.py. The choices the UI lists are dicts from a name to a
function (BASELINES, KL_PLACEMENTS, IS_CORRECTIONS): adding one is one function and one entry, and the
function's docstring is what the UI shows.

Vocabulary: P prompts, K samples per prompt, B = P*K rows (prompt-major), T completion tokens; `mask` (B, T) is
1.0 on valid completion tokens; `valid` (B,) marks completions that a reward function could score.
Left out: distributed reductions (one process sees the whole batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labcore.advantages import overlong_penalty, safe_std

# ------------------------------------------------------------------------------------------- reward shaping


@dataclass(frozen=True)
class RewardNorm:
    """The batch statistics `shape_rewards` normalised with, so a second batch (ReMax's greedy answers) goes
    through the same transform: a greedy answer that ties a sample gets the same shaped reward."""
    mean: float
    std: float


def shape_rewards(r: torch.Tensor, eos: torch.Tensor, lengths: torch.Tensor, *, missing_eos_penalty: float,
                  max_len: int, overlong_buffer: int, overlong_penalty_factor: float, clip: float,
                  normalize: bool, norm: RewardNorm | None = None) -> tuple[torch.Tensor, RewardNorm | None]:
    """Missing-EOS penalty, DAPO's soft overlong penalty, clipping to [-clip, clip] (0 = off) and normalisation
    over the batch (or with `norm`, another batch's statistics). Returns the shaped rewards and the statistics.

    Shape: r (B,), eos (B,) bool, lengths (B,) -> (B,)
    """
    r = r - missing_eos_penalty * (~eos).to(r.dtype)
    if overlong_buffer:
        r = r + overlong_penalty_factor * overlong_penalty(lengths, max_len, overlong_buffer).to(r.dtype)
    if clip:
        r = r.clamp(-clip, clip)
    if normalize:
        if norm is None:
            norm = RewardNorm(float(r.mean()), float(safe_std(r)))
        r = (r - norm.mean) / (norm.std + 1e-6)
    return r, norm


# ------------------------------------------------------------------------------------------------ KL placement


def _last_token(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the last valid token of each row."""
    return (mask.cumsum(1) == mask.sum(1, keepdim=True)) & mask.bool()


def kl_none(r: torch.Tensor, kl_t: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """No KL penalty (the KL to the reference is still measured for the KL chart)."""
    return _last_token(mask).to(r.dtype) * r[:, None]


def kl_in_reward_token(r: torch.Tensor, kl_t: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """-beta * KL_t added to each token's reward (InstructGPT, PPO in TRL/OpenRLHF/verl)."""
    return _last_token(mask).to(r.dtype) * r[:, None] - beta * kl_t * mask


def kl_in_reward_seq(r: torch.Tensor, kl_t: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """-beta * sum_t KL_t subtracted from the completion's reward (RLOO in TRL)."""
    return kl_none(r - beta * (kl_t * mask).sum(1), kl_t, mask, beta)


def kl_in_loss(r: torch.Tensor, kl_t: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """+beta * KL added to the loss, aggregated like the policy loss (GRPO); the reward is left alone."""
    return kl_none(r, kl_t, mask, beta)


KL_PLACEMENTS = {"none": kl_none, "reward_token": kl_in_reward_token, "reward_seq": kl_in_reward_seq,
                 "loss": kl_in_loss}
"""name -> f(r (B,), kl_t (B, T), mask (B, T), beta) -> token rewards (B, T): the task reward at the last valid
token, with the KL penalty where the placement puts it. The sequence reward is the row's sum."""


# ------------------------------------------------------------------------------------------------- baselines


@dataclass
class BaselineInputs:
    """What the baselines other than the closed-form group ones read. All optional; shapes (P, K)."""
    ema: float | None = None                 # moving average of past batches' shaped sequence rewards
    greedy: Any = None                       # (P,) the greedy completion's shaped reward (ReMax), or a function
                                             # returning it (the greedy rollout runs only when a baseline asks)
    values: torch.Tensor | None = None       # (P, K) V(prompt) from the critic


def _valid_mean(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    v = valid.to(r.dtype)
    return (r * v).sum(1, keepdim=True) / v.sum(1, keepdim=True).clamp(min=1.0)  # (P, 1)


def baseline_none(r, valid, inputs):
    """No baseline: the advantage is the raw reward (REINFORCE)."""
    return torch.zeros_like(r)


def baseline_batch_mean(r, valid, inputs):
    """Subtract the mean reward of the whole batch (all P*K samples)."""
    return _valid_mean(r.reshape(1, -1), valid.reshape(1, -1)).expand_as(r)


def baseline_group_mean(r, valid, inputs):
    """Subtract the mean reward of the K samples of the same prompt (GRPO, Dr. GRPO)."""
    return _valid_mean(r, valid).expand_as(r)


def baseline_leave_one_out(r, valid, inputs):
    """Subtract the mean reward of the other K-1 samples of the same prompt (RLOO)."""
    v = valid.to(r.dtype)
    others = (r * v).sum(1, keepdim=True) - r * v          # (P, K) sum over the scorable others
    n = (v.sum(1, keepdim=True) - v).clamp(min=1.0)        # (P, K) how many there are
    return others / n


def baseline_moving_average(r, valid, inputs):
    """An exponential moving average of past batches' mean shaped reward (classic REINFORCE with baseline)."""
    ema = inputs.ema if inputs.ema is not None else float(_valid_mean(r.reshape(1, -1), valid.reshape(1, -1)))
    return torch.full_like(r, ema)


def baseline_greedy(r, valid, inputs):
    """The reward of the greedy completion of the same prompt (ReMax, Li et al. 2023)."""
    greedy = inputs.greedy() if callable(inputs.greedy) else inputs.greedy
    return greedy.to(r.dtype).view(-1, 1).expand_as(r)


def baseline_value(r, valid, inputs):
    """A learned value V(prompt) on the policy's hidden states (actor-critic, PPO)."""
    return inputs.values.to(r.dtype)


for _fn in (baseline_none, baseline_batch_mean, baseline_group_mean, baseline_leave_one_out, baseline_moving_average,
            baseline_greedy):
    _fn.needs_critic = False
baseline_value.needs_critic = True  # the trainer builds a critic for a baseline that declares it

BASELINES = {"none": baseline_none, "batch_mean": baseline_batch_mean, "group_mean": baseline_group_mean,
             "leave_one_out": baseline_leave_one_out, "moving_average": baseline_moving_average,
             "greedy": baseline_greedy, "value": baseline_value}
"""name -> f(r (P, K), valid (P, K) bool, BaselineInputs) -> b (P, K). Unscorable samples (valid False) never
enter another sample's baseline."""


def _valid_std(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Unbiased std over the valid entries of each row; 0 with fewer than two. Shape: (P, K) -> (P, 1)."""
    v = valid.to(r.dtype)
    n = v.sum(1, keepdim=True)
    centred = (r - _valid_mean(r, valid)) * v
    return ((centred ** 2).sum(1, keepdim=True) / (n - 1).clamp(min=1.0)).sqrt() * (n > 1).to(r.dtype)


def scale_none(r, valid):
    """No division: keep the reward scale (Dr. GRPO, RLOO)."""
    return torch.ones_like(r)


def scale_group_std(r, valid):
    """Divide by the std of the K rewards of the same prompt (GRPO)."""
    return _valid_std(r, valid).expand_as(r)


def scale_batch_std(r, valid):
    """Divide by the std of all P*K rewards in the batch (TRL scale_rewards='batch')."""
    return _valid_std(r.reshape(1, -1), valid.reshape(1, -1)).expand_as(r)


SCALES = {"none": scale_none, "group_std": scale_group_std, "batch_std": scale_batch_std}
"""name -> f(r (P, K), valid (P, K)) -> the divisor (P, K), before + eps."""


def sequence_advantages(r: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, divide: bool,
                        eps: float = 1e-6) -> torch.Tensor:
    """(r - b) / (scale + eps), or r - b when the scale is 'none' (eps would still shrink it). Shape: (P, K)."""
    return (r - b) / (scale + eps) if divide else r - b


def positives(r: torch.Tensor, threshold: float) -> torch.Tensor:
    """RAFT / rejection sampling: advantage 1 for a completion whose reward reaches `threshold`, else 0.

    Xiong et al. 2025, A Minimalist Approach to LLM Reasoning: from Rejection Sampling to Reinforce
    (arXiv:2504.11343): fine-tune on the accepted samples only. Shape: (P, K) -> (P, K)."""
    return (r >= threshold).to(r.dtype)


# ------------------------------------------------------------------------------------------------- loss mask


def flat_groups(task_scores: torch.Tensor, valid: torch.Tensor, K: int) -> torch.Tensor:
    """Groups whose scorable task rewards do not vary: no signal (DAPO eq. 11 reads the task score, verl
    `filter_groups.metric=acc`; KL and length shaping do not count). Shape: (B,), (B,) -> (P,) bool."""
    s, v = task_scores.view(-1, K), valid.view(-1, K)
    return _valid_std(s, v).squeeze(1) < 1e-6


def loss_mask(mask: torch.Tensor, valid: torch.Tensor, eos: torch.Tensor, flat: torch.Tensor | None, K: int,
              *, mask_truncated: bool, drop_flat: bool) -> torch.Tensor:
    """The tokens that enter the loss: valid completions, ended ones only if `mask_truncated`, and only groups
    with signal if `drop_flat`. Shape: mask (B, T), valid (B,), eos (B,), flat (P,) -> (B, T)."""
    keep = valid.clone()
    if mask_truncated:
        keep &= eos
    if drop_flat and flat is not None:
        keep &= ~flat.repeat_interleave(K)
    return mask * keep[:, None].to(mask.dtype)


def top_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, frac: float) -> torch.Tensor:
    """Keep the `frac` highest-entropy valid tokens of the batch (the "forking" tokens; Wang et al. 2025, Beyond
    the 80/20 Rule, arXiv:2506.01939: training on the top 20 % matches full training). frac 0 or 1: all.

    Ties at the threshold are kept. Shape: entropy (B, T), mask (B, T) -> (B, T)."""
    valid = mask > 0
    n = int(valid.sum())
    if not 0 < frac < 1 or n == 0:
        return mask
    k = max(1, round(frac * n))
    threshold = entropy[valid].float().topk(k).values.min()
    return mask * (entropy.float() >= threshold).to(mask.dtype)


# ------------------------------------------------------------------------------- sampler/learner correction


def is_none(log_w: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """No correction: learn as if the sampler were the learner's policy."""
    return torch.ones_like(log_w)


def is_token_tis(log_w: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling per token: weight min(pi_learner / pi_sampler, cap)."""
    return log_w.exp().clamp(max=cap)


def is_token_mis(log_w: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """Masked importance sampling per token: weight pi_learner / pi_sampler, 0 where it exceeds cap."""
    w = log_w.exp()
    return torch.where(w <= cap, w, torch.zeros_like(w))


def is_seq_tis(log_w: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling per sequence: the product of token weights, capped, on every token."""
    return (log_w * mask).sum(1, keepdim=True).exp().clamp(max=cap).expand_as(log_w)


def is_seq_mis(log_w: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """Masked importance sampling per sequence: the product of token weights, the sequence dropped above cap."""
    w = (log_w * mask).sum(1, keepdim=True).exp()
    return torch.where(w <= cap, w, torch.zeros_like(w)).expand_as(log_w)


IS_CORRECTIONS = {"none": is_none, "token_tis": is_token_tis, "token_mis": is_token_mis,
                  "seq_tis": is_seq_tis, "seq_mis": is_seq_mis}
"""name -> f(log_w (B, T), mask (B, T), cap) -> weights (B, T), with log_w = log pi_learner - log pi_sampler of
the sampled tokens (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL training";
verl `rollout_correction`, TRL `vllm_importance_sampling_mode`)."""


# --------------------------------------------------------------------------------------- gradient variance


def gradient_variance(grads: torch.Tensor) -> float:
    """Trace of the covariance of the mean of G independent gradient estimates: (1/G) * (1/(G-1)) *
    sum_j ||g_j - g_mean||^2. Shape: grads (G, n_params) -> float."""
    G = grads.size(0)
    return float(((grads - grads.mean(0)) ** 2).sum() / (G - 1) / G)


def length_by_outcome(lengths: torch.Tensor, right: torch.Tensor) -> dict[str, float]:
    """Mean completion length of the right and of the wrong answers (Dr. GRPO fig. 5 plots them apart: GRPO's
    per-sequence 1/|o| lets wrong answers grow long). A key is left out when no answer is of its kind, so a chart
    and a lesson window skip that step rather than read a 0. Shape: lengths (B,), right (B,) bool -> dict."""
    out = {}
    for key, pick in (("len/right/mean", right), ("len/wrong/mean", ~right)):
        if pick.any():
            out[key] = float(lengths[pick].float().mean())
    return out

"""Token log-probs and entropy without a (B, T, V) tensor: the LM head, log-softmax, gather and entropy run on
chunks of tokens, and in training each chunk's logits are recomputed in the backward instead of being kept.

Why: scoring completions from full logits (`labcore.rollout._scores`) keeps, for the backward, the float32
log-softmax over the whole vocabulary and its exp: two copies of B*T*V floats. At Qwen2's 151,936 tokens, 16 rows
of 256 tokens are 2.5 GB a copy. Here a chunk's logits live only while that chunk is computed (once forward,
once again in the backward), so memory grows with the tokens (their hidden states, kept anyway, and (B, T)
results) plus one chunk of about CHUNK_ELEMENTS logits. A custom autograd Function rather than
torch.utils.checkpoint: a checkpointed chunk recomputes every tensor its forward saved, and keeps until the end of
the backward those no gradient reads (the entropy's, when the loss has no entropy bonus): at Qwen2's vocabulary
that was gigabytes.

The arithmetic is `_scores`'s, row by row: log-probs and entropy agree with it to float rounding (the head's
product sums in other blocks), and so do gradients (tests/test_chunked.py). A chunk costs its head product twice
in training, so `head_split` chooses chunks only from CHUNK_FROM logits on: never for the built-in model
(147 tokens), always for a real vocabulary at a real batch. Where the model is not one of these plain decoders
(a head with scaling or soft-capping, say), nothing is split and the full logits are used.
Left out: the full distribution (`logp_all`): TRPO's exact KL needs it and keeps the plain pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

# Score in chunks from this many logits (B*T*V) on: 2^25 floats is 128 MiB a copy. Below it the one-shot pass
# is faster and small anyway.
CHUNK_FROM = 2**25
# Logits per chunk: 2^23 floats (32 MiB), e.g. 55 tokens of a 151,936-token vocabulary.
CHUNK_ELEMENTS = 2**23
# Decoders whose causal-LM head is exactly `lm_head(decoder(...).last_hidden_state)` (no logit scaling or capping).
PLAIN_HEAD = ("llama", "mistral", "qwen2")


@dataclass
class HeadSplit:
    """A causal LM cut before its head. `body` is called like the model (labcore.rollout's keywords) and returns
    `.logits` None and `.hidden_states` = (last states (B, L, H),); `weight` (V, H) and `bias` (V,) or None."""
    body: Any
    weight: torch.Tensor
    bias: torch.Tensor | None


class _DecoderBody:
    """transformers' decoder (the causal LM without its head) with the causal LM's call signature."""

    def __init__(self, decoder):
        self.decoder = decoder

    def __call__(self, input_ids, attention_mask, position_ids, past_key_values=None, output_hidden_states=False,
                 use_cache=False) -> SimpleNamespace:
        past = {} if past_key_values is None else {"past_key_values": past_key_values}
        out = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=use_cache, **past)
        return SimpleNamespace(logits=None, past_key_values=out.past_key_values if use_cache else None,
                               hidden_states=(out.last_hidden_state,))


class _FastBody:
    """labcore.fastpath's FastDecoder, stopped before its head."""

    def __init__(self, fast):
        self.fast, self.share_min_tokens = fast, fast.share_min_tokens

    def __call__(self, *args, **kwargs) -> SimpleNamespace:
        return self.fast(*args, **kwargs, logits=False)


def head_split(model, tokens: int) -> HeadSplit | None:
    """The model as body + head when scoring `tokens` completion tokens in chunks pays (tokens * V >= CHUNK_FROM)
    and the model's head is one plain linear map; else None (score full logits)."""
    from labcore.fastpath import FastDecoder  # local: fastpath is a sibling at the same layer

    if isinstance(model, FastDecoder):
        body, weight, bias = _FastBody(model), model.head, None
    else:
        lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        head, decoder = getattr(lm, "lm_head", None), getattr(lm, "model", None)
        if (getattr(lm.config, "model_type", None) not in PLAIN_HEAD or not isinstance(head, torch.nn.Linear)
                or decoder is None):
            return None
        body, weight, bias = _DecoderBody(decoder), head.weight, head.bias
    if tokens * weight.size(0) < CHUNK_FROM:
        return None
    return HeadSplit(body, weight, bias)


class _HeadScores(torch.autograd.Function):
    """log pi(y) and the entropy of every token from its hidden state, a chunk of tokens at a time; the backward
    recomputes each chunk's logits instead of keeping them (what checkpointing would do, without keeping the
    recomputed entropy tensors that no gradient reads).

    Gradients, per token, with z = logits / temperature, p = softmax(z), l = log p, H = -sum(p l):
    d log p_y / dz = onehot(y) - p;  dH/dz = -p (l + H). Both are what autograd derives for `_scores`.
    Shape: hidden (N, H), weight (V, H), bias (V,) or None, tokens (N,) -> logp (N,), entropy (N,) (0 if off).
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, tokens, temperature, with_entropy, n):
        logp, entropy = torch.empty(len(tokens), device=hidden.device), torch.zeros(len(tokens), device=hidden.device)
        for s in range(0, len(tokens), n):
            l_all = F.log_softmax(F.linear(hidden[s:s + n], weight, bias).float() / temperature, dim=-1)  # (n, V)
            logp[s:s + n] = l_all.gather(-1, tokens[s:s + n, None]).squeeze(-1)
            if with_entropy:
                entropy[s:s + n] = -(l_all.exp() * l_all).sum(-1)
        ctx.save_for_backward(hidden, weight, bias, tokens)
        ctx.temperature, ctx.n = temperature, n
        ctx.set_materialize_grads(False)  # None for an output no loss reads (the entropy, mostly)
        return logp, entropy

    @staticmethod
    @once_differentiable
    def backward(ctx, g_logp, g_entropy):
        hidden, weight, bias, tokens = ctx.saved_tensors
        want_h, want_w, want_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight) if want_w else None
        grad_b = torch.zeros_like(bias) if want_b else None
        for s in range(0, len(tokens), ctx.n):
            h = hidden[s:s + ctx.n]
            l_all = F.log_softmax(F.linear(h, weight, bias).float() / ctx.temperature, dim=-1)  # (n, V)
            p = l_all.exp()
            g = torch.zeros_like(p)
            if g_logp is not None:
                g = g - p * g_logp[s:s + ctx.n, None]
                g.scatter_add_(-1, tokens[s:s + ctx.n, None], g_logp[s:s + ctx.n, None])
            if g_entropy is not None:
                H = -(p * l_all).sum(-1, keepdim=True)                                      # (n, 1)
                g = g - g_entropy[s:s + ctx.n, None] * p * (l_all + H)
            g = (g / ctx.temperature).to(weight.dtype)                                      # (n, V) d/d logits
            if want_h:
                grad_h[s:s + ctx.n] = g @ weight
            if want_w:
                grad_w += g.T @ h
            if want_b:
                grad_b += g.sum(0)
        return grad_h, grad_w, grad_b, None, None, None, None


def chunked_scores(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, tokens: torch.Tensor,
                   temperature: float = 1.0, with_entropy: bool = False,
                   chunk_elements: int = CHUNK_ELEMENTS) -> dict[str, torch.Tensor]:
    """Log-probs of `tokens` (and the entropy) from the states that predict them, a chunk of tokens at a time;
    the backward recomputes each chunk's logits rather than keeping them.

    Shape: hidden (B, T, H), weight (V, H), bias (V,) or None, tokens (B, T) -> {"logp": (B, T), "entropy"?: (B, T)}.
    """
    B, T, H = hidden.shape
    n = max(1, chunk_elements // weight.size(0))  # tokens per chunk
    logp, entropy = _HeadScores.apply(hidden.reshape(B * T, H), weight, bias, tokens.reshape(B * T), temperature,
                                      with_entropy, n)
    out = {"logp": logp.view(B, T)}
    if with_entropy:
        out["entropy"] = entropy.view(B, T)
    return out

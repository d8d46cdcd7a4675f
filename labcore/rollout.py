"""Rollouts: batched sampling with a KV cache, and token log-probabilities of completions.

`generate` samples K completions for each of P prompts in one left-padded batch, feeding one token at a time
through the model's KV cache (a hand loop rather than `model.generate`: no logits processors to set up, and it
stops as soon as every row has emitted EOS). `token_logprobs` runs one forward pass over prompt + completion and
returns log pi(y_t) at the sampling temperature (TRL, OpenRLHF and verl all divide logits by it; the rlhf-book
code does not, which makes the first-epoch ratio differ from 1).

Shapes: P prompts, K samples per prompt, B = P*K rows ordered prompt-major (row b belongs to prompt b // K),
Tp prompt tokens (left-padded), T completion tokens (right-padded; `mask` is 1.0 on valid tokens, EOS included).
Left out: beam search, repetition penalties, stop strings other than EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Batch:
    prompt_ids: torch.Tensor        # (B, Tp) left-padded
    prompt_mask: torch.Tensor       # (B, Tp) 1 on real prompt tokens
    completion_ids: torch.Tensor    # (B, T) right-padded with pad_id
    mask: torch.Tensor              # (B, T) float, 1.0 on valid completion tokens (EOS included)
    eos: torch.Tensor               # (B,) bool, the completion ended with EOS

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)  # (B, Tp + T)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.mask.to(self.prompt_mask.dtype)], dim=1)  # (B, Tp + T)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)  # (B,)

    def select(self, idx: torch.Tensor) -> Batch:
        return Batch(self.prompt_ids[idx], self.prompt_mask[idx], self.completion_ids[idx], self.mask[idx],
                     self.eos[idx])


def encode_prompts(tokenizer, prompts: list[str], repeat: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise prompts (BOS first when the tokenizer has one), left-pad, repeat each `repeat` times in a row.

    Shape: (P*repeat, Tp) ids and attention mask.
    """
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    bos = tokenizer.bos_token_id
    if bos is not None:
        rows = [r if r[:1] == [bos] else [bos] + r for r in rows]
    Tp = max(len(r) for r in rows)
    ids = torch.full((len(rows), Tp), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(rows), Tp), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, Tp - len(r):], attn[i, Tp - len(r):] = torch.tensor(r), 1
    return ids.repeat_interleave(repeat, 0).to(device), attn.repeat_interleave(repeat, 0).to(device)


def _positions(attn: torch.Tensor) -> torch.Tensor:
    return (attn.long().cumsum(-1) - 1).clamp(min=0)  # (B, L) position ids that skip left padding


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches top_p. Shape: (B, V)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop = cum - sorted_logits.softmax(-1) > top_p  # a token is dropped if the mass before it already reaches p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)


@torch.no_grad()
def generate(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int, eos_id: int,
             pad_id: int, temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False,
             generator: torch.Generator | None = None) -> Batch:
    """Sample completions token by token with a KV cache. Stops early when every row has emitted EOS."""
    B = prompt_ids.size(0)
    attn = prompt_mask.clone()
    out = model(input_ids=prompt_ids, attention_mask=attn, position_ids=_positions(attn), use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1].float()  # (B, V)
    next_pos = _positions(attn)[:, -1:] + 1  # (B, 1)
    done = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)
    tokens = []
    for _ in range(max_new_tokens):
        if greedy:
            nxt = logits.argmax(-1)
        else:
            probs = top_p_filter(logits / temperature, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        done = done | (nxt == eos_id)
        if bool(done.all()) or len(tokens) == max_new_tokens:
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
        out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos, past_key_values=past,
                    use_cache=True)
        past, logits, next_pos = out.past_key_values, out.logits[:, -1].float(), next_pos + 1
    completion = torch.stack(tokens, 1)  # (B, T)
    # valid = every token up to and including the first EOS
    is_eos = completion == eos_id
    after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0  # (B, T) strictly after the first EOS
    mask = (~after_eos).float()
    completion = completion.masked_fill(after_eos, pad_id)
    return Batch(prompt_ids, prompt_mask, completion, mask, is_eos.any(1))


def token_logprobs(model, batch: Batch, temperature: float = 1.0, *, with_entropy: bool = False,
                   with_hidden: bool = False) -> dict[str, torch.Tensor]:
    """One forward pass over prompt + completion.

    Returns {"logp": (B, T)} plus "entropy" (B, T) and "hidden" (B, T, H) (the states that predict each
    completion token) when asked. Masked positions hold junk: always multiply by `batch.mask`.
    """
    attn = batch.attention_mask
    out = model(input_ids=batch.input_ids, attention_mask=attn, position_ids=_positions(attn),
                output_hidden_states=with_hidden, use_cache=False)
    Tp, T = batch.prompt_ids.size(1), batch.completion_ids.size(1)
    logits = out.logits[:, Tp - 1: Tp - 1 + T].float() / temperature  # (B, T, V) predicts completion tokens
    logp_all = F.log_softmax(logits, dim=-1)
    result = {"logp": logp_all.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)}  # (B, T)
    if with_entropy:
        result["entropy"] = -(logp_all.exp() * logp_all).sum(-1)  # (B, T)
    if with_hidden:
        result["hidden"] = out.hidden_states[-1][:, Tp - 1: Tp - 1 + T]  # (B, T, H)
    result["logp_all"] = logp_all
    return result

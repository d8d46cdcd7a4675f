"""Rollouts: batched sampling with a KV cache, and token log-probabilities of completions.

`generate` samples K completions for each of P prompts, feeding one token at a time through the model's KV cache
(a hand loop rather than `model.generate`: no logits processors to set up, and it stops as soon as every row has
emitted EOS). `token_logprobs` runs one forward pass over prompt + completion and returns log pi(y_t) at the
sampling temperature (TRL, OpenRLHF and verl all divide logits by it; the rlhf-book code does not, which makes
the first-epoch ratio differ from 1).

Two ways to do less work, both exact (tests/test_rollout.py checks them against the plain passes):
- Shared prompts. The K samples of a prompt share its tokens, so generation runs each prompt once and repeats
  its KV cache K times (`batch.k`); forward passes do the same when that saves enough prompt tokens to pay for
  their second model call (`SHARE_MIN_TOKENS`).
- A rollout that is also the training forward. With `keep_graph=True` the sampling loop runs with autograd on
  and keeps the log-probs it sampled from (`batch.logprobs`, the dict `token_logprobs` returns): a one-pass
  on-policy update back-propagates through them instead of running the same forward a second time. Its graph
  keeps each step's keys and values, which grows with T^2, so the trainer asks for it only while that stays
  small (`labcore.trainer.rollout_graph_fits`).

Shapes: P prompts, K samples per prompt, B = P*K rows ordered prompt-major (row b belongs to prompt b // K),
Tp prompt tokens (left-padded), T completion tokens (right-padded; `mask` is 1.0 on valid tokens, EOS included).
At a real vocabulary, `token_logprobs` scores completion tokens chunk by chunk from the hidden states
(labcore.chunked), so its memory grows with the tokens, not tokens x vocabulary.
Left out: beam search, repetition penalties, stop strings other than EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from labcore.chunked import chunked_scores, head_split


@dataclass
class Batch:
    prompt_ids: torch.Tensor        # (B, Tp) left-padded
    prompt_mask: torch.Tensor       # (B, Tp) 1 on real prompt tokens
    completion_ids: torch.Tensor    # (B, T) right-padded with pad_id
    mask: torch.Tensor              # (B, T) float, 1.0 on valid completion tokens (EOS included)
    eos: torch.Tensor               # (B,) bool, the completion ended with EOS
    k: int = 1                      # rows come in groups of k that share one prompt (prompt-major)
    logprobs: dict[str, torch.Tensor] | None = None  # from the sampling loop, graph kept (keep_graph=True)
    sampler_logp: torch.Tensor | None = None  # (B, T) log-prob of each sampled token under the distribution it
                                              # was drawn from (top_p-truncated, at the temperature)

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)  # (B, Tp + T)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.mask.to(self.prompt_mask.dtype)], dim=1)  # (B, Tp + T)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)  # (B,)

    @staticmethod
    def concat(batches: list[Batch], pad_id: int) -> Batch:
        """Rows of several batches in order, prompts left-padded and completions right-padded to common widths
        (the graph a sampling loop kept is not carried). k is kept when every batch has the same."""
        Tp = max(b.prompt_ids.size(1) for b in batches)
        T = max(b.completion_ids.size(1) for b in batches)

        def left(x, width, value):
            return torch.nn.functional.pad(x, (width - x.size(1), 0), value=value)

        def right(x, width, value):
            return torch.nn.functional.pad(x, (0, width - x.size(1)), value=value)

        out = Batch(torch.cat([left(b.prompt_ids, Tp, pad_id) for b in batches]),
                    torch.cat([left(b.prompt_mask, Tp, 0) for b in batches]),
                    torch.cat([right(b.completion_ids, T, pad_id) for b in batches]),
                    torch.cat([right(b.mask, T, 0.0) for b in batches]),
                    torch.cat([b.eos for b in batches]),
                    batches[0].k if len({b.k for b in batches}) == 1 else 1)
        if all(b.sampler_logp is not None for b in batches):
            out.sampler_logp = torch.cat([right(b.sampler_logp, T, 0.0) for b in batches])
        return out

    def select(self, idx: torch.Tensor, k: int = 1) -> Batch:
        """Rows `idx`; pass k when idx takes whole groups in order, so the prompts stay shared."""
        out = Batch(self.prompt_ids[idx], self.prompt_mask[idx], self.completion_ids[idx], self.mask[idx],
                    self.eos[idx], k)
        out.sampler_logp = None if self.sampler_logp is None else self.sampler_logp[idx]
        return out


def encode_prompts(tokenizer, prompts: list[str], repeat: int, device: torch.device,
                   add_bos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise prompts (BOS first when the tokenizer has one and `add_bos`), left-pad, repeat each `repeat`
    times in a row. A prompt rendered by a chat template already holds its special tokens: pass add_bos=False.

    Shape: (P*repeat, Tp) ids and attention mask.
    """
    rows = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]  # one call for the batch
    bos = tokenizer.bos_token_id
    if bos is not None and add_bos:
        rows = [r if r[:1] == [bos] else [bos] + r for r in rows]
    Tp, pad = max(len(r) for r in rows), tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (Tp - len(r)) + r for r in rows], dtype=torch.long)
    attn = torch.tensor([[0] * (Tp - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids.repeat_interleave(repeat, 0).to(device), attn.repeat_interleave(repeat, 0).to(device)


def sampling_generator(device: torch.device, seed: int) -> torch.Generator:
    """The random stream for sampling, on the model's device: torch.multinomial rejects a CPU generator for CUDA
    or MPS tensors (and drawing on the CPU would cost a copy of the probabilities every token)."""
    return torch.Generator(device=device).manual_seed(seed)


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


def _prefill(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, k: int, with_hidden: bool = False):
    """Run each of the P distinct prompts once and repeat the results for its k rows.

    prompt_ids, prompt_mask: (P, Tp). Returns the KV cache for (P*k) rows, the last prompt position's logits
    (P*k, V) and, if asked, its last-layer hidden state (P*k, H).
    """
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=_positions(prompt_mask),
                output_hidden_states=with_hidden, use_cache=True)
    cache = out.past_key_values
    if k > 1:
        cache.batch_repeat_interleave(k)  # (P, heads, Tp, d) -> (P*k, ...), differentiable
    hidden = out.hidden_states[-1][:, -1].repeat_interleave(k, 0) if with_hidden else None
    logits = out.logits[:, -1].repeat_interleave(k, 0) if out.logits is not None else None  # None: a head split off
    return cache, logits, hidden


def _scores(logits: torch.Tensor, tokens: torch.Tensor, temperature: float, with_entropy: bool,
            hidden: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """logits (B, T, V) that predict tokens (B, T) -> {"logp", "logp_all", "entropy"?, "hidden"?}."""
    logp_all = F.log_softmax(logits.float() / temperature, dim=-1)  # (B, T, V)
    result = {"logp": logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), "logp_all": logp_all}
    if with_entropy:
        result["entropy"] = -(logp_all.exp() * logp_all).sum(-1)  # (B, T)
    if hidden is not None:
        result["hidden"] = hidden  # (B, T, H)
    return result


def generate(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
             eos_id: int | list[int],
             pad_id: int, samples_per_prompt: int = 1, temperature: float = 1.0, top_p: float = 1.0,
             greedy: bool = False, generator: torch.Generator | None = None, keep_graph: bool = False,
             with_hidden: bool = False) -> Batch:
    """Sample `samples_per_prompt` (K) completions for each of the P prompts (P, Tp) with a KV cache; each
    prompt is run once. Stops early when every row has emitted EOS (any of the ids in `eos_id`, which may be a
    list: instruct models end a turn with several). Returns a Batch of B = P*K rows.

    keep_graph: run with autograd on and return, in `batch.logprobs`, what `token_logprobs(model, batch,
    temperature, with_entropy=True, with_hidden=with_hidden)` would (log-probs of the unfiltered distribution
    at `temperature`, as the update needs; top_p only shapes the sampling).
    """
    K = samples_per_prompt
    if generator is not None and generator.device.type != prompt_ids.device.type:
        raise ValueError(f"the sampling generator is on {generator.device} but the model's tensors are on "
                         f"{prompt_ids.device}; PyTorch samples only with a generator on the same device: make it "
                         "with sampling_generator(device, seed).")
    eos = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=prompt_ids.device)
    with torch.set_grad_enabled(keep_graph):
        cache, logits, hidden = _prefill(model, prompt_ids, prompt_mask, K, with_hidden and keep_graph)
        prompt_ids, prompt_mask = prompt_ids.repeat_interleave(K, 0), prompt_mask.repeat_interleave(K, 0)  # (B, Tp)
        attn = prompt_mask  # grows by one column per decoding step
        B = prompt_ids.size(0)
        next_pos = _positions(attn)[:, -1:] + 1  # (B, 1)
        done = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)
        tokens, step_logits, step_hidden, drawn_logp = [], [], [], []
        for _ in range(max_new_tokens):
            step_logits.append(logits)
            step_hidden.append(hidden)
            logits = logits.detach().float()
            if greedy:
                nxt = logits.argmax(-1)
            else:
                sampler = top_p_filter(logits / temperature, top_p).log_softmax(-1)  # (B, V)
                nxt = torch.multinomial(sampler.exp(), 1, generator=generator).squeeze(1)  # (B,)
                drawn_logp.append(sampler.gather(-1, nxt[:, None]).squeeze(1))
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            tokens.append(nxt)
            done = done | torch.isin(nxt, eos)
            if bool(done.all()) or len(tokens) == max_new_tokens:
                break
            attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
            out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos, past_key_values=cache,
                        output_hidden_states=with_hidden and keep_graph, use_cache=True)
            cache, logits, next_pos = out.past_key_values, out.logits[:, -1], next_pos + 1
            hidden = out.hidden_states[-1][:, -1] if with_hidden and keep_graph else None
    completion = torch.stack(tokens, 1)  # (B, T)
    # valid = every token up to and including the first EOS
    is_eos = torch.isin(completion, eos)
    after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0  # (B, T) strictly after the first EOS
    mask = (~after_eos).float()
    completion = completion.masked_fill(after_eos, pad_id)
    batch = Batch(prompt_ids, prompt_mask, completion, mask, is_eos.any(1), K)
    if drawn_logp:
        batch.sampler_logp = torch.stack(drawn_logp, 1).masked_fill(after_eos, 0.0)  # (B, T)
    if keep_graph:
        hid = torch.stack(step_hidden, 1) if with_hidden else None
        batch.logprobs = _scores(torch.stack(step_logits, 1), completion, temperature, True, hid)
    return batch


def replay_logprobs(model, batch: Batch, temperature: float = 1.0) -> dict[str, torch.Tensor]:
    """The log-probs `generate` computed, recomputed call for call: each prompt once (its cache repeated k
    times), then one token at a time on the cache, in the same shapes and order as the sampling loop.

    Why: the reference policy must round exactly as the policy that sampled. A full forward (`token_logprobs`)
    sums in other shapes, so its log-probs differ from the sampling loop's in the last bits; with a fresh adapter
    (LoRA B = 0) that leaves a KL of ~1e-13 whose gradient Adam turns into lr-sized steps. Replayed like the
    rollout, the reference gives bit-identical log-probs until the adapter really changes. Returns {"logp",
    "logp_all"} of shape (B, T) and (B, T, V).
    """
    k, T = batch.k, batch.completion_ids.size(1)
    P = batch.prompt_ids.size(0) // k
    cache, logits, _ = _prefill(model, batch.prompt_ids[::k], batch.prompt_mask[::k], k)
    attn, next_pos = batch.prompt_mask, _positions(batch.prompt_mask)[:, -1:] + 1
    step_logits = [logits]
    for t in range(T - 1):
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
        out = model(input_ids=batch.completion_ids[:, t:t + 1], attention_mask=attn, position_ids=next_pos,
                    past_key_values=cache, use_cache=True)
        cache, next_pos = out.past_key_values, next_pos + 1
        step_logits.append(out.logits[:, -1])
    assert len(step_logits) == T and P * k == batch.prompt_ids.size(0)
    return _scores(torch.stack(step_logits, 1), batch.completion_ids, temperature, False, None)


# Sharing the prompt in a forward pass costs a second model call (prompt, then completion). Through transformers
# that call costs about as much as ~100 tokens of the built-in model, and at its default batch (8 prompts x 4
# samples, 5-token prompts: 120 tokens saved) sharing measured even or 40 % slower. So passes share only when they
# save at least this many prompt tokens (long chat prompts, many samples). A model callable may set its own
# `share_min_tokens`: labcore.fastpath's calls are cheap enough to share from 64. Generation always shares.
SHARE_MIN_TOKENS = 1024


def _grouped(batch: Batch, min_tokens: int | None = None) -> int:
    """batch.k if the rows come in groups of k identical prompts and sharing them saves at least `min_tokens`
    (default SHARE_MIN_TOKENS) prompt tokens; else 1."""
    k, ids = batch.k, batch.prompt_ids
    need = SHARE_MIN_TOKENS if min_tokens is None else min_tokens
    if k <= 1 or ids.size(0) % k or (k - 1) * (ids.size(0) // k) * ids.size(1) < need:
        return 1
    return k if torch.equal(ids.view(-1, k, ids.size(1)), ids[::k, None].expand(-1, k, -1)) else 1


def token_logprobs(model, batch: Batch, temperature: float = 1.0, *, with_entropy: bool = False,
                   with_hidden: bool = False, full: bool = False) -> dict[str, torch.Tensor]:
    """One forward pass over prompt + completion (each distinct prompt once, see `batch.k`).

    Returns {"logp": (B, T), "logp_all": (B, T, V)} plus "entropy" (B, T) and "hidden" (B, T, H) (the states
    that predict each completion token) when asked. Masked positions hold junk: always multiply by `batch.mask`.
    At a real vocabulary (labcore.chunked.head_split) the tokens are scored chunk by chunk from the hidden states
    and "logp_all" is left out; `full=True` keeps it (TRPO's exact KL).
    """
    Tp, T = batch.prompt_ids.size(1), batch.completion_ids.size(1)
    split = None if full else head_split(model, batch.completion_ids.numel())
    lm, want_hidden = (split.body, True) if split else (model, with_hidden)
    attn = batch.attention_mask
    k = _grouped(batch, getattr(lm, "share_min_tokens", None))
    if k == 1:
        out = lm(input_ids=batch.input_ids, attention_mask=attn, position_ids=_positions(attn),
                 output_hidden_states=want_hidden, use_cache=False)
        logits = out.logits[:, Tp - 1: Tp - 1 + T] if not split else None  # (B, T, V) predicts completion tokens
        hidden = out.hidden_states[-1][:, Tp - 1: Tp - 1 + T] if want_hidden else None
    else:
        # The prompt once per group; the completion (but its last token, which predicts nothing) on the shared cache.
        cache, first, first_h = _prefill(lm, batch.prompt_ids[::k], batch.prompt_mask[::k], k, want_hidden)
        logits = first[:, None] if not split else None
        hidden = first_h[:, None] if want_hidden else None
        if T > 1:
            out = lm(input_ids=batch.completion_ids[:, :-1], attention_mask=attn[:, :-1],
                     position_ids=_positions(attn)[:, Tp:-1], past_key_values=cache,
                     output_hidden_states=want_hidden, use_cache=True)
            logits = torch.cat([logits, out.logits], 1) if not split else None
            hidden = torch.cat([hidden, out.hidden_states[-1]], 1) if want_hidden else None
    if split:
        result = chunked_scores(hidden, split.weight, split.bias, batch.completion_ids, temperature, with_entropy)
        return {**result, "hidden": hidden} if with_hidden else result
    return _scores(logits, batch.completion_ids, temperature, with_entropy, hidden)

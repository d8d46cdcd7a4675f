"""A fast forward pass for Llama-family decoders with a LoRA adapter: transformers' and peft's maths in far
fewer operator calls.

Why it exists: at the built-in model's size (4 layers of width 128) a training step is bound by per-operator
overhead, not by arithmetic. One transformers + peft forward issues about 1,300 ATen calls (module hooks, the
mask builder, `rotate_half`'s slicing, peft's adapter bookkeeping), each a few microseconds of CPU time, while a
token's matrix products take about 20 us. `FastDecoder` runs the same computation as plain tensor functions over
the same parameter tensors, about 35 calls per layer:

    x = embed(ids)                                          # (N, H), N = B*L tokens
    for each layer:
        qkv = h @ W_qkv^T + s * (h @ cat(A)^T) @ block_diag(B)^T     # h = rms_norm(x); one product for q, k, v,
        qk = qk*cos + roll(qk)*sin'                         # and LoRA as two more; RoPE on q and k together
        k, v = cat(past, k), cat(past, v)                   # KV cache, differentiable
        x = x + o(sdpa(q, k, v, mask))                      # o and down: a product, plus LoRA's two if adapted
        gate, up = split(rms_norm(x) @ W_gate_up^T)
        x = x + down(silu(gate) * up)
    logits = lm_head(rms_norm(x))

roll(x) * sin' is `rotate_half(x) * sin` exactly (sin' is sin with its first half negated). The arithmetic is
transformers' and peft's, in their order where it matters: on the built-in model the logits equal theirs to the
bit; the fused products sum in another order, so gradients agree to float rounding. tests/test_fastpath.py
compares logits, the last hidden state, the KV cache and the LoRA gradients for llama, mistral and qwen2
configurations, padded batches, cached decoding, grouped-query attention, biases, LoRA on any subset of the
projections, the reference (adapter off) mode and a bfloat16 model with its float32 adapter.

`fast_decoder(model)` checks the FastDecoder's logits against transformers' once (`self_check`: a future
transformers that changes its maths makes it fall back, saying why, rather than be silently wrong) and returns it,
or None and the reason when the check fails or the model is outside what it covers:
model types llama / mistral / qwen2 with full attention (no sliding window), SiLU MLPs, RMSNorm, and plain LoRA
(one adapter, no DoRA, no LoRA dropout, on any of the seven projections and nowhere else). Everything else runs
through transformers unchanged. RoPE variants (scaled, dynamic) come from the model's own rotary module, called
as is. Left out: sliding windows, double backward (TRPO keeps transformers' eager attention) and the attention
weights as an output.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = ("llama", "mistral", "qwen2")
ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


Lora = tuple[torch.Tensor, torch.Tensor, float]  # peft's (A (r, in), B (out, r), scaling)


@dataclass
class Group:
    """Projections that read the same input, run as one matrix product: (q, k, v), (gate, up), or one alone.

    weight (sum of outs, in) and bias are the members' frozen tensors concatenated once at build time. LoRA runs
    as two more products for the whole group: x @ cat(A)^T, then @ block_diag(B)^T added with the scaling in
    one `addmm`; both are rebuilt from the parameters at every call, so gradients reach the adapter."""
    weight: torch.Tensor
    bias: torch.Tensor | None
    sizes: list[int]                # each member's out features
    loras: list[Lora | None]        # per member

    def __post_init__(self):
        scales = {lo[2] for lo in self.loras if lo is not None}
        self.uniform = len(scales) <= 1
        self.scale = scales.pop() if len(scales) == 1 else 1.0   # else each member's B is scaled on its own
        self.A = [lo[0] for lo in self.loras if lo is not None]
        self.adapted = bool(self.A)

    def lora_B(self) -> torch.Tensor:
        """(sum of outs, sum of ranks): each member's B on the diagonal (times its scaling where they differ); a
        member without LoRA is an empty (out, 0) block."""
        blocks = [self.A[0].new_zeros(out, 0) if lo is None else lo[1] if self.uniform else lo[1] * lo[2]
                  for lo, out in zip(self.loras, self.sizes)]
        return blocks[0] if len(blocks) == 1 else torch.block_diag(*blocks)

    def __call__(self, x: torch.Tensor, adapter: bool) -> torch.Tensor:
        """x (N, in) -> (N, sum of outs)."""
        y = F.linear(x, self.weight, self.bias)
        if not (adapter and self.adapted):
            return y
        A = self.A[0] if len(self.A) == 1 else torch.cat(self.A)
        if A.dtype == y.dtype:
            return torch.addmm(y, F.linear(x, A), self.lora_B().t(), alpha=self.scale)  # y + s * (x A^T) B^T
        # peft keeps the adapter of a bfloat16 / float16 model in float32: the LoRA term and the sum run there,
        # then the result goes back to the model's dtype
        return torch.addmm(y.to(A.dtype), F.linear(x.to(A.dtype), A), self.lora_B().t(), alpha=self.scale).to(y.dtype)


def project(groups: list[Group], x: torch.Tensor, adapter: bool) -> list[torch.Tensor]:
    """Every member's output, in order, from one or more groups. Shape: each (N, out)."""
    outs = []
    for g in groups:
        y = g(x, adapter)
        outs.extend(y.split(g.sizes, -1) if len(g.sizes) > 1 else [y])
    return outs


@dataclass
class Layer:
    norm_attn: torch.Tensor  # (H,) RMSNorm weights
    norm_mlp: torch.Tensor
    qkv: list[Group]         # one group of three, or three of one
    o: Group
    gate_up: list[Group]
    down: Group


class KVCache:
    """Keys and values per layer, each (B, kv_heads, L, d). It grows by concatenation, so it can sit inside an
    autograd graph (the rollout that doubles as the training forward keeps it)."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]]):
        self.layers = layers

    def get_seq_length(self) -> int:
        return self.layers[0][0].size(2)

    def batch_repeat_interleave(self, k: int) -> None:
        """Each row k times in a row, as transformers' DynamicCache does: (P, ...) -> (P*k, ...)."""
        self.layers = [(K.repeat_interleave(k, 0), V.repeat_interleave(k, 0)) for K, V in self.layers]


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm: normalise in float32, scale in the input dtype. Shape: (..., H)."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)  # one call; equal to the form below in float32
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def build_mask(attn: torch.Tensor, past: int, L: int) -> torch.Tensor | None:
    """(B, 1, L, past + L) bool: a query sees the real tokens at or before it, and always itself (a padding query
    would otherwise see nothing, and SDPA would return NaN there). None where `is_causal` (no past) or nothing
    (one query) says it all, because no token is padding. attn: (B, past + L), 1 on real tokens."""
    if (past == 0 or L == 1) and bool(attn.all()):
        return None
    keys = torch.arange(past + L, device=attn.device)
    queries = keys[past:, None]                                    # (L, 1) absolute positions
    mask = (keys <= queries) & attn[:, None, :].bool()             # (B, L, past + L)
    return (mask | (keys == queries))[:, None]


class FastDecoder:
    """Call it as the peft model is called in labcore.rollout: `(input_ids, attention_mask, position_ids,
    past_key_values, output_hidden_states, use_cache)`. It returns `.logits` (B, L, V), `.past_key_values`
    (a KVCache when use_cache) and `.hidden_states` (a 1-tuple: the last layer's normalised states, (B, L, H),
    which is transformers' `hidden_states[-1]`)."""

    # labcore.rollout shares a prompt across its samples in a forward pass when that saves this many prompt
    # tokens: a second call here costs about what 60 tokens do (measured: even at 60 saved, 25 % faster at 120).
    share_min_tokens = 64

    def __init__(self, lm: nn.Module, layers: list[Layer], adapters: list[nn.Module]):
        cfg = lm.config
        self.layers, self.adapters = layers, adapters
        self.embed = lm.model.embed_tokens.weight
        self.norm = lm.model.norm.weight
        self.eps = lm.model.norm.variance_epsilon
        self.head = lm.lm_head.weight
        self.rotary = lm.model.rotary_emb
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = self.head_dim ** -0.5

    def adapter_on(self) -> bool:
        """Whether the LoRA adapter is on: off inside `Policy.reference()`, which flips peft's switch."""
        off = {m._disable_adapters for m in self.adapters}
        if len(off) > 1 or any(m.merged for m in self.adapters):
            raise RuntimeError("the LoRA adapter is partly disabled or merged; the fast path needs it all on, "
                               "all off, and unmerged (labcore never merges it)")
        return not off.pop() if off else False

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                 past_key_values: KVCache | None = None, output_hidden_states: bool = False,
                 use_cache: bool = False, logits: bool = True) -> SimpleNamespace:
        """logits=False stops before the head: `.logits` is None and `.hidden_states` holds the last states (what
        labcore.chunked needs to score tokens chunk by chunk)."""
        on = self.adapter_on()
        B, L = input_ids.shape
        N, d, half, nh, nkv = B * L, self.head_dim, self.head_dim // 2, self.heads, self.kv_heads
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        x = F.embedding(input_ids.reshape(N), self.embed)                         # (N, H), N = B*L tokens
        cos, sin = self.rotary(x, position_ids)                                   # (B, L, d)
        sin = torch.cat([-sin[..., :half], sin[..., half:]], -1)                   # roll(x) * sin == rotate_half(x) * sin
        cos, sin = cos.reshape(N, 1, d), sin.reshape(N, 1, d)                     # (N, 1, d)
        mask = build_mask(attention_mask, past, L)                                # (B, 1, L, past + L) or None
        causal = mask is None and past == 0 and L > 1
        cache = []
        for i, layer in enumerate(self.layers):
            h = rms_norm(x, layer.norm_attn, self.eps)
            if len(layer.qkv) == 1:  # fused: q and k sit side by side in one output, RoPE them together
                qkv = layer.qkv[0](h, on)                                                # (N, (nh + 2 nkv) d)
                qk, v = qkv[:, :(nh + nkv) * d].view(N, nh + nkv, d), qkv[:, (nh + nkv) * d:]
            else:
                q, k, v = project(layer.qkv, h, on)
                qk = torch.cat([q.view(N, nh, d), k.view(N, nkv, d)], 1)                # (N, nh + nkv, d)
            qk = qk * cos + qk.roll(half, -1) * sin
            q = qk[:, :nh].view(B, L, nh, d).transpose(1, 2)                            # (B, heads, L, d)
            k = qk[:, nh:].view(B, L, nkv, d).transpose(1, 2)                           # (B, kv_heads, L, d)
            v = v.reshape(B, L, nkv, d).transpose(1, 2)
            if past_key_values is not None:
                pk, pv = past_key_values.layers[i]
                k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)               # (B, kv_heads, past + L, d)
            if use_cache:
                cache.append((k, v))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=self.scaling,
                                               enable_gqa=nkv != nh)              # (B, heads, L, d)
            x = x + layer.o(a.transpose(1, 2).reshape(N, nh * d), on)
            gate, up = project(layer.gate_up, rms_norm(x, layer.norm_mlp, self.eps), on)  # (N, I) each
            x = x + layer.down(F.silu(gate) * up, on)
        x = rms_norm(x, self.norm, self.eps)
        return SimpleNamespace(logits=F.linear(x, self.head).view(B, L, -1) if logits else None,
                               past_key_values=KVCache(cache) if use_cache else None,
                               hidden_states=(x.view(B, L, -1),) if output_hidden_states or not logits else None)


def _member(module: nn.Module) -> tuple[nn.Linear, Lora | None]:
    """The base nn.Linear of a projection and its LoRA (None if it is not adapted)."""
    if isinstance(module, nn.Linear):
        return module, None
    base = getattr(module, "base_layer", None)
    if not (hasattr(module, "lora_A") and isinstance(base, nn.Linear)):
        raise ValueError(f"{type(module).__name__} is neither nn.Linear nor a LoRA layer around one")
    names = list(module.lora_A.keys())
    if len(names) != 1 or list(getattr(module, "active_adapters", names)) != names:
        raise ValueError(f"it has adapters {names}; the fast path runs exactly one")
    (name,) = names
    if getattr(module, "lora_variant", {}).get(name) is not None or getattr(module, "use_dora", {}).get(name):
        raise ValueError("it uses a LoRA variant (DoRA or similar)")
    if getattr(module, "fan_in_fan_out", False):
        raise ValueError("its LoRA is fan_in_fan_out (Conv1D)")
    drop = module.lora_dropout[name]
    if not isinstance(drop, nn.Identity) and getattr(drop, "p", 0.0) > 0:
        raise ValueError("it has LoRA dropout (training and sampling would differ)")
    A, Bm = module.lora_A[name], module.lora_B[name]
    if A.bias is not None or Bm.bias is not None:
        raise ValueError("its LoRA has a bias")
    return base, (A.weight, Bm.weight, float(module.scaling[name]))


# Concatenating (q, k, v) and (gate, up) copies their frozen weights once. Worth it where a step is bound by
# per-call overhead (small models); a real model's copies would cost real memory, so above this each
# projection runs on its own (still one call each, and LoRA as two more).
FUSE_MAX_BYTES = 64 * 2**20


def _groups(members: list[tuple[nn.Linear, Lora | None]], fuse: bool) -> list[Group]:
    if not fuse:
        return [Group(m.weight, m.bias, [m.out_features], [lo]) for m, lo in members]
    biases = [m.bias for m, _ in members]
    bias = None if all(b is None for b in biases) else torch.cat(
        [b if b is not None else m.weight.new_zeros(m.out_features) for b, (m, _) in zip(biases, members)])
    return [Group(torch.cat([m.weight for m, _ in members]).detach(), bias if bias is None else bias.detach(),
                  [m.out_features for m, _ in members], [lo for _, lo in members])]


def fast_decoder(model: nn.Module) -> tuple[FastDecoder | None, str]:
    """A FastDecoder over `model` (a peft model or a plain causal LM), or (None, why not)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(lm, "config", None)
    kind = getattr(cfg, "model_type", None)
    if kind not in SUPPORTED:
        return None, f"model type {kind!r} is not one of {', '.join(SUPPORTED)}"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return None, f"hidden_act {cfg.hidden_act!r} is not silu"
    if "sliding_attention" in (getattr(cfg, "layer_types", None) or []) or (
            kind == "mistral" and getattr(cfg, "sliding_window", None) is not None):
        return None, "it uses sliding-window attention"
    if getattr(cfg, "pretraining_tp", 1) != 1:
        return None, "pretraining_tp != 1"
    body = getattr(lm, "model", None)
    if not all(hasattr(body, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")) or not hasattr(lm, "lm_head"):
        return None, "its module layout is not Llama's"
    if not isinstance(lm.lm_head, nn.Linear) or lm.lm_head.bias is not None or not isinstance(body.embed_tokens, nn.Embedding):
        return None, "its embedding or head is adapted or has a bias"
    found, adapters = [], []  # per layer: (norm weights, {projection name: (base Linear, LoRA)})
    try:
        for layer in body.layers:
            attn, mlp = layer.self_attn, layer.mlp
            if getattr(attn, "attention_dropout", 0.0) or any(hasattr(attn, n) for n in ("q_norm", "k_norm")):
                return None, "its attention has dropout or query/key norms"
            norms = (layer.input_layernorm, layer.post_attention_layernorm)
            if any(getattr(nm, "variance_epsilon", None) != body.norm.variance_epsilon for nm in norms):
                return None, "its norms are not RMSNorm with one epsilon"
            modules = {n: getattr(owner, n) for owner, names in ((attn, ATTN), (mlp, MLP)) for n in names}
            members = {n: _member(mod) for n, mod in modules.items()}
            adapters += [modules[n] for n, (_, lora) in members.items() if lora is not None]
            found.append(((norms[0].weight, norms[1].weight), members))
    except (AttributeError, ValueError) as e:
        return None, f"a projection is outside what it covers: {e}"
    copied = sum(m[n][0].weight.nbytes for _, m in found for n in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"))
    fuse = copied <= FUSE_MAX_BYTES
    layers = [Layer(*norms, qkv=_groups([m["q_proj"], m["k_proj"], m["v_proj"]], fuse), o=_groups([m["o_proj"]], False)[0],
                    gate_up=_groups([m["gate_proj"], m["up_proj"]], fuse), down=_groups([m["down_proj"]], False)[0])
              for norms, m in found]
    elsewhere = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and m not in adapters]
    if elsewhere:
        return None, f"LoRA is also on {elsewhere[0]}"
    fast = FastDecoder(lm, layers, adapters)
    differs = self_check(fast, model)
    return (None, differs) if differs else (fast, "")


# Largest relative difference (Frobenius) between the fast and transformers' logits on the check input. Float32
# agrees to rounding (~1e-7); bfloat16 sums the fused products in another order (~1e-3). A wrong formula (RoPE,
# norms, masks) is off by 1e-1 or more.
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-4}
SELF_CHECK_TOLERANCE_16BIT = 3e-2


@torch.no_grad()
def self_check(fast: FastDecoder, model: nn.Module) -> str:
    """'' if `fast` gives transformers' logits on a small padded batch, else why not: run once per model load, so
    a transformers release that changes its maths makes labcore fall back to it instead of being silently wrong."""
    import transformers

    device, vocab = fast.embed.device, fast.embed.size(0)
    ids = ((torch.arange(16, device=device) * 7919 + 11) % vocab).view(2, 8)              # (2, 8) any tokens
    attn = torch.ones_like(ids)
    attn[1, :3] = 0                                                                        # one left-padded row
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    ref = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).logits
    got = fast(input_ids=ids, attention_mask=attn, position_ids=pos).logits
    valid = attn.bool()
    ref, got = ref[valid].float(), got[valid].float()                                     # (real tokens, V)
    rel = float((got - ref).norm() / ref.norm().clamp(min=1e-12))
    tol = SELF_CHECK_TOLERANCE.get(fast.embed.dtype, SELF_CHECK_TOLERANCE_16BIT)
    if not rel <= tol:  # also catches NaN
        return (f"its logits differ from transformers {transformers.__version__}'s by {rel:.1e} (relative; at most "
                f"{tol:.0e} expected) on a check input, so transformers' forward is used")
    return ""

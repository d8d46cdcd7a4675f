"""labcore.fastpath against transformers + peft: the same logits, hidden states, KV cache and LoRA gradients.

The fast forward re-implements the Llama-family decoder as plain tensor functions, so every test here is an
equivalence pair with the library it replaces, on small random models of each covered architecture: grouped-query
attention, biases (qwen2's q/k/v, llama's attention_bias and mlp_bias), LoRA on some or all projections with
different ranks and scalings, left-padded prompts, right-padded completions, cached decoding, the reference
(adapter off) mode, and the unfused layout that real models get. Tolerances are float32 rounding: the fused
products sum in a different order than three separate ones.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

import labcore.fastpath as fp
from labcore.config import build
from labcore.model import load_policy
from labcore.rollout import Batch, _grouped, _positions, encode_prompts, generate, token_logprobs
from labcore.trainer import Trainer

SMALL = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peft_model(config, targets, seed=0, **lora):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval().requires_grad_(False)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, **lora))
    for n, p in model.named_parameters():
        if "lora_" in n:
            torch.nn.init.normal_(p, std=0.2)  # B starts at zero in peft: make the adapter matter
    return model.eval()


CASES = {
    "llama, LoRA on q k v o": lambda: peft_model(LlamaConfig(**SMALL), ["q_proj", "k_proj", "v_proj", "o_proj"]),
    "llama GQA + biases, LoRA everywhere, ranks and scalings differ": lambda: peft_model(
        LlamaConfig(**SMALL, num_key_value_heads=2, attention_bias=True, mlp_bias=True), ALL,
        rank_pattern={"k_proj": 2, "up_proj": 6}, alpha_pattern={"v_proj": 3, "gate_proj": 5}),
    "llama with llama3 RoPE scaling (the model's own rotary module)": lambda: peft_model(
        LlamaConfig(**SMALL, rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                              "original_max_position_embeddings": 16}), ["q_proj", "k_proj"]),
    "mistral, LoRA on q and v only": lambda: peft_model(MistralConfig(**SMALL, sliding_window=None, num_key_value_heads=2, head_dim=8),
                                                        ["q_proj", "v_proj"]),
    "qwen2 (q/k/v bias), GQA, LoRA on up and o": lambda: peft_model(
        Qwen2Config(**SMALL, num_key_value_heads=1), ["up_proj", "o_proj"]),
}


def padded_batch(seed=0, B=6, L=7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 61, (B, L), generator=g)
    attn = torch.ones(B, L, dtype=torch.long)
    attn[::2, :3] = 0     # left-padded prompts
    attn[1::3, -2:] = 0   # right-padded completions
    return ids, attn


def both(model, fast, **kw):
    return model(**kw), fast(**kw)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("case", list(CASES))
def test_forward_cache_reference_and_gradients_match_transformers(case, fuse, monkeypatch):
    if not fuse:
        monkeypatch.setattr(fp, "FUSE_MAX_BYTES", 0)
    model = CASES[case]()
    fast, why = fp.fast_decoder(model)
    assert fast is not None, why
    ids, attn = padded_batch()
    valid = attn.bool()
    kw = dict(input_ids=ids, attention_mask=attn, position_ids=_positions(attn), output_hidden_states=True,
              use_cache=True)
    with torch.no_grad():
        ref, got = both(model, fast, **kw)
        torch.testing.assert_close(got.logits[valid], ref.logits[valid], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.hidden_states[-1][valid], ref.hidden_states[-1][valid], atol=1e-5, rtol=1e-5)
        for layer, (k, v) in enumerate(got.past_key_values.layers):  # the cache of the real tokens
            rk, rv = ref.past_key_values.layers[layer].keys, ref.past_key_values.layers[layer].values
            torch.testing.assert_close(k.transpose(1, 2)[valid], rk.transpose(1, 2)[valid], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(v.transpose(1, 2)[valid], rv.transpose(1, 2)[valid], atol=1e-5, rtol=1e-5)
        # one decoding step on each cache
        nxt = torch.randint(3, 61, (ids.size(0), 1), generator=torch.Generator().manual_seed(1))
        attn2 = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
        step = dict(input_ids=nxt, attention_mask=attn2, position_ids=_positions(attn2)[:, -1:], use_cache=True)
        d_ref, d_got = model(**step, past_key_values=ref.past_key_values), fast(**step, past_key_values=got.past_key_values)
        torch.testing.assert_close(d_got.logits, d_ref.logits, atol=1e-5, rtol=1e-5)
        # the reference policy: adapter off, exactly the base model
        with model.disable_adapter():
            base_ref, base_got = both(model, fast, **kw)
        torch.testing.assert_close(base_got.logits[valid], base_ref.logits[valid], atol=1e-5, rtol=1e-5)
        assert (base_got.logits - got.logits)[valid].abs().max() > 1e-2  # the adapter did change the model

    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for f in (model, fast):
        for p in params:
            p.grad = None
        logp = f(input_ids=ids, attention_mask=attn, position_ids=_positions(attn)).logits.log_softmax(-1)
        (logp[valid][:, 5] * torch.linspace(-1, 1, int(valid.sum()))).sum().backward()
        grads.append([p.grad.clone() for p in params])
    for g_ref, g_got in zip(*grads):
        torch.testing.assert_close(g_got, g_ref, atol=1e-5, rtol=1e-4)
    assert sum(float(g.abs().sum()) for g in grads[0]) > 0


def test_the_built_in_policy_is_covered_and_fused():
    policy = load_policy("tiny", device="cpu")
    fast, why = fp.fast_decoder(policy.model)
    assert fast is not None, why
    assert len(fast.adapters) == 16 and all(len(layer.qkv) == 1 and layer.qkv[0].sizes == [128, 128, 128]
                                            for layer in fast.layers)


@pytest.mark.parametrize("make, reason", [
    (lambda: peft_model(LlamaConfig(**SMALL), ["q_proj"], lora_dropout=0.1), "dropout"),
    (lambda: peft_model(LlamaConfig(**SMALL), ["q_proj"], use_dora=True), "variant"),
    (lambda: peft_model(LlamaConfig(**SMALL), ["q_proj", "lm_head"]), "head"),
    (lambda: peft_model(MistralConfig(**SMALL, sliding_window=16, num_key_value_heads=2), ["q_proj"]), "sliding"),
    (lambda: peft_model(LlamaConfig(**SMALL, hidden_act="gelu"), ["q_proj"]), "gelu"),
    (lambda: AutoModelForCausalLM.from_config(
        __import__("transformers").GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=61)), "gpt2"),
])
def test_what_it_does_not_cover_goes_through_transformers_with_a_reason(make, reason):
    fast, why = fp.fast_decoder(make())
    assert fast is None and reason in why


def test_mask_sees_real_tokens_up_to_itself_and_always_itself():
    """Hand-written: row 0 has one left pad, row 1 none; two cached positions, then two queries."""
    attn = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    mask = fp.build_mask(attn, past=2, L=2)[:, 0]                                 # (B, L, past + L)
    assert mask.tolist() == [[[False, True, True, False], [False, True, True, True]],
                             [[True, True, True, False], [True, True, True, True]]]
    pad_query = fp.build_mask(torch.tensor([[0, 1]]), past=0, L=2)[0, 0]
    assert pad_query.tolist() == [[True, False], [False, True]]  # the padding query sees itself only: no NaN
    assert fp.build_mask(torch.ones(2, 5, dtype=torch.long), past=0, L=5) is None   # is_causal covers it
    assert fp.build_mask(torch.ones(2, 5, dtype=torch.long), past=4, L=1) is None   # one query sees all


def test_a_partly_disabled_adapter_is_refused():
    model = CASES["llama, LoRA on q k v o"]()
    fast, _ = fp.fast_decoder(model)
    fast.adapters[0]._disable_adapters = True
    with pytest.raises(RuntimeError, match="partly disabled"):
        fast.adapter_on()


def test_the_trainer_runs_through_it_and_takes_the_same_steps():
    """The Trainer picks the fast path for the built-in model; the same seed through transformers gives the
    same sampled completions and the same rewards, and losses equal to rounding."""
    cfg = build("grpo", {"model.device": "cpu", "run.grad_variance": False})  # float32: equal to rounding
    fast, slow = Trainer(cfg), Trainer(cfg)
    assert isinstance(fast.lm, fp.FastDecoder) and fast.fast_why == ""
    slow.lm = slow.model
    for _ in range(3):
        a, b = fast.train_step().metrics, slow.train_step().metrics
        assert a["reward/mean"] == b["reward/mean"] and a["len/mean"] == b["len/mean"]
        assert a["loss/total"] == pytest.approx(b["loss/total"], abs=1e-5)
        assert a["kl/mean"] == pytest.approx(b["kl/mean"], abs=1e-5)
    # Adam divides by sqrt(v): where a gradient is ~1e-8, rounding can move that element's update by up to lr
    # (3e-3). So: every element within one lr, and the typical (median) element equal to rounding.
    diff = torch.cat([(p - q).detach().abs().flatten() for p, q in zip(fast.params, slow.params)])
    assert diff.max() < cfg.optim.lr and diff.median() < 1e-6
    trpo, off = Trainer(build("trpo", {})), Trainer(build("grpo", {"model.fast_forward": False}))
    assert trpo.lm is trpo.model and trpo.forward_name == "transformers (TRPO needs double backward)"
    assert off.lm is off.model and off.forward_name == "transformers (model.fast_forward is off)"


def test_generate_samples_the_same_tokens_either_way():
    policy = load_policy("tiny", device="cpu")
    fast, _ = fp.fast_decoder(policy.model)
    ids = torch.tensor([[0, 2, 10, 11], [2, 12, 13, 14]])
    attn = (ids != 0).long()
    out = [generate(lm, ids, attn, samples_per_prompt=3, max_new_tokens=5, eos_id=3, pad_id=0,
                    generator=torch.Generator().manual_seed(0)) for lm in (policy.model, fast)]
    assert torch.equal(out[0].completion_ids, out[1].completion_ids)


def test_token_logprobs_shares_prompts_from_fewer_tokens_and_gives_the_same_values():
    """Through the fast path a second call is cheap, so the forward pass shares prompts from 64 saved tokens
    (transformers: 1024); shared and unshared agree, gradients included."""
    policy = load_policy("tiny", device="cpu")
    fast, _ = fp.fast_decoder(policy.model)
    ids, attn = encode_prompts(policy.tokenizer, ["3 + 4 =", "12 + 19 + 1 =", "7 =", "5 + 5 ="], 1, policy.device)
    batch = generate(fast, ids, attn, samples_per_prompt=4, max_new_tokens=5, eos_id=3, pad_id=0,
                     temperature=1.5, generator=torch.Generator().manual_seed(0))
    plain = Batch(batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.mask, batch.eos, k=1)
    assert _grouped(batch, fast.share_min_tokens) == 4 and _grouped(batch) == 1
    params = policy.trainable_parameters()
    results = []
    for b in (batch, plain):
        out = token_logprobs(fast, b, 1.5, with_entropy=True, with_hidden=True)
        grads = torch.autograd.grad((out["logp"] * b.mask).sum(), params)
        results.append((out, grads))
    (shared, g1), (full, g2) = results
    m = batch.mask.bool()
    for key in ("logp", "entropy", "hidden"):
        torch.testing.assert_close(shared[key][m], full[key][m], atol=1e-5, rtol=1e-5)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_bfloat16_model_with_its_float32_adapter_matches_peft():
    """On a GPU the base model is bfloat16 and peft keeps the adapter in float32 (autocast_adapter_dtype): the LoRA
    term runs in float32 and the sum returns to bfloat16, as in peft. Checked on the CPU, to bfloat16 rounding."""
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(LlamaConfig(**SMALL, num_key_value_heads=2), dtype=torch.bfloat16)
    model = get_peft_model(base.eval().requires_grad_(False), LoraConfig(r=4, lora_alpha=8, target_modules=ALL))
    for n, p in model.named_parameters():
        if "lora_" in n:
            torch.nn.init.normal_(p, std=0.2)
    assert {p.dtype for n, p in model.named_parameters() if "lora_" in n} == {torch.float32}
    fast, why = fp.fast_decoder(model)
    assert fast is not None, why
    ids, attn = padded_batch()
    kw = dict(input_ids=ids, attention_mask=attn, position_ids=_positions(attn))
    with torch.no_grad():
        ref, got = both(model.eval(), fast, **kw)
    valid = attn.bool()
    assert got.logits.dtype == ref.logits.dtype == torch.bfloat16
    torch.testing.assert_close(got.logits[valid], ref.logits[valid], atol=8e-3, rtol=1.6e-2)  # ~2 bfloat16 ulps
    with torch.no_grad(), model.disable_adapter():
        assert (model(**kw).logits - ref.logits)[valid].abs().max() > 0.1  # the float32 adapter does matter


def test_a_saved_qwen2_directory_trains_through_the_fast_path(tmp_path):
    """A real Hugging Face layout end to end: a Qwen2 model (GQA, q/k/v biases) saved to a directory with the
    built-in tokenizer, loaded by name like any hub model, trained by the Trainer; the same seed through
    transformers samples the same completions."""
    from transformers import AutoTokenizer

    from labcore.model import BUILTIN

    tok = AutoTokenizer.from_pretrained(BUILTIN["tiny"])
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    over = {"model.policy": str(tmp_path), "model.device": "cpu", "run.grad_variance": False,
            "rollout.prompts_per_step": 4}
    fast, slow = Trainer(build("grpo", over)), Trainer(build("grpo", {**over, "model.fast_forward": False}))
    assert fast.forward_name == "labcore.fastpath" and slow.forward_name.startswith("transformers")

    def longer(prompts, completions, **kw):  # a random model rarely answers right: reward length in characters, so groups vary
        return [float(len(c)) for c in completions]

    for t in (fast, slow):
        t.task = dataclasses.replace(t.task, reward_funcs=(longer,), reward_weights=(1.0,))
    for _ in range(2):
        a, b = fast.train_step().metrics, slow.train_step().metrics
        assert a["reward/mean"] == b["reward/mean"] and a["len/mean"] == b["len/mean"]
        assert a["loss/total"] == pytest.approx(b["loss/total"], abs=1e-5)
    assert any(float(p.detach().abs().sum()) > 0 for n, p in fast.model.named_parameters() if "lora_B" in n)  # learned

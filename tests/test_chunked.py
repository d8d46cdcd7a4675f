"""Chunked scoring (labcore.chunked) gives the plain pass's log-probs, entropy and gradients without a (B, T, V)
tensor: on hand tensors (odd chunk sizes, a bias, a temperature), and on the built-in policy through both
forwards (labcore.fastpath and transformers), with and without shared prompts, and in a whole training step.
Chunking is forced with a zero threshold; the last test pins that the built-in model's own steps never chunk.
"""

import pytest
import torch
from sgd import use_plain_sgd
from ui_fixtures import require_model

from labcore import chunked
from labcore import rollout as rollout_module
from labcore.config import build
from labcore.fastpath import fast_decoder
from labcore.model import load_policy
from labcore.rollout import Batch, _scores, encode_prompts, generate, token_logprobs
from labcore.trainer import Trainer, rollout_graph_fits


@pytest.fixture
def always_chunk(monkeypatch):
    monkeypatch.setattr(chunked, "CHUNK_FROM", 0)


@pytest.mark.parametrize("chunk_elements", [1, 3 * 11, 10**6])  # one token a chunk, a ragged last chunk, one chunk
def test_hand_tensors_match_the_full_logits_with_gradients(chunk_elements):
    g = torch.Generator().manual_seed(0)
    B, T, H, V = 3, 5, 4, 11
    hidden = torch.randn(B, T, H, generator=g, requires_grad=True)
    weight = torch.randn(V, H, generator=g, requires_grad=True)
    bias = torch.randn(V, generator=g, requires_grad=True)
    tokens = torch.randint(0, V, (B, T), generator=g)
    w_logp, w_ent = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)

    def run(fn):
        out = fn()
        ((out["logp"] * w_logp).sum() + (out["entropy"] * w_ent).sum()).backward()
        grads = [t.grad.clone() for t in (hidden, weight, bias)]
        for t in (hidden, weight, bias):
            t.grad = None
        return out, grads

    plain, g_plain = run(lambda: _scores(hidden @ weight.T + bias, tokens, 0.7, True, None))
    got, g_got = run(lambda: chunked.chunked_scores(hidden, weight, bias, tokens, 0.7, True, chunk_elements))
    for key in ("logp", "entropy"):
        torch.testing.assert_close(got[key], plain[key], atol=1e-6, rtol=1e-6)
    for a, b in zip(g_got, g_plain):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert all(float(x.abs().sum()) > 0 for x in g_plain)


@pytest.fixture(scope="module")
def policy():
    pol = load_policy(require_model(), seed=0)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:  # a non-zero adapter: gradients reach both LoRA matrices
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return pol


def sampled(pol) -> Batch:
    ids, attn = encode_prompts(pol.tokenizer, ["3 + 4 =", "12 + 19 + 1 ="], 1, pol.device)
    with torch.no_grad():
        return generate(pol.model, ids, attn, samples_per_prompt=3, max_new_tokens=5, eos_id=pol.tokenizer.eos_token_id,
                        pad_id=pol.tokenizer.pad_token_id, temperature=1.3, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("forward", ["fastpath", "transformers"])
@pytest.mark.parametrize("share", [False, True])
def test_token_logprobs_chunked_equal_the_full_pass(policy, forward, share, monkeypatch):
    lm = fast_decoder(policy.model)[0] if forward == "fastpath" else policy.model
    assert lm is not None
    batch = sampled(policy)
    monkeypatch.setattr(rollout_module, "SHARE_MIN_TOKENS", 0 if share else 10**9)
    monkeypatch.setattr(type(lm), "share_min_tokens", 0 if share else 10**9, raising=False)
    lora = [p for p in policy.model.parameters() if p.requires_grad]

    def run(threshold):
        monkeypatch.setattr(chunked, "CHUNK_FROM", threshold)
        monkeypatch.setattr(chunked, "CHUNK_ELEMENTS", 4 * policy.model.config.vocab_size)  # 4 tokens a chunk
        out = token_logprobs(lm, batch, 1.3, with_entropy=True, with_hidden=True)
        loss = ((out["logp"] + 0.1 * out["entropy"]) * batch.mask).sum() + out["hidden"].pow(2).mean()
        grads = torch.autograd.grad(loss, lora)
        return out, grads

    plain, g_plain = run(10**12)
    got, g_got = run(0)
    assert "logp_all" in plain and "logp_all" not in got  # the chunked pass never builds (B, T, V)
    m = batch.mask.bool()
    for key in ("logp", "entropy"):
        torch.testing.assert_close(got[key][m], plain[key][m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["hidden"], plain["hidden"], atol=1e-6, rtol=1e-6)
    for a, b in zip(g_got, g_plain):  # float rounding: the shared-prompt pass sums in other shapes
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert max(float(g.abs().max()) for g in g_plain) > 1e-3


def test_full_keeps_the_vocabulary_for_trpo(policy, always_chunk):
    out = token_logprobs(policy.model, sampled(policy), full=True)
    assert out["logp_all"].shape[-1] == policy.model.config.vocab_size


def test_a_training_step_chunked_equals_the_plain_step(monkeypatch):
    """PPO (old and reference without a graph, two minibatches, a critic), chunked or not: the same metrics and the
    same gradient at each optimiser step. Plain SGD stands in for AdamW, whose first step, lr x sign(g), would
    turn float rounding of near-zero gradients into lr-sized differences."""
    cfg = build("ppo", {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2, "run.grad_variance": False,
                        "algorithm.epochs": 1, "algorithm.entropy_coef": 0.01, "optim.lr": 0.1})

    def step(threshold):
        monkeypatch.setattr(chunked, "CHUNK_FROM", threshold)
        trainer = Trainer(cfg)
        grads = use_plain_sgd(trainer)
        return trainer.train_step().metrics, torch.stack(grads)

    m_plain, g_plain = step(10**12)
    m_got, g_got = step(0)
    for key in ("loss/policy", "loss/entropy", "entropy/mean", "kl/mean", "reward/mean"):
        assert m_got[key] == pytest.approx(m_plain[key], rel=1e-5, abs=1e-6), key
    assert float(g_plain.abs().max()) > 1e-4
    torch.testing.assert_close(g_got, g_plain, atol=1e-4 * float(g_plain.abs().max()), rtol=1e-3)


def test_the_built_in_model_never_chunks_its_steps():
    """Its 147-token vocabulary: even 64 prompts x 16 samples x 64 tokens stay under CHUNK_FROM, so the fast
    path's speed is untouched. A 151,936-token vocabulary chunks from 221 tokens."""
    pol = load_policy(require_model(), seed=0)
    assert chunked.head_split(fast_decoder(pol.model)[0], 64 * 16 * 64) is None
    assert chunked.head_split(pol.model, 64 * 16 * 64) is None
    assert 220 * 151936 < chunked.CHUNK_FROM <= 221 * 151936


def test_the_rollout_graph_counts_its_full_vocabulary_scores():
    """The sampling loop's kept graph scores full logits: at Qwen2's vocabulary 32 rows x 8 tokens hold 311 MB of
    them on top of 170 MB of keys and values, so that rollout is not reused as the training forward."""
    class Qwen05B:
        num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, hidden_size = 24, 14, 2, 64, 896
        vocab_size = 151936

    assert not rollout_graph_fits(Qwen05B, torch.bfloat16, rows=32, prompt_len=50, new_tokens=8)
    assert rollout_graph_fits(Qwen05B, torch.bfloat16, rows=8, prompt_len=50, new_tokens=8)

"""The rollout's two shortcuts are exact: shared prompts, and the sampling loop doubling as the training forward.

Each test computes the same quantity the plain way (every row's full prompt + completion in one forward) and the
short way, on the built-in policy with a non-zero LoRA adapter, and compares values and gradients.
"""

import pytest
import torch
from ui_fixtures import require_model

from labcore import config as C
from labcore import rollout as rollout_module
from labcore.model import load_policy
from labcore.rollout import Batch, _grouped, encode_prompts, generate, token_logprobs
from labcore.trainer import Trainer, kv_bytes_per_token, rollout_graph_fits

P, K, T = 3, 4, 5
PROMPTS = ["3 + 4 =", "12 + 19 + 1 =", "7 ="]  # different lengths: left padding in the prompt block


@pytest.fixture(autouse=True)
def always_share(monkeypatch):
    """The tests' batches are small; share their prompts anyway so the shared path is the one tested."""
    monkeypatch.setattr(rollout_module, "SHARE_MIN_TOKENS", 0)


@pytest.fixture(scope="module")
def policy():
    pol = load_policy(require_model(), seed=0)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:  # B starts at zero; a non-zero adapter makes policy != reference
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(hash(name) % 1000))
    pol.model.train()
    return pol


def rollout(pol, keep_graph=False, with_hidden=False, seed=0):
    ids, attn = encode_prompts(pol.tokenizer, PROMPTS, 1, pol.device)
    return generate(pol.model, ids, attn, samples_per_prompt=K, max_new_tokens=T, eos_id=pol.tokenizer.eos_token_id,
                    pad_id=pol.tokenizer.pad_token_id, temperature=1.3, generator=torch.Generator().manual_seed(seed),
                    keep_graph=keep_graph, with_hidden=with_hidden)


def unshared(batch: Batch) -> Batch:
    return Batch(batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.mask, batch.eos, k=1)


def lora(pol):
    return [p for p in pol.model.parameters() if p.requires_grad]


def masked_close(a, b, mask, atol=1e-5):
    m = mask.bool()
    assert torch.allclose(a[m], b[m], atol=atol), float((a[m] - b[m]).abs().max())


def test_batch_shape_and_grouping(policy):
    batch = rollout(policy)
    assert batch.completion_ids.shape[0] == P * K and batch.k == K and _grouped(batch) == K
    assert torch.equal(batch.prompt_ids[::K].repeat_interleave(K, 0), batch.prompt_ids)  # prompt-major rows
    assert _grouped(batch.select(torch.tensor([0, 5, 1, 2]), k=K)) == 1  # not whole groups: not shared
    assert _grouped(batch.select(torch.arange(K, 2 * K), k=K)) == K


def test_forward_passes_share_prompts_only_when_it_saves_enough(policy, monkeypatch):
    batch = rollout(policy)  # 3 prompts x 4 samples: (4 - 1) * 3 * Tp prompt tokens saved by sharing
    saved = (K - 1) * P * batch.prompt_ids.size(1)
    monkeypatch.setattr(rollout_module, "SHARE_MIN_TOKENS", saved)
    assert _grouped(batch) == K
    monkeypatch.setattr(rollout_module, "SHARE_MIN_TOKENS", saved + 1)
    assert _grouped(batch) == 1


def test_shared_prompt_forward_equals_the_full_forward(policy):
    batch = rollout(policy)
    shared = token_logprobs(policy.model, batch, 1.3, with_entropy=True, with_hidden=True)
    full = token_logprobs(policy.model, unshared(batch), 1.3, with_entropy=True, with_hidden=True)
    for key in ("logp", "entropy"):
        masked_close(shared[key], full[key], batch.mask)
    masked_close(shared["hidden"].norm(dim=-1), full["hidden"].norm(dim=-1), batch.mask)
    adv = torch.linspace(-1, 1, P * K)[:, None]
    g_shared = torch.autograd.grad((shared["logp"] * adv * batch.mask).sum(), lora(policy))
    g_full = torch.autograd.grad((full["logp"] * adv * batch.mask).sum(), lora(policy))
    for a, b in zip(g_shared, g_full):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_shared_prompts_sample_the_same_tokens_as_repeated_rows(policy):
    batch = rollout(policy, seed=3)
    ids, attn = encode_prompts(policy.tokenizer, PROMPTS, K, policy.device)  # every row its own prompt copy
    plain = generate(policy.model, ids, attn, max_new_tokens=T, eos_id=policy.tokenizer.eos_token_id,
                     pad_id=policy.tokenizer.pad_token_id, temperature=1.3,
                     generator=torch.Generator().manual_seed(3))
    assert torch.equal(batch.completion_ids, plain.completion_ids) and torch.equal(batch.mask, plain.mask)
    assert plain.k == 1 and batch.k == K


def test_rollout_graph_is_the_training_forward(policy):
    batch = rollout(policy, keep_graph=True, with_hidden=True, seed=1)
    fresh = batch.logprobs
    assert fresh["logp"].requires_grad and fresh["logp"].shape == batch.mask.shape
    again = token_logprobs(policy.model, unshared(batch), 1.3, with_entropy=True, with_hidden=True)
    for key in ("logp", "entropy"):
        masked_close(fresh[key], again[key], batch.mask)
    masked_close(fresh["hidden"].norm(dim=-1), again["hidden"].norm(dim=-1), batch.mask)
    adv = torch.linspace(1, -1, P * K)[:, None]
    g_fresh = torch.autograd.grad((fresh["logp"] * adv * batch.mask).sum() + (fresh["entropy"] * batch.mask).sum(),
                                  lora(policy))
    g_again = torch.autograd.grad((again["logp"] * adv * batch.mask).sum() + (again["entropy"] * batch.mask).sum(),
                                  lora(policy))
    for a, b in zip(g_fresh, g_again):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert rollout(policy).logprobs is None  # no graph unless asked


@pytest.mark.parametrize("recipe", ["grpo", "actor_critic"])
def test_a_step_with_the_rollout_graph_equals_a_step_with_a_second_forward(recipe, monkeypatch):
    """End to end: the same seed, one step with the rollout's graph and one with a separate training forward
    give the same metrics and the same updated adapter."""
    require_model()
    cfg = C.build(recipe, {"rollout.prompts_per_step": 3, "rollout.samples_per_prompt": 4,
                           "rollout.max_new_tokens": 5, "run.grad_variance": False})

    def step(fused: bool):
        monkeypatch.setattr(Trainer, "rollout_is_forward", lambda self, rows, prompt_len: fused)
        trainer = Trainer(cfg)
        result = trainer.train_step()
        return result.metrics, [p.detach().clone() for p in trainer.params]

    (m_fused, p_fused), (m_plain, p_plain) = step(True), step(False)
    for key in ("reward/mean", "kl/mean", "entropy/mean", "loss/policy", "grad/norm", "len/mean"):
        if key in m_plain:
            assert m_fused[key] == pytest.approx(m_plain[key], rel=1e-4, abs=1e-6), key
    # Adam's first update is about lr * sign(g): where g is ~1e-8, float rounding can move an element by up to lr.
    diff = torch.cat([(a - b).abs().flatten() for a, b in zip(p_fused, p_plain)])
    assert diff.max() < cfg.optim.lr and diff.median() < 1e-7, (float(diff.max()), float(diff.median()))


def test_the_rollout_keeps_its_graph_only_while_its_keys_and_values_stay_small():
    """The graph of a sampling loop grows with T^2; long completions of a real model take the plain forward."""
    require_model()
    trainer = Trainer(C.build("grpo", {"run.grad_variance": False}))
    assert kv_bytes_per_token(trainer.model.config, torch.float32) == 2 * 4 * 4 * 32 * 4  # the built-in Llama
    assert trainer.rollout_is_forward(rows=32, prompt_len=6)                   # the default step: ~7 MB
    assert not Trainer(C.build("ppo")).rollout_is_forward(rows=32, prompt_len=6)   # epochs x minibatches > 1

    class Qwen05B:  # Qwen2.5-0.5B's shape: 24 layers, 2 key-value heads of 64
        num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, hidden_size = 24, 14, 2, 64, 896

    assert kv_bytes_per_token(Qwen05B, torch.bfloat16) == 12_288
    assert rollout_graph_fits(Qwen05B, torch.bfloat16, rows=32, prompt_len=50, new_tokens=8)        # 170 MB
    assert not rollout_graph_fits(Qwen05B, torch.bfloat16, rows=32, prompt_len=50, new_tokens=16)   # 365 MB
    assert not rollout_graph_fits(Qwen05B, torch.bfloat16, rows=32, prompt_len=50, new_tokens=128)  # 5.8 GB
    assert not rollout_graph_fits(object(), torch.float32, rows=1, prompt_len=1, new_tokens=1)      # unknown shape

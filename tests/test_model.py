"""Model loading: the built-in tiny models, a directory saved by the test, LoRA reference semantics, errors.

The key property is the reference policy: ``policy.reference()`` must give exactly the base model's
logits (the adapter disabled, no second copy), before and after the LoRA weights move.
"""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from labcore.model import (
    BUILTIN,
    TINY,
    ModelLoadError,
    Policy,
    default_lora_targets,
    load_policy,
    load_reward_model,
    pick_device,
    resolve_model_path,
)

PROMPTS = ["12 + 7 =", "review : the food was", "say 4 words :"]


def _logits(model, tokenizer) -> torch.Tensor:
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits  # (B, T, V)


def _lora_b(policy: Policy) -> list[nn.Parameter]:
    return [p for n, p in policy.model.named_parameters() if "lora_B" in n]


def test_resolve_and_pick_device():
    assert resolve_model_path("tiny") == str(BUILTIN["tiny"])
    assert resolve_model_path("tiny-rm") == str(BUILTIN["tiny-rm"])
    assert resolve_model_path("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"  # a hub id is passed through
    assert pick_device("cpu") == (torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        pick_device("tpu")


def test_load_tiny_policy():
    policy = load_policy(TINY, device="cpu")
    tok = policy.tokenizer
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<pad>", "<eos>", "<bos>")
    assert tok("12 + 7 =")["input_ids"][0] == tok.bos_token_id  # the tiny tokenizer adds <bos>
    assert policy.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    names = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert len(policy.trainable_parameters()) == len(names) == 4 * 4 * 2  # 4 layers x 4 targets x (A, B)
    assert policy.dtype == torch.float32


def test_reference_is_the_base_model():
    """Reference logits equal the plainly loaded base model's, before and after LoRA B moves off zero."""
    base = AutoModelForCausalLM.from_pretrained(BUILTIN["tiny"]).eval()
    policy = load_policy(TINY, device="cpu", seed=0)
    expected = _logits(base, policy.tokenizer)
    torch.testing.assert_close(_logits(policy.model, policy.tokenizer), expected)  # B = 0: adapter is a no-op
    with torch.no_grad():
        for p in _lora_b(policy):
            p.add_(0.05 * torch.randn_like(p))
    adapted = _logits(policy.model, policy.tokenizer)
    with policy.reference() as ref:
        reference = _logits(ref, policy.tokenizer)
    assert (adapted - expected).abs().max() > 1e-3
    torch.testing.assert_close(reference, expected)
    torch.testing.assert_close(_logits(policy.model, policy.tokenizer), adapted)  # adapter back on after


def test_each_load_gets_a_fresh_adapter_over_shared_weights():
    """LoRA init is deterministic from the seed; adapters are independent; base tensors are not copied."""
    a, b, c = (load_policy(TINY, device="cpu", seed=s) for s in (0, 0, 1))
    lora_a = [[p for n, p in pol.model.named_parameters() if "lora_A" in n][0] for pol in (a, b, c)]
    assert torch.equal(lora_a[0], lora_a[1]) and not torch.equal(lora_a[0], lora_a[2])
    with torch.no_grad():
        _lora_b(a)[0].fill_(1.0)
    assert _lora_b(b)[0].abs().sum() == 0
    embed_a = a.model.get_input_embeddings().weight
    assert embed_a.data_ptr() == b.model.get_input_embeddings().weight.data_ptr()


def test_load_reward_model():
    model, tok = load_reward_model("tiny-rm", device="cpu")
    assert model.config.num_labels == 1 and tok.padding_side == "right"
    batch = tok(["review : the food was great", "review : the food was"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert model(**batch).logits.shape == (2, 1)


def test_load_a_saved_gpt2_directory(tmp_path):
    """Any causal LM directory goes through the same path; GPT-2 gets c_attn/c_proj LoRA targets."""
    tok = AutoTokenizer.from_pretrained(BUILTIN["tiny"])
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    policy = load_policy(str(tmp_path), device="cpu", lora_rank=4)
    assert policy.lora_targets == ["c_attn", "c_proj"]
    assert all(m.p == 0.0 for m in policy.model.modules() if isinstance(m, nn.Dropout))
    with torch.no_grad():
        for p in _lora_b(policy):
            p.add_(0.1)
    with policy.reference() as ref:
        reference = _logits(ref, policy.tokenizer)
    base = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reference, _logits(base, policy.tokenizer))
    assert not torch.allclose(_logits(policy.model, policy.tokenizer), reference)


def test_default_lora_targets_fallback():
    """Unknown architectures get every Linear leaf name except the output head."""
    model = nn.Module()
    model.config = SimpleNamespace(model_type="mystery")
    model.block = nn.ModuleDict({"up": nn.Linear(4, 8), "down": nn.Linear(8, 4)})
    model.lm_head = nn.Linear(4, 10)
    assert default_lora_targets(model) == ["down", "up"]


def test_missing_models_say_what_to_do(tmp_path, monkeypatch):
    missing = tmp_path / "no_such_model"
    with pytest.raises(ModelLoadError, match=r"no_such_model.*no directory.*Use 'tiny'"):
        load_policy(str(missing), device="cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network retries in the test
    with pytest.raises(ModelLoadError) as err:
        load_policy("tinyy", device="cpu")
    message = str(err.value)
    assert "'tinyy'" in message and "Did you mean 'tiny'?" in message
    assert "spelling" in message and "Hugging Face cache" in message
    with pytest.raises(ModelLoadError, match="not a valid Hugging Face id"):
        load_reward_model("my reward model", device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="'.*empty'"):
        load_policy(str(empty), device="cpu")

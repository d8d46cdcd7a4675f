"""The shipped tiny world (labcore/data/tiny) and its builder.

What the lab relies on: the files load with the plain Auto* classes, the policy starts clearly imperfect
on arithmetic (so RL has something to show), the reward model ranks held-out preference pairs, and the
builder is deterministic and fast enough to rerun in a test at a small scale.
"""

import json
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from labcore.model import BUILTIN
from labcore.pretrain import build_tiny_world, pair_accuracy, sample_completions, sentiment_pairs
from labcore.tasks import get_task

POLICY, REWARD = BUILTIN["tiny"], BUILTIN["tiny-rm"]


@pytest.fixture(scope="module")
def policy():
    return AutoModelForCausalLM.from_pretrained(POLICY).eval(), AutoTokenizer.from_pretrained(POLICY)


def test_shipped_files_are_small_and_complete():
    files = [f for f in POLICY.parent.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 20e6
    for sub in (POLICY, REWARD):
        assert (sub / "model.safetensors").is_file() and (sub / "tokenizer.json").is_file()
    stats = json.loads((POLICY.parent / "stats.json").read_text())
    assert stats["reward_model"]["heldout_pair_accuracy"] > 0.9


def test_tokenizer_round_trip(policy):
    _, tok = policy
    ids = tok("review : the food was great")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids
    assert tok.decode(ids[1:] + [tok.eos_token_id], skip_special_tokens=True) == "review : the food was great"
    assert tok.unk_token_id in tok("review : the zebra was")["input_ids"]


def test_reward_model_prefers_the_chosen_side():
    model = AutoModelForSequenceClassification.from_pretrained(REWARD).eval()
    tok = AutoTokenizer.from_pretrained(REWARD)
    acc = pair_accuracy(model, tok, sentiment_pairs(random.Random(12345), 500))
    print(f"tiny RM held-out pair accuracy: {acc:.3f}")
    assert acc > 0.9


def test_base_model_starts_imperfect_on_arithmetic(policy):
    """At temperature 1 the base model is right often but far from always: RL has room to lift it."""
    model, tok = policy
    task = get_task("arithmetic")
    rows = task.make_prompts(random.Random(7), 300)
    prompts = [r["prompt"] for r in rows]
    completions, eos, ids = sample_completions(model, tok, prompts, task.max_new_tokens, seed=7)
    acc = sum(task.reward_funcs[0](prompts, completions, answer=[r["answer"] for r in rows])) / len(rows)
    print(f"base arithmetic accuracy at T=1: {acc:.3f}, EOS rate {sum(eos) / len(eos):.3f}")
    assert 0.15 <= acc <= 0.6
    assert sum(eos) / len(eos) > 0.95
    assert all(len(c.split()) == len(i) for c, i in zip(completions, ids))  # one token per word


def test_base_model_writes_task_text(policy):
    """Sentiment and length completions use the task's words and end with EOS."""
    model, tok = policy
    for name in ("sentiment", "length"):
        task = get_task(name)
        prompts = [r["prompt"] for r in task.make_prompts(random.Random(3), 64)]
        completions, eos, _ = sample_completions(model, tok, prompts, task.max_new_tokens, seed=3)
        assert sum(eos) / len(eos) > 0.9, name
        assert sum(len(c.split()) > 0 for c in completions) / len(completions) > 0.95, name


@pytest.mark.slow
def test_rebuild_a_shrunken_world(tmp_path):
    """The builder runs end to end at a small scale, and the result loads with the plain Auto* classes."""
    threads = torch.get_num_threads()
    stats = build_tiny_world(tmp_path, seed=1, scale=0.05, progress=False, threads=1)
    assert torch.get_num_threads() == threads  # restored
    print(f"shrunken build: {stats['build_seconds']} s")
    assert set(stats["start_reward"]) == {"arithmetic", "sentiment", "length"}
    assert (tmp_path / "README.md").is_file() and (tmp_path / "stats.json").is_file()
    tok = AutoTokenizer.from_pretrained(tmp_path / "policy")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "reward")
    batch = tok(["12 + 7 ="], return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, 5, len(tok))
        assert rm(**batch).logits.shape == (1, 1)

"""Build the "tiny world" that makes the lab work offline: tokenizer, policy LM and reward model.

Everything is generated from a seed in a few CPU minutes:
- a word-level tokenizer over the tiny language of ``labcore.tasks`` (``<bos>`` added in front of every
  encoded text, no EOS added);
- a ~1.1 M parameter ``LlamaForCausalLM`` trained by next-token prediction on ``<bos> prompt completion
  <eos>`` from the three tasks (loss on completion tokens only). The corpus is deliberately imperfect:
  the written answer is right 40 % of the time, otherwise one of three common mistakes (the other
  operation, or copying either operand); the written length matches 30 % of the time; reviews are mixed.
  So every task starts with room for RL. Mistakes are whole wrong strategies rather than near misses on
  purpose: trained on off-by-one noise, the tiny model's neighbouring numbers end up so alike that LoRA can
  barely sharpen it (measured on arithmetic-only models, exact expected-reward gradient, rank-8 attention
  LoRA, 60 steps: p(correct) 0.32 -> 0.46 with off-by-one noise, 0.44 -> 0.97 with these strategies);
- a ~0.1 M parameter ``LlamaForSequenceClassification`` reward model trained with the Bradley-Terry loss
  -log sigmoid(r_chosen - r_rejected) on review pairs; the hidden "true" sentiment is additive (+1 per
  positive adjective, -1 per negative, doubled after an intensifier), so the RM can be hacked by
  repeating positive words.

Left out: real text, instruction tuning, and any tuning of the recipe beyond "starts imperfect, writes
fluent task text, ends with EOS".
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from labcore import tasks as T

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
PAD, UNK, BOS, EOS = range(4)
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "tiny"
TASK_MIX = {"arithmetic": 0.5, "sentiment": 0.25, "length": 0.25}  # share of pretraining sequences

ARITH_P_CORRECT = 0.4  # the rest is split evenly over the three common mistakes
# Offsets of the written length from the asked one, and their probabilities.
LENGTH_NOISE = {0: 0.3, -1: 0.2, 1: 0.2, -2: 0.1, 2: 0.1, -3: 0.05, 3: 0.05}


def build_tokenizer(words: list[str] | None = None):
    """The word-level tokenizer of the tiny language (or of `words`), as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + (T.vocabulary() if words is None else words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                       special_tokens=[("<bos>", BOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=64, clean_up_tokenization_spaces=False)


def save_tokenizer(tokenizer, path: str | Path) -> None:
    """``save_pretrained``, naming the class ``PreTrainedTokenizerFast`` so transformers 4.x loads it too."""
    tokenizer.save_pretrained(path)
    config_file = Path(path) / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    config_file.write_text(json.dumps(config, indent=2) + "\n")


# ---- the pretraining corpus: how the "internet" writes each task's completions --------------------------

def _pick(rng: random.Random, table: dict) -> object:
    return rng.choices(list(table), weights=list(table.values()))[0]


def arithmetic_answers(row: dict) -> dict[int, float]:
    """How the corpus answers ``a op b =``: right 0.4; the other operation, a, b: 0.2 each (merged if equal)."""
    a, op, b = row["prompt"].split()[:3]
    a, b = int(a), int(b)
    mistakes = [abs(a - b) if op == "+" else a + b, a, b]
    out = {row["answer"]: ARITH_P_CORRECT}
    for m in mistakes:
        out[m] = out.get(m, 0.0) + (1 - ARITH_P_CORRECT) / len(mistakes)
    return out


def write_arithmetic(rng: random.Random, row: dict) -> str:
    """The answer, right with probability 0.4, otherwise a common mistake (other operation, copy an operand)."""
    return str(_pick(rng, arithmetic_answers(row)))


def _clause(rng: random.Random, p_pos: float = 0.4, p_neg: float = 0.4) -> list[str]:
    u = rng.random()
    pool = T.POSITIVE if u < p_pos else T.NEGATIVE if u < p_pos + p_neg else T.NEUTRAL
    words = [rng.choice(T.INTENSIFIERS)] if rng.random() < 0.3 else []
    return words + [rng.choice(pool)]


def write_sentiment(rng: random.Random, row: dict, max_clauses: int = 3) -> str:
    """A mixed review continuation: ``great and the staff was very rude``."""
    words = _clause(rng)
    for _ in range(rng.choices(range(max_clauses), weights=[0.4, 0.4, 0.2][:max_clauses])[0]):
        words += [rng.choice(["and", "but"]), "the", rng.choice(T.NOUNS), "was"] + _clause(rng)
    return " ".join(words)


def write_length(rng: random.Random, row: dict) -> str:
    """Random words, as many as asked with probability 0.3, otherwise 1-3 off (at least one)."""
    k = max(1, row["target_len"] + _pick(rng, LENGTH_NOISE))
    return " ".join(rng.choice(T.LENGTH_WORDS) for _ in range(k))


WRITERS = {"arithmetic": write_arithmetic, "sentiment": write_sentiment, "length": write_length}
PROMPTS = {"arithmetic": T.arithmetic_prompts, "sentiment": T.sentiment_prompts, "length": T.length_prompts}


def true_sentiment(text: str) -> float:
    """The hidden additive sentiment the reward model learns: +-1 per adjective, doubled after an intensifier."""
    words, score = text.split(), 0.0
    for i, w in enumerate(words):
        value = 1.0 if w in T.POSITIVE else -1.0 if w in T.NEGATIVE else 0.0
        score += value * (2.0 if i > 0 and words[i - 1] in T.INTENSIFIERS else 1.0)
    return score


def _rm_completion(rng: random.Random) -> str:
    if rng.random() < 0.2:  # word salad, so the RM scores any text additively
        pool = T.POSITIVE + T.NEGATIVE + T.NEUTRAL + T.INTENSIFIERS + T.NOUNS + ["and", "but", "the", "was"]
        return " ".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
    words = _clause(rng, 0.4, 0.4)
    for _ in range(rng.randint(0, 3)):
        words += [rng.choice(["and", "but"]), "the", rng.choice(T.NOUNS), "was"] + _clause(rng, 0.4, 0.4)
    return " ".join(words)


def sentiment_pairs(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """n preference pairs (chosen, rejected) of full texts ``prompt completion``; true scores differ by >= 1."""
    pairs = []
    while len(pairs) < n:
        prompt = T.sentiment_prompts(rng, 1)[0]["prompt"]
        a, b = f"{prompt} {_rm_completion(rng)}", f"{prompt} {_rm_completion(rng)}"
        sa, sb = true_sentiment(a), true_sentiment(b)
        if abs(sa - sb) >= 1:
            pairs.append((a, b) if sa > sb else (b, a))
    return pairs


# ---- training -----------------------------------------------------------------------------------------

def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def update(model, opt, loss: torch.Tensor, lr: float) -> None:
    """One optimiser step of a pretraining loop: the scheduled `lr`, backward, gradients clipped to norm 1."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _policy_batch(rng: random.Random, vocab: dict, task: str, size: int) -> dict[str, torch.Tensor]:
    """One task's ``<bos> prompt completion <eos>`` rows, right-padded, labels only on completion + EOS.

    For arithmetic the answer token is trained on the whole answer distribution (``soft``, a soft label at
    position ``soft_pos``) instead of one sampled answer: the same expected gradient with no sampling noise,
    so the mode (the right answer) is learned in far fewer steps.
    """
    rows = PROMPTS[task](rng, size)
    seqs = [([BOS] + [vocab[w] for w in r["prompt"].split()], [vocab[w] for w in WRITERS[task](rng, r).split()] + [EOS])
            for r in rows]
    length = max(len(p) + len(c) for p, c in seqs)
    ids = torch.full((size, length), PAD)
    labels = torch.full((size, length), -100)
    for i, (p, c) in enumerate(seqs):
        ids[i, :len(p) + len(c)] = torch.tensor(p + c)
        labels[i, len(p):len(p) + len(c)] = torch.tensor(c)
    batch = {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}
    if task == "arithmetic":
        soft = torch.zeros(size, len(vocab))  # (B, V)
        for i, r in enumerate(rows):
            for v, p in arithmetic_answers(r).items():
                soft[i, vocab[str(v)]] = p
        pos = len(seqs[0][0])  # every arithmetic prompt is 5 tokens
        labels[:, pos] = -100
        batch.update(soft=soft, soft_pos=torch.tensor(pos - 1))
    return batch


def _lm_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled tokens (plus the soft-labelled one for arithmetic)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()  # (B, L, V)
    labels = batch["labels"][:, 1:]  # (B, L-1)
    total = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="sum")
    count = (labels != -100).sum()
    if "soft" in batch:
        logp = F.log_softmax(logits[:, batch["soft_pos"]], -1)  # (B, V)
        total = total - (batch["soft"] * logp).sum()
        count = count + len(logp)
    return total / count


def train_policy(tokenizer, rng: random.Random, steps: int, batch_size: int = 64,
                 progress: bool = True) -> tuple[torch.nn.Module, dict[str, float]]:
    """The tiny causal LM, trained from scratch on one task per step (mixed by TASK_MIX).

    Returns (model, final loss per task averaged over its last 20 steps).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=512, max_position_embeddings=64,
                         tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    model = LlamaForCausalLM(config)
    peak = 4e-3
    opt = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.98), weight_decay=0.01)
    vocab = tokenizer.get_vocab()
    losses: dict[str, list[float]] = {name: [] for name in TASK_MIX}
    model.train()
    for step in (bar := tqdm(range(steps), desc="policy", disable=not progress)):
        task = rng.choices(list(TASK_MIX), weights=list(TASK_MIX.values()))[0]
        loss = _lm_loss(model, _policy_batch(rng, vocab, task, batch_size))
        update(model, opt, loss, _lr(step, steps, peak, warmup=min(100, steps // 10 + 1)))
        losses[task].append(loss.item())
        if step % 20 == 0:
            bar.set_postfix({k: f"{sum(v[-20:]) / max(1, len(v[-20:])):.3f}" for k, v in losses.items()})
    model.eval()
    return model, {k: sum(v[-20:]) / max(1, len(v[-20:])) for k, v in losses.items()}


def _encode(tokenizer, texts: list[str]) -> dict[str, torch.Tensor]:
    tokenizer.padding_side = "right"
    return dict(tokenizer(texts, return_tensors="pt", padding=True))


@torch.no_grad()
def pair_accuracy(model, tokenizer, pairs: list[tuple[str, str]]) -> float:
    """Fraction of pairs whose chosen text gets the higher reward."""
    chosen = model(**_encode(tokenizer, [c for c, _ in pairs])).logits[:, 0]
    rejected = model(**_encode(tokenizer, [r for _, r in pairs])).logits[:, 0]
    return (chosen > rejected).float().mean().item()


def train_reward_model(tokenizer, rng: random.Random, steps: int, batch_size: int = 64, progress: bool = True):
    """The tiny Bradley-Terry reward model. Returns (model, final loss, held-out pair accuracy)."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=128, max_position_embeddings=64, num_labels=1,
                         pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    model = LlamaForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98), weight_decay=0.01)
    losses = []
    model.train()
    for step in (bar := tqdm(range(steps), desc="reward model", disable=not progress)):
        pairs = sentiment_pairs(rng, batch_size)
        r = model(**_encode(tokenizer, [c for c, _ in pairs] + [r for _, r in pairs])).logits[:, 0]  # (2B,)
        r_chosen, r_rejected = r[:batch_size], r[batch_size:]
        # Bradley-Terry, plus a small pull to 0 so the scale stays near the true sentiment's.
        loss = -F.logsigmoid(r_chosen - r_rejected).mean() + 1e-3 * (r ** 2).mean()
        update(model, opt, loss, _lr(step, steps, 3e-3, warmup=min(50, steps // 10 + 1)))
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    heldout = sentiment_pairs(random.Random(rng.getrandbits(32)), 1000)  # a fresh stream
    return model, sum(losses[-50:]) / len(losses[-50:]), pair_accuracy(model, tokenizer, heldout)


# ---- evaluation ---------------------------------------------------------------------------------------

@torch.no_grad()
def sample_completions(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float = 1.0,
                       seed: int = 0) -> tuple[list[str], list[bool], list[list[int]]]:
    """Plain ancestral sampling (no top-k / top-p). Returns (completion texts, ended with EOS, ids w/o EOS)."""
    device = next(model.parameters()).device
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(len(e) for e in encoded)
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)  # (B, L) left-padded
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    new = []
    for _ in range(max_new_tokens):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].float()  # (B, V)
        token = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)[:, 0]  # (B,)
        token = torch.where(done, torch.full_like(token, pad), token)
        ids = torch.cat([ids, token[:, None]], 1)
        mask = torch.cat([mask, (~done).long()[:, None]], 1)
        new.append(token)
        done |= token == eos
        if done.all():
            break
    texts, ended, out_ids = [], [], []
    for row in torch.stack(new, 1).tolist():
        cut = row.index(eos) if eos in row else len(row)
        out_ids.append(row[:cut])
        ended.append(cut < len(row))
        texts.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
    return texts, ended, out_ids


def evaluate_task(model, tokenizer, task: T.Task, n: int, seed: int = 0) -> dict[str, float]:
    """Mean of each reward function and of the weighted total on n fresh prompts sampled at temperature 1."""
    rows = task.make_prompts(random.Random(seed), n)
    prompts = [r["prompt"] for r in rows]
    completions, eos, ids = sample_completions(model, tokenizer, prompts, task.max_new_tokens, seed=seed)
    columns = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}
    total = [0.0] * n
    stats = {}
    for fn, w in zip(task.reward_funcs, task.reward_weights):
        scores = fn(prompts, completions, eos=eos, completion_ids=ids, **columns)
        valid = [s for s in scores if s is not None]
        stats[fn.__name__] = sum(valid) / max(1, len(valid))
        total = [t + w * s if s is not None else t for t, s in zip(total, scores)]
    stats["reward"] = sum(total) / n
    stats["eos_rate"] = sum(eos) / n
    return stats


@torch.no_grad()
def arithmetic_p_correct(model, tokenizer) -> float:
    """The model's average probability of writing the right answer first, over every arithmetic problem."""
    vocab = tokenizer.get_vocab()
    problems = T.arithmetic_problems()
    ids = torch.tensor([[BOS, vocab[str(a)], vocab[op], vocab[str(b)], vocab["="]] for a, op, b in problems])
    probs = torch.softmax(model(input_ids=ids).logits[:, -1].float(), -1)  # (N, V)
    answers = torch.tensor([vocab[str(a + b if op == "+" else a - b)] for a, op, b in problems])
    return probs[torch.arange(len(problems)), answers].mean().item()


# ---- the whole build ----------------------------------------------------------------------------------

def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


@contextmanager
def build_threads(threads: int, seed: int) -> Iterator[None]:
    """A build's torch settings: `threads` CPU threads (restored afterwards) and the global seed `seed`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        yield
    finally:
        torch.set_num_threads(previous)


def save_built(model, path: Path, words: list[str] | None = None, sampling: bool = False) -> None:
    """Save a built model with a fresh tokenizer of `words` (encoding with padding=True changes a tokenizer, so
    not the one used in training), readable by all (safetensors writes 0600). With `sampling`, the model's
    generation config samples plainly at temperature 1, as the lab does."""
    from transformers import GenerationConfig

    if sampling:
        model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                                                   do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
    model.save_pretrained(path)
    save_tokenizer(build_tokenizer(words), path)
    for f in Path(path).rglob("*.safetensors"):
        f.chmod(0o644)


def build_tiny_world(out_dir: str | Path, seed: int = 0, scale: float = 1.0, progress: bool = True,
                     threads: int = 2) -> dict:
    """Build and save tokenizer, policy (``out_dir/policy``) and reward model (``out_dir/reward``) from ``seed``.

    ``scale`` < 1 shrinks training steps and evaluation sizes (0.05 builds in seconds, for tests).
    ``threads`` is torch's CPU thread count during the build (restored afterwards); on a busy machine 1 is
    much faster than 2, because torch's threads spin-wait for each other.
    Returns the stats also written to ``out_dir/stats.json`` and ``out_dir/README.md``.
    """
    from labcore.model import clear_model_cache

    start = time.time()
    out = Path(out_dir)
    with build_threads(threads, seed):
        tokenizer = build_tokenizer()
        policy, policy_losses = train_policy(tokenizer, random.Random(seed), max(1, round(1600 * scale)),
                                           progress=progress)
        seconds = {"policy": time.time() - start}
        reward, rm_loss, rm_acc = train_reward_model(tokenizer, random.Random(seed + 1), max(1, round(300 * scale)),
                                                     progress=progress)
        seconds["reward_model"] = time.time() - start - seconds["policy"]
        save_built(policy, out / "policy", sampling=True)
        save_built(reward, out / "reward")
        n_eval = max(32, round(256 * scale))
        start_reward = {}
        clear_model_cache()  # a rebuild in the same process must not score with a stale cached RM
        for name in TASK_MIX:  # the tiny world's own tasks (the chain task has its own model, labcore.chain_pretrain)
            task = T.get_task(name, reward_model=str(out / "reward"))
            start_reward[name] = evaluate_task(policy, tokenizer, task, n_eval, seed=seed)
        stats = {
            "seed": seed, "scale": scale, "threads": threads, "build_seconds": round(time.time() - start, 1),
            "phase_seconds": {k: round(v, 1) for k, v in seconds.items()},
            "policy": {"params": sum(p.numel() for p in policy.parameters()), "final_loss": {k: round(v, 4) for k, v in policy_losses.items()},
                       "arithmetic_p_correct": round(arithmetic_p_correct(policy, tokenizer), 4),
                       "megabytes": round(_dir_mb(out / "policy"), 2)},
            "reward_model": {"params": sum(p.numel() for p in reward.parameters()), "final_loss": round(rm_loss, 4),
                             "heldout_pair_accuracy": round(rm_acc, 4), "megabytes": round(_dir_mb(out / "reward"), 2)},
            "start_reward": {k: {m: round(v, 4) for m, v in s.items()} for k, s in start_reward.items()},
            "eval_samples_per_task": n_eval,
        }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    (out / "README.md").write_text(_readme(stats))
    return stats


def _readme(stats: dict) -> str:
    rows = "\n".join(f"| {name} | {s['reward']:.3f} | "
                     + ", ".join(f"{k} {v:.3f}" for k, v in s.items() if k != "reward") + " |"
                     for name, s in stats["start_reward"].items())
    p, r = stats["policy"], stats["reward_model"]
    losses = ", ".join(f"{k} {v}" for k, v in p["final_loss"].items())
    return f"""# The tiny world

Built by `rlhf-lab pretrain --seed {stats['seed']} --scale {stats['scale']} --threads {stats['threads']}` \
(labcore/pretrain.py) in \
{stats['build_seconds']} s. Everything here is synthetic and regenerated from the seed.

- `policy/`: LlamaForCausalLM, {p['params']:,} parameters, final completion loss per task {losses}, \
average p(correct sum) {p['arithmetic_p_correct']}; word-level tokenizer (`<bos>` is added when encoding).
- `reward/`: LlamaForSequenceClassification (Bradley-Terry), {r['params']:,} parameters, held-out pair \
accuracy {r['heldout_pair_accuracy']}; same tokenizer.

Starting reward of the policy ({stats['eval_samples_per_task']} prompts per task, temperature 1):

| task | weighted reward | details |
|---|---|---|
{rows}
"""


def pretrain_main(argv: list[str] | None = None) -> int:
    """``rlhf-lab pretrain``: rebuild the tiny world (policy, reward model, tokenizer)."""
    parser = argparse.ArgumentParser(
        prog="rlhf-lab pretrain",
        description="Rebuild the tiny world: tokenizer, policy and reward model (a few CPU minutes at --scale 1).")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: the shipped copy)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, init and sampling")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink (<1) or grow training steps")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 is faster on a busy machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--world", choices=("tiny", "chain", "chain-loops"), default="tiny",
                        help="tiny: the three tasks' world (labcore/data/tiny); chain: the chain task's own model "
                             "(labcore/data/chain, labcore.chain_pretrain); chain-loops: the same with a looping "
                             "style (labcore/data/chain_loops, the length-bias lesson's model)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error(f"--scale must be > 0, got {args.scale}")
    if args.world in ("chain", "chain-loops"):
        from labcore import chain_pretrain as CP

        loops = args.world == "chain-loops"
        out = (CP.LOOPS_OUT if loops else CP.DEFAULT_OUT) if args.out == str(DEFAULT_OUT) else args.out
        print(json.dumps(CP.build_chain_world(out, seed=args.seed, scale=args.scale, progress=not args.quiet,
                                              threads=args.threads, styles=CP.LOOP_STYLES if loops else CP.STYLES),
                         indent=2))
        return 0
    stats = build_tiny_world(args.out, seed=args.seed, scale=args.scale, progress=not args.quiet,
                               threads=args.threads)
    print(json.dumps(stats, indent=2))
    return 0

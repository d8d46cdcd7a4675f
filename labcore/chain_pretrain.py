"""Build the chain task's own small world (labcore/data/chain/): a word-level tokenizer and a small LlamaForCausalLM
pretrained on `sum 3 5 2 :` -> a chain of partial sums of a random verbosity, then `; answer`.

The corpus writes the terms' sum out 0 to 3 times (`3 + 5 + 2 , 3 + 5 + 2`), a number of times chosen
independently of whether the answer is right, then `; answer`: 2, 8, 14 or 20 words. The answer is right
CHAIN_P_CORRECT of the time, otherwise one of the terms copied (a whole wrong strategy, as in the tiny world's
arithmetic; with three terms of 1..9 a copied term is never the sum). So the base model starts near 40 % correct at
every length, and RL has both the answer and the length to move. The answer token is trained on the whole answer
distribution (a soft label), as labcore.pretrain does for arithmetic.

A second model, `tiny-chain-loops` (labcore/data/chain_loops/, `rlhf-lab pretrain --world chain-loops`), is
pretrained on the same corpus except that LOOP_STYLES adds a looping style: 15 % of its completions write the sum
out 5 times (31 words with the answer), more than the 24-token budget, so the policy starts out cutting itself
off (a wrong answer at full length) about one time in six, as a confused LLM loops until its length limit. The
trajectory lesson of GRPO's length bias runs on it (presets/lessons/length_bias.toml).

`rlhf-lab pretrain --world chain` rebuilds it deterministically from the seed. Left out: a reward model (the task
is graded by a rule) and any mixing with the tiny world's tasks.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from labcore import chain as C
from labcore import pretrain as PT

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "chain"
LOOPS_OUT = DEFAULT_OUT.parent / "chain_loops"
CHAIN_P_CORRECT = 0.4
STYLES = {0: 0.3, 1: 0.3, 2: 0.2, 3: 0.2}  # times the sum is written out before the answer
LOOP_STYLES = {0: 0.3, 1: 0.25, 2: 0.15, 3: 0.15, 5: 0.15}  # tiny-chain-loops: 5 times runs past MAX_NEW_TOKENS
MAX_NEW_TOKENS = 24  # the longest corpus completion is 20 words + EOS


def answer_distribution(terms: list[int]) -> dict[int, float]:
    """How the corpus answers: the sum CHAIN_P_CORRECT, else one of the terms copied, evenly (merged where two
    coincide)."""
    wrong = list(terms)
    out = {sum(terms): CHAIN_P_CORRECT}
    for w in wrong:
        out[w] = out.get(w, 0.0) + (1 - CHAIN_P_CORRECT) / len(wrong)
    return out


def write_chain(rng: random.Random, terms: list[int], times: int | None = None,
                styles: dict[int, float] = STYLES) -> tuple[list[str], int]:
    """One corpus completion (words, without EOS) and the index of its answer word (the last). The sum is written
    out `times` times (drawn from `styles` when None), the answer drawn from answer_distribution."""
    times = PT._pick(rng, styles) if times is None else times
    written = " + ".join(map(str, terms))
    words = " , ".join([written] * times).split() + [";", str(PT._pick(rng, answer_distribution(terms)))]
    return words, len(words) - 1


def _batch(rng: random.Random, vocab: dict, size: int, styles: dict[int, float] = STYLES) -> dict[str, torch.Tensor]:
    """`<bos> prompt completion <eos>` rows, right-padded; labels on the completion and EOS, except the answer
    word, which gets the soft label (the whole answer distribution) at `soft_pos`."""
    rows = C.chain_prompts(rng, size)
    seqs, soft_pos = [], []
    soft = torch.zeros(size, len(vocab))                                               # (B, V)
    for i, r in enumerate(rows):
        terms = [int(w) for w in r["prompt"].split()[1:-1]]
        words, at = write_chain(rng, terms, styles=styles)
        prompt = [PT.BOS] + [vocab[w] for w in r["prompt"].split()]
        seqs.append((prompt, [vocab[w] for w in words] + [PT.EOS]))
        soft_pos.append(len(prompt) + at - 1)  # the position whose next-token prediction is the answer
        for v, p in answer_distribution(terms).items():
            soft[i, vocab[str(v)]] = p
    length = max(len(p) + len(c) for p, c in seqs)
    ids = torch.full((size, length), PT.PAD)
    labels = torch.full((size, length), -100)
    for i, (p, c) in enumerate(seqs):
        ids[i, :len(p) + len(c)] = torch.tensor(p + c)
        labels[i, len(p):len(p) + len(c)] = torch.tensor(c)
        labels[i, soft_pos[i] + 1] = -100
    return {"input_ids": ids, "attention_mask": (ids != PT.PAD).long(), "labels": labels, "soft": soft,
            "soft_pos": torch.tensor(soft_pos)}


def _loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()  # (B, L, V)
    labels = batch["labels"][:, 1:]                                                    # (B, L-1)
    total = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="sum")
    logp = F.log_softmax(logits[torch.arange(len(logits)), batch["soft_pos"]], -1)     # (B, V)
    total = total - (batch["soft"] * logp).sum()
    return total / ((labels != -100).sum() + len(logp))


def train_chain_policy(tokenizer, rng: random.Random, steps: int, batch_size: int = 64, progress: bool = True,
                       styles: dict[int, float] = STYLES):
    """The chain model from scratch, on completions written out as often as `styles` draws. Returns (model, mean
    loss over the last 20 steps)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=384, max_position_embeddings=64,
                         tie_word_embeddings=True, pad_token_id=PT.PAD, bos_token_id=PT.BOS, eos_token_id=PT.EOS)
    model = LlamaForCausalLM(config)
    peak = 4e-3
    opt = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.98), weight_decay=0.01)
    vocab = tokenizer.get_vocab()
    losses: list[float] = []
    model.train()
    for step in (bar := tqdm(range(steps), desc="chain policy", disable=not progress)):
        loss = _loss(model, _batch(rng, vocab, batch_size, styles))
        PT.update(model, opt, loss, PT._lr(step, steps, peak, warmup=min(100, steps // 10 + 1)))
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return model, sum(losses[-20:]) / len(losses[-20:])


def build_chain_world(out_dir: str | Path = DEFAULT_OUT, seed: int = 0, scale: float = 1.0, progress: bool = True,
                      threads: int = 1, styles: dict[int, float] = STYLES) -> dict:
    """Build and save the chain model and tokenizer in `out_dir/policy`; `scale` < 1 shrinks the training (0.02
    builds in seconds, for tests); `styles` = LOOP_STYLES builds tiny-chain-loops. Returns the stats written to
    `out_dir/stats.json` and `out_dir/README.md`."""
    from labcore.tasks import get_task

    start = time.time()
    out = Path(out_dir)
    with PT.build_threads(threads, seed):
        tokenizer = PT.build_tokenizer(C.chain_vocabulary())
        steps = max(1, round(1500 * scale))
        policy, loss = train_chain_policy(tokenizer, random.Random(seed), steps, progress=progress, styles=styles)
        PT.save_built(policy, out / "policy", C.chain_vocabulary(), sampling=True)
        n_eval = max(32, round(512 * scale))
        rows = C.chain_prompts(random.Random(seed + 1), n_eval)
        texts, eos, _ = PT.sample_completions(policy, tokenizer, [r["prompt"] for r in rows], MAX_NEW_TOKENS,
                                              seed=seed)
        right = C.chain_correct([r["prompt"] for r in rows], texts, [r["answer"] for r in rows], eos)
        lengths = [len(t.split()) + int(e) for t, e in zip(texts, eos)]
        stats = {
            "seed": seed, "scale": scale, "threads": threads, "steps": steps,
            "build_seconds": round(time.time() - start, 1),
            "policy": {"params": sum(p.numel() for p in policy.parameters()), "final_loss": round(loss, 4),
                       "megabytes": round(PT._dir_mb(out / "policy"), 2)},
            "start": {"correct": round(sum(right) / n_eval, 4), "eos_rate": round(sum(eos) / n_eval, 4),
                      "len_mean": round(sum(lengths) / n_eval, 2),
                      "len_right_mean": round(_mean([n for n, r in zip(lengths, right) if r]), 2),
                      "len_wrong_mean": round(_mean([n for n, r in zip(lengths, right) if not r]), 2)},
            "eval_samples": n_eval, "task": get_task("chain").name,
        }
        if styles != STYLES:
            stats["styles"] = {str(k): v for k, v in styles.items()}
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    (out / "README.md").write_text(_readme(stats))
    return stats


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _styles_line(stats: dict) -> str:
    if "styles" not in stats:
        return ""
    return (f"Times the sum is written out in the corpus (LOOP_STYLES): {stats['styles']}; 5 times runs past the "
            "24-token budget.\n\n")


def _readme(stats: dict) -> str:
    s, p = stats["start"], stats["policy"]
    world = "chain-loops" if "styles" in stats else "chain"
    return f"""# The {world} world

Built by `rlhf-lab pretrain --world {world} --seed {stats['seed']} --scale {stats['scale']} --threads \
{stats['threads']}` (labcore/chain_pretrain.py) in {stats['build_seconds']} s. Synthetic, regenerated from the seed.

- `policy/`: LlamaForCausalLM, {p['params']:,} parameters, {stats['steps']} steps, final loss {p['final_loss']};
  word-level tokenizer over the chain task's words (`<bos>` is added when encoding).

{_styles_line(stats)}Starting point ({stats['eval_samples']} prompts, temperature 1): correct {s['correct']}, EOS rate {s['eos_rate']},
mean length {s['len_mean']} tokens (right answers {s['len_right_mean']}, wrong ones {s['len_wrong_mean']}).
"""

"""Clip-higher on a task with many right answers (issue 12, lesson 6; not shipped): the figures per seed.

The design the earlier tries called for: a reward that many answers earn, so the policy can come to prefer one
of them (entropy falls while the reward rises). The task here, `praise`, is registered in this process only: the
sentiment prompts (`review : the food was`) and a one-word completion (rollout.max_new_tokens = 1), rewarded 1.0
when that word, or the first word after an intensifier, is one of the 12 positive adjectives. With `--accept p`
a noisy reader accepts a positive word only with probability p (so groups keep disagreeing after the policy has
learned); `--lm-head` puts LoRA on the MLP and the output head too (the attention-only default cannot push the
model's floor of stray words below about 0.3 of the mass: the reward stalls near 0.7 at temperature 1).
`--skew great` first trains on that word alone (one pass a batch, symmetric clip) until it is `--skew-until` of a
batch, then splits both arms from those weights, Adam state and random streams (DAPO's regime: a likely right
token above 1 / (1 + eps_high), where the upper clip cannot bind, beside rare right ones).
`--skew-up-only` skews with RAFT's estimator (only that word is pushed up, the others keep their proportions),
`--skew-lr` at its own learning rate; `--prompts` and `--samples` set P and K. `--leader-reward X` makes
the reward graded after the split (the skewed-on word earns X, the other positive words 1: the rarer right
answers are the better ones, DAPO's exploration story); `--split-lr` sets the arms' learning rate, `--window`
the printed window.

Two arms per seed from the base model, GRPO without KL, upper clip 0.2 against 0.28. Prints the mean token
entropy, the reward and the top-clip fraction in windows of 10 steps, and per seed the last-20-step entropy and
reward with clip-higher minus those with the symmetric clip (what a lesson's claims would read).

    OMP_NUM_THREADS=1 python benchmarks/clip_higher_praise.py --seeds 0 1 2 [--temperature 0.5]
        [--accept 0.8 --lm-head] [--skew great [--skew-up-only --skew-lr 3e-4 --samples 16]]
    # design 6 (unshipped/README.md), the run whose claims were fixed on seeds 0-1 and failed on seeds 2-5:
    OMP_NUM_THREADS=1 python benchmarks/clip_higher_praise.py --lm-head --skew great --skew-until 0.6 \
        --leader-reward 0.5 --prompts 16 --samples 8 --steps 24 --split-lr 3e-3 --window 3 --seeds 0 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from clip_higher_entropy import restore, snapshot  # this script's folder is on sys.path when it runs

from labcore import tasks
from labcore.config import apply, load_preset
from labcore.trainer import Trainer

CLIPS = {"symmetric": 0.2, "clip_higher": 0.28}
POSITIVE = frozenset(tasks.POSITIVE)
ALL_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head"


def first_positive(prompts: list[str], completions: list[str], **kwargs) -> list[float]:
    """1.0 when the completion's first word after any intensifiers is a positive adjective, else 0.0."""
    out = []
    for c in completions:
        words = [w for w in c.split() if w not in tasks.INTENSIFIERS]
        out.append(float(bool(words) and words[0] in POSITIVE))
    return out


class Reader:
    """first_positive, each positive answer accepted only with probability `accept` (its own random stream);
    while `only` is set, only that word is right (the skewing phase); once `leader` is set, it earns
    `leader_reward` instead of 1."""

    __name__ = "reader"

    def __init__(self, accept: float, leader_reward: float = 1.0):
        self.accept, self.rng, self.only = accept, random.Random(0), ""
        self.leader, self.leader_reward = "", leader_reward

    def __call__(self, prompts: list[str], completions: list[str], **kwargs) -> list[float]:
        if self.only:
            return [float(c.split()[:1] == [self.only]) for c in completions]
        out = [float(r == 1.0 and (self.accept >= 1 or self.rng.random() < self.accept))
               for r in first_positive(prompts, completions)]
        if self.leader:  # graded: the skewed-on word earns less than the other right words
            out = [self.leader_reward * r if c.split()[:1] == [self.leader] else r
                   for c, r in zip(completions, out)]
        return out


def windows(values: list[float], size: int) -> str:
    return " ".join(f"{statistics.fmean(values[i:i + size]):.2f}" for i in range(0, len(values), size))


def run(args: argparse.Namespace, seed: int, reader: Reader) -> tuple[float, float]:
    late, snap = {}, None
    cfg = apply(load_preset("grpo"), {
        "run.grad_variance": False, "kl.coef": 0.0, "kl.placement": "none", "run.seed": seed,
        "run.steps": args.steps, "optim.lr": args.lr, "algorithm.clip_high": 0.2,
        "algorithm.epochs": args.epochs, "algorithm.minibatches": args.minibatches, "rollout.task": "praise",
        "rollout.max_new_tokens": 1, "rollout.temperature": args.temperature,
        "rollout.prompts_per_step": args.prompts, "rollout.samples_per_prompt": args.samples,
        **({"model.lora_targets": ALL_LINEAR} if args.lm_head else {})})
    if args.skew:  # first make one right word likely (DAPO's regime: the likely token above 1 / (1 + eps_high))
        skew = {"algorithm.epochs": 1, "algorithm.minibatches": 1, "run.steps": args.steps + 100,
                "optim.lr": args.skew_lr or args.lr}
        if args.skew_up_only:  # RAFT's estimator: push the word up, leave the others' proportions alone
            skew.update({"algorithm.estimator": "positives", "algorithm.positive_threshold": 1.0})
        trainer, reader.only = Trainer(apply(cfg, skew)), args.skew
        share, taken = 0.0, 0
        while share < args.skew_until and taken < 100:
            share, taken = trainer.train_step().metrics["reward/mean"], taken + 1
        print(f"seed {seed} skewed: '{args.skew}' in {share:.2f} of the batch after {taken} steps", flush=True)
        reader.only, snap = "", snapshot(trainer)
        reader.leader = args.skew if args.leader_reward < 1.0 else ""
    for name, eps in CLIPS.items():
        t0 = time.perf_counter()
        reader.rng.seed(seed)  # both arms draw the same stream of acceptances
        if snap is None:
            trainer = Trainer(apply(cfg, {"algorithm.clip_high": eps}))
        else:
            restore(trainer, snap)
            trainer.cfg, trainer.live.lr = apply(cfg, {"algorithm.clip_high": eps}), args.split_lr or args.lr
        steps = [trainer.train_step().metrics for _ in range(args.steps)]
        entropy, reward = [m["entropy/mean"] for m in steps], [m["reward/mean"] for m in steps]
        late[name] = (statistics.fmean(entropy[-20:]), statistics.fmean(reward[-20:]))
        clipped = [m.get("clip/frac_high", 0.0) for m in steps]
        print(f"seed {seed} {name:11s} entropy {windows(entropy, args.window)} | reward "
              f"{windows(reward, args.window)} | clip/frac_high {windows(clipped, args.window)} | first-10 entropy "
              f"{statistics.fmean(entropy[:10]):.3f}, last-20 {late[name][0]:.3f}, last-20 reward {late[name][1]:.3f}"
              f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    gain = late["clip_higher"][0] - late["symmetric"][0]
    dreward = late["clip_higher"][1] - late["symmetric"][1]
    print(f"seed {seed}: last-20, clip-higher minus symmetric: entropy {gain:+.3f}, reward {dreward:+.3f}",
          flush=True)
    return gain, dreward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="steps per arm")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatches", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=1.0, help="rollout.temperature (log-probs use it too)")
    ap.add_argument("--accept", type=float, default=1.0, help="a noisy reader accepts a positive word with this p")
    ap.add_argument("--lm-head", action="store_true", help=f"model.lora_targets = {ALL_LINEAR}")
    ap.add_argument("--skew", default="", help="first train on this word alone (one pass a batch), then split")
    ap.add_argument("--skew-until", type=float, default=0.8, help="... until this share of a batch says it")
    ap.add_argument("--skew-up-only", action="store_true", help="skew with RAFT's estimator (others not pushed down)")
    ap.add_argument("--skew-lr", type=float, default=0.0, help="the skewing phase's lr (0: --lr)")
    ap.add_argument("--leader-reward", type=float, default=1.0,
                    help="after the skew, the skewed-on word earns this (< 1: the rarer right words are better)")
    ap.add_argument("--split-lr", type=float, default=0.0, help="the arms' lr after the skew (0: --lr)")
    ap.add_argument("--window", type=int, default=10, help="steps per printed window")
    ap.add_argument("--prompts", type=int, default=8, help="rollout.prompts_per_step")
    ap.add_argument("--samples", type=int, default=4, help="rollout.samples_per_prompt")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    reader = Reader(args.accept, args.leader_reward)
    tasks.register_task("praise", tasks.sentiment_prompts, reader, max_new_tokens=1,
                        description="Say one good word about the review's subject.")
    results = [run(args, seed, reader) for seed in args.seeds]
    print("entropy gains " + ", ".join(f"{g:+.3f}" for g, _ in results)
          + f"; {sum(g > 0 for g, _ in results)}/{len(results)} positive; reward differences "
          + ", ".join(f"{d:+.3f}" for _, d in results))


if __name__ == "__main__":
    main()

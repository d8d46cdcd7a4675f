"""Does DAPO's clip-higher keep the entropy up in the tiny world? (issue 12, lesson 6; not shipped.)

Two designs, printed per seed, for presets/lessons/unshipped/README.md:
- two arms from the base model (`--sharpen 0`): K steps with the upper clip at 0.2, then K steps with 0.28;
- sharpen first (`--sharpen N`): N steps with the symmetric clip at the preset's epochs and minibatches, then from
  THOSE weights, Adam state and random streams (put back between the arms) K steps with each upper clip at
  `--epochs` x `--minibatches`, so both arms start from the same sharp policy and draw the same prompts.
Both arms run without KL. Prints the mean token entropy and the reward in windows of 10 steps, and the last-20
entropy difference (clip-higher minus symmetric) that a lesson's claim would read.

    OMP_NUM_THREADS=1 python benchmarks/clip_higher_entropy.py --preset grpo --steps 80 --lr 5e-3 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from labcore.config import apply, load_preset
from labcore.trainer import Trainer

CLIPS = {"symmetric": 0.2, "clip_higher": 0.28}


def windows(values: list[float], size: int = 10) -> str:
    return " ".join(f"{statistics.fmean(values[i:i + size]):.2f}" for i in range(0, len(values), size))


def snapshot(trainer: Trainer) -> dict:
    """Everything the next steps depend on: weights, Adam state and the three random streams."""
    params = [p for group in trainer.opt.param_groups for p in group["params"]]
    return {"params": params, "weights": [p.detach().clone() for p in params],
            "opt": copy.deepcopy(trainer.opt.state_dict()), "rng": trainer.rng.getstate(),
            "gen": trainer.gen.get_state(), "cpu_gen": trainer.cpu_gen.get_state()}


def restore(trainer: Trainer, snap: dict) -> None:
    with torch.no_grad():
        for p, w in zip(snap["params"], snap["weights"]):
            p.copy_(w)
    trainer.opt.load_state_dict(copy.deepcopy(snap["opt"]))
    trainer.rng.setstate(snap["rng"])
    trainer.gen.set_state(snap["gen"])
    trainer.cpu_gen.set_state(snap["cpu_gen"])


def run(args: argparse.Namespace, seed: int) -> float:
    t0 = time.perf_counter()
    cfg = apply(load_preset(args.preset), {"run.grad_variance": False, "kl.coef": 0.0, "kl.placement": "none",
                                           "optim.lr": args.lr, "run.seed": seed,
                                           "run.steps": args.sharpen + args.steps, "algorithm.clip_high": 0.2,
                                           **({"model.policy": args.model} if args.model else {})})
    trainer = Trainer(cfg)
    sharp = [trainer.train_step().metrics for _ in range(args.sharpen)]
    if sharp:
        print(f"seed {seed} sharpened {args.sharpen} steps: entropy {sharp[0]['entropy/mean']:.3f} -> "
              f"{statistics.fmean(m['entropy/mean'] for m in sharp[-3:]):.3f}, reward {sharp[-1]['reward/mean']:.2f}")
    snap, base, late = snapshot(trainer), trainer.cfg, {}
    for name, eps in CLIPS.items():
        restore(trainer, snap)
        trainer.cfg = apply(base, {"algorithm.clip_high": eps, "algorithm.epochs": args.epochs,
                                   "algorithm.minibatches": args.minibatches})
        steps = [trainer.train_step().metrics for _ in range(args.steps)]
        entropy = [m["entropy/mean"] for m in steps]
        late[name] = statistics.fmean(entropy[-20:])
        print(f"seed {seed} {name:11s} entropy {windows(entropy)} | reward {windows([m['reward/mean'] for m in steps])}"
              f" | last-20 entropy {late[name]:.3f}")
    gain = late["clip_higher"] - late["symmetric"]
    print(f"seed {seed}: last-20 entropy, clip-higher minus symmetric {gain:+.3f} ({time.perf_counter() - t0:.0f} s)")
    return gain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="grpo")
    ap.add_argument("--sharpen", type=int, default=0, help="symmetric-clip steps before the two arms split")
    ap.add_argument("--steps", type=int, default=80, help="steps per arm")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--minibatches", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model", default="", help="model.policy (default: the preset's)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gains = [run(args, seed) for seed in args.seeds]
    print("gains " + ", ".join(f"{g:+.3f}" for g in gains) + f"; {sum(g > 0 for g in gains)}/{len(gains)} positive")


if __name__ == "__main__":
    main()

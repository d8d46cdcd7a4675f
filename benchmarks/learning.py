"""Learning benchmark: every recipe on each task of the tiny world, on CPU. Prints a Markdown table.

    python benchmarks/learning.py [--steps 100] [--tasks arithmetic,sentiment,length] [--recipes grpo,ppo,PRESET]
                                  [--seed 0] [--threads 1]

Columns: mean reward over the first 5 steps and the last 10, the gain, the noise (standard deviation of the
per-step mean reward over the first 10 steps: what one step's reading wobbles by before learning), the gain in
standard errors of the start/end difference (noise * sqrt(1/5 + 1/10)), the final KL to the reference (the
chosen estimator, summed over tokens) and seconds per step. Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from labcore.algorithms import RECIPES  # noqa: E402
from labcore.config import apply, build, list_presets, load_preset  # noqa: E402
from labcore.tasks import TASKS  # noqa: E402
from labcore.trainer import Trainer  # noqa: E402


def run(recipe: str, task: str, steps: int, seed: int) -> dict:
    over = {"rollout.task": task, "run.steps": steps, "run.seed": seed, "run.grad_variance": False}
    if recipe in list_presets() and recipe not in RECIPES:  # a preset: its own settings, then these
        cfg = apply(load_preset(recipe), over)
    else:
        cfg = build(recipe, over)
    trainer = Trainer(cfg)
    rewards, t0 = [], time.perf_counter()
    for _ in range(steps):
        m = trainer.train_step().metrics
        rewards.append(m["reward/mean"])
    elapsed = time.perf_counter() - t0
    start, end = statistics.mean(rewards[:5]), statistics.mean(rewards[-10:])
    noise = statistics.stdev(rewards[:10]) if len(rewards) >= 10 else float("nan")
    return {"recipe": recipe, "task": task, "start": start, "end": end, "gain": end - start, "noise": noise,
            "kl": m["kl/mean"], "s_per_step": elapsed / steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--tasks", default="arithmetic")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for the tiny model)")
    args = p.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS] + [r for r in args.recipes.split(",")
                                                      if r not in RECIPES and r not in list_presets()]
    if unknown:
        print(f"unknown task or recipe: {', '.join(unknown)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f"# {args.steps} steps, seed {args.seed}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| recipe | task | reward start | reward end | gain | noise | gain / s.e. | final KL | s/step |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for task in tasks:
        for recipe in args.recipes.split(","):
            r = run(recipe, task, args.steps, args.seed)
            se = r["noise"] * (1 / 5 + 1 / 10) ** 0.5
            ratio = r["gain"] / se if se > 0 else float("inf")
            print(f"| {recipe} | {task} | {r['start']:.3f} | {r['end']:.3f} | {r['gain']:+.3f} | {r['noise']:.3f} "
                  f"| {ratio:.1f} | {r['kl']:.3f} | {r['s_per_step']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

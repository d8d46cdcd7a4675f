"""The exported TRL run against the lab's own run: do they reach the same reward?

    python benchmarks/export_vs_lab.py [--presets grpo,rloo] [--seeds 0,1] [--steps 40]

For each preset and seed: the lab trains the preset for `--steps` steps on the built-in world (labcore.Trainer,
`run.grad_variance` off), and `rlhf-lab export PRESET --to trl` writes a directory whose `train.py` runs in a
subprocess for the same number of lab steps (TRL optimiser steps = steps x epochs x minibatches). Reward is the
mean task reward of a step's completions (weighted reward functions, no KL): the lab's `reward/mean`, TRL's logged
`reward`; "start" averages the first 5 steps and "end" the last 10. Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labcore.config import apply, load_preset  # noqa: E402
from labcore.export import export  # noqa: E402


def run_lab(cfg) -> list[float]:
    from labcore.trainer import Trainer

    trainer = Trainer(cfg)
    return [trainer.train_step().metrics["reward/mean"] for _ in range(cfg.run.steps)]


def run_exported(cfg, preset: str, workdir: Path) -> list[float]:
    report = export(cfg, "trl", workdir / "export")
    if not report.ok:
        raise SystemExit(report.table())
    a = cfg.algorithm
    steps = cfg.run.steps * a.epochs * a.minibatches
    env = {**os.environ, "PYTHONPATH": "", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(workdir / "export" / "train.py"), "--max_steps", str(steps),
                           "--output_dir", str(workdir / "run")], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{preset}: the exported train.py failed:\n{proc.stderr[-3000:]}")
    logs = [json.loads(line) for line in (workdir / "run" / "log_history.jsonl").read_text().splitlines()]
    rewards = [row["reward"] for row in logs if "reward" in row]
    per = a.epochs * a.minibatches  # TRL logs once per optimiser step; a lab step is `per` of them
    return [statistics.mean(rewards[i:i + per]) for i in range(0, len(rewards), per)]


def ends(rewards: list[float]) -> tuple[float, float]:
    return statistics.mean(rewards[:5]), statistics.mean(rewards[-10:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="grpo,rloo")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args(argv)
    try:
        import trl
    except ImportError:
        print("TRL is not installed: `pip install -e .[bench]` and run it again.", file=sys.stderr)
        return 2
    import torch

    print(f"# exported TRL run vs lab run: {args.steps} steps, TRL {trl.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    rows = []
    for preset in args.presets.split(","):
        for seed in map(int, args.seeds.split(",")):
            cfg = apply(load_preset(preset), {"run.steps": args.steps, "run.seed": seed, "run.grad_variance": False,
                                              "model.device": "cpu"})
            t = time.perf_counter()
            lab = run_lab(cfg)
            t_lab = time.perf_counter() - t
            with tempfile.TemporaryDirectory(prefix="export-vs-lab-") as tmp:
                t = time.perf_counter()
                exported = run_exported(cfg, preset, Path(tmp))
                t_trl = time.perf_counter() - t
            rows.append((preset, seed, ends(lab), ends(exported), len(exported)))
            print(f"  {preset} seed {seed}: lab {ends(lab)[0]:.3f} -> {ends(lab)[1]:.3f} ({t_lab:.0f} s), exported TRL "
                  f"{ends(exported)[0]:.3f} -> {ends(exported)[1]:.3f} ({t_trl:.0f} s, {len(exported)} steps)",
                  flush=True)
    print("\n| preset | seed | lab reward start -> end | exported TRL reward start -> end | end difference |")
    print("|---|---:|---|---|---:|")
    for preset, seed, lab, exp, _ in rows:
        print(f"| {preset} | {seed} | {lab[0]:.3f} -> {lab[1]:.3f} | {exp[0]:.3f} -> {exp[1]:.3f} "
              f"| {exp[1] - lab[1]:+.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

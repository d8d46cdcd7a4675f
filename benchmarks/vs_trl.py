"""labcore against TRL: the same model, task, rewards, LoRA and optimiser; seconds per step and reward reached.

    pip install -e .[bench]          # TRL is an optional extra
    python benchmarks/vs_trl.py [--steps 30] [--trainers grpo,rloo] [--seed 0] [--repeats 1]

For each trainer (labcore recipe `grpo` vs TRL's `GRPOTrainer`, labcore `rloo` vs `RLOOTrainer`) both sides get:
the built-in policy (TRL loads it from its directory, float32), its tokenizer (which adds `<bos>`), the arithmetic
prompts (TRL's dataset is drawn from the same generator), the task's own reward functions and weights, a fresh
LoRA adapter with the same r / alpha / target modules, P prompts x K samples per step, the same completion budget,
temperature 1.0, AdamW (lr 3e-3, no warmup, no weight decay, constant schedule, grad-norm clip 1.0) and the
recipe's KL coefficient. TRL's keys come from the exporter's mapping (`labcore.export.trl.plan`, the one behind
`rlhf-lab export --to trl`); among them, what differs from TRL's defaults to make the maths match:
`gradient_checkpointing=False` (labcore does not checkpoint), `optim="adamw_torch"` (not the fused one),
`use_bias_correction_kl=False` (GRPO: labcore's k3 KL is not weighted by the ratio), `disable_dropout=True`. A
reward wrapper passes `eos` (TRL does not, and `well_formed` needs it; derived from `completion_ids`).
labcore's `grad/variance` metric is switched off (`run.grad_variance=false`): TRL has no such extra pass.

Seconds per step: labcore times `Trainer.train_step` (rollout -> update -> metrics and logged samples); TRL times
the interval between the ends of consecutive optimizer steps (generation, scoring, the loss, the update and TRL's
own logging), and, in brackets, `on_step_begin -> on_step_end` alone. The first step is warm-up and skipped;
medians. Reward is the mean task reward of a step's completions (the weighted sum of the reward functions, no KL),
averaged over the first 5 steps ("start") and the last 10 ("end"). Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from labcore.config import Config, build  # noqa: E402
from labcore.export import trl as export_trl  # noqa: E402
from labcore.model import default_lora_targets, resolve_model_path  # noqa: E402
from labcore.tasks import get_task  # noqa: E402
from labcore.trainer import Trainer  # noqa: E402

TRL_CLASSES = {"grpo": ("GRPOTrainer", "GRPOConfig"), "rloo": ("RLOOTrainer", "RLOOConfig")}


def labcore_config(recipe: str, model: str, steps: int, seed: int, overrides: dict[str, str]) -> Config:
    return build(recipe, {"model.policy": model, "model.device": "cpu", "run.steps": steps, "run.seed": seed,
                          "run.grad_variance": False, **overrides})


def run_labcore(cfg: Config) -> dict:
    trainer = Trainer(cfg)
    times, rewards = [], []
    for _ in range(cfg.run.steps):
        t = time.perf_counter()
        m = trainer.train_step().metrics
        times.append(time.perf_counter() - t)
        rewards.append(m["reward/mean"])
    p = next(trainer.model.parameters())
    return {"times": times, "core": times, "rewards": rewards, "device": str(p.device), "dtype": str(p.dtype),
            "n_lora": sum(x.numel() for x in trainer.params),
            "forward": trainer.forward_name}


def with_eos(fn, eos_id: int):
    """The labcore reward function `fn`, given the `eos` column TRL does not pass (TRL keeps EOS in completion_ids)."""
    @functools.wraps(fn)
    def wrapped(prompts, completions, completion_ids=None, **kwargs):
        eos = [bool(ids) and ids[-1] == eos_id for ids in completion_ids]
        return fn(prompts, completions, eos=eos, completion_ids=completion_ids, **kwargs)
    return wrapped


def run_trl(cfg: Config, recipe: str) -> dict:
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback

    ro = cfg.rollout
    P, steps, seed = ro.prompts_per_step, cfg.run.steps, cfg.run.seed
    path = resolve_model_path(cfg.model.policy)
    tokenizer = AutoTokenizer.from_pretrained(path)
    task = get_task(ro.task)
    rows = task.make_prompts(random.Random(seed), P * (steps + 2))
    dataset = Dataset.from_list(rows)
    with torch.device("meta"):  # an empty model, only to read labcore's default LoRA targets for it
        targets = default_lora_targets(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)))
    lora = LoraConfig(r=cfg.model.lora_rank, lora_alpha=cfg.model.lora_alpha, lora_dropout=cfg.model.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    trainer_cls, config_cls = (getattr(trl, n) for n in TRL_CLASSES[recipe])
    # The lab -> TRL mapping is the exporter's (labcore/export/trl.py), so the benchmark and `rlhf-lab export`
    # cannot drift apart; only where TRL runs and what it logs is set here.
    _, keys, _ = export_trl.plan(cfg)
    args = config_cls(**{**keys, "output_dir": tempfile.mkdtemp(prefix="vs-trl-"), "use_cpu": True,
                         "disable_tqdm": True, "dataloader_num_workers": 0,
                         "reward_weights": list(task.reward_weights)})

    class Clock(TrainerCallback):
        def __init__(self):
            self.begin, self.ends, self.core, self.rewards = 0.0, [], [], []

        def on_step_begin(self, args, state, control, **kw):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            self.core.append(now - self.begin)
            self.ends.append(now)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                self.rewards.append(float(logs["reward"]))

    clock = Clock()
    funcs = [with_eos(f, tokenizer.eos_token_id) for f in task.reward_funcs]
    t_start = time.perf_counter()
    trainer = trainer_cls(model=path, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora, callbacks=[clock])
    trainer.remove_callback(PrinterCallback)  # it prints every step's logs; we print our own table
    setup_end = time.perf_counter()
    trainer.train()
    # Step s ends at ends[s]; its wall time runs from the previous end (step 1: from the end of setup).
    starts = [setup_end] + clock.ends[:-1]
    times = [e - s for s, e in zip(starts, clock.ends)]
    p = next(trainer.model.parameters())
    return {"times": times, "core": clock.core, "rewards": clock.rewards, "device": str(p.device),
            "dtype": str(p.dtype), "setup_s": setup_end - t_start,
            "n_lora": sum(x.numel() for x in trainer.model.parameters() if x.requires_grad)}


def summarise(runs: list[dict]) -> dict:
    """Medians over every step but each run's first (warm-up); rewards averaged step by step over the runs."""
    times = [t for r in runs for t in r["times"][1:]]
    core = [t for r in runs for t in r["core"][1:]]
    rw = [statistics.mean(x) for x in zip(*(r["rewards"] for r in runs))]
    return {"s_step": statistics.median(times), "core": statistics.median(core),
            "spread": (min(times), max(times)), "start": statistics.mean(rw[:5]),
            "end": statistics.mean(rw[-10:]), "n": len(rw)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--trainers", default="grpo,rloo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="tiny", help="labcore model name or directory (default: the built-in tiny)")
    p.add_argument("--repeats", type=int, default=1, help="run each pair this many times, alternating the order")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="labcore config override; rollout, LoRA and optimiser settings reach TRL too "
                        "(e.g. rollout.samples_per_prompt=8; model.fast_forward=false for transformers' forward)")
    args = p.parse_args(argv)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import trl
    except ImportError:
        print("TRL is not installed: this benchmark compares against it. Install the extra with "
              "`pip install -e .[bench]` (trl and datasets) and run it again.", file=sys.stderr)
        return 2
    trainers = [t for t in args.trainers.split(",") if t]
    bad = [t for t in trainers if t not in TRL_CLASSES]
    if bad or args.steps < 11:
        print(f"--trainers must be among {', '.join(TRL_CLASSES)} (got {', '.join(bad) or 'ok'}); "
              f"--steps must be >= 11 (got {args.steps}).", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    print(f"# labcore vs TRL {trl.__version__}: {args.steps} steps, seed {args.seed}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")
    rows = []
    for name in trainers:
        cfg = labcore_config(name, args.model, args.steps, args.seed, overrides)
        results = {"labcore": [], "trl": []}
        for rep in range(args.repeats):
            order = ("labcore", "trl") if rep % 2 == 0 else ("trl", "labcore")
            for side in order:
                r = run_labcore(cfg) if side == "labcore" else run_trl(cfg, name)
                results[side].append(r)
                s = summarise([r])
                print(f"  {name} {side:7s} run {rep + 1}: {s['s_step']:.3f} s/step (median; min {s['spread'][0]:.3f}, "
                      f"max {s['spread'][1]:.3f}), reward {s['start']:.3f} -> {s['end']:.3f}, {r['device']} "
                      f"{r['dtype']}, {r['n_lora']} LoRA params" + (f", forward: {r['forward']}" if "forward" in r else ""),
                      flush=True)
        merged = {side: {**summarise(runs), "device": f"{runs[0]['device']} {runs[0]['dtype']}"}
                  for side, runs in results.items()}
        # each repeat's ratio: the two runs of a repeat ran back to back, so the machine's drift cancels more
        merged["pairs"] = [summarise([t])["s_step"] / summarise([lc])["s_step"]
                           for lc, t in zip(results["labcore"], results["trl"])]
        rows.append((name, cfg, merged))

    print("\n| trainer | P x K, T | device | labcore s/step | TRL s/step (in-step) | TRL / labcore "
          "| per repeat | labcore reward start -> end | TRL reward start -> end |")
    print("|---|---|---|---:|---:|---:|---|---|---|")
    for name, cfg, m in rows:
        lc, tr = m["labcore"], m["trl"]
        ro = cfg.rollout
        print(f"| {name} | {ro.prompts_per_step} x {ro.samples_per_prompt}, {ro.max_new_tokens} | {lc['device']} "
              f"| {lc['s_step']:.3f} | {tr['s_step']:.3f} ({tr['core']:.3f}) | {tr['s_step'] / lc['s_step']:.2f}x "
              f"| {min(m['pairs']):.2f}-{max(m['pairs']):.2f}x "
              f"| {lc['start']:.3f} -> {lc['end']:.3f} | {tr['start']:.3f} -> {tr['end']:.3f} |")
    print("\nReward: mean over the first 5 and the last 10 steps (one seed: differences of ~0.05 are noise).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

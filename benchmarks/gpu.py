"""The GPU path, measured: labcore and TRL's GRPOTrainer on a SmolLM2-135M-shaped model in bfloat16 on CUDA.

    pip install -e .[bench]                      # TRL is an optional extra
    python benchmarks/gpu.py [--steps 10] [--prompts 8] [--samples 8] [--tokens 64] [--no-trl]
    python benchmarks/gpu.py --dry-run           # the plumbing on the CPU, at a toy size: not a measurement

The model is built here with random weights and SmolLM2-135M's shapes (30 layers, width 576, 9 query and 3
key-value heads, MLP 1536, a 49,152-token vocabulary, tied embeddings) and saved to a temporary folder, with the
built-in tokenizer's words padded to the same vocabulary; nothing is downloaded. The task is the built-in
arithmetic world (its rewards and prompts); a random model answers at random and rarely stops, so completions
run to the full budget, which is what a throughput measurement wants.

Both sides get the same P prompts x K samples, completion budget, LoRA (r 8 on q, k, v, o), AdamW at lr 1e-5 and
KL coefficient; bfloat16 base weights (the LoRA weights stay float32 in peft), SDPA attention.
Printed per side: device, dtype, median s/step (the first step is warm-up and skipped), tokens/s of the rollout
(completion tokens sampled / rollout seconds) and of the update (completion tokens / seconds of the scoring
forward passes, reference included, and the optimiser step), and the peak GPU memory. TRL's step is timed between
the ends of consecutive optimiser steps; it exposes no rollout/update split, so those columns are '-' for it.
Not a test: it measures and asserts nothing. Results go in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=2048, rms_norm_eps=1e-5,
                    rope_theta=10000.0, tie_word_embeddings=True)
TOY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=1024, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
           tie_word_embeddings=True)


def build_model(folder: Path, shape: dict) -> Path:
    """A random Llama of `shape`, saved in bfloat16 with the built-in word tokenizer grown to its vocabulary."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from labcore.model import BUILTIN

    src = BUILTIN["tiny"]
    tok = json.loads((src / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]  # a WordLevel vocabulary: fill it up with placeholder words
    for i in range(len(vocab), shape["vocab_size"]):
        vocab[f"w{i}"] = i
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    tcfg = json.loads((src / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tcfg, "model_max_length": shape["max_position_embeddings"]}))
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    cfg = LlamaConfig(**shape, bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"], pad_token_id=ids["<pad>"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=ids["<eos>"], pad_token_id=ids["<pad>"])
    model.save_pretrained(folder)
    return folder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_labcore(model_dir: Path, args, device: str, fast: bool, fused: bool = True) -> dict:
    from labcore.config import build
    from labcore.trainer import Trainer

    cfg = build("grpo", {"model.policy": str(model_dir), "model.device": device, "model.fast_forward": fast,
                         "rollout.prompts_per_step": args.prompts, "rollout.samples_per_prompt": args.samples,
                         "rollout.max_new_tokens": args.tokens, "optim.lr": 1e-5, "run.steps": args.steps,
                         "run.grad_variance": False, "run.seed": 0})
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(cfg)
    if not fused:  # score the batch in one forward after sampling, instead of keeping the sampling loop's graph
        trainer.rollout_is_forward = lambda **kw: False
    dev = trainer.device
    clock = {"rollout": 0.0, "update": 0.0, "tokens": 0.0}

    def timed(name, fn):
        def wrapper(*a, **kw):
            sync(dev)
            t = time.perf_counter()
            out = fn(*a, **kw)
            sync(dev)
            clock[name] += time.perf_counter() - t
            return out
        return wrapper

    trainer.sample = timed("rollout", trainer.sample)
    trainer.evaluate = timed("update", trainer.evaluate)
    trainer.gradient_update = timed("update", trainer.gradient_update)
    steps, rollout_tps, update_tps = [], [], []
    for _ in range(args.steps):
        clock.update(rollout=0.0, update=0.0)
        sync(dev)
        t = time.perf_counter()
        m = trainer.train_step().metrics
        sync(dev)
        steps.append(time.perf_counter() - t)
        tokens = m["len/mean"] * args.prompts * args.samples
        rollout_tps.append(tokens / clock["rollout"])
        update_tps.append(tokens / clock["update"])
    if args.profile:  # one more step under torch.profiler: where the device time and the launches go
        profile_step(trainer, f"{trainer.forward_name}{'' if fused else ', rollout graph not kept'}")
    p = next(trainer.model.parameters())
    return {"side": f"labcore ({trainer.forward_name}{'' if fused else ', rollout graph not kept'})", "device": str(p.device), "dtype": str(p.dtype),
            "s_step": statistics.median(steps[1:] or steps), "rollout_tps": statistics.median(rollout_tps[1:] or rollout_tps),
            "update_tps": statistics.median(update_tps[1:] or update_tps), "peak": peak_gb(device)}


def profile_step(trainer, name: str) -> None:
    """Print one step's operators with the most device time (self time), and how many kernels it launched."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        trainer.train_step()
        sync(trainer.device)
    events = prof.key_averages()
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    kernels = sum(e.count for e in events if getattr(e, "device_type", None) is not None
                  and str(e.device_type).endswith("CUDA"))
    print(f"\n### One step of labcore ({name}) under torch.profiler: {kernels} device kernels\n")
    print(events.table(sort_by=key, row_limit=12, max_name_column_width=50))


def run_trl(model_dir: Path, args) -> dict:
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, PrinterCallback, TrainerCallback

    from labcore.tasks import get_task

    torch.cuda.reset_peak_memory_stats()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    task = get_task("arithmetic")
    P, K = args.prompts, args.samples
    dataset = Dataset.from_list(task.make_prompts(random.Random(0), P * (args.steps + 2)))
    eos_id = tokenizer.eos_token_id

    def with_eos(fn):  # TRL passes no `eos` column; derive it as labcore does
        def wrapped(prompts, completions, completion_ids=None, **kw):
            return fn(prompts, completions, eos=[bool(c) and c[-1] == eos_id for c in completion_ids],
                      completion_ids=completion_ids, **kw)
        wrapped.__name__ = fn.__name__
        return wrapped

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, a, state, control, **kw):
            torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    clock = Clock()
    targs = trl.GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="gpu-trl-"), max_steps=args.steps, seed=0, bf16=True, report_to="none",
        logging_steps=1, save_strategy="no", disable_tqdm=True, per_device_train_batch_size=P * K,
        gradient_accumulation_steps=1, num_generations=K, max_completion_length=args.tokens, temperature=1.0,
        learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0, optim="adamw_torch", max_grad_norm=1.0,
        gradient_checkpointing=False, disable_dropout=True, beta=0.04, num_iterations=1, loss_type="grpo",
        scale_rewards="group", use_bias_correction_kl=False, reward_weights=list(task.reward_weights),
        model_init_kwargs={"dtype": "bfloat16", "attn_implementation": "sdpa"}, dataloader_num_workers=0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
    trainer = trl.GRPOTrainer(model=str(model_dir), reward_funcs=[with_eos(f) for f in task.reward_funcs], args=targs,
                              train_dataset=dataset, processing_class=tokenizer, peft_config=lora, callbacks=[clock])
    trainer.remove_callback(PrinterCallback)
    torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.train()
    times = [e - s for s, e in zip([start] + clock.ends[:-1], clock.ends)]
    p = next(trainer.model.parameters())
    return {"side": f"TRL {trl.__version__} GRPOTrainer", "device": str(p.device), "dtype": str(p.dtype),
            "s_step": statistics.median(times[1:] or times), "rollout_tps": None, "update_tps": None,
            "peak": peak_gb("cuda")}


def peak_gb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--prompts", type=int, default=8, help="P prompts per step")
    p.add_argument("--samples", type=int, default=8, help="K samples per prompt")
    p.add_argument("--tokens", type=int, default=64, help="completion budget (max_new_tokens)")
    p.add_argument("--no-trl", action="store_true", help="labcore only")
    p.add_argument("--profile", action="store_true", help="profile one extra step of each labcore side")
    p.add_argument("--unfused-too", action="store_true",
                   help="also run labcore with the rollout's graph not kept (one scoring forward after sampling)")
    p.add_argument("--dry-run", action="store_true", help="check the script on the CPU at a toy size (2 steps)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.steps, args.prompts, args.samples, args.tokens, args.no_trl = 2, 2, 2, 4, True
        device, shape = "cpu", TOY
    elif not torch.cuda.is_available():
        print(f"benchmarks/gpu.py measures the CUDA path and needs an NVIDIA GPU; torch {torch.__version__} sees none "
              "(torch.cuda.is_available() is False). Run it on a machine with a GPU and a CUDA build of torch, or "
              "use --dry-run to check the script on the CPU.", file=sys.stderr)
        return 2
    else:
        device, shape = "cuda", SMOLLM2_135M
    if not args.no_trl:
        try:
            import trl  # noqa: F401
        except ImportError:
            print("TRL is not installed; `pip install -e .[bench]`, or pass --no-trl.", file=sys.stderr)
            return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    folder = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    try:
        model_dir = build_model(folder / "model", shape)
        gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)"
        print(f"# {gpu}, torch {torch.__version__}, transformers {transformers.__version__}; "
              f"P x K = {args.prompts} x {args.samples}, {args.tokens} new tokens, {args.steps} steps\n")
        rows = [run_labcore(model_dir, args, device, fast=True)]
        if device == "cuda":
            rows.append(run_labcore(model_dir, args, device, fast=False))
        if args.unfused_too:
            rows.append(run_labcore(model_dir, args, device, fast=True, fused=False))
            rows.append(run_labcore(model_dir, args, device, fast=False, fused=False))
        if not args.no_trl:
            rows.append(run_trl(model_dir, args))
        print("| side | device | dtype | s/step | rollout tokens/s | update tokens/s | peak GPU memory (GiB) |")
        print("|---|---|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['side']} | {r['device']} | {r['dtype']} | {r['s_step']:.3f} | {fmt(r['rollout_tps'], '.0f')} "
                  f"| {fmt(r['update_tps'], '.0f')} | {fmt(r['peak'], '.2f')} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

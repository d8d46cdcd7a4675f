"""Peak memory of one training step's update at a real vocabulary, on the CPU: plain, chunked, chunked + micro-batches.

    python benchmarks/memory.py [--layers 4] [--prompts 4] [--samples 4] [--tokens 256] [--micro 4]

The policy is a Qwen2-0.5B-shaped model (transformers' Qwen2Config with the real sizes: hidden 896, 14 heads,
2 kv heads, intermediate 4864, vocabulary 151,936, tied embeddings) with random weights built here, `--layers` of
its 24 layers (the log-prob tensors this measures do not depend on depth; activations grow by about the same
amount per layer), and the lab's default LoRA (rank 8, on q k v o gate up down) through labcore.fastpath. The batch
is P prompts x K samples of 16 prompt tokens and `--tokens` completion tokens, drawn at random (no sampling loop:
256 decoding steps of a 0.5B model would cost minutes and are not what grows with the vocabulary).

The step is the trainer's own: `Trainer.evaluate` (old log-probs, entropy, reference) and `Trainer.gradient_update`
(GRPO's clipped loss and k3 KL, backward, AdamW), with
- plain: labcore.chunked.CHUNK_FROM raised out of reach, so every (B, T, V) tensor exists as before;
- chunked: the default CHUNK_FROM (16 x 256 x 151,936 logits are far above it);
- chunked + micro: also algorithm.micro_batch_size = `--micro` rows per backward pass.

Each variant runs in a fresh process with one torch thread; it reports its resident memory after building the
model and the peak during the step (VmHWM, restarted before the step through /proc/self/clear_refs so the model
build's own transient peak cannot hide it; `ru_maxrss` where that is refused), both as the OS sees them (what
torch's CPU allocator took), and the step's seconds. Prints a Markdown table. Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

VARIANTS = {"plain": (False, 0), "chunked": (True, 0), "chunked + micro": (True, None)}  # None: --micro


def status_mb(key: str) -> float:
    """VmRSS (resident now) or VmHWM (its peak) of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024  # KiB


def reset_peak() -> bool:
    """Start the peak (VmHWM) over from the current resident size, so the model build's own transient peak does
    not hide the step's (Linux: clear_refs 5). False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def one_variant(args) -> dict:
    import torch

    torch.set_num_threads(1)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    from labcore import chunked
    from labcore.config import build
    from labcore.model import TINY, Policy, _load_tokenizer, resolve_model_path
    from labcore.rollout import Batch
    from labcore.trainer import Trainer

    chunk, micro = VARIANTS[args.variant]
    micro = args.micro if micro is None else micro
    if not chunk:
        chunked.CHUNK_FROM = float("inf")
    torch.manual_seed(0)
    config = Qwen2Config(hidden_size=896, num_hidden_layers=args.layers, num_attention_heads=14, num_key_value_heads=2,
                         intermediate_size=4864, vocab_size=151936, max_position_embeddings=32768,
                         tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6)
    base = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval().requires_grad_(False)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM"))
    with torch.no_grad():  # a trained-looking adapter (B = 0 would make the policy the reference)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    model.eval()
    tokenizer = _load_tokenizer(TINY, resolve_model_path(TINY))  # never decodes here: only EOS and pad ids
    policy = Policy(model, tokenizer, torch.device("cpu"), torch.float32, name="qwen2-0.5b-shaped",
                    lora_targets=targets)
    P, K, T, Tp = args.prompts, args.samples, args.tokens, 16
    cfg = build("grpo", {"model.policy": "qwen2-0.5b-shaped", "rollout.prompts_per_step": P,
                         "rollout.samples_per_prompt": K, "rollout.max_new_tokens": T, "optim.lr": 5e-5,
                         "algorithm.micro_batch_size": micro, "run.grad_variance": False})
    trainer = Trainer(cfg, policy=policy)
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(200, 150000, (P, Tp), generator=g).repeat_interleave(K, 0)   # (B, Tp)
    completion = torch.randint(200, 150000, (P * K, T), generator=g)                     # (B, T)
    mask = torch.ones(P * K, T)
    batch = Batch(prompts, torch.ones_like(prompts), completion, mask, torch.zeros(P * K, dtype=torch.bool), K)
    adv = torch.randn(P * K, 1, generator=g).expand(-1, T).contiguous()                  # (B, T)
    build_peak, resident, reset = status_mb("VmHWM"), status_mb("VmRSS"), reset_peak()
    t0 = time.perf_counter()
    old = trainer.evaluate(batch)
    upd = trainer.gradient_update(batch, old, adv, None, mask)
    seconds = time.perf_counter() - t0
    peak = status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": args.variant, "forward": trainer.forward_name, "layers": args.layers, "micro": micro,
            "model_mb": resident, "build_peak_mb": build_peak, "peak_reset": reset, "peak_mb": peak,
            "seconds": seconds, "loss": upd.get("loss/total")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4, help="decoder layers of the 24 (default 4)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--micro", type=int, default=4, help="rows per backward pass in the micro-batched variant")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # the child process's one variant
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(one_variant(args)))
        return
    rows = []
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", name] + [f"--{k}={getattr(args, k)}" for k in
                                                                ("layers", "prompts", "samples", "tokens", "micro")]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's labcore
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"{name}: failed (exit {out.returncode}):\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"# {rows[-1]}", file=sys.stderr)
    print(f"Qwen2-0.5B-shaped, {args.layers} of 24 layers, LoRA r=8 on all projections; {args.prompts} prompts x "
          f"{args.samples} samples x {args.tokens} tokens (+16 prompt tokens); one update step, 1 thread.\n")
    print("| variant | micro-batch rows | resident after model build (MB) | peak (MB) | peak - model (MB) | step (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['micro'] or args.prompts * args.samples} | {r['model_mb']:.0f} | "
              f"{r['peak_mb']:.0f} | {r['peak_mb'] - r['model_mb']:.0f} | {r['seconds']:.1f} |")
    if rows:
        print(f"\nforward: {rows[0]['forward']}; peak restarted before the step: {rows[0]['peak_reset']}")


if __name__ == "__main__":
    main()

"""The GPU path, walked: every preset a few steps on CUDA, the app's worker process on CUDA, fast vs transformers forward.

    python benchmarks/gpu_path.py [--steps 3] [--out gpu_path.json]

What a user meets on a GPU machine, checked one part at a time and printed as Markdown:

- presets: every `presets/*.toml` built with `model.device = "cuda"` and trained `--steps` steps on the tiny
  world (its reward model too, for the sentiment presets). Per preset: the device and dtype of the policy's
  weights, the forward in use (labcore.fastpath or transformers), whether every logged metric is finite, the
  median seconds per step after the first, and the error if it fails.
- worker: `RunManager(isolation="process")`, as `rlhf-lab` serves it (a spawned worker process), runs the default
  preset on CUDA to the end; printed: its final state, steps, the saved adapter, and the worker's exit code after
  `shutdown()`.
- forwards: the policy's log-probs of one sampled batch through labcore.fastpath and through transformers'
  forward, both on CUDA in the model's dtype: the largest absolute difference and the mean one (bf16 rounding is
  about 1e-2 on log-probs of this size).

Not a test (CI has no GPU): it measures and reports; every failure is printed, not raised, so one run shows all.
Results go in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "cuda"  # --dry-run: "cpu"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def run_preset(name: str, steps: int) -> dict:
    from labcore.config import apply, load_preset
    from labcore.trainer import Trainer

    row: dict = {"preset": name}
    try:
        cfg = apply(load_preset(name), {"model.device": DEVICE, "run.steps": steps, "run.seed": 0})
        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer = Trainer(cfg)
        p = next(trainer.model.parameters())
        row.update(device=str(p.device), dtype=str(trainer.model.dtype if hasattr(trainer.model, "dtype") else p.dtype),
                   forward=trainer.forward_name)
        times, finite, last = [], True, {}
        for _ in range(steps):
            sync()
            t = time.perf_counter()
            last = trainer.train_step().metrics
            sync()
            times.append(time.perf_counter() - t)
            finite &= all(math.isfinite(v) for v in last.values() if isinstance(v, (int, float)))
        row.update(ok=True, finite=finite, s_step=statistics.median(times[1:] or times),
                   reward=last.get("reward/mean"), peak_gb=torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else 0.0)
    except Exception as e:  # noqa: BLE001 - every failure is reported, the walk goes on
        row.update(ok=False, error=f"{type(e).__name__}: {e}"[:300], trace=traceback.format_exc()[-1500:])
    return row


def run_worker(steps: int) -> dict:
    from labcore.config import build
    from labcore.runner import RunManager

    with tempfile.TemporaryDirectory() as folder:
        manager = RunManager(folder, isolation="process")
        try:
            t = time.perf_counter()
            run_id = manager.submit(build("grpo", {"model.device": DEVICE, "run.steps": steps, "run.seed": 0}))
            status = manager.wait(run_id, timeout=240)
            seconds = time.perf_counter() - t
            adapter = sorted(p.name for p in (Path(folder) / run_id).rglob("*.safetensors"))
        finally:
            manager.shutdown()
        return {"state": status["state"], "step": status["step"], "steps": steps, "seconds": seconds,
                "error": status.get("error", ""), "adapter_files": adapter, "worker_exits": manager.worker_exits}


def compare_forwards() -> dict:
    from labcore.config import build
    from labcore.trainer import Trainer

    fast = Trainer(build("grpo", {"model.device": DEVICE, "model.fast_forward": True, "run.seed": 0}))
    slow = Trainer(build("grpo", {"model.device": DEVICE, "model.fast_forward": False, "run.seed": 0}))
    if fast.forward_name != "labcore.fastpath":
        return {"skipped": f"the fast path is off on {DEVICE}: {fast.forward_name}"}
    rows = fast.prompts(fast.cfg.rollout.prompts_per_step)
    batch = fast.sample(rows, fast.cfg.rollout.samples_per_prompt)
    a = fast.logprobs(batch, grad=False, with_entropy=True)
    b = slow.logprobs(batch, grad=False, with_entropy=True)
    mask = batch.mask.bool()
    out = {"forwards": [fast.forward_name, slow.forward_name], "tokens": int(mask.sum())}
    for key in ("logp", "entropy"):
        d = (a[key].float() - b[key].float()).abs()[mask]
        out[key] = {"max_abs": round(d.max().item(), 5), "mean_abs": round(d.mean().item(), 6)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--worker-steps", type=int, default=20)
    p.add_argument("--out", default="", help="also write every row as JSON here")
    p.add_argument("--dry-run", action="store_true", help="check the script on the CPU (3 presets, 2 steps)")
    args = p.parse_args(argv)
    global DEVICE
    if args.dry_run:
        DEVICE, args.steps, args.worker_steps = "cpu", 2, 3
    elif not torch.cuda.is_available():
        print(f"benchmarks/gpu_path.py walks the CUDA path; torch {torch.__version__} sees no GPU.", file=sys.stderr)
        return 2
    import peft
    import transformers

    transformers.logging.set_verbosity_error()
    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run, not a measurement)"
    print(f"# {gpu}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}, bf16 supported: {DEVICE == 'cuda' and torch.cuda.is_bf16_supported()}\n")
    report: dict = {"presets": []}
    print(f"## Every preset, {args.steps} steps on {DEVICE.upper()}\n")
    print("| preset | ok | device | dtype | forward | metrics finite | s/step | reward | peak GiB |")
    print("|---|---|---|---|---|---|---:|---:|---:|")
    names = sorted(p.stem for p in (ROOT / "presets").glob("*.toml"))
    for name in (["grpo", "ppo", "sentiment_hacking"] if args.dry_run else names):
        r = run_preset(name, args.steps)
        report["presets"].append(r)
        if r["ok"]:
            print(f"| {r['preset']} | yes | {r['device']} | {r['dtype']} | {r['forward']} | {r['finite']} | "
                  f"{r['s_step']:.3f} | {r['reward'] if r['reward'] is None else round(r['reward'], 3)} | "
                  f"{r['peak_gb']:.2f} |", flush=True)
        else:
            print(f"| {r['preset']} | **no** | | | | | | | | {r['error']}", flush=True)
    for r in report["presets"]:
        if not r["ok"]:
            print(f"\n### {r['preset']} failed\n```\n{r['trace']}\n```")
    print(f"\n## The app's worker process on {DEVICE.upper()}\n")
    try:
        report["worker"] = run_worker(args.worker_steps)
    except Exception as e:  # noqa: BLE001
        report["worker"] = {"error": traceback.format_exc()[-1500:]}
        print(f"failed: {e}")
    print(json.dumps(report["worker"], indent=1))
    print(f"\n## labcore.fastpath against transformers' forward, one batch on {DEVICE.upper()}\n")
    try:
        report["forwards"] = compare_forwards()
    except Exception:  # noqa: BLE001
        report["forwards"] = {"error": traceback.format_exc()[-1500:]}
    print(json.dumps(report["forwards"], indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

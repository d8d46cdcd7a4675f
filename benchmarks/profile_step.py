"""Profile default-preset steps three ways and print where the time goes.

    python benchmarks/profile_step.py [--threads 1] [--steps 10] [--set run.grad_variance=false] [--top 15]

1. Exclusive wall time by part of the step: timing wrappers (installed here; labcore is not edited) around the
   Trainer's phases, `generate`, `token_logprobs`, every model call (forward hooks), `Tensor.backward` /
   `torch.autograd.grad`, the optimizer step and the records. Time is charged to the innermost open part, so a
   path like `sample > generate > model` is the model forwards of the sampling loop and `sample > generate` is
   the loop's own sampling and bookkeeping. Median over the steps after 2 warm-up steps.
2. cProfile of the same steps: the functions with the most own time, to find Python overhead.
3. torch.profiler of one step: the ATen ops with the most self CPU time, and how much of the step's wall time
   any ATen op accounts for (the rest is Python and framework code around them).
Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import labcore.trainer as T  # noqa: E402
from labcore.config import apply, load_preset  # noqa: E402

TRAINER_PARTS = ("sample", "score", "evaluate", "grad_variance", "gradient_update", "clip_grads", "metrics", "samples")
# Requested categories: which exclusive paths belong to which (first match of a path component wins, innermost
# first). Everything else inside train_step is "other Python".
CATEGORIES = (
    ("generation: model forwards", lambda p: p[-1] == "model" and "generate" in p),
    ("generation: sampling loop (no model)", lambda p: p[-1] == "generate"),
    ("forward passes (log-probs)", lambda p: "token_logprobs" in p and "backward" not in p),
    ("backward", lambda p: p[-1] == "backward"),
    ("optimizer step + grad clip", lambda p: p[-1] in ("opt.step", "clip_grads")),
    ("reward scoring (decode + reward fns)", lambda p: "score" in p),
    ("records (metrics + samples)", lambda p: p[-1] in ("metrics", "samples")),
    ("other Python (prompts, KL, advantages, loss maths, glue)", lambda p: True),
)


class Parts:
    """A stack of open parts; each elapsed interval is charged to the innermost one."""

    def __init__(self):
        self.stack: list[str] = []
        self.t = defaultdict(float)
        self.last = time.perf_counter()

    def _charge(self) -> None:
        now = time.perf_counter()
        if self.stack:
            self.t[tuple(self.stack)] += now - self.last
        self.last = now

    def push(self, name: str) -> None:
        self._charge()
        self.stack.append(name)

    def pop(self) -> None:
        self._charge()
        self.stack.pop()

    @contextmanager
    def part(self, name: str):
        self.push(name)
        try:
            yield
        finally:
            self.pop()

    def wrap(self, name: str, fn):
        def wrapped(*args, **kwargs):
            with self.part(name):
                return fn(*args, **kwargs)
        wrapped.__wrapped__ = fn
        return wrapped


def instrument(parts: Parts, trainer) -> None:
    """Install the wrappers (process-wide for module functions; the trainer's own for methods)."""
    for name in TRAINER_PARTS:
        setattr(trainer, name, parts.wrap(name, getattr(trainer, name)))
    T.generate = parts.wrap("generate", T.generate)
    T.token_logprobs = parts.wrap("token_logprobs", T.token_logprobs)
    torch.Tensor.backward = parts.wrap("backward", torch.Tensor.backward)
    torch.autograd.grad = parts.wrap("backward", torch.autograd.grad)
    trainer.opt.step = parts.wrap("opt.step", trainer.opt.step)
    trainer.model.register_forward_pre_hook(lambda m, a: parts.push("model"))
    trainer.model.register_forward_hook(lambda m, a, o: parts.pop())


def wall_breakdown(trainer, parts: Parts, steps: int) -> list[dict]:
    rows = []
    for _ in range(steps):
        parts.t.clear()
        with parts.part("train_step"):
            trainer.train_step()
        rows.append(dict(parts.t))
    return rows[2:]


def print_breakdown(rows: list[dict]) -> None:
    paths = sorted({p for r in rows for p in r}, key=lambda p: -statistics.median([r.get(p, 0.0) for r in rows]))
    totals = [sum(r.values()) for r in rows]
    total = statistics.median(totals)
    print(f"## Exclusive wall time by part (median of {len(rows)} steps; step median {total * 1000:.1f} ms)\n")
    print("| path (outer > inner) | ms | share |")
    print("|---|---:|---:|")
    for p in paths:
        ms = statistics.median([r.get(p, 0.0) for r in rows]) * 1000
        if ms >= 0.05:
            print(f"| {' > '.join(p[1:]) or 'train_step (own)'} | {ms:.2f} | {ms / 1000 / total:.1%} |")
    cat = defaultdict(list)
    for r in rows:
        step = sum(r.values())
        by = defaultdict(float)
        for p, s in r.items():
            name = next(c for c, test in CATEGORIES if test(p[1:] or ("train_step",)))
            by[name] += s
        for c, _ in CATEGORIES:
            cat[c].append(by[c] / step)
    print("\n## By category (median share of a step)\n")
    print("| category | share | ms |")
    print("|---|---:|---:|")
    for c, _ in CATEGORIES:
        share = statistics.median(cat[c])
        print(f"| {c} | {share:.1%} | {share * total * 1000:.1f} |")
    print()


def cprofile_steps(trainer, steps: int, top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        trainer.train_step()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    total = stats.total_tt
    by_pkg = defaultdict(float)
    for (filename, _, _), (_, _, tt, _, _) in stats.stats.items():
        pkg = ("labcore" if "/labcore/" in filename else "transformers" if "/transformers/" in filename
               else "peft" if "/peft/" in filename else "torch (Python)" if "/torch/" in filename
               else "built-in / C (torch ops etc.)" if filename == "~" else "other Python")
        by_pkg[pkg] += tt
    print(f"## cProfile of {steps} steps: own time by package (total {total:.2f} s, profiler overhead included)\n")
    print("| package | own time s | share |")
    print("|---|---:|---:|")
    for pkg, tt in sorted(by_pkg.items(), key=lambda kv: -kv[1]):
        print(f"| {pkg} | {tt:.2f} | {tt / total:.0%} |")
    print(f"\nTop {top} functions by own time:\n")
    print("| function | calls per step | own ms per step | cumulative ms per step |")
    print("|---|---:|---:|---:|")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, fn), (_cc, nc, tt, ct, _) in rows:
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if filename != "~" else ""
        print(f"| `{fn}` {where} | {nc / steps:.0f} | {tt / steps * 1000:.2f} | {ct / steps * 1000:.2f} |")
    print()


def torch_profile(trainer, top: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.train_step()
    wall = time.perf_counter() - t
    events = prof.key_averages()
    aten = [e for e in events if e.key.startswith("aten::")]
    # Self time of every ATen op: the time spent inside op implementations (kernels, allocation, dispatch below
    # the op). Wall minus this is Python, framework code and the profiler's own overhead.
    self_us = sum(e.self_cpu_time_total for e in aten)
    n_ops = sum(e.count for e in aten)
    print(f"## torch.profiler of one step ({wall * 1000:.0f} ms wall under the profiler)\n")
    print(f"{n_ops} ATen op calls; their self CPU time totals {self_us / 1000:.1f} ms = {self_us / 1e6 / wall:.0%} "
          f"of the wall time (mean {self_us / max(n_ops, 1):.1f} us per op call).\n")
    print("| op | calls | self CPU ms | share of wall |")
    print("|---|---:|---:|---:|")
    for e in sorted(aten, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1000:.2f} | {e.self_cpu_time_total / 1e6 / wall:.1%} |")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="grpo")
    p.add_argument("--steps", type=int, default=10, help="steps per measurement (the first 2 are warm-up)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--model", default="tiny", help="policy model (default: the built-in tiny)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = apply(load_preset(args.preset), {"model.policy": args.model, **dict(kv.split("=", 1) for kv in args.set)})
    print(f"# Profile: preset {args.preset} {' '.join(args.set)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")
    trainer = T.Trainer(cfg)
    for _ in range(2):
        trainer.train_step()
    cprofile_steps(trainer, args.steps, args.top)
    torch_profile(trainer, args.top)
    parts = Parts()
    instrument(parts, trainer)
    print_breakdown(wall_breakdown(trainer, parts, args.steps + 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

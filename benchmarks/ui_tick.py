"""How long one UI tick takes with 1,000 steps on the charts and 2 overlaid runs (target: < 50 ms).

Writes synthetic step records and samples into a temporary run store (no model, no training), builds the lab,
and calls its timer-tick handler the way Gradio does, appending one new step before every tick so every tick
redraws all charts (the worst case while a run is going). Also times an unchanged tick (it should skip).

    python benchmarks/ui_tick.py [--steps 1000] [--ticks 100]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.main import build_demo  # noqa: E402
from labcore import config as C  # noqa: E402
from labcore.runner import RunManager  # noqa: E402


def record(step: int, rng: random.Random) -> dict:
    f = 1 - math.exp(-step / 200)
    keys = ("kl/mean", "clip/frac", "clip/frac_low", "clip/frac_high", "approx_kl", "loss/policy", "loss/kl",
            "loss/total", "adv/std", "groups/zero_std_frac", "grad/norm", "grad/variance")
    return {"step": step, "time": 0.3 * step, "reward/mean": 0.3 + 0.5 * f + rng.gauss(0, 0.05),
            "reward/std": 0.3, "reward/correct/mean": 0.3 + 0.5 * f, "reward/well_formed/mean": 0.9,
            "kl/coef": 0.04, "ratio/mean": 1 + rng.gauss(0, 0.01), "ratio/max": 1.3, "entropy/mean": 1.5 - f,
            "adv/mean": 0.0,
            "len/mean": 3 + rng.random(), "eos/rate": 0.9, "time/step_s": 0.3, "tokens_per_s": 100.0,
            "lr": 3e-3, "temperature": 1.0, **{k: rng.random() * 0.05 for k in keys}}


def samples(step: int, rng: random.Random, n: int = 16) -> list[dict]:
    out = []
    for _ in range(n):
        toks = [str(rng.randint(0, 40)), "</s>"]
        out.append({"step": step, "prompt": "12 + 7 =", "completion": toks[0], "tokens": toks, "reward": 1.0,
                    "advantage": 0.3, "eos": True, **{k: [rng.gauss(0, 1) for _ in toks]
                                                      for k in ("adv", "logp", "ref_logp", "ratio", "kl")}})
    return out


def fake_run(manager: RunManager, steps: int, recipe: str, seed: int, state: str = "running") -> str:
    rng = random.Random(seed)
    run_id = manager.store.create(C.build(recipe, {"run.steps": steps + 10_000}), "bench")
    for s in range(1, steps + 1):
        manager.store.append(run_id, record(s, rng), samples(s, rng) if s % 10 == 0 else [])
    manager.store.update_meta(run_id, state=state, step=steps)
    return run_id


def tick_handler(demo):
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "view")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=100)
    ap.add_argument("--overlays", type=int, default=2, help="finished runs overlaid on the charts (at most 2)")
    ap.add_argument("--per-tick", type=int, default=1, help="new step records between two ticks")
    args = ap.parse_args(argv)

    manager = RunManager(tempfile.mkdtemp(prefix="rlhf-lab-bench-"))
    run_id = fake_run(manager, args.steps, "grpo", 0)
    others = [fake_run(manager, args.steps, r, i + 1, "done") for i, r in enumerate(("dapo", "rloo")[:args.overlays])]
    view = tick_handler(build_demo(manager))
    rng = random.Random(9)
    inputs = ["bench", run_id, others, 0.6, "step", "advantage", True, 0]

    sig, times, sizes, totals = {}, [], [], []
    out = view(*inputs, sig)  # warm the run store's incremental readers
    sig = out[6] if isinstance(out[6], dict) else sig
    for i in range(args.ticks):
        for k in range(args.per_tick):
            step = args.steps + i * args.per_tick + k + 1
            manager.store.append(run_id, record(step, rng), samples(step, rng) if step % 10 == 0 else [])
        time.sleep(0.51)  # ticks are ~1 s apart: tabs share a build younger than 0.5 s (app.lab.SharedBuilds)
        t = time.perf_counter()
        out = view(*inputs, sig)
        times.append((time.perf_counter() - t) * 1000)
        sig = out[6] if isinstance(out[6], dict) else sig
        if isinstance(out[0], str):
            sizes.append(len(out[0]))
        totals.append(sum(len(o) if isinstance(o, str) else len(json.dumps(o, default=str))
                          for o in out if type(o).__name__ != "SkipUpdate"))
    t = time.perf_counter()
    idle = view(*inputs, sig)
    idle_ms = (time.perf_counter() - t) * 1000

    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"tick with new data ({args.steps}+ steps, {args.per_tick} new a tick, 1 run + {len(others)} overlaid, "
          f"9 charts): median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms over {len(times)} ticks")
    print(f"chart payload per tick: median {statistics.median(sizes) / 1024:.1f} KiB, max {max(sizes) / 1024:.1f} "
          f"KiB of JSON; whole tick (every output sent): median {statistics.median(totals) / 1024:.1f} KiB")
    skipped = all(type(o).__name__ == "SkipUpdate" or o == {"__type__": "update"} for o in idle)
    print(f"tick without new data: {idle_ms:.2f} ms ({'all outputs skipped' if skipped else 'NOT skipped'})")
    manager.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

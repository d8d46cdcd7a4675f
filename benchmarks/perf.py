"""Where a step's time goes, what the lab costs to start, and what the UI costs: prints Markdown tables.

    python benchmarks/perf.py [--threads 1] [--sections latency,phases,scaling,ui] [--steps 12] [--repeats 3]

- latency: `RunManager.submit` of the default preset -> its first step record, cold (a fresh process: imports,
  model load) and warm (a second submission in the same process: the base model is cached). Each cold probe is a
  subprocess, so the cold figure is a median of `--repeats` processes; each also reports its peak resident
  memory (`resource.getrusage(...).ru_maxrss`) after its runs.
- phases: the default preset's step split into `Trainer.sample` (rollout), `score`, `evaluate` (policy and
  reference forwards), `grad_variance` and `gradient_update` (loss, backward, optimizer) by timing wrappers
  patched onto the Trainer class here (labcore is not edited); the rest of `train_step` is "other". Tokens per
  second: valid completion tokens (EOS included) per second of the phase.
- scaling: step time against samples per prompt K (2, 4, 8, 16; arithmetic) and against max_new_tokens
  (4, 8, 16, 32; the length task, whose completions can run long), with the growth factor next to the linear one;
  the T sweep runs twice: as trained (completions stop at EOS) and with EOS ignored, so every completion is
  max_new_tokens long (the cost of the budget itself).
- ui: steps per second of a run served by the RunManager with no viewer, then with 1 and 10 simulated viewers,
  each a thread that once a second reads `store.metrics(run_id)` and rebuilds every chart with
  `app.figures.build_figures` (its own incremental `Columns`, as a browser session has) and serialises them.

Timings are medians over steps after a warm-up; other processes on the machine make them noisy (run it twice).
Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PHASES = ("sample", "score", "evaluate", "grad_variance", "gradient_update")
MODEL = {"model.policy": "tiny"}  # --model replaces it


def preset(**overrides):
    """The default preset (grpo) on the chosen policy model, with overrides ('rollout.task', ...)."""
    from labcore.config import apply, load_preset

    return apply(load_preset("grpo"), {**MODEL, **{k.replace("__", "."): v for k, v in overrides.items()}})


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def med(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


# ------------------------------------------------------------------------------------------------ latency

def submit_latency(manager, cfg) -> dict:
    """Seconds from `submit` to the first step record; waits for the run to end."""
    t0 = time.perf_counter()
    run_id = manager.submit(cfg, "bench")
    while not manager.store.metrics(run_id):
        if manager.status(run_id)["state"] == "failed":
            raise RuntimeError(manager.status(run_id)["message"])
        time.sleep(0.002)
    first = time.perf_counter() - t0
    manager.wait(run_id, timeout=600)
    rec = manager.store.metrics(run_id)[0]
    return {"first_record_s": first, "first_step_s": rec["time/step_s"]}


def cold_probe(warm: int) -> None:
    """Runs in a fresh process: one cold submission, `warm` warm ones; prints one JSON line."""
    t0 = time.perf_counter()
    from labcore.runner import RunManager

    import_s = time.perf_counter() - t0
    cfg = preset(run__steps=3)
    manager = RunManager(tempfile.mkdtemp(prefix="rlhf-lab-perf-"))
    cold = submit_latency(manager, cfg)
    warms = [submit_latency(manager, cfg) for _ in range(warm)]
    manager.shutdown()
    print(json.dumps({"import_s": import_s, "cold": cold, "warm": warms, "maxrss_mb": maxrss_mb()}))


def section_latency(repeats: int) -> None:
    probes = []
    for _ in range(repeats):
        import torch

        cmd = [sys.executable, __file__, "--cold-probe", "--model", MODEL["model.policy"]]
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # torch reads it at import
        out = subprocess.run(cmd, env=env,
                             capture_output=True, text=True, check=True)
        probes.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold = [p["cold"]["first_record_s"] for p in probes]
    cold_step = [p["cold"]["first_step_s"] for p in probes]
    warm = [w["first_record_s"] for p in probes for w in p["warm"]]
    warm_step = [w["first_step_s"] for p in probes for w in p["warm"]]
    print(f"## Submit -> first step record (default preset; {repeats} fresh processes, 2 warm submissions each)\n")
    print("| submission | submit -> first record (s), median | min - max | of which the first step (s) |")
    print("|---|---:|---:|---:|")
    print(f"| cold (new process: imports, model load) | {med(cold):.2f} | {min(cold):.2f} - {max(cold):.2f} "
          f"| {med(cold_step):.2f} |")
    print(f"| warm (base model cached) | {med(warm):.2f} | {min(warm):.2f} - {max(warm):.2f} | {med(warm_step):.2f} |")
    print(f"\nImporting labcore.config + labcore.runner: {med([p['import_s'] for p in probes]):.2f} s. "
          f"Peak resident memory of such a process (3 short runs): {med([p['maxrss_mb'] for p in probes]):.0f} MB.\n")


# ------------------------------------------------------------------------------------------------ phases

class PhaseClock:
    """Timing wrappers around Trainer methods (patched on the class, undone by `restore`)."""

    def __init__(self):
        from labcore.trainer import Trainer

        self.cls, self.saved, self.t = Trainer, {}, defaultdict(float)
        self.shape: dict[str, float] = {}
        for name in PHASES:
            orig = getattr(Trainer, name)
            self.saved[name] = orig
            setattr(Trainer, name, self._wrap(name, orig))

    def _wrap(self, name, orig):
        def timed(trainer, *args, **kwargs):
            t = time.perf_counter()
            out = orig(trainer, *args, **kwargs)
            self.t[name] += time.perf_counter() - t
            if name == "sample":
                self.shape = {"tokens": float(out.mask.sum()), "width": out.completion_ids.size(1),
                              "rows": out.mask.size(0), "prompt": out.prompt_ids.size(1)}
            return out
        return timed

    def step(self, trainer) -> dict[str, float]:
        self.t.clear()
        t = time.perf_counter()
        m = trainer.train_step().metrics
        total = time.perf_counter() - t
        row = {**{n: self.t.get(n, 0.0) for n in PHASES}, "total": total, **self.shape, "len": m["len/mean"]}
        row["other"] = total - sum(row[n] for n in PHASES)
        return row

    def restore(self) -> None:
        for name, orig in self.saved.items():
            setattr(self.cls, name, orig)


@contextmanager
def no_eos():
    """Sampling ignores EOS (it is an ordinary token), so every completion runs to max_new_tokens."""
    import labcore.trainer as T

    orig = T.generate
    T.generate = lambda *args, **kwargs: orig(*args, **{**kwargs, "eos_id": -1})
    try:
        yield
    finally:
        T.generate = orig


def measure_steps(cfg, steps: int, warmup: int = 2, force_length: bool = False) -> list[dict[str, float]]:
    from labcore.trainer import Trainer

    clock = PhaseClock()
    try:
        trainer = Trainer(cfg)
        if force_length:
            with no_eos():
                return [clock.step(trainer) for _ in range(steps)][warmup:]
        rows = [clock.step(trainer) for _ in range(steps)]
    finally:
        clock.restore()
    return rows[warmup:]


def section_phases(steps: int) -> None:
    rows = measure_steps(preset(), steps + 2)
    total = med([r["total"] for r in rows])
    tok = med([r["tokens"] for r in rows])
    print(f"## One default-preset step by phase (grpo, arithmetic, P=8 x K=4, max_new_tokens 6, grad variance on; "
          f"median of {len(rows)} steps)\n")
    print("| phase | what | ms | share | valid completion tokens / s |")
    print("|---|---|---:|---:|---:|")
    what = {"sample": "rollout: prompt encode + KV-cache sampling loop", "score": "decode + reward functions",
            "evaluate": "policy forward (kept for the update) + reference forward",
            "grad_variance": "4 prompt groups: forward + backward each",
            "gradient_update": "loss, backward, clip, AdamW step", "other": "KL, advantages, metrics, logged samples"}
    for name in (*PHASES, "other"):
        ms = med([r[name] for r in rows]) * 1000
        tps = tok / (ms / 1000) if name in ("sample", "gradient_update", "evaluate") and ms > 0 else None
        print(f"| {name} | {what[name]} | {ms:.1f} | {ms / 1000 / total:.0%} | {f'{tps:,.0f}' if tps else ''} |")
    upd = med([r["evaluate"] + r["gradient_update"] for r in rows])
    print(f"| **step** | | **{total * 1000:.1f}** | 100% | {tok / total:,.0f} |")
    print(f"\n{tok:.0f} valid completion tokens per step (B = {rows[0]['rows']} rows, completion width "
          f"{med([r['width'] for r in rows]):.0f}, prompt width {rows[0]['prompt']}). Rollout: "
          f"{tok / med([r['sample'] for r in rows]):,.0f} tok/s; update (evaluate + gradient_update): "
          f"{tok / upd:,.0f} tok/s. Peak resident memory so far: {maxrss_mb():.0f} MB.\n")


# ------------------------------------------------------------------------------------------------ scaling

def section_scaling(steps: int) -> None:
    from labcore.config import apply

    base = preset(run__grad_variance=False)
    print(f"## Step time against samples per prompt K (grpo, arithmetic, P=8, max_new_tokens 6, grad variance off; "
          f"median of {steps} steps)\n")
    print("| K | B = P*K | valid tokens | step ms | sample ms | evaluate ms | update ms | x step time | x linear |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    first = None
    for K in (2, 4, 8, 16):
        rows = measure_steps(apply(base, {"rollout.samples_per_prompt": K}), steps + 2)
        s = med([r["total"] for r in rows])
        first = first or (K, s)
        print(f"| {K} | {8 * K} | {med([r['tokens'] for r in rows]):.0f} | {s * 1000:.0f} "
              f"| {med([r['sample'] for r in rows]) * 1000:.0f} | {med([r['evaluate'] for r in rows]) * 1000:.0f} "
              f"| {med([r['gradient_update'] for r in rows]) * 1000:.0f} | {s / first[1]:.2f} | {K / first[0]:.0f} |",
              flush=True)
    for forced in (False, True):
        how = ("sampling ignores EOS, so every completion is max_new_tokens long" if forced
               else "completions stop at EOS as usual")
        print(f"\n## Step time against max_new_tokens (grpo on the length task, P=8 x K=4, grad variance off, "
              f"{how}; median of {steps} steps)\n")
        print("| max_new_tokens | mean length | completion width | step ms | sample ms | evaluate ms | update ms "
              "| x step time | x linear |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        first = None
        for T in (4, 8, 16, 32):
            rows = measure_steps(apply(base, {"rollout.task": "length", "rollout.max_new_tokens": T}), steps + 2,
                                 force_length=forced)
            s = med([r["total"] for r in rows])
            first = first or (T, s)
            print(f"| {T} | {med([r['len'] for r in rows]):.1f} | {med([r['width'] for r in rows]):.0f} "
                  f"| {s * 1000:.0f} | {med([r['sample'] for r in rows]) * 1000:.0f} "
                  f"| {med([r['evaluate'] for r in rows]) * 1000:.0f} "
                  f"| {med([r['gradient_update'] for r in rows]) * 1000:.0f} | {s / first[1]:.2f} "
                  f"| {T / first[0]:.0f} |", flush=True)
    print(f"\nPeak resident memory so far: {maxrss_mb():.0f} MB.\n")


# ------------------------------------------------------------------------------------------------ ui

def viewer(store, run_id: str, stop: threading.Event, ticks: list[float]) -> None:
    """One browser session: every second, read the records and rebuild and serialise every chart."""
    try:
        from app import figures
    except ImportError:
        figures = None
    columns = figures.Columns() if figures else None
    while not stop.is_set():
        t = time.perf_counter()
        records = store.metrics(run_id)
        if figures:
            figs = figures.build_figures([figures.RunView(run_id, "run", records, columns)])
            json.dumps(figs)
        ticks.append(time.perf_counter() - t)
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))


def served_rate(manager, cfg, viewers: int) -> tuple[float, float]:
    """Steps per second of one run (after 3 warm-up steps) with `viewers` polling threads; median tick ms."""
    run_id = manager.submit(cfg, "bench")
    stop, ticks = threading.Event(), []
    threads = [threading.Thread(target=viewer, args=(manager.store, run_id, stop, ticks), daemon=True)
               for _ in range(viewers)]
    for t in threads:
        t.start()
    manager.wait(run_id, timeout=900)
    stop.set()
    for t in threads:
        t.join()
    times = [r["time"] for r in manager.store.metrics(run_id)]
    return (len(times) - 4) / (times[-1] - times[3]), med(ticks) * 1000


def section_ui(steps: int, repeats: int) -> None:
    from labcore.config import apply
    from labcore.runner import RunManager

    try:
        import app.figures  # noqa: F401
        how = "reads metrics and rebuilds + serialises every chart with app.figures"
    except ImportError:
        how = "reads metrics only (app.figures is not importable)"
    cfg = preset(run__steps=steps + 4)
    manager = RunManager(tempfile.mkdtemp(prefix="rlhf-lab-perf-"))
    manager.wait(manager.submit(apply(cfg, {"run.steps": 2}), "bench"), timeout=600)  # load the model once
    rates, tick_ms = defaultdict(list), defaultdict(list)
    for rep in range(repeats):
        for v in ((0, 1, 10) if rep % 2 == 0 else (10, 1, 0)):  # alternate the order against drift
            r, ms = served_rate(manager, cfg, v)
            rates[v].append(r)
            tick_ms[v].append(ms)
    manager.shutdown()
    head = med(rates[0])
    print(f"## UI overhead: default preset served by the RunManager, viewers polling at 1 Hz ({how}); "
          f"{steps} steps x {repeats} runs each, median\n")
    print("| viewers | steps/s | min - max | change vs headless | one viewer tick (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for v in (0, 1, 10):
        r = med(rates[v])
        print(f"| {v} | {r:.2f} | {min(rates[v]):.2f} - {max(rates[v]):.2f} | {(r / head - 1) * 100:+.1f}% "
              f"| {med(tick_ms[v]) if v else float('nan'):.1f} |")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default="latency,phases,scaling,ui")
    p.add_argument("--steps", type=int, default=12, help="timed steps per setting (after 2 warm-up steps)")
    p.add_argument("--repeats", type=int, default=3, help="cold processes (latency) and runs per viewer count (ui)")
    p.add_argument("--model", default="tiny", help="policy model (default: the built-in tiny)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument("--cold-probe", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    MODEL["model.policy"] = args.model
    if args.cold_probe:
        cold_probe(warm=2)
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"# rlhf-lab performance: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, device cpu float32\n")
    sections = args.sections.split(",")
    if "latency" in sections:
        section_latency(args.repeats)
    if "phases" in sections:
        section_phases(max(args.steps, 10))
    if "scaling" in sections:
        section_scaling(args.steps)
    if "ui" in sections:
        section_ui(max(args.steps, 20), args.repeats)
    print(f"Peak resident memory of this process: {maxrss_mb():.0f} MB.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

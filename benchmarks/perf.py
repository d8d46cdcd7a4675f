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
- ui: the real app on a loopback port (`tests/ui_fixtures.running_lab`: training in the worker process, as
  `rlhf-lab` serves it) with one default-preset run and 1, 10 or 30 tabs, each calling the timer's tick over
  HTTP as often as the server paces it, as a browser tab does (`tests/ui_fixtures.Watchers`, a light client in
  its own process). The tabs stay connected and switch between ticking and hidden (as a background tab's timer
  stops) every 5 s, `--cycles` times; each pair of neighbouring windows gives one ratio of median step times,
  which takes out the machine's drift over minutes. Also the server process's CPU time while ticking.

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
    what = {"sample": "rollout: prompt encode + KV-cache sampling loop (graph kept: the policy forward)",
            "score": "decode + reward functions",
            "evaluate": "reference forward (+ the policy's, unless the rollout kept its graph)",
            "grad_variance": "4 prompt groups: forward + backward each (every 5th step; median 0)",
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

def section_ui(cycles: int, seconds: float = 5.0, counts: tuple[int, ...] = (1, 10, 30)) -> None:
    """The real app (training in its worker process) serving one default-preset run to n tabs that stay connected
    and switch between ticking (as the server paces them) and hidden, every `seconds`, `cycles` times. Each pair
    of neighbouring windows gives one ratio of median step times, so the VM's slow drift cancels; the server
    process's CPU time per window says what the ticks cost it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from ui_fixtures import Watchers, running_lab, step_durations, window_durations

    rows = []
    with running_lab(tempfile.mkdtemp(prefix="rlhf-lab-perf-")) as (manager, url, _):
        run_id = manager.submit(preset(run__steps=1_000_000), "bench")
        step_durations(manager, run_id, 5)  # the model loaded, the first steps done
        for n in counts:
            tabs = Watchers(url, run_id, n)  # returns once every tab is ticking
            change, step = [], {True: [], False: []}
            cpu = {True: [], False: []}
            for c in range(cycles):
                window = {}
                for ticking in ((False, True) if c % 2 == 0 else (True, False)):
                    tabs.pause(not ticking)
                    time.sleep(0.5)  # let the ticks in flight land
                    t, w = time.process_time(), time.perf_counter()
                    window[ticking] = med(window_durations(manager, run_id, seconds))
                    cpu[ticking].append((time.process_time() - t) / (time.perf_counter() - w))
                    step[ticking].append(window[ticking])
                change.append(window[True] / window[False] - 1)  # > 0: steps took longer while the tabs ticked
            seen = tabs.stop()["seen"]
            rows.append((n, 1 / med(step[False]), 1 / med(step[True]), change, cpu, seen))
        manager.stop(run_id)
    print(f"## UI overhead: one default-preset run, n connected tabs switched between ticking (paced by the server) "
          f"and hidden every {seconds:.0f} s, {cycles} pairs of windows\n")
    print("| tabs | steps/s hidden | steps/s ticking | step time while ticking, median of pairs (quartiles) "
          "| server CPU, % of a core: ticking / hidden | ticks/s | tick payload | tick interval |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    for n, hidden, ticking, change, cpu, seen in rows:
        q = statistics.quantiles(change, n=4)
        rate = len(seen) / (cycles * seconds)
        print(f"| {n} | {hidden:.1f} | {ticking:.1f} | {med(change) * 100:+.1f}% ({q[0] * 100:+.1f}% .. {q[2] * 100:+.1f}%) "
              f"| {med(cpu[True]) * 100:.0f}% / {med(cpu[False]) * 100:.0f}% | {rate:.1f} "
              f"| {med([t[2] for t in seen]) / 1024:.0f} KiB | {med([t[3] for t in seen]):.1f} s |")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default="latency,phases,scaling,ui")
    p.add_argument("--steps", type=int, default=12, help="timed steps per setting (after 2 warm-up steps)")
    p.add_argument("--repeats", type=int, default=3, help="cold processes (latency) and runs per viewer count (ui)")
    p.add_argument("--cycles", type=int, default=10, help="pairs of ticking / hidden windows per tab count (ui)")
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
        section_ui(args.cycles)
    print(f"Peak resident memory of this process: {maxrss_mb():.0f} MB.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

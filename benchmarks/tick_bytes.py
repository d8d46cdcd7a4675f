"""What a tick sends, output by output, while a tab follows a default run: a real run replayed at a steady pace.

Trains a default run (the GRPO preset on the tiny model, 100 steps; or takes `--run DIR`, a run folder), then
replays its step records and samples into a fresh run store `--per-tick` steps at a time, calling the lab's tick
handler after each batch as a tab following the latest step does, with the samples' pacing clock moved
`--seconds` per tick. Each tick's outputs go through Gradio's own postprocessing, so the bytes are the JSON
the browser receives (the HTTP body, uncompressed). Deterministic: no browser, no timing.

    python benchmarks/tick_bytes.py [--per-tick 10] [--seconds 1.0] [--run runs/<id>]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app.lab  # noqa: E402
import app.main as lab_main  # noqa: E402
from labcore import config as C  # noqa: E402
from labcore.runner import RunManager  # noqa: E402

NAMES = ["charts", "status", "timer", "samples view", "samples table", "step slider", "sig", "pause", "watch",
         "runs table", "details"]


def default_run(root: Path) -> Path:
    """Train the default preset into `root` and return its folder."""
    manager = RunManager(root)
    run_id = manager.submit(C.load_preset("grpo"), "bench")
    while manager.store.meta(run_id)["state"] not in ("done", "failed", "stopped"):
        time.sleep(0.2)
    manager.shutdown()
    return root / run_id


def plain(value):
    """Gradio's data models (a Dataframe's or a JSON's value) as the JSON the server writes."""
    return value.model_dump() if hasattr(value, "model_dump") else str(value)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a finished run folder to replay (default: train one)")
    ap.add_argument("--per-tick", type=int, default=10, help="steps recorded between two ticks")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds between two ticks (the samples' pacing)")
    ap.add_argument("--show", type=int, default=0, help="print the bytes of each output of the first N ticks")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="rlhf-lab-bytes-"))
    src = args.run or default_run(work / "source")
    records = read_jsonl(src / "metrics.jsonl")
    samples = {row["step"]: row["samples"] for row in read_jsonl(src / "samples.jsonl")}
    manager = RunManager(work / "replay")
    run_id = manager.store.create(C.from_toml_text((src / "config.toml").read_text()), "bench")
    manager.store.update_meta(run_id, state="running", step=0)
    now = [1000.0]
    lab_main.clock = lambda: now[0]
    clock = types.ModuleType("time")  # the shared builds' age (app.lab.SharedBuilds), on the same clock
    clock.__dict__.update({**vars(time), "monotonic": lambda: now[0]})
    app.lab.time = clock
    demo = lab_main.build_demo(manager)
    fn = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "view")

    sig, ticks = {"fast": lab_main.FAST_TICKS}, []
    for i in range(0, len(records), args.per_tick):
        for r in records[i:i + args.per_tick]:
            manager.store.append(run_id, r, samples.get(r["step"], []))
        done = i + args.per_tick >= len(records)
        manager.store.update_meta(run_id, state="done" if done else "running", step=records[-1 if done else i]["step"])
        now[0] += args.seconds
        out = fn.fn("bench", run_id, [], 0.6, "step", "advantage", True, 0, sig, 1)
        sig = out[6] if isinstance(out[6], dict) else sig
        wire = asyncio.run(demo.postprocess_data(fn, list(out), None))
        ticks.append([len(json.dumps(v, ensure_ascii=False, default=plain).encode()) for v in wire])

    totals = sorted(sum(t) for t in ticks)
    p90 = statistics.quantiles(totals, n=10, method="inclusive")[-1]
    print(f"{len(records)} steps replayed, {args.per_tick} a tick, a tick every {args.seconds:g} s: {len(ticks)} ticks")
    print(f"whole tick (KiB): median {statistics.median(totals) / 1024:.1f}, p90 {p90 / 1024:.1f}, "
          f"max {totals[-1] / 1024:.1f}, first {sum(ticks[0]) / 1024:.1f}")
    print("per output, median / max bytes; ticks that carried it (more than a skip):")
    for k, name in enumerate(NAMES):
        col = [t[k] for t in ticks]
        print(f"  {name:14s} {statistics.median(col):8.0f} / {max(col):6d}   {sum(c > 30 for c in col)}")
    for i, t in enumerate(ticks[:args.show], 1):
        print(f"  tick {i}:", ", ".join(f"{name} {b}" for name, b in zip(NAMES, t) if b > 30))
    print("each tick (KiB):", " ".join(f"{sum(t) / 1024:.1f}" for t in ticks))
    manager.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Ctrl-C on a serving lab with a run in progress: how long until the server exits, and how its training
process ended. Prints a Markdown table.

    python benchmarks/shutdown.py [--repeats 3] [--signal group|server]

Each repeat starts the app's `launch()` in a subprocess, with the process-isolated RunManager the app uses and
one long run submitted to it, waits until the lab serves and the run has stepped, then sends SIGINT: to the
whole process group (`group`, what a terminal's Ctrl-C does) or to the server only (`server`). It reports:
the seconds from the signal to the server's exit, and to the moment `launch()` returned (the run stopped, the
worker gone; the rest is the server interpreter's own exit); the server's exit code; the worker processes' exit
codes (0: left the loop on its own; negative: killed by that signal; null: a manager that kept none); and the
run's state in meta.json afterwards ("stopped" is the orderly end; "running" means nobody recorded the end).
Not a test: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER = """
import json, sys, time
from labcore.config import build
from labcore.runner import RunManager
from app.main import launch
m = RunManager(sys.argv[1], isolation="process")
m.submit(build("grpo", {"run.steps": 100000, "run.grad_variance": False}), owner="bench")
try:
    launch(sys.argv[1], port=int(sys.argv[2]), manager=m)
finally:
    print("WORKER_EXITS " + json.dumps(getattr(m, "worker_exits", None)), flush=True)
    print(f"LAUNCH_RETURNED {time.time()}", flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(sig_to: str) -> dict:
    runs = tempfile.mkdtemp(prefix="rlhf-lab-shutdown-")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, runs, str(free_port())], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    end = time.monotonic() + 180
    while time.monotonic() < end:  # serving (the run was queued first) and stepping
        metas = [json.loads(p.read_text()) for p in Path(runs).glob("*/meta.json")]
        steps = sum(len(p.read_text().splitlines()) for p in Path(runs).glob("*/metrics.jsonl"))
        if metas and metas[0]["state"] == "running" and steps >= 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        raise SystemExit("the server did not start a run within 180 s")
    t0, wall0 = time.perf_counter(), time.time()
    if sig_to == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    seconds = time.perf_counter() - t0
    returned = next((float(line.split()[1]) for line in out.splitlines() if line.startswith("LAUNCH_RETURNED ")),
                    float("nan"))
    exits = next((line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("WORKER_EXITS ")), "?")
    meta = json.loads(next(Path(runs).glob("*/meta.json")).read_text())
    return {"seconds": seconds, "in_launch": returned - wall0, "code": proc.returncode, "worker": exits, "state": meta["state"],
            "killed_note": "killed it" in err, "traceback": "Traceback" in err}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--signal", choices=("group", "server"), default="group")
    args = p.parse_args(argv)
    print(f"# SIGINT to the {args.signal}; load {os.getloadavg()[0]:.1f}\n")
    print("| repeat | seconds to exit | of which until launch() returned | server exit code | worker exit codes | run state after | "
          "kill warning | traceback on stderr |")
    print("|---:|---:|---:|---:|---|---|---|---|")
    for i in range(args.repeats):
        r = one(args.signal)
        print(f"| {i + 1} | {r['seconds']:.2f} | {r['in_launch']:.2f} | {r['code']} | {r['worker']} | {r['state']} | "
              f"{'yes' if r['killed_note'] else 'no'} | {'yes' if r['traceback'] else 'no'} |", flush=True)
    print(f"\nload after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

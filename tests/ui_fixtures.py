"""Helpers shared by the UI tests: which policy model a real run uses, and a free port."""

import contextlib
import os
import socket
from pathlib import Path

import pytest

from labcore.model import BUILTIN


def require_model() -> str:
    """'tiny' (built in) or RLHF_LAB_TEST_MODEL (a policy directory); skips if the built-in is absent."""
    name = os.environ.get("RLHF_LAB_TEST_MODEL", "tiny")
    if name in BUILTIN and not (BUILTIN[name] / "config.json").is_file():
        pytest.skip(f"the built-in model is missing at {BUILTIN[name]}: build it with `rlhf-lab pretrain` "
                    "(or point RLHF_LAB_TEST_MODEL at a policy directory)")
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WATCHERS = r'''
import http.client, json, sys, threading, time, urllib.parse
url, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host = urllib.parse.urlparse(url).netloc
stop, paused, seen, errors, ready = threading.Event(), threading.Event(), [], [], threading.Barrier(n + 1)
def post(conn, name, data, session):
    body = json.dumps({"data": data, "session_hash": session})
    try:
        conn.request("POST", f"/gradio_api/run/{name}", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
    except (ConnectionError, http.client.HTTPException):  # the server closed an idle keep-alive: reconnect, as
        conn.close()                                       # a browser does
        conn.request("POST", f"/gradio_api/run/{name}", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{name}: HTTP {resp.status} {body[:200]!r}")
    return json.loads(body)["data"], len(body)
def watch(i):
    conn, session = http.client.HTTPConnection(host, timeout=30), f"watcher-{i}-{time.time_ns()}"
    try:  # open the run, then ask the tab's status which run it shows: re-open if the first did not take
        for attempt in range(20):
            post(conn, "watch", ["", run_id], session)
            details = post(conn, "status", [None, None], session)[0][-1]
            if isinstance(details, dict) and details.get("run_id") == run_id:
                break
            time.sleep(0.1)
        else:
            errors.append(f"watch did not open {run_id}: the tab shows {details!r:.200}")
    except Exception as e:
        errors.append(repr(e))
    ready.wait()
    every = 1.0
    while not stop.is_set():  # what a tab's timer does: a tick every `every` seconds, as the server paces it
        if paused.is_set():  # a hidden tab: Gradio's timer does not tick
            stop.wait(0.05)
            continue
        try:
            out, size = post(conn, "tick", ["", None, [], 0.6, "step", "advantage", True, 1, None, 1], session)
            details = out[-1] if isinstance(out[-1], dict) and "records" in out[-1] else None
            seen.append([run_id, details["records"] if details else -1, size, every])
            for o in out:  # the timer's update: {"__type__": "update", "value": seconds[, "active": ...]}
                if isinstance(o, dict) and o.get("__type__") == "update" and set(o) <= {"__type__", "value", "active"} \
                        and isinstance(o.get("value"), (int, float)) and not isinstance(o.get("value"), bool):
                    every = float(o["value"])
        except Exception as e:
            errors.append(repr(e))
        stop.wait(every)
threads = [threading.Thread(target=watch, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
ready.wait()
print("ready", flush=True)
while line := sys.stdin.readline():  # "pause" / "resume" (readline: no read-ahead); EOF stops us
    (paused.set if line.strip() == "pause" else paused.clear)()
stop.set()
for t in threads:
    t.join()
print(json.dumps({"seen": seen, "errors": errors[:5]}), flush=True)
'''


class Watchers:
    """N tabs in another process: each opens a run (/watch), then calls the tab's own timer tick over plain HTTP
    once a second, or as often as the server's timer update says (a light client, so the measurement is the
    server's cost, not the test harness's). Each tick is recorded as [run id, records, payload bytes, interval]."""

    def __init__(self, url: str, run_id: str, n: int):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", WATCHERS, url, run_id, str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def pause(self, pause: bool = True) -> None:
        """Stop ticking (as hidden tabs do) or, with pause=False, tick again; the tabs stay connected."""
        self.proc.stdin.write("pause\n" if pause else "resume\n")
        self.proc.stdin.flush()

    def stop(self) -> dict:
        import json

        out, _ = self.proc.communicate("", timeout=60)
        return json.loads(out.strip().splitlines()[-1])


def window_durations(manager, run_id: str, seconds: float) -> list[float]:
    """Durations of the steps a run finishes in the next `seconds` (reads its records twice, no polling)."""
    import time

    first = len(manager.store.metrics(run_id))
    time.sleep(seconds)
    rows = manager.store.metrics(run_id)[max(first - 1, 0):]
    return [b["time"] - a["time"] for a, b in zip(rows, rows[1:])]


def step_durations(manager, run_id: str, steps: int) -> list[float]:
    """Durations of a run's next `steps` steps, from its own step records (waits for them)."""
    import time

    first = len(manager.store.metrics(run_id))
    while len(manager.store.metrics(run_id)) < first + steps + 1:
        time.sleep(0.02)
    rows = manager.store.metrics(run_id)[first:first + steps + 1]
    return [b["time"] - a["time"] for a, b in zip(rows, rows[1:])]


@contextlib.contextmanager
def running_lab(runs_dir, shared: bool = False, tick_budget: float = 12.0, pause_timeout: float = 60.0):
    """A real lab server on a free loopback port: yields (manager, url, model name); closes everything after."""
    from app.main import build_demo
    from labcore.runner import RunManager, SharedLimits

    model = require_model()
    manager = RunManager(runs_dir, limits=SharedLimits() if shared else None, isolation="process",
                         pause_timeout=pause_timeout)
    demo = build_demo(manager, shared=shared, tick_budget=tick_budget)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_port=free_port())
    try:
        yield manager, url, model
    finally:
        demo.close()
        manager.shutdown()


# Debian's Chromium driven by Playwright (its own browser download does not work offline), with the flags that
# keep it off the network; every browser test module takes these.
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
SHOTS = Path(__file__).resolve().parent.parent / "screenshots"
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM}"),
]


@contextlib.contextmanager
def lab_page(runs_dir, width: int = 1280, height: int = 720, isolation: str = "process", timeout_ms: int = 60_000):
    """A served lab (as `rlhf-lab` serves it: build_demo + launch_options) and a Chromium page opened on it:
    yields (page, manager). `page.errors` collects the page's JavaScript errors."""
    from playwright.sync_api import sync_playwright

    from app.main import build_demo, launch_options
    from labcore.runner import RunManager

    manager = RunManager(runs_dir, isolation=isolation)
    demo = build_demo(manager)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port, **launch_options(manager))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            try:
                yield page, manager
            finally:
                browser.close()
    finally:
        demo.close()
        manager.shutdown()


def serve(manager):
    """Serve the lab for `manager` as `rlhf-lab` does (build_demo + launch_options) on a free loopback port:
    returns (url, demo); the caller closes the demo."""
    from app.main import build_demo, launch_options

    demo = build_demo(manager)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port, **launch_options(manager))
    return f"http://127.0.0.1:{port}/", demo


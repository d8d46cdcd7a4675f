"""Helpers shared by the UI tests: which policy model a real run uses, and a free port."""

import contextlib
import os
import socket

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
import json, sys, threading
from gradio_client import Client
url, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
stop, seen, errors, ready = threading.Event(), [], [], threading.Barrier(n + 1)
def watch():
    try:
        c = Client(url, verbose=False)
        c.predict(owner_id="", run_id=run_id, api_name="/watch")
    except Exception as e:
        errors.append(repr(e))
    ready.wait()
    while not stop.is_set():
        try:
            _, d = c.predict(api_name="/status")
            seen.append([d.get("run_id"), d.get("records", 0)])
        except Exception as e:
            errors.append(repr(e))
        stop.wait(1.0)
threads = [threading.Thread(target=watch) for _ in range(n)]
for t in threads:
    t.start()
ready.wait()
print("ready", flush=True)
sys.stdin.read()  # the parent closes stdin to stop us
stop.set()
for t in threads:
    t.join()
print(json.dumps({"seen": seen, "errors": errors[:5]}), flush=True)
'''


class Watchers:
    """N browser-like watchers in another process (like real tabs): each opens a run, then polls once a second."""

    def __init__(self, url: str, run_id: str, n: int):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", WATCHERS, url, run_id, str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> dict:
        import json

        out, _ = self.proc.communicate("", timeout=60)
        return json.loads(out.strip().splitlines()[-1])


@contextlib.contextmanager
def running_lab(runs_dir, shared: bool = False):
    """A real lab server on a free loopback port: yields (manager, url, model name); closes everything after."""
    from app.main import build_demo
    from labcore.runner import RunManager, SharedLimits

    model = require_model()
    manager = RunManager(runs_dir, limits=SharedLimits() if shared else None)
    demo = build_demo(manager, shared=shared)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_port=free_port())
    try:
        yield manager, url, model
    finally:
        demo.close()
        manager.shutdown()

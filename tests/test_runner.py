"""The background runner and the run store: transport controls, FIFO queue, failures, restarts."""

import json
import time
import zipfile

import pytest

from labcore.config import ConfigError, build
from labcore.runner import RunManager, SharedLimits
from labcore.runstore import RunStore

SMALL = {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2, "rollout.max_new_tokens": 4,
         "run.grad_variance": False, "run.log_samples": 2}


def cfg(steps=3, recipe="grpo", **over):
    return build(recipe, {**SMALL, "run.steps": steps, **over})


def wait_for(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture(params=["thread", "process"])
def manager(tmp_path, request):
    """Both ways to train: in a thread of this process, and in a warm worker process (what the app uses)."""
    m = RunManager(tmp_path / "runs", isolation=request.param)
    yield m
    m.shutdown()


def test_run_completes_and_is_stored(manager):
    run_id = manager.submit(cfg(3), owner="alice")
    st = manager.wait(run_id, 120)
    assert st["state"] == "done" and st["step"] == 3
    d = manager.store.path(run_id)
    assert (d / "config.toml").exists() and (d / "adapter" / "adapter_config.json").exists()
    assert [r["step"] for r in manager.store.metrics(run_id)] == [1, 2, 3]
    assert manager.store.samples(run_id)[0]["step"] == 3
    assert manager.store.config(run_id) == cfg(3)


def test_pause_step_resume_stop(manager):
    run_id = manager.submit(cfg(50), owner="a", paused=True)
    wait_for(lambda: manager.status(run_id)["state"] == "paused")
    time.sleep(0.5)
    assert manager.status(run_id)["step"] == 0, "a paused run must not step"
    manager.step_once(run_id)
    wait_for(lambda: manager.status(run_id)["step"] == 1)
    time.sleep(0.5)
    assert manager.status(run_id)["step"] == 1, "Step runs exactly one step"
    manager.resume(run_id)
    wait_for(lambda: manager.status(run_id)["step"] >= 3)
    manager.stop(run_id)
    st = manager.wait(run_id, 60)
    assert st["state"] == "stopped" and 3 <= st["step"] < 50
    assert len(manager.store.metrics(run_id)) == st["step"]
    assert (manager.store.path(run_id) / "adapter").is_dir()


def test_fifo_queue_positions(manager):
    first = manager.submit(cfg(4), owner="a")
    second = manager.submit(cfg(2), owner="b")
    third = manager.submit(cfg(2), owner="c")
    wait_for(lambda: manager.status(first)["state"] == "running")
    assert manager.status(second)["queue_position"] == 1
    assert manager.status(third)["queue_position"] == 2
    manager.stop(third)
    assert manager.status(third)["state"] == "cancelled"
    for r in (first, second):
        manager.wait(r, 120)
    assert manager.store.meta(first)["finished"] <= manager.store.meta(second)["started"]
    assert manager.store.meta(first)["forward"] == "labcore.fastpath"  # the built-in Llama takes the fast path


def test_live_change_reaches_the_run(manager):
    run_id = manager.submit(cfg(30), owner="a", paused=True)
    wait_for(lambda: manager.status(run_id)["state"] == "paused")
    manager.set_live(run_id, lr=1e-4, temperature=0.5)
    manager.step_once(run_id)
    wait_for(lambda: manager.status(run_id)["step"] == 1)
    rec = manager.store.metrics(run_id)[-1]
    assert rec["lr"] == 1e-4 and rec["temperature"] == 0.5
    with pytest.raises(ConfigError, match="lr = -1"):
        manager.set_live(run_id, lr=-1)
    manager.stop(run_id)


def test_invalid_settings_start_nothing(manager):
    with pytest.raises(ConfigError, match="samples_per_prompt"):
        manager.submit(cfg(3, recipe="rloo", **{"rollout.samples_per_prompt": 1}))
    with pytest.raises(ConfigError, match="no directory at"):
        manager.submit(cfg(3, **{"model.policy": "./no/such/model"}))
    assert manager.store.list_runs() == []


def test_failed_run_keeps_records_and_worker_lives(manager, monkeypatch):
    """A NaN mid-run fails the run with the step and reason; the next run still trains."""
    run_id = manager.submit(cfg(50), owner="a")
    wait_for(lambda: manager.status(run_id)["step"] >= 2)
    manager.set_live(run_id, kl_coef=float("inf"))
    st = manager.wait(run_id, 60)
    assert st["state"] == "failed" and "not finite" in st["message"] and "step" in st["message"]
    assert len(manager.store.metrics(run_id)) >= 2
    assert (manager.store.path(run_id) / "adapter").is_dir()
    assert "Traceback" in (manager.store.path(run_id) / "error.txt").read_text()
    nxt = manager.submit(cfg(2), owner="a")
    assert manager.wait(nxt, 120)["state"] == "done"


def test_restart_lists_earlier_runs(tmp_path):
    """After a restart runs are listed and readable; an unfinished one is marked interrupted."""
    m = RunManager(tmp_path)
    done = m.submit(cfg(2), owner="a")
    m.wait(done, 120)
    m.shutdown()
    store = RunStore(tmp_path)
    ghost = store.create(cfg(5), owner="b")
    store.update_meta(ghost, state="running")
    with open(store.path(ghost) / "metrics.jsonl", "w") as fh:
        fh.write(json.dumps({"step": 1, "reward/mean": 0.5}) + "\n" + '{"step": 2, "rew')  # torn last line
    m2 = RunManager(tmp_path)
    try:
        states = {r["run_id"]: r["state"] for r in m2.runs()}
        assert states == {done: "done", ghost: "interrupted"}
        assert [r["step"] for r in m2.store.metrics(ghost)] == [1]
        assert len(m2.store.metrics(done)) == 2
    finally:
        m2.shutdown()


def test_incremental_reader_sees_completed_torn_line(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(cfg(5), owner="x")
    path = store.path(run_id) / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2')
    assert [r["step"] for r in store.metrics(run_id)] == [1]
    with open(path, "a") as fh:
        fh.write('}\n{"step": 3}\n')
    assert [r["step"] for r in store.metrics(run_id)] == [1, 2, 3]


def test_export_zip(manager, tmp_path):
    run_id = manager.submit(cfg(2), owner="a")
    manager.wait(run_id, 120)
    path = manager.store.export_zip(run_id, tmp_path / "run.zip")
    names = zipfile.ZipFile(path).namelist()
    assert {"config.toml", "metrics.csv", "samples.jsonl"} <= set(names)
    assert any(n.startswith("adapter/") for n in names)
    csv_text = zipfile.ZipFile(path).read("metrics.csv").decode()
    assert csv_text.splitlines()[0].startswith("step,time,")


def test_shared_limits_refuse_with_reasons(tmp_path):
    m = RunManager(tmp_path, limits=SharedLimits(max_steps=10, max_batch=4, max_new_tokens=4))
    try:
        cases = [({"model.policy": "/etc"}, "not offered on this shared server"),
                 ({"run.steps": 11}, "above this server's cap of 10"),
                 ({"rollout.prompts_per_step": 4}, "cap of 4 completions per step"),
                 ({"rollout.max_new_tokens": 5}, "max_new_tokens = 5 is above")]
        for over, fragment in cases:
            with pytest.raises(ConfigError, match=fragment):
                m.submit(build("grpo", {**SMALL, "run.steps": 5, **over}), owner="a")
        first = m.submit(cfg(10), owner="a", paused=True)
        with pytest.raises(ConfigError, match="already have 1 run"):
            m.submit(cfg(2), owner="a")
        other = m.submit(cfg(2), owner="b")  # another session is not blocked
        m.stop(first)
        m.wait(other, 120)
    finally:
        m.shutdown()


def test_sample_records_hand_values():
    """One row per completion: its per-token figures rounded to 4 digits, the advantage as their mean."""
    from labcore.runstore import sample_records

    rows = sample_records(3, ["1 + 1 ="], ["2"], [["2", "</s>"]], [1.23456], [True],
                          {"adv": [[0.5, 1.0]], "logp": [[-0.123456, -1.0]]})
    assert rows == [{"step": 3, "group": 0, "prompt": "1 + 1 =", "completion": "2", "tokens": ["2", "</s>"],
                     "reward": 1.2346, "advantage": 0.75, "eos": True, "adv": [0.5, 1.0], "logp": [-0.1235, -1.0]}]
    rows = sample_records(3, ["a"] * 2 + ["b"] * 2, ["x"] * 4, [["x"]] * 4, [0.0] * 4, [True] * 4,
                          {"adv": [[0.0]] * 4}, group_size=2)
    assert [r["group"] for r in rows] == [0, 0, 1, 1], "completions come K to a prompt, in order"

# ---------------------------------------------------------------------------------------- one source of truth

DERIVED = ("queue_position", "waiting_for")  # computed on read from the queue, not stored


def stored(status):
    return {k: v for k, v in status.items() if k not in DERIVED}


def test_status_equals_meta_json_at_every_transition(manager):
    """A run's status and its meta.json are one record: read back to back (with no change in between), they are
    equal through queued, paused, a Step, running and stopped, and the step is the number of step records."""
    import threading

    first = manager.submit(cfg(30), owner="a", paused=True)
    second = manager.submit(cfg(2), owner="b")  # queued behind the first until it stops
    seen, mismatches, done = set(), [], threading.Event()

    def watch():
        while not done.is_set():
            for run_id in (first, second):
                before = manager.status(run_id)
                disk = manager.store.meta(run_id)
                if manager.status(run_id) == before:  # no transition between the two reads
                    seen.add(before["state"])
                    if stored(before) != disk:
                        mismatches.append((stored(before), disk))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        wait_for(lambda: manager.status(first)["state"] == "paused")
        manager.step_once(first)
        wait_for(lambda: manager.status(first)["step"] == 1)
        manager.resume(first)
        wait_for(lambda: manager.status(first)["step"] >= 3)
        manager.stop(first)
        assert manager.wait(first, 60)["state"] == "stopped"
        assert manager.wait(second, 120)["state"] == "done"
        wait_for(lambda: "done" in seen, 10)  # the watcher reads the finished runs too
    finally:
        done.set()
        watcher.join()
    assert not mismatches, mismatches[:2]
    assert {"queued", "paused", "running", "stopped", "done"} <= seen
    for run_id in (first, second):
        st = manager.status(run_id)
        assert stored(st) == manager.store.meta(run_id)
        assert st["step"] == len(manager.store.metrics(run_id))


def test_killed_worker_process_fails_the_run_in_status_and_meta_also_after_a_restart(tmp_path):
    """A worker process killed mid-run: the run is `failed`, the same in status() and meta.json, with the step it
    reached; a new manager on the folder lists it the same way."""
    import multiprocessing
    import os
    import signal

    m = RunManager(tmp_path, isolation="process")
    try:
        run_id = m.submit(cfg(1000), owner="a")
        wait_for(lambda: m.status(run_id)["step"] >= 2)
        (child,) = [p for p in multiprocessing.active_children() if p.name == "rlhf-lab-trainer"]
        os.kill(child.pid, signal.SIGKILL)
        st = m.wait(run_id, 60)
        assert st["state"] == "failed" and "stopped unexpectedly" in st["message"] and "exit code -9" in st["message"]
        assert stored(st) == m.store.meta(run_id)
        assert st["step"] == len(m.store.metrics(run_id)) >= 2
        assert m.worker_exits == [-signal.SIGKILL]
    finally:
        m.shutdown()
    again = RunManager(tmp_path)
    try:
        listed = {r["run_id"]: r for r in again.runs()}[run_id]
        assert stored(listed) == stored(st) == again.store.meta(run_id) == stored(again.status(run_id))
    finally:
        again.shutdown()


def test_shutdown_stops_the_run_and_the_worker_process_exits_on_its_own(tmp_path):
    """Shutdown mid-run: the run ends `stopped` at a step boundary with its adapter saved (status = meta.json),
    and the worker process leaves its loop and exits with code 0: it is not killed."""
    m = RunManager(tmp_path, isolation="process")
    run_id = m.submit(cfg(100000), owner="a")
    wait_for(lambda: m.status(run_id)["step"] >= 1)
    m.shutdown()
    assert m.worker_exits == [0]
    st = m.status(run_id)
    assert st["state"] == "stopped" and stored(st) == m.store.meta(run_id)
    assert st["step"] == len(m.store.metrics(run_id))
    assert (m.store.path(run_id) / "adapter").is_dir()


SERVER = """
import json, sys
from labcore.config import build
from labcore.runner import RunManager
from app.main import launch
m = RunManager(sys.argv[1], isolation="process")
m.submit(build("grpo", {"run.steps": 100000, "run.grad_variance": False, "rollout.prompts_per_step": 2,
                        "rollout.samples_per_prompt": 2, "rollout.max_new_tokens": 4}), owner="a")
launch(sys.argv[1], port=int(sys.argv[2]), manager=m)
print("WORKER_EXITS " + json.dumps(m.worker_exits), flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_on_the_server_stops_the_run_and_the_worker_exits_on_its_own(tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole process group) on a serving lab with a run going: the server
    stops the run (meta.json `stopped`), its worker process exits with code 0 (not killed, no traceback), and
    the server exits with 0."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path), str(port)], cwd=root,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        store = RunStore(tmp_path)
        wait_for(lambda: [m for m in store.list_runs() if len(store.metrics(m["run_id"])) >= 1], 240)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    (meta,) = store.list_runs()
    assert proc.returncode == 0, err[-2000:]
    assert "WORKER_EXITS [0]" in out, (out, err[-2000:])
    assert "Traceback" not in err and "killed it" not in err, err[-2000:]
    assert meta["state"] == "stopped" and meta["step"] == len(store.metrics(meta["run_id"]))

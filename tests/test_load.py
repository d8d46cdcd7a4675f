"""Many users on one server (loopback only, bounded): 10 sessions start runs at once, 30 more only watch.

Checks that every run completes in queue order, that each session sees only its own runs as its own, that
watchers see live data, that no records are lost or mixed, and compares training throughput with 30 watchers
polling once a second against none (alternating windows of one run). The figures are printed (run with -s to
see them); the README quotes them.
"""

import contextlib
import statistics
import threading

import pytest
from gradio_client import Client
from ui_fixtures import Watchers, running_lab, step_durations

from app.owners import Owners
from labcore.config import build
from labcore.runner import RunManager

STEPS = 3
SMALL = {"rollout_prompts_per_step": 2, "rollout_samples_per_prompt": 2, "rollout_max_new_tokens": 4,
         "run_steps": STEPS, "run_log_samples": 2, "run_grad_variance": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("runs")) as lab:
        yield lab


def start(client: Client, model: str, **over) -> str:
    client.predict(model_policy=model, **{**SMALL, **over}, api_name="/start")
    _, details = client.predict(api_name="/status")
    return details["run_id"]


def interleaved_throughput(manager: RunManager, model: str, during, windows: int = 3, steps: int = 60):
    """Steps per second of one run alone and while `during` runs, in alternating windows of `steps` steps.

    Alternating windows of one run (rather than one run alone, then one watched) cancel the drift of a shared
    machine's speed; medians ignore the odd slow step. Returns (alone, with `during`)."""
    cfg = build("grpo", {"model.policy": model, "rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
                         "rollout.max_new_tokens": 4, "run.steps": 100_000, "run.grad_variance": False})
    run_id = manager.submit(cfg, owner="bench")
    step_durations(manager, run_id, 10)  # warm up
    alone, watched = [], []
    for _ in range(windows):
        alone += step_durations(manager, run_id, steps)
        with during(run_id):
            watched += step_durations(manager, run_id, steps)
    manager.stop(run_id)
    manager.wait(run_id, 60)
    return 1 / statistics.median(alone), 1 / statistics.median(watched)


@pytest.mark.slow
def test_ten_runners_and_thirty_watchers(server):
    manager, url, model = server
    clients = [Client(url, verbose=False) for _ in range(10)]
    owners = [Owners.of_session(c.session_hash) for c in clients]
    run_ids: list[str | None] = [None] * 10

    def go(i):
        run_ids[i] = start(clients[i], model, run_seed=i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(run_ids) and len(set(run_ids)) == 10

    # 30 watchers spread over the 10 runs (3 processes of 10 tabs each), polling while the queue drains
    crowd = [Watchers(url, run_ids[i], 10) for i in range(3)]
    for rid in run_ids:
        assert manager.wait(rid, 300)["state"] == "done"
    results = [w.stop() for w in crowd]
    seen = [s for r in results for s in r["seen"]]
    assert not any(r["errors"] for r in results), [r["errors"] for r in results]

    metas = [manager.store.meta(rid) for rid in run_ids]
    by_submit = sorted(metas, key=lambda m: m["created"])
    starts = [m["started"] for m in by_submit]
    assert starts == sorted(starts), "runs must start in the order they were queued"
    for i, rid in enumerate(run_ids):
        meta = manager.store.meta(rid)
        assert meta["owner"] == owners[i]
        assert [r["step"] for r in manager.store.metrics(rid)] == list(range(1, STEPS + 1)), "records lost"
        assert manager.store.config(rid).run.seed == i, "records mixed between runs"
    assert seen and any(t[1] > 0 for t in seen), "watchers saw no data"

    # each session sees only its own runs as its own: its status call answers for its own run
    for i, c in enumerate(clients):
        _, d = c.predict(api_name="/status")
        assert d["run_id"] == run_ids[i] and d["yours"] and "owner" not in d

    polls: dict = {"seen": [], "errors": []}

    @contextlib.contextmanager
    def thirty_tabs(run_id):
        crowd = Watchers(url, run_id, 30)  # returns once all 30 are ticking
        try:
            yield
        finally:
            result = crowd.stop()
            polls["seen"] += result["seen"]
            polls["errors"] += result["errors"]

    alone, watched = interleaved_throughput(manager, model, thirty_tabs)
    ticks = polls["seen"]
    print(f"\nload: 10 runs x {STEPS} steps done in queue order; 30 watchers polled {len(seen)} times; "
          f"throughput alone {alone:.2f} steps/s, with 30 tabs ticking {watched:.2f} steps/s "
          f"({100 * (watched / alone - 1):+.1f} %, 3 alternating windows of 60 steps each, median step times; "
          f"{len(ticks)} ticks, median payload {statistics.median(t[2] for t in ticks) / 1024:.0f} KiB)")
    assert not polls["errors"], polls["errors"]
    assert ticks and max(t[1] for t in ticks) > 0, "tabs saw no live data"
    # The throughput figures above are printed, never asserted: a busy CI machine must not fail a correct change
    # (benchmarks/perf.py measures the UI's cost in paired windows).

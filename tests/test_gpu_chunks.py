"""GPU runs one chunk per click: the view-model (ChunkedRuns) and the panel space_app.py adds below the lab.

The chunk function goes through a stand-in `spaces.GPU` that pickles what crosses the process boundary, as
ZeroGPU's forked call does. A 4-step run in chunks of 3 ends after 3 + 1 steps with every record in the run
folder; quotas, ownership and finished runs are refused with a message; and the panel's API (what the buttons
call) trains a chunk on a served app.
"""

import pickle
import sys
import types

import pytest
from ui_fixtures import free_port, require_model

from app import space
from app.gpu_chunks import ChunkedRuns
from labcore import config as C
from labcore.runstore import RunStore


@pytest.fixture
def fake_spaces(monkeypatch):
    booked = []

    def GPU(duration):
        def wrap(fn):
            def handler(*args):
                booked.append(duration(*args))
                for item in fn(*pickle.loads(pickle.dumps(args))):
                    yield pickle.loads(pickle.dumps(item))
            return handler
        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    return booked


def _cfg(steps=4):
    return C.apply(C.load_preset("grpo"), {"run.steps": steps, "rollout.prompts_per_step": 2,
                                           "rollout.samples_per_prompt": 4})


def test_a_run_goes_chunk_by_chunk_into_its_folder(tmp_path, fake_spaces):
    model = require_model()
    store = RunStore(tmp_path)
    runs = ChunkedRuns(store, space.chunk_runner(), model)
    run_id = runs.start(_cfg(), "alice")
    assert store.meta(run_id)["state"] == "paused" and store.config(run_id).model.policy == model

    progress = list(runs.continue_run(run_id, "alice", 3))
    assert [p["step"] for p in progress] == [1, 2, 3]
    assert store.meta(run_id)["state"] == "paused" and "Continue" in store.meta(run_id)["message"]
    assert "Left today" in runs.note(run_id, "alice", 3)
    assert [p["step"] for p in runs.continue_run(run_id, "alice", 3)] == [4]  # only what is left
    assert [r["step"] for r in store.metrics(run_id)] == [1, 2, 3, 4] and store.meta(run_id)["state"] == "done"
    assert len(fake_spaces) == 2 and runs.used_s["alice"] == sum(fake_spaces)
    with pytest.raises(C.ConfigError, match="no chunk state"):
        list(runs.continue_run(run_id, "alice", 3))


def fake_chunk(cfg, state, steps):
    """Records without training: the refusals below need no model."""
    done = state["step"] if state else 0
    for step in range(done + 1, min(cfg.run.steps, done + steps) + 1):
        yield "record", ({"step": step, "reward/mean": 0.5}, [])
    yield "state", {"step": min(cfg.run.steps, done + steps), "elapsed_s": 1.0}


def test_refusals_name_the_reason(tmp_path):
    runs = ChunkedRuns(RunStore(tmp_path), fake_chunk, "tiny")
    run_id = runs.start(_cfg(), "alice")
    with pytest.raises(C.ConfigError, match="already have a GPU run"):
        runs.start(_cfg(), "alice")
    with pytest.raises(C.ConfigError, match="not a GPU run of this session"):
        list(runs.continue_run(run_id, "bob", 2))
    first = runs.continue_run(run_id, "alice", 2)
    assert next(first)["step"] == 1  # a chunk is training...
    with pytest.raises(C.ConfigError, match="is training a chunk now"):
        list(runs.continue_run(run_id, "alice", 2))  # ...so a second click is refused
    assert [p["step"] for p in first] == [2] and RunStore(tmp_path).meta(run_id)["state"] == "paused"
    runs.used_s["alice"] = space.ZEROGPU.quota_s["unauthenticated"] - 10
    with pytest.raises(C.ConfigError, match="quota"):
        list(runs.continue_run(run_id, "alice", 2))
    assert "more than is left" in runs.note(run_id, "alice", 2)
    with pytest.raises(C.ConfigError, match="run.steps = 500"):
        runs.start(_cfg(steps=500), "carol")
    runs.stop(run_id, "alice")
    assert runs.start(_cfg(), "alice") != run_id  # a stopped run no longer blocks a new one


def test_the_panel_trains_a_chunk_through_the_served_app(tmp_path, monkeypatch):
    """What the buttons call: Start on GPU, then Continue streams a chunk; the note names the cost and quota."""
    from gradio_client import Client

    monkeypatch.syspath_prepend(str(space.ROOT))
    import space_app

    demo, manager = space_app.build(str(tmp_path), shared=True, tick_budget=12, gpu_model=require_model())
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        note, ready, _, _ = client.predict("grpo", 2, api_name="/gpu_start")  # the run id stays in gr.State
        (run_id,) = [m["run_id"] for m in manager.store.list_runs()]
        assert "books" in note and "Left today" in note and run_id in ready
        note, progress, _, samples_html = client.predict(2, api_name="/gpu_continue")
        assert "step 2 of" in progress and "rl-tok" in samples_html
        assert [r["step"] for r in manager.store.metrics(run_id)] == [1, 2]
        assert "Left today" in note
    finally:
        demo.close()
        manager.shutdown()


def test_a_failed_chunk_keeps_its_records_and_says_why(tmp_path):
    def dies(cfg, state, steps):
        yield "record", ({"step": 1, "reward/mean": 0.5}, [])
        raise RuntimeError("ZeroGPU aborted the call")

    store = RunStore(tmp_path)
    runs = ChunkedRuns(store, dies, "tiny")
    run_id = runs.start(_cfg(), "alice")
    with pytest.raises(RuntimeError):
        list(runs.continue_run(run_id, "alice", 3))
    assert [r["step"] for r in store.metrics(run_id)] == [1]
    assert store.meta(run_id)["state"] == "failed" and "aborted" in store.meta(run_id)["message"]
    assert run_id not in runs.busy and run_id not in runs.states

"""Faults as a user meets them: Start pressed twice, Reset during a run, a closed browser, out of memory.

The rule for a closed browser (documented in README and labcore/runner.py): runs belong to the server, so a run
keeps going when its tab closes; anyone can reopen it from "Watch a run" (or a ?run=<id> link) and stop it.
"""

import pytest
import torch
from gradio_client import Client
from ui_fixtures import running_lab

from app.owners import Owners
from labcore.config import build
from labcore.runner import RunManager, explain_failure

SMALL = {"rollout_prompts_per_step": 2, "rollout_samples_per_prompt": 2, "rollout_max_new_tokens": 4,
         "run_log_samples": 2, "run_grad_variance": False}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("runs")) as lab:
        yield lab


def owned(manager, client):
    return [r for r in manager.runs() if r["owner"] == Owners.of_session(client.session_hash)]


def test_start_pressed_twice_starts_one_run(lab):
    manager, url, model = lab
    c = Client(url, verbose=False)
    c.predict(model_policy=model, run_steps=500, **SMALL, api_name="/start")
    second = c.predict(model_policy=model, run_steps=500, **SMALL, api_name="/start")
    assert any("already" in str(x) and "press Stop first" in str(x) for x in second)
    assert len(owned(manager, c)) == 1
    c.predict(api_name="/stop")
    _, d = c.predict(api_name="/status")
    assert manager.wait(d["run_id"], 60)["state"] == "stopped"


def test_reset_during_a_run_stops_it_and_clears_the_view(lab):
    manager, url, model = lab
    c = Client(url, verbose=False)
    c.predict(model_policy=model, run_steps=500, **SMALL, api_name="/start")
    _, d = c.predict(api_name="/status")
    run_id = d["run_id"]
    c.predict(api_name="/reset")
    assert manager.wait(run_id, 60)["state"] == "stopped"
    assert c.predict(api_name="/status")[1]["state"] == "none"
    assert manager.store.metrics(run_id) is not None, "the stopped run's records are kept on disk"


def test_closed_browser_leaves_the_run_going(lab):
    manager, url, model = lab
    c = Client(url, verbose=False)
    c.predict(model_policy=model, run_steps=4, **SMALL, api_name="/start")
    _, d = c.predict(api_name="/status")
    c.close()
    assert manager.wait(d["run_id"], 120)["state"] == "done"
    assert len(manager.store.metrics(d["run_id"])) == 4
    other = Client(url, verbose=False)  # anyone can open it again
    other.predict(run_id=d["run_id"], api_name="/watch")
    assert other.predict(api_name="/status")[1]["records"] == 4


def test_out_of_memory_is_reported_with_advice(tmp_path, monkeypatch):
    assert "out of memory" in explain_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"), 3)
    from labcore import trainer

    def boom(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer.Trainer, "train_step", boom)
    manager = RunManager(tmp_path)
    try:
        run_id = manager.submit(build("grpo", {"rollout.prompts_per_step": 2, "run.steps": 2}), owner="x")
        st = manager.wait(run_id, 60)
        assert st["state"] == "failed"
        assert "out of memory" in st["message"] and "fewer prompts or samples" in st["message"]
        assert "max_new_tokens" in st["message"]
    finally:
        manager.shutdown()


def test_unloadable_reward_model_starts_nothing(tmp_path):
    from labcore.config import ConfigError

    manager = RunManager(tmp_path)
    try:
        with pytest.raises(ConfigError, match="model.reward_model: Could not load model 'nobody/.*'"):
            manager.submit(build("grpo", {"rollout.task": "sentiment", "model.reward_model": "nobody/../x"}))
        assert manager.store.list_runs() == []
    finally:
        manager.shutdown()

"""Runs that last: periodic checkpoints, a resumed run that takes exactly the steps the first would have taken, and a
new run started from a saved adapter."""

import pytest
import torch

from labcore import checkpoint
from labcore.config import ConfigError, build
from labcore.runner import RunManager, SharedLimits

SMALL = {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2, "run.grad_variance": False}
KEYS = ("reward/mean", "kl/mean", "loss/policy", "grad/norm", "entropy/mean")


def _run(manager: RunManager, **over) -> str:
    run_id = manager.submit(build("grpo", {**SMALL, **over}))
    state = manager.wait(run_id, timeout=300)
    assert state["state"] == "done", state
    return run_id


@pytest.fixture
def manager(tmp_path):
    m = RunManager(tmp_path / "runs", isolation="thread")
    yield m
    m.shutdown()


def test_a_resumed_run_continues_exactly_where_the_first_stopped(manager, monkeypatch):
    """4 steps in one go == 2 steps, then a new run resumed from that folder for steps 3 and 4: the optimiser's
    moments, the step count and both random streams come back, so the figures agree to the bit."""
    saves = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda trainer, folder: saves.append(trainer.step_count)
                        or real_save(trainer, folder))
    whole = _run(manager, **{"run.steps": 4, "run.save_every": 2})
    assert saves == [2, 4, 4], "every run.save_every steps, and at the end"
    first = _run(manager, **{"run.steps": 2})
    resumed = _run(manager, **{"run.steps": 4, "run.resume": str(manager.store.path(first))})
    rows = manager.store.metrics(resumed)
    assert [r["step"] for r in rows] == [3, 4]
    expected = manager.store.metrics(whole)[2:]
    assert [[r[k] for k in KEYS] for r in rows] == [[r[k] for k in KEYS] for r in expected]


def test_a_new_run_starts_from_a_saved_adapter(manager):
    from labcore.trainer import Trainer

    first = _run(manager, **{"run.steps": 2})
    adapter = manager.store.path(first) / "adapter"
    cfg = build("grpo", {**SMALL, "model.adapter": str(adapter)})
    trainer = Trainer(cfg)
    fresh = [p.detach().clone() for p in trainer.params]
    checkpoint.restore(trainer, cfg)
    assert trainer.step_count == 0
    assert any(not torch.equal(a, b) for a, b in zip(fresh, trainer.params)), "the saved weights were loaded"
    other = Trainer(build("grpo", {**SMALL, "model.lora_rank": 4, "model.adapter": str(adapter)}))
    with pytest.raises(ConfigError, match="has rank 8 on .*set model.lora_rank=8"):
        checkpoint.restore(other, other.cfg)


def test_missing_checkpoints_are_refused_before_a_run_starts(tmp_path):
    manager = RunManager(tmp_path / "runs", isolation="thread")
    try:
        with pytest.raises(ConfigError, match="run.resume = .*no checkpoint there"):
            manager.submit(build("grpo", {"run.resume": str(tmp_path)}))
        with pytest.raises(ConfigError, match="model.adapter = .*no adapter_config.json"):
            manager.submit(build("grpo", {"model.adapter": str(tmp_path)}))
        assert manager.runs() == []
    finally:
        manager.shutdown()
    shared = RunManager(tmp_path / "shared", limits=SharedLimits(), isolation="thread")
    try:
        with pytest.raises(ConfigError, match="run.resume is not offered on a shared server"):
            shared.submit(build("grpo", {"run.resume": str(tmp_path)}), owner="visitor")
    finally:
        shared.shutdown()

"""A lesson trained through the run queue (labcore.lesson_runs): its arms become ordinary runs in the store, the
claims are judged on their records as `lesson check` judges them, and a queue that refuses an arm says why."""

import dataclasses

import pytest

from labcore import lessons as L
from labcore.config import ConfigError
from labcore.lesson_runs import run_queued
from labcore.runner import RunManager, SharedLimits


def test_a_lesson_runs_through_the_queue(tmp_path):
    """PPO with one pass against REINFORCE, 3 steps each: two runs, named after the lesson, done, and the
    equality claims hold on their records exactly as in process."""
    lesson = dataclasses.replace(L.load_lesson("ppo_is_reinforce"), steps=3)
    manager = RunManager(tmp_path / "runs", isolation="thread")
    seen = []
    try:
        res = run_queued(lesson, manager, seed=0, on_records=lambda r: seen.append(sum(map(len, r.values()))),
                         poll=0.05)
    finally:
        manager.shutdown()
    assert res.holds, [(v.claim.text, v.effects) for v in res.verdicts]
    runs = manager.store.list_runs()
    assert len(runs) == 2 and {r["state"] for r in runs} == {"done"}
    names = sorted(manager.store.config(r["run_id"]).run.name for r in runs)
    assert names == sorted(f"lesson ppo_is_reinforce: {a.label}" for a in lesson.arms)
    assert all(len(res.records[0][a.name]) == 3 for a in lesson.arms)
    assert seen[-1] == 6, "progress reaches every step of both arms"


def test_a_refused_arm_names_the_cap(tmp_path):
    lesson = L.load_lesson("ppo_is_reinforce")
    manager = RunManager(tmp_path / "runs", limits=SharedLimits(max_steps=5), isolation="thread")
    try:
        with pytest.raises(ConfigError, match="run.steps = 10 is above this server's cap of 5"):
            run_queued(lesson, manager)
    finally:
        manager.shutdown()


def test_a_probe_lesson_is_not_queued(tmp_path):
    with pytest.raises(ValueError, match="is a probe"):
        run_queued(L.load_lesson("kl_placement"), manager=None)

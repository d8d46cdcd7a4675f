"""A lesson in the app trains through the server's run queue: its arms are runs owned by the learner's session,
one after another, judged like `rlhf-lab lesson check` judges one seed; a shared server's cap refuses it with a
message and starts nothing; a learner who leaves stops the arm in flight."""

import re

import pytest
from ui_fixtures import require_model

from app.lessons import LessonRunner
from labcore import config as C
from labcore import lessons as L
from labcore.runner import RunManager, SharedLimits

LESSON = "ppo_is_reinforce"  # the cheapest shipped lesson: 2 arms x 10 steps


@pytest.fixture
def manager(tmp_path):
    require_model()
    m = RunManager(tmp_path / "runs", isolation="thread")
    yield m
    m.shutdown()


def test_the_arms_are_runs_of_the_queue_and_the_verdict_matches_the_check(manager):
    lesson = L.load_lesson(LESSON)
    out = list(LessonRunner(manager, poll=0.05).run(LESSON, lesson.answer, owner="learner"))
    status, _, verdict = out[-1]
    assert status.startswith("Done.") and "You predicted" in verdict and "right." in verdict
    assert re.search(r"What happened \(\d+ s, seed 0\)", verdict), "the verdict gives the lesson's seconds"
    runs = manager.runs()
    assert [r["owner"] for r in runs] == ["learner"] * len(lesson.arms)
    assert all(r["state"] == "done" for r in runs)
    for r, arm in zip(runs, lesson.arms):
        assert len(manager.store.metrics(r["run_id"])) == lesson.steps
        cfg = manager.store.config(r["run_id"])
        assert cfg.run.name == f"lesson {LESSON}: {arm.label}"
        assert C.flat(cfg) == C.flat(C.apply(lesson.config(arm, 0), {"run.name": cfg.run.name})), "the arm's config"
        assert r["run_id"] in status
    assert any("Arm 1 of 2" in s for s, _, _ in out[:-1]), "progress names the arm"


def test_a_shared_servers_cap_refuses_the_lesson_and_starts_nothing(tmp_path):
    require_model()
    m = RunManager(tmp_path / "runs", isolation="thread", limits=SharedLimits())
    try:
        mine = m.submit(C.build("grpo", {"run.steps": 200}), owner="learner", paused=True)
        lesson = L.load_lesson(LESSON)
        out = list(LessonRunner(m, poll=0.05).run(LESSON, lesson.answer, owner="learner"))
        assert len(out) == 1 and "could not start" in out[0][0] and "the cap is 1" in out[0][0]
        assert [r["run_id"] for r in m.runs()] == [mine]
        m.stop(mine)
    finally:
        m.shutdown()


def test_a_learner_who_leaves_stops_the_arm_in_flight(manager):
    lesson = L.load_lesson(LESSON)
    gen = LessonRunner(manager, poll=0.05).run(LESSON, lesson.answer, owner="learner")
    next(gen)  # the first arm is queued or running
    gen.close()  # the tab went away: Gradio closes the generator
    (run,) = manager.runs()
    manager.wait(run["run_id"], 60)
    assert manager.status(run["run_id"])["state"] in ("stopped", "cancelled")


def test_without_a_prediction_nothing_runs(manager):
    out = list(LessonRunner(manager).run(LESSON, None, owner="learner"))
    assert "lock a prediction" in out[0][0] and manager.runs() == []

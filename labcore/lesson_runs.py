"""A lesson's arms trained through the run queue (`labcore.runner.RunManager`), not in the caller's process.

The web app's Lessons panel used to train a lesson's arms in a thread of the web process, beside the queue and
outside it: two lessons and a run competed for the CPU unseen. Here each arm (one seed) is submitted as an ordinary
run, named after the lesson, one arm after the other (a shared server allows one active run per owner), and its
step records are read back from the run store; the claims are then judged exactly as `labcore.lessons.check` does.
The lesson's runs stay in the runs list, so a learner can open them like any other run.

Left out: probe lessons (they measure one batch, they train no run: `labcore.lessons.check` runs them in place).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

from labcore.config import apply
from labcore.lessons import Arm, Lesson, Result, effect, judge
from labcore.runstore import FINISHED


class LessonRunError(RuntimeError):
    """An arm's run did not finish (stopped, failed, interrupted). The message names the arm and the reason."""


def queued_config(lesson: Lesson, arm: Arm, seed: int):
    """The Config of one arm and seed, named for the runs list ("lesson clip_fraction: epochs = 2")."""
    return apply(lesson.config(arm, seed), {"run.name": f"lesson {lesson.name}: {arm.label}"})


def queued_progress(lesson: Lesson, manager, seed: int = 0, owner: str = "", poll: float = 0.5,
                    timeout: float = 3600.0) -> Generator[tuple[Arm, dict, dict[str, list[dict]]], None, Result]:
    """Train every arm of `lesson` with `seed` as runs in `manager`'s queue, owned by `owner`, one after the
    other; yields (arm, its run's status, {arm: step records so far}) after every poll, and returns the Result
    with the claims judged on the runs' records. Closing the generator early (the learner left) stops the arm in
    flight. Raises ConfigError if the queue refuses an arm (a shared server's caps), LessonRunError if a run
    does not finish."""
    if lesson.probe:
        raise ValueError(f"lesson '{lesson.name}' is a probe: it trains no run; use labcore.lessons.check.")
    records: dict[str, list[dict]] = {a.name: [] for a in lesson.arms}
    t0 = time.perf_counter()
    for arm in lesson.arms:
        run_id = manager.submit(queued_config(lesson, arm, seed), owner)
        end = time.monotonic() + timeout
        try:
            while True:
                status = manager.status(run_id)
                records[arm.name] = list(manager.store.metrics(run_id))  # the store shares its list
                yield arm, status, records
                if status["state"] in FINISHED:
                    break
                if time.monotonic() > end:
                    raise LessonRunError(f"arm '{arm.name}' (run {run_id}) did not finish in {timeout:.0f} s; "
                                         "stopped.")
                time.sleep(poll)
        finally:  # closed early, timed out, or interrupted: no orphan arm keeps the device busy
            if manager.status(run_id)["state"] not in FINISHED:
                manager.stop(run_id)
        if status["state"] != "done" or len(records[arm.name]) < lesson.steps:
            raise LessonRunError(f"arm '{arm.name}' (run {run_id}) ended '{status['state']}' after "
                                 f"{len(records[arm.name])} of {lesson.steps} steps: "
                                 f"{status.get('message') or 'no message'}")
    res = Result(lesson, [seed], {seed: records}, seconds=time.perf_counter() - t0)
    res.verdicts = [judge(c, [effect(c, records)]) for c in lesson.claims]
    return res


def run_queued(lesson: Lesson, manager, seed: int = 0, owner: str = "",
               on_records: Callable[[dict[str, list[dict]]], None] | None = None, poll: float = 0.5,
               timeout: float = 3600.0) -> Result:
    """`queued_progress` to the end: the judged Result; `on_records(records)` gets the records after every poll."""
    progress = queued_progress(lesson, manager, seed, owner, poll, timeout)
    while True:
        try:
            _, _, records = next(progress)
        except StopIteration as done:
            return done.value
        if on_records:
            on_records(records)

"""Background training: a first-in first-out queue of runs served by worker threads.

`RunManager.submit` validates a config (and, in shared mode, the server's caps), creates its run folder and
queues it. Workers (default one: one device) take runs in order and call `Trainer.train_step` until the steps
are done, honouring pause, resume, step-once and stop at step boundaries, and applying live changes of learning
rate, KL coefficient and temperature before each step, like TensorFlow Playground's hot parameters.

A run that raises, or whose loss or rewards go non-finite, ends as `failed` with a readable message (and the
traceback in `error.txt`); the worker thread lives on and serves the next run. The adapter is saved at the end,
on stop and on failure (failed steps never reach the optimiser, so the saved weights are the last good ones).
Closing a browser does not cancel anything: runs belong to the server and finish (or are stopped) there.

A run's status (state, step, message, ...) has one source of truth: the manager's record of it, changed only by
`RunManager._record`, which writes the same dict to the run's meta.json. The step loop never writes meta.json:
it reports each change, to the manager in thread mode or over the pipe from a worker process, so `status()` and
meta.json cannot disagree. A `Job` holds only a run's controls (pause, stop, step budget, live changes).
On shutdown the worker process is asked to quit: it stops its run at the next step boundary, the run ends
`stopped`, and the process exits on its own (a terminal's Ctrl-C is left to the server, which drives this).
Left out: several processes sharing one runs folder, GPU scheduling across several devices.
"""

from __future__ import annotations

import collections
import functools
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labcore.config import Config, ConfigError, check
from labcore.runstore import FINISHED, RunStore

ACTIVE = ("queued", "running", "paused")


@dataclass(frozen=True)
class SharedLimits:
    """Caps for a public Space or a workshop server (`rlhf-lab --shared`)."""
    models: tuple[str, ...] = ("tiny",)
    reward_models: tuple[str, ...] = ("tiny-rm",)
    max_steps: int = 200
    max_batch: int = 64              # prompts_per_step * samples_per_prompt
    max_new_tokens: int = 16
    max_epochs: int = 4
    max_active_per_owner: int = 1    # queued + running + paused runs of one session
    max_runs_kept: int = 200         # finished runs kept on disk

    def problems(self, cfg: Config) -> list[str]:
        p = []
        if cfg.model.policy not in self.models:
            p.append(f"model.policy = {cfg.model.policy!r} is not offered on this shared server; "
                     f"choose one of {', '.join(self.models)}.")
        if cfg.model.reward_model not in self.reward_models:
            p.append(f"model.reward_model = {cfg.model.reward_model!r} is not offered on this shared server; "
                     f"choose one of {', '.join(self.reward_models)}.")
        if cfg.run.steps > self.max_steps:
            p.append(f"run.steps = {cfg.run.steps} is above this server's cap of {self.max_steps}; lower it.")
        B = cfg.rollout.prompts_per_step * cfg.rollout.samples_per_prompt
        if B > self.max_batch:
            p.append(f"prompts_per_step x samples_per_prompt = {B} is above this server's cap of "
                     f"{self.max_batch} completions per step; lower one of them.")
        if cfg.rollout.max_new_tokens > self.max_new_tokens:
            p.append(f"rollout.max_new_tokens = {cfg.rollout.max_new_tokens} is above this server's cap of "
                     f"{self.max_new_tokens}; lower it.")
        if cfg.algorithm.epochs > self.max_epochs:
            p.append(f"algorithm.epochs = {cfg.algorithm.epochs} is above this server's cap of {self.max_epochs}.")
        for key in ("rollout.dataset", "rollout.reward_fns", "model.adapter", "run.resume"):
            section, name = key.split(".")
            if getattr(getattr(cfg, section), name):
                p.append(f"{key} is not offered on a shared server: it never reads server paths or imports "
                         "code from visitors. Run the lab on your own machine (`rlhf-lab`) to use your own files "
                         "and reward functions.")
        return p


@dataclass
class Job:
    """The controls of one run, read by its step loop at step boundaries. Not its status (see `_record`)."""
    run_id: str
    cfg: Config
    paused: bool = False
    stop: bool = False
    step_budget: int = 0                      # steps allowed while paused (Step button)
    live: dict[str, float] = field(default_factory=dict)
    live_time: float = 0.0                    # when the last live change arrived (time.time())
    note: str = ""                            # appended to the run's last message (why it was stopped)
    cond: threading.Condition = field(default_factory=threading.Condition)


Report = Callable[..., None]  # report(**changes): the step loop tells the record keeper of a status change


class RunManager:
    def __init__(self, store: RunStore | str = "runs", workers: int = 1, limits: SharedLimits | None = None,
                 threads: int | None = None, isolation: str = "thread", pause_timeout: float = 60.0):
        """`isolation`: "thread" trains in this process (simple; for scripts and tests), "process" in warm
        worker processes, so a busy web server cannot starve training of Python's interpreter lock.
        `pause_timeout`: seconds a paused run may hold the device (since its last step) while another run
        waits in the queue; then it is stopped, its adapter saved, and the queue moves on."""
        if isolation not in ("thread", "process"):
            raise ValueError(f"isolation = {isolation!r}; use 'thread' or 'process'")
        self.isolation, self._threads = isolation, threads
        self._running_in: dict[str, _Child] = {}
        set_threads(threads)
        self.store = store if isinstance(store, RunStore) else RunStore(store)
        self.limits = limits
        self.store.mark_interrupted()
        self._jobs: dict[str, Job] = {}
        self._records: dict[str, dict[str, Any]] = {}  # run -> its status; meta.json holds the same dict
        self._changed = threading.Condition()  # guards _records only (a leaf lock: held while nothing else is)
        self.worker_exits: list[int | None] = []  # exit codes of closed worker processes (0: exited on its own)
        self._queue: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        if not pause_timeout > 0:
            raise ValueError(f"pause_timeout = {pause_timeout!r}; give the seconds a paused run may block a queue (> 0)")
        self.pause_timeout = pause_timeout
        self._paused_since: dict[str, tuple[float, int]] = {}  # run -> (paused without a step since, at step)
        threading.Thread(target=self._guard, name="rlhf-lab-pause-guard", daemon=True).start()
        self._workers = [threading.Thread(target=self._work, args=(i,), name=f"rlhf-lab-worker-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._workers:
            t.start()

    def warm_up(self, policy: str = "tiny") -> threading.Thread:
        """Load a policy (and the trainer's imports) in the background, so the first run starts warm: the base
        model stays in labcore.model's cache and each run only wraps it in a fresh LoRA adapter."""
        def load() -> None:
            if self.isolation == "thread":  # each worker process warms itself
                _warm(policy)

        thread = threading.Thread(target=load, name="rlhf-lab-warm-up", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------------------------------------ control

    def preflight(self, cfg: Config, owner: str = "") -> Config:
        """Raise ConfigError if `cfg` must not start: invalid values, shared-mode caps, a model that cannot
        be found. Nothing is created."""
        problems = []
        try:
            check(cfg, context_length=_context_length(cfg.model.policy))
        except ConfigError as e:
            problems += e.problems
        if self.limits:
            problems += self.limits.problems(cfg)
            active = [m for m in self._snapshot() if m["owner"] == owner and m["state"] in ACTIVE]
            if len(active) >= self.limits.max_active_per_owner:
                problems.append(f"you already have {len(active)} run(s) queued or running (the cap is "
                                f"{self.limits.max_active_per_owner}); stop one or wait for it to finish.")
        if not problems and not self.limits:  # your prompts and rewards: loaded, imported and probed (local only)
            from labcore import checkpoint
            from labcore.userfns import problems as user_problems

            problems += user_problems(cfg) + checkpoint.problems(cfg)
        if not problems:
            from labcore.model import ModelLoadError, resolve_model_path

            for where, name in (("model.policy", cfg.model.policy), ("model.reward_model", cfg.model.reward_model)):
                if where == "model.reward_model" and cfg.rollout.task != "sentiment":
                    continue
                try:
                    resolve_model_path(name)
                except ModelLoadError as e:
                    problems.append(f"{where}: {e}")
        if problems:
            raise ConfigError(problems)
        return cfg

    def submit(self, cfg: Config, owner: str = "", *, paused: bool = False) -> str:
        """Validate and queue a run; returns its id. Raises ConfigError (nothing created) if it must not start."""
        self.preflight(cfg, owner)
        with self._cond:
            if self._closed:
                raise RuntimeError("the run manager is shut down")
            run_id = self.store.create(cfg, owner)
            with self._changed:
                self._records[run_id] = self.store.meta(run_id)
            self._jobs[run_id] = Job(run_id, cfg, paused=paused)
            self._queue.append(run_id)
            self._cond.notify_all()
        if self.limits:
            for gone in self.store.prune(self.limits.max_runs_kept):
                with self._changed:
                    self._records.pop(gone, None)
                self._jobs.pop(gone, None)
        return run_id

    def _record(self, run_id: str, **changes: Any) -> dict[str, Any]:
        """The one place a run's status changes: the manager's record and the run's meta.json, together (the
        file first, so a failed write leaves both as they were). Returns the new record."""
        with self._changed:
            meta = {**self._records[run_id], **changes}
            self.store.write_meta(run_id, meta)
            self._records[run_id] = meta
            self._changed.notify_all()
        return meta

    def _snapshot(self) -> list[dict[str, Any]]:
        """Copies of the records of the runs this manager owns."""
        with self._changed:
            return [dict(m) for m in self._records.values()]

    def _job(self, run_id: str) -> Job:
        job = self._jobs.get(run_id)
        if job is None:
            raise KeyError(f"no live run {run_id!r} (it may have finished before the server restarted)")
        return job

    def _signal(self, run_id: str, **changes: Any) -> None:
        """Apply controls where the run's loop is: here (thread mode, or not handed over yet) or in its worker
        process. `add_steps` is relative (a Step press), so it is never mirrored here once the run is away."""
        job = self._job(run_id)
        with job.cond:  # _run_in_child hands the run over under this lock: no control falls between
            child = self._running_in.get(run_id)
            if child is None:
                apply_control(job, changes)
                return
            for k, v in changes.items():  # process mode: the worker process owns the loop; the controls are
                if k == "live":              # mirrored here for check_paused and a later hand-over
                    job.live.update(v)
                elif k != "add_steps":
                    setattr(job, k, v)
            child.send(("control", run_id, changes))

    def pause(self, run_id: str) -> None:
        self._signal(run_id, paused=True)

    def resume(self, run_id: str) -> None:
        self._signal(run_id, paused=False)

    def step_once(self, run_id: str) -> None:
        """Pause (if running) and allow exactly one more step. The budget is counted where the loop runs (a
        copy here would never learn which steps the worker used, and each press would add one more)."""
        self._signal(run_id, paused=True, add_steps=1)

    def stop(self, run_id: str) -> None:
        """Stop at the next step boundary (a queued run is cancelled at once)."""
        self._job(run_id)
        with self._cond:
            if run_id in self._queue:
                self._queue.remove(run_id)
                self._record(run_id, state="cancelled", message="stopped before it started",
                             finished=time.time())
                return
        self._signal(run_id, stop=True)

    def set_live(self, run_id: str, *, lr: float | None = None, kl_coef: float | None = None,
                 temperature: float | None = None) -> None:
        """Change hot parameters of a queued or running run; applied before its next step."""
        changes = {k: v for k, v in (("lr", lr), ("kl_coef", kl_coef), ("temperature", temperature)) if v is not None}
        bad = [f"{k} = {v!r} must be > 0" for k, v in changes.items() if not (v > 0) and k != "kl_coef"]
        bad += [f"kl_coef = {v!r} must be >= 0" for k, v in changes.items() if k == "kl_coef" and not (v >= 0)]
        if bad:
            raise ConfigError(bad)
        self._signal(run_id, live=changes, live_time=time.time())

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel the queue, stop the running runs at their next step boundary, and close the workers (a worker
        process exits on its own; its exit code lands in `worker_exits`)."""
        with self._cond:
            self._closed = True
            for run_id in list(self._queue):
                self._record(run_id, state="cancelled", message="the server shut down", finished=time.time())
            self._queue.clear()
            self._cond.notify_all()
        for meta in self._snapshot():
            if meta["state"] in ("running", "paused"):
                self._signal(meta["run_id"], stop=True)
        for t in self._workers:
            t.join(timeout)

    # ------------------------------------------------------------------------------------------------ status

    def status(self, run_id: str) -> dict[str, Any]:
        """A run's meta.json (for a run this manager owns, its record, which is the same dict), with the queue
        position (1-based, queued runs only) and, while queued, what it waits for."""
        with self._changed:
            meta = dict(self._records[run_id]) if run_id in self._records else None
        if meta is None:
            return {**self.store.meta(run_id), "queue_position": None}
        with self._cond:
            pos = list(self._queue).index(run_id) + 1 if run_id in self._queue else None
        return {**meta, "queue_position": pos, "waiting_for": self.waiting_for() if meta["state"] == "queued" else ""}

    def publish(self, run_id: str) -> None:
        """Let every session of a shared server list and watch this run."""
        if run_id in self._records:
            self._record(run_id, published=True)
        else:
            self.store.update_meta(run_id, published=True)

    def waiting_for(self) -> str:
        """What a queued run waits for: the runs holding the device ('' when none does: it starts now)."""
        now, parts = time.monotonic(), []
        for m in self._snapshot():
            name = f"run {m['run_id'][-6:]} ({m['name']})"
            if m["state"] == "running":
                parts.append(f"{name} is running, step {m['step']} of {m['steps']}")
            elif m["state"] == "paused":
                since = self._paused_since.get(m["run_id"], (now, m["step"]))[0]
                left = max(0, math.ceil(self.pause_timeout - (now - since)))
                parts.append(f"{name} is paused at step {m['step']}; unless it steps or resumes, it is stopped in "
                             f"{left} s to free the device")
        return "waiting for the device: " + "; ".join(parts) if parts else ""

    def _guard(self) -> None:
        """A paused run must not hold the device against a queue: stop it `pause_timeout` seconds after it
        paused (or last stepped) if another run is waiting. Alone, a paused run waits as long as it likes."""
        while True:
            with self._cond:
                self._cond.wait(0.25)
                if self._closed:
                    return
                waiting = bool(self._queue)
            self.check_paused(waiting, time.monotonic())

    def check_paused(self, waiting: bool, now: float) -> list[str]:
        """One look of the guard; returns the runs it stopped."""
        stopped = []
        for m in self._snapshot():
            run_id, step = m["run_id"], m["step"]
            if m["state"] != "paused" or not waiting or self._jobs[run_id].stop:
                self._paused_since.pop(run_id, None)
                continue
            since, at = self._paused_since.get(run_id, (now, step))
            since = since if at == step else now  # a Step press counts as use
            self._paused_since[run_id] = (since, step)
            if now - since >= self.pause_timeout:
                self._paused_since.pop(run_id, None)
                note = (f" (paused for {self.pause_timeout:g} s while another run waited: stopped to free the "
                        "device; its records and adapter are kept)")
                self._signal(run_id, stop=True, note=note)
                stopped.append(run_id)
        return stopped

    def runs(self) -> list[dict[str, Any]]:
        """Every run on disk (oldest first): its meta.json, with the queue position of runs this process owns."""
        return [self.status(m["run_id"]) if m["run_id"] in self._records else {**m, "queue_position": None}
                for m in self.store.list_runs()]

    def wait(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the run has finished (tests, the CLI). Returns its status."""
        end = time.monotonic() + timeout
        self._job(run_id)
        with self._changed:
            while self._records[run_id]["state"] not in FINISHED and (left := end - time.monotonic()) > 0:
                self._changed.wait(left)
        return self.status(run_id)

    # ------------------------------------------------------------------------------------------------ worker

    def _work(self, index: int) -> None:
        child = _Child(self.store.root, self._threads) if self.isolation == "process" else None
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    if child:
                        self.worker_exits.append(child.close())
                    return
                run_id = self._queue.popleft()
            job = self._jobs[run_id]
            if child is None:
                execute(job, self.store, functools.partial(self._record, run_id))
            else:
                child = self._run_in_child(child, job)

    def _run_in_child(self, child: _Child, job: Job) -> _Child:
        """Hand the run to the worker process and record the status changes it reports; a dead process fails
        the run and is replaced. Returns the (possibly new) child."""
        try:
            with job.cond:  # controls sent from here on go to the process, after the run itself
                child.send(("run", job.run_id, job.cfg, job.paused, job.step_budget, dict(job.live)))
                self._running_in[job.run_id] = child
            while True:
                msg = child.recv()
                if msg[0] == "finished":
                    return child
                _, run_id, changes = msg  # ("status", run_id, changes)
                self._record(run_id, **changes)
        except (EOFError, OSError, BrokenPipeError):
            code = child.close()
            self.worker_exits.append(code)
            step = self._records[job.run_id]["step"]
            message = (f"the training process stopped unexpectedly at step {step + 1} (exit code {code}); "
                       "if this repeats, use fewer samples per step or shorter completions")
            self._record(job.run_id, state="failed", message=message, finished=time.time())
            return _Child(self.store.root, self._threads)
        finally:
            self._running_in.pop(job.run_id, None)


def _warm(policy: str) -> None:
    """Load a policy and the trainer's imports once, so the first Start steps at once (the base model stays in
    labcore.model's cache; each run only wraps it in a fresh LoRA adapter)."""
    try:
        from labcore.model import load_policy
        from labcore.trainer import Trainer  # noqa: F401 - import cost paid here, not at Start

        load_policy(policy)
    except Exception:  # noqa: BLE001 - a missing model is reported when a run asks for it
        pass


def apply_control(job: Job, changes: dict[str, Any]) -> None:
    """Pause / resume / step / stop / live changes of a job, where its loop runs (which reports the state)."""
    with job.cond:
        for k, v in changes.items():
            if k == "live":
                job.live.update(v)
            elif k == "add_steps":
                job.step_budget += v
            else:
                setattr(job, k, v)
        job.cond.notify_all()


def execute(job: Job, store: RunStore, report: Report) -> None:
    """The step loop of one run, honouring the job's controls at step boundaries. Every status change (state,
    step, message, started, finished, forward) goes to `report(**changes)`, and only there: the loop writes
    the run's records and adapter, never its meta.json. The loop never raises."""
    from labcore import checkpoint
    from labcore.trainer import Trainer

    trainer, step = None, 0
    shown = "paused" if job.paused else "running"
    report(state=shown, started=time.time())
    try:
        trainer = Trainer(job.cfg)
        checkpoint.restore(trainer, job.cfg)  # model.adapter, run.resume
        step = trainer.step_count
        report(forward=trainer.forward_name, step=step)  # which forward ran, and why not the fast one
        while step < job.cfg.run.steps:
            with job.cond:
                while job.paused and job.step_budget == 0 and not job.stop:
                    if shown != "paused":
                        shown = "paused"
                        report(state=shown)
                    job.cond.wait(0.5)
                if job.stop:
                    break
                if job.paused:
                    job.step_budget -= 1
                changed = {k: v for k, v in job.live.items() if getattr(trainer.live, k) != v}
                for k, v in changed.items():
                    setattr(trainer.live, k, v)
                requested = job.live_time
                now = "paused" if job.paused else "running"
            if now != shown:  # resumed: say so before the step, which may be long
                shown = now
                report(state=shown)
            applied = time.time()
            result = trainer.train_step()
            if changed:  # the step a live change took effect, marked on the charts; the delay is a measured figure
                result.metrics["live"] = changed
                if requested:
                    result.metrics["live/delay_s"] = round(max(0.0, applied - requested), 4)
            store.append(job.run_id, result.metrics, result.samples)
            step = trainer.step_count
            report(step=step)
            if job.cfg.run.save_every and step % job.cfg.run.save_every == 0:
                checkpoint.save(trainer, store.path(job.run_id))
        unsaved = _save_adapter(trainer, store.path(job.run_id))
        state, message = ("stopped", f"stopped at step {step}") if job.stop else ("done", f"finished {step} steps")
    except Exception as e:  # noqa: BLE001 - a run's failure must never kill the worker
        unsaved = _save_adapter(trainer, store.path(job.run_id))
        (store.path(job.run_id) / "error.txt").write_text(traceback.format_exc())
        state, message = "failed", explain_failure(e, step)
    report(state=state, step=step, message=(message + job.note + unsaved).strip(), finished=time.time())


def _save_adapter(trainer, run_dir) -> str:
    """Save the adapter and the state to resume from; returns '' or a note for the run's message."""
    if trainer is None:
        return ""
    from labcore import checkpoint

    try:
        checkpoint.save(trainer, run_dir)
    except Exception as e:  # noqa: BLE001
        return f" (the adapter could not be saved: {e})"
    return ""


class _Child:
    """A warm training process (spawned, so it shares no threads or locks with the web server): it takes runs
    one at a time and reports their progress over a pipe, while the run store carries the records."""

    def __init__(self, root, threads: int | None):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(child_conn, str(root), threads), daemon=True,
                                name="rlhf-lab-trainer")
        self.proc.start()
        child_conn.close()
        self._lock = threading.Lock()

    def send(self, msg) -> None:
        with self._lock:
            try:
                self.conn.send(msg)
            except (OSError, BrokenPipeError):
                pass  # the reader notices the dead process

    def recv(self):
        return self.conn.recv()

    def close(self, timeout: float = 5.0) -> int | None:
        """Ask the process to stop its run and quit; kill it only if it has not exited after `timeout` seconds.
        Returns its exit code: 0 when it left its loop on its own, negative when a signal ended it."""
        self.send(("quit",))
        self.proc.join(timeout)
        if self.proc.is_alive():
            print(f"rlhf-lab: the training process did not exit within {timeout:g} s of the request; killed it",
                  file=sys.stderr, flush=True)
            self.proc.kill()
            self.proc.join()
        self.conn.close()
        return self.proc.exitcode


def _child_main(conn, root: str, threads: int | None) -> None:
    """Inside the training process: a listener thread applies controls; the main thread runs the step loop and
    reports every status change to the server, which records it (this process never writes meta.json).
    SIGINT is ignored: a terminal's Ctrl-C reaches the whole process group, and the server asks this process to
    quit once it has stopped serving, so the run ends `stopped` with its adapter saved."""
    import atexit
    import queue
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(threads)
    store = RunStore(root)
    runs: queue.Queue = queue.Queue()
    jobs: dict[str, Job] = {}
    lock = threading.Lock()

    def send(msg: tuple) -> None:
        with lock:
            try:
                conn.send(msg)
            except (OSError, BrokenPipeError):
                pass  # the server is gone; the loop ends at the next boundary (the listener saw EOF)

    def listen() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = ("quit",)
            if msg[0] == "quit":
                for job in list(jobs.values()):
                    apply_control(job, {"stop": True})
                runs.put(None)
                return
            if msg[0] == "run":
                _, run_id, cfg, paused, budget, live = msg
                jobs[run_id] = Job(run_id, cfg, paused=paused, step_budget=budget, live=live)
                runs.put(jobs[run_id])
            elif msg[0] == "control" and msg[1] in jobs:
                apply_control(jobs[msg[1]], msg[2])

    threading.Thread(target=listen, daemon=True).start()
    _warm("tiny")
    while (job := runs.get()) is not None:
        execute(job, store, lambda run_id=job.run_id, **changes: send(("status", run_id, changes)))
        send(("finished", job.run_id))
        jobs.pop(job.run_id, None)
    # Every run has ended and its files are closed. Python's own teardown of torch and the models after this
    # returns took 5-9 s on a loaded 2-core machine (benchmarks/README.md), past the server's wait: end the
    # process at the interpreter's exit hooks instead, after multiprocessing's own (which release semaphores).
    atexit.register(_exit_now)


def _exit_now() -> None:
    """End the worker process with code 0, skipping the interpreter's teardown (everything is saved)."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def set_threads(threads: int | None = None) -> int:
    """Torch intra-op threads for training. The tiny model's ops are small, so extra threads mostly wait on each
    other: on a 2-core box shared with the web server, 2 threads made steps up to 30x slower than 1 under load
    (benchmarks/README.md). Default: 1 thread on machines with <= 4 cores, else half the cores (at most 4);
    RLHF_LAB_THREADS overrides."""
    import os

    import torch

    cores = os.cpu_count() or 1
    n = threads or int(os.environ.get("RLHF_LAB_THREADS", 0)) or (1 if cores <= 4 else min(4, cores // 2))
    torch.set_num_threads(n)
    return n


def _context_length(name: str) -> int | None:
    """The policy's maximum positions when its config is on disk (no network), else None."""
    import json
    import os

    from labcore.model import ModelLoadError, resolve_model_path

    try:
        path = resolve_model_path(name)
        with open(os.path.join(path, "config.json")) as fh:
            return json.load(fh).get("max_position_embeddings")
    except (ModelLoadError, OSError, ValueError):
        return None


def explain_failure(e: BaseException, step: int) -> str:
    """A readable message for a failed run, with advice where we have some."""
    name = type(e).__name__
    text = str(e).strip().splitlines()[0] if str(e).strip() else name
    if "out of memory" in str(e).lower() or name == "OutOfMemoryError":
        return (f"out of memory on the device at step {step + 1}; use fewer prompts or samples per step, "
                "shorter completions (max_new_tokens), or a smaller model.")
    if isinstance(e, ConfigError):
        return "; ".join(e.problems)
    from labcore.trainer import TrainingError

    if isinstance(e, TrainingError):
        return text
    if name == "ModelLoadError":
        return text
    return f"step {step + 1} failed with {name}: {text}"


"""Runs trained in GPU chunks, one per click: the view-model behind the ZeroGPU panel (`app/gpu_panel.py`).

On ZeroGPU a real model cannot train in a background thread (see `app/space.py`), so a visitor's run goes one
chunk per click: Start makes the run folder, and each Continue calls the GPU chunk function (`train_chunk`,
`app.space.chunk_runner()`), appends every record it streams to the run folder as the lab's runner does, and
keeps the state it hands back for the next click. The lab's charts can watch the folder like any run.
Shared-mode caps apply (steps, batch, tokens, epochs, one active GPU run per visitor); the model is the one the
Space's owner set (RLHF_LAB_GPU_MODEL), never a visitor's choice. GPU time is counted per visitor as the
seconds each chunk booked, against their daily quota (ZeroGPU does not tell the app what is left).
Left out: keeping chunk states across a restart (a Space's disk is ephemeral anyway), and several GPU runs at
once per visitor.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from app import space
from labcore.config import Config, ConfigError, apply
from labcore.runner import SharedLimits
from labcore.runstore import RunStore


class ChunkedRuns:
    def __init__(self, store: RunStore, train_chunk: Callable[..., Iterator[tuple[str, Any]]], model: str,
                 limits: SharedLimits | None = None, tier: str = "unauthenticated", keep: int = 32):
        self.store, self.train_chunk, self.model, self.tier = store, train_chunk, model, tier
        # The Space's own model is allowed; every other cap of shared mode stays.
        self.limits = dataclasses.replace(limits or SharedLimits(), models=(model,))
        self.states: collections.OrderedDict[str, dict[str, Any] | None] = collections.OrderedDict()
        self.keep = keep
        self.used_s: dict[str, float] = collections.defaultdict(float)  # owner -> GPU seconds booked today
        self.day = time.strftime("%Y-%m-%d", time.gmtime())
        self.busy: set[str] = set()  # runs with a chunk training now (a second click must not fork the run)
        self.lock = threading.Lock()

    def _today(self) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if day != self.day:  # ZeroGPU's quotas are daily
            self.day, self.used_s = day, collections.defaultdict(float)

    def start(self, cfg: Config, owner: str) -> str:
        """A new GPU run of `cfg` (its model replaced by the Space's). Raises ConfigError with every problem."""
        cfg = apply(cfg, {"model.policy": self.model})
        problems = self.limits.problems(cfg)
        with self.lock:
            active = [r for r in self.states if self.store.meta(r).get("owner") == owner
                      and self.store.meta(r).get("state") in ("paused", "running")]
        if active:
            problems.append(f"you already have a GPU run ({active[-1]}): continue it, or stop it first")
        if problems:
            raise ConfigError(problems)
        run_id = self.store.create(cfg, owner, mode="gpu-chunks")
        self.store.update_meta(run_id, state="paused", message="press Continue to train its first chunk")
        with self.lock:
            self.states[run_id] = None
            while len(self.states) > self.keep:
                self.states.popitem(last=False)
        return run_id

    def stop(self, run_id: str, owner: str) -> None:
        self._own(run_id, owner)
        with self.lock:
            self.states.pop(run_id, None)
        self.store.update_meta(run_id, state="stopped", message="stopped between chunks")

    def _own(self, run_id: str, owner: str) -> dict[str, Any]:
        meta = self.store.meta(run_id)
        if meta.get("owner") != owner or meta.get("mode") != "gpu-chunks":
            raise ConfigError([f"run {run_id} is not a GPU run of this session: start one with Start on GPU"])
        return meta

    def note(self, run_id: str | None, owner: str, steps: int) -> str:
        """What the next chunk costs and what is left of the visitor's quota (for the UI)."""
        self._today()
        state = self.states.get(run_id) if run_id else None
        return space.chunk_note(state, steps, self.used_s[owner], self.tier)

    def continue_run(self, run_id: str, owner: str, steps: int) -> Iterator[dict[str, Any]]:
        """Train the next chunk of up to `steps` steps; yields {"step", "steps", "metrics"} after each step.

        Raises ConfigError when the run is not this visitor's, is finished, or the chunk would exceed what is
        left of their quota.
        """
        meta = self._own(run_id, owner)
        if run_id not in self.states:
            raise ConfigError([f"run {run_id} has no chunk state any more (finished, stopped, or the server "
                               "restarted): start a new GPU run"])
        self._today()
        state = self.states[run_id]
        cost = space.chunk_seconds(None, state, steps)
        left = space.ZEROGPU.quota_s[self.tier] - self.used_s[owner]
        if cost > left:
            raise ConfigError([f"a chunk of {steps} steps books {cost} s of GPU time and {max(0, left):.0f} s of "
                               "today's quota is left: train fewer steps per chunk, or sign in for more quota"])
        with self.lock:
            if run_id in self.busy:
                raise ConfigError([f"run {run_id} is training a chunk now: wait for it to finish"])
            self.busy.add(run_id)
        try:
            yield from self._chunk(run_id, owner, steps, state, cost, meta)
        finally:
            with self.lock:
                self.busy.discard(run_id)

    def _chunk(self, run_id: str, owner: str, steps: int, state: dict[str, Any] | None, cost: int,
               meta: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cfg = self.store.config(run_id)
        self.used_s[owner] += cost
        self.store.update_meta(run_id, state="running", message=f"training a chunk of {steps} steps on the GPU")
        try:
            for kind, value in self.train_chunk(cfg, state, steps):
                if kind == "record":
                    metrics, samples = value
                    self.store.append(run_id, metrics, samples)
                    self.store.update_meta(run_id, step=metrics["step"])
                    yield {"step": metrics["step"], "steps": meta["steps"], "metrics": metrics}
                else:
                    state = value
        except Exception as e:  # its records so far are kept; the state it would have handed back is lost
            with self.lock:
                self.states.pop(run_id, None)
            self.store.update_meta(run_id, state="failed", message=f"the GPU chunk failed: {e}")
            raise
        done = state is not None and state["step"] >= cfg.run.steps
        with self.lock:
            if done:
                self.states.pop(run_id, None)
            else:
                self.states[run_id] = state
        step = state["step"] if state else meta.get("step", 0)
        self.store.update_meta(run_id, state="done" if done else "paused", step=step,
                               message=f"finished {step} steps" if done else
                               f"step {step} of {cfg.run.steps}: press Continue for the next chunk")

"""Run folders on disk: the only thing the UI reads (besides live status from the runner).

Layout of `runs/<run-id>/`:
    config.toml     the full Config
    meta.json       owner, state, step, message, recipe, created, published, seq (rewritten atomically)
    metrics.jsonl   one record per step, appended and flushed every step
    samples.jsonl   one line per step: {"step": s, "samples": [...]}
    adapter/        the LoRA adapter, saved at the end, on stop and on failure (last good weights)
    trainer_state.pt  optimiser, step and random state beside it, to resume from (labcore.checkpoint)

Readers are incremental: `RunStore.metrics(run_id)` remembers the byte offset it read up to and parses only new
complete lines, so a UI tick with 1,000 steps on disk costs a `stat` and nothing more. A torn last line (a crash
mid-write) is left unread until it is completed, and skipped if it never parses.
Left out: a database, locking across processes (one server process owns a runs folder).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcore.config import Config, from_toml_text, to_toml

FINISHED = ("done", "stopped", "failed", "interrupted", "cancelled")


@dataclass
class _Tail:
    """Incremental reader state of one JSONL file."""
    offset: int = 0
    records: list[Any] = field(default_factory=list)


class RunStore:
    def __init__(self, root: str | os.PathLike = "runs"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tails: dict[tuple[str, str], _Tail] = {}
        self._lock = threading.Lock()

    def path(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.root / run_id

    # ---------------------------------------------------------------------------------------------- writing

    def create(self, cfg: Config, owner: str, **meta: Any) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        seq = 1 + max((m.get("seq", 0) for m in self.list_runs()), default=0)  # creation order: a run's colour
        run_id = f"{stamp}-{cfg.algorithm.recipe}-{uuid.uuid4().hex[:6]}"
        d = self.path(run_id)
        d.mkdir(parents=True)
        (d / "config.toml").write_text(to_toml(cfg))
        (d / "metrics.jsonl").touch()
        (d / "samples.jsonl").touch()
        self.write_meta(run_id, {"run_id": run_id, "owner": owner, "state": "queued", "step": 0,
                                 "steps": cfg.run.steps, "recipe": cfg.algorithm.recipe, "task": cfg.rollout.task,
                                 "name": cfg.run.name or cfg.algorithm.recipe, "message": "",
                                 "created": time.time(), "published": False, "seq": seq, **meta})
        return run_id

    def write_meta(self, run_id: str, meta: dict[str, Any]) -> None:
        d = self.path(run_id)
        tmp = d / f".meta.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, d / "meta.json")

    def update_meta(self, run_id: str, **changes: Any) -> dict[str, Any]:
        with self._lock:
            meta = {**self.meta(run_id), **changes}
            self.write_meta(run_id, meta)
        return meta

    def append(self, run_id: str, metrics: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        d = self.path(run_id)
        with open(d / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
            fh.flush()
        if samples:
            with open(d / "samples.jsonl", "a") as fh:
                fh.write(json.dumps({"step": metrics.get("step"), "samples": samples}) + "\n")
                fh.flush()

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.path(run_id), ignore_errors=True)
        with self._lock:
            for key in [k for k in self._tails if k[0] == run_id]:
                del self._tails[key]

    # ---------------------------------------------------------------------------------------------- reading

    def meta(self, run_id: str) -> dict[str, Any]:
        try:
            return json.loads((self.path(run_id) / "meta.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {"run_id": run_id, "state": "unknown", "step": 0, "owner": "", "recipe": "?", "name": run_id,
                    "created": 0.0, "message": "meta.json is missing or unreadable"}

    def list_runs(self) -> list[dict[str, Any]]:
        """Meta of every run folder, oldest first."""
        metas = [self.meta(p.name) for p in self.root.iterdir() if p.is_dir() and (p / "config.toml").exists()]
        return sorted(metas, key=lambda m: m.get("created", 0.0))

    def config(self, run_id: str) -> Config:
        return from_toml_text((self.path(run_id) / "config.toml").read_text())

    def _read(self, run_id: str, name: str) -> list[Any]:
        path = self.path(run_id) / name
        key = (run_id, name)
        with self._lock:
            tail = self._tails.setdefault(key, _Tail())
            try:
                size = path.stat().st_size
            except OSError:
                return []
            if size < tail.offset:  # the file was replaced: start over
                tail.offset, tail.records = 0, []
            if size > tail.offset:
                with open(path, "rb") as fh:
                    fh.seek(tail.offset)
                    chunk = fh.read(size - tail.offset)
                end = chunk.rfind(b"\n") + 1  # only complete lines; a torn last line waits
                for line in chunk[:end].splitlines():
                    try:
                        tail.records.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a torn line that was later followed by good ones
                tail.offset += end
            return tail.records

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Every step record so far (the returned list is shared: do not modify it)."""
        return self._read(run_id, "metrics.jsonl")

    def samples(self, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
        """The logged samples of `step` (the latest logged step when None)."""
        lines = self._read(run_id, "samples.jsonl")
        if not lines:
            return []
        if step is None:
            return lines[-1]["samples"]
        for line in reversed(lines):
            if line["step"] <= step:
                return line["samples"]
        return lines[0]["samples"]

    def sample_steps(self, run_id: str) -> list[int]:
        return [line["step"] for line in self._read(run_id, "samples.jsonl")]

    # ---------------------------------------------------------------------------------------------- export

    def metrics_csv(self, run_id: str) -> str:
        rows = self.metrics(run_id)
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k != "time", k))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def export_zip(self, run_id: str, dest: str | os.PathLike | None = None) -> Path:
        """config.toml, metrics.csv, samples.jsonl and the adapter, in one zip. Returns its path."""
        d = self.path(run_id)
        out = Path(dest) if dest else d / f"{run_id}.zip"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(d / "config.toml", "config.toml")
            z.writestr("metrics.csv", self.metrics_csv(run_id))
            z.write(d / "samples.jsonl", "samples.jsonl")
            z.write(d / "meta.json", "meta.json")
            if (d / "adapter").is_dir():
                for f in sorted((d / "adapter").rglob("*")):
                    if f.is_file():
                        z.write(f, f"adapter/{f.relative_to(d / 'adapter')}")
        return out

    def mark_interrupted(self) -> int:
        """After a restart: runs left queued or running by a dead process become 'interrupted'. Returns how many."""
        n = 0
        for meta in self.list_runs():
            if meta.get("state") in ("queued", "running", "paused"):
                self.update_meta(meta["run_id"], state="interrupted",
                                 message="the server stopped before this run finished; its records are kept")
                n += 1
        return n

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest finished runs beyond `keep`. Returns the deleted ids."""
        finished = [m for m in self.list_runs() if m.get("state") in FINISHED]
        doomed = [m["run_id"] for m in finished[: max(0, len(finished) - keep)]]
        for run_id in doomed:
            self.delete(run_id)
        return doomed


def sample_records(step: int, prompts: list[str], completions: list[str], tokens: list[list[str]],
                   rewards: list[float], eos: list[bool], per_token: dict[str, list[list[float]]],
                   group_size: int = 1) -> list[dict]:
    """The samples table's rows for one step: each completion with its per-token figures (`per_token`: name ->
    one list per completion, already cut to its length), rounded to 4 digits as they are stored. The advantage
    column is the mean of the completion's token advantages; `group` is the prompt's index in the batch
    (completions come `group_size` to a prompt, in order)."""
    out = []
    for i, toks in enumerate(tokens):
        figures = {name: [round(v, 4) for v in rows[i]] for name, rows in per_token.items()}
        adv = per_token.get("adv", [[]] * len(tokens))[i]
        out.append({"step": step, "group": i // max(1, group_size), "prompt": prompts[i],
                    "completion": completions[i], "tokens": toks,
                    "reward": round(rewards[i], 4), "advantage": round(sum(adv) / len(adv), 4) if adv else 0.0,
                    "eos": bool(eos[i]), **figures})
    return out

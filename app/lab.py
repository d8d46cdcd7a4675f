"""What the lab's buttons do, on top of `labcore.runner.RunManager`: the view-model behind `app/main.py`.

Handlers here take plain values (control values, a run id, an owner id) and return plain values (a run id,
problems, HTML, figure JSON); `app/main.py` turns them into component updates. Runs belong to the server: a
browser session owns the runs it started (its owner id) and may watch any run; in shared mode it only lists
its own and published runs, and only controls its own.
The owner id never leaves the server: it is derived from a secret the server issued to the browser
(`app.owners.Owners`) and kept in the session's server-side state; what the API returns carries no owner.
Left out: accounts.
"""

from __future__ import annotations

import collections
import html
import math
import tempfile
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app import chart_delta, figures, samples, settings
from labcore import config as C
from labcore.algorithms import RECIPES, advice, describe_parts
from labcore.runner import ACTIVE, RunManager

PART_TITLES = {"kl": "KL penalty", "advantage": "Advantage", "whiten": "Whitening",
               "filter": "Dynamic filter", "policy_loss": "Policy loss", "dual_clip": "Dual clip",
               "aggregation": "Aggregation",
               "objective": "Objective", "update": "Update"}
STATE_TEXT = {"queued": "Queued", "running": "Running", "paused": "Paused", "done": "Done",
              "stopped": "Stopped", "failed": "Failed", "cancelled": "Cancelled",
              "interrupted": "Interrupted"}


def problems_html(problems: list[str], title: str = "These settings cannot start") -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    return f'<div class="rl-problems" role="alert"><b>{html.escape(title)}</b><ul>{items}</ul></div>'


def advice_html(cfg: C.Config) -> str:
    """Settings that run but may not do what a learner expects (labcore.algorithms.advice): notes, not problems."""
    notes = advice(cfg)
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f'<div class="rl-advice"><b>Worth knowing</b><ul>{items}</ul></div>'


def formula_markdown(cfg: C.Config, whose: str = "") -> str:
    """The objective the controls describe: one display formula and one sentence per part, in step order.
    `whose` ("the run shown", "the next run") heads it when the tab shows a run."""
    r = RECIPES.get(cfg.algorithm.recipe)
    lines = [f"*Objective of {whose}.*\n"] if whose else []
    lines += [f"**{r.title}**: {r.summary} <br><span class='rl-cite'>{r.paper}</span>\n" if r else ""]
    for part, latex, sentence in describe_parts(cfg):
        lines.append(f"**{PART_TITLES.get(part, part)}**: {sentence}\n\n$$ {latex} $$\n")
    return "\n".join(lines)


def diff_html(cfg: C.Config) -> str:
    items = settings.diff_items(cfg)
    title = RECIPES[cfg.algorithm.recipe].title if cfg.algorithm.recipe in RECIPES else cfg.algorithm.recipe
    if not items:
        return (f'<div class="rl-diff"><span>Settings: the <b>{html.escape(title)}</b> recipe\'s defaults.'
                '</span></div>')
    badges = "".join(f'<span class="rl-chip" title="recipe: {html.escape(a)}"><b>{html.escape(k)}</b> '
                     f'{html.escape(a)} → {html.escape(b)}</span>' for k, a, b in items)
    return f'<div class="rl-diff"><span>Differs from <b>{html.escape(title)}</b>:</span> {badges}</div>'


def next_run_html(cfg: C.Config, shown: C.Config | None, run_id: str | None) -> str:
    """Whose settings the controls hold: the shown run's, or (once edited) the next run's, with what differs."""
    if shown is None or not run_id:
        return ""
    a, b = C.flat(shown), C.flat(cfg)
    changed = [(k, settings.fmt(a[k]), settings.fmt(b[k])) for k in a if a[k] != b.get(k)]
    if not changed:
        return (f'<div class="rl-next rl-next-same">These are the settings of the run shown '
                f'({html.escape(run_id[-6:])}); edit them to prepare the next run.</div>')
    chips = "".join(f'<span class="rl-chip"><b>{html.escape(k)}</b> {html.escape(x)} → {html.escape(y)}</span>'
                    for k, x, y in changed)
    return (f'<div class="rl-next"><b>Next run</b>: these settings differ from the run shown '
            f'({html.escape(run_id[-6:])}) in {chips} Start runs them.</div>')


def status_html(st: dict[str, Any] | None, n_records: int = 0, mine: bool = True) -> str:
    """The status line: queued (position k), running step s of S, paused, done, failed with the message."""
    if not st:
        return ('<div class="rl-status"><span class="rl-pill rl-idle">Ready</span>'
                "Pick a preset or a recipe, then press Start (or Step to go one step at a time).</div>")
    state, step, steps = st.get("state", "?"), st.get("step", 0) or 0, st.get("steps") or 0
    # first in the queue with nothing holding the device: it starts now (do not flash "Queued")
    starting = state == "queued" and (st.get("queue_position") or 1) <= 1 and st.get("waiting_for") == ""
    text = {
        "queued": "starting: loading the model" if starting else
              f"position {st.get('queue_position') or '?'} in the queue"
              + (f", {st['waiting_for']}" if st.get("waiting_for") else ""),
        "running": f"step {step} of {steps}",
        "paused": f"at step {step} of {steps}",
        "done": f"{step} of {steps} steps",
        "stopped": f"at step {step} of {steps}",
        "failed": st.get("message") or "the run failed",
        "cancelled": st.get("message") or "stopped before it started",
        "interrupted": st.get("message") or "the server stopped",
    }.get(state, st.get("message", ""))
    pct = 100.0 * step / steps if steps else 0.0
    who = "" if mine else ' <span class="rl-watch">watching</span>'
    name = html.escape(f"{st.get('name') or st.get('recipe', '')} · {st.get('run_id', '')}")
    pill = "Starting" if starting else STATE_TEXT.get(state, state)
    data = html.escape(str(st.get("recipe") or ""), quote=True)  # presenter mode picks the recipe's key chart
    return (f'<div class="rl-status" data-recipe="{data}"><span class="rl-pill rl-{state}">{pill}</span>'
            f'<span class="rl-status-text">{html.escape(str(text))}</span>{who}'
            f'<span class="rl-run-name">{name}</span>'
            f'<div class="rl-progress"><div style="width:{pct:.1f}%"></div></div></div>')


def _empty(version: Any) -> bool:
    """A version of nothing to show: no samples step yet, or no step record in any run."""
    return version is None or (isinstance(version, tuple) and not any(version))


class SharedBuilds:
    """Built views shared by every tab, so a room watching one run builds each update once.

    `get(key, version, build)` returns (version, value): the cached value if it is of this version, or if it
    was built less than `max_age` seconds ago (a fast run adds records every ~70 ms, so tabs that tick a moment
    apart would otherwise each see a new version and each rebuild); else it builds. LRU of `size` keys.
    """

    def __init__(self, max_age: float = 0.5, size: int = 64):
        self.max_age, self.size = max_age, size
        self._items: collections.OrderedDict[tuple, tuple[float, Any, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, version: Any, build) -> tuple[Any, Any]:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            # a build of no records is never reused for a newer version: the first point shows at once
            if hit is not None and (hit[1] == version or (now - hit[0] < self.max_age and not _empty(hit[1]))):
                self._items.move_to_end(key)
                return hit[1], hit[2]
        value = build()
        with self._lock:
            self._items[key] = (now, version, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return version, value


class TickPacer:
    """Keeps the server's polling work bounded when a room is watching: the tick interval every tab should use.

    Each open, visible tab's timer calls the server once per interval, and a tick costs the server 10-25 ms of
    CPU next to a training process that wants a whole core (on 2 cores, 30 tabs at 1 s measured anywhere from 0
    to -34 % training throughput: benchmarks/README.md). With `n` tabs that ticked in the last `window` seconds,
    the interval is n / `budget` seconds, at least `fastest` and at most `slowest`, in half-second steps (so it
    changes rarely): up to 12 tabs tick every second, 30 every 2.5 s. `window` must exceed `slowest`, or slow
    tabs would drop out of the count. Hidden tabs do not tick (Gradio's timer runs only while the page is
    visible), so they do not count.
    """

    def __init__(self, budget: float = 12.0, window: float = 6.0, fastest: float = 1.0, slowest: float = 4.0):
        if budget <= 0:
            raise ValueError(f"tick budget must be > 0 ticks per second, got {budget}")
        if window <= slowest:
            raise ValueError(f"window ({window} s) must be longer than the slowest interval ({slowest} s)")
        self.budget, self.window, self.fastest, self.slowest = budget, window, fastest, slowest
        self._seen: dict[str, float] = {}  # session -> its last tick
        self._sent: dict[str, float] = {}  # session -> the interval its timer was last given
        self._lock = threading.Lock()

    def interval(self, session: str, now: float | None = None) -> float:
        """Note a tick of `session`; the interval every tab should tick at now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._seen[session] = now
            if min(self._seen.values()) < now - self.window:
                self._seen = {k: t for k, t in self._seen.items() if t >= now - self.window}
                self._sent = {k: v for k, v in self._sent.items() if k in self._seen}
            n = len(self._seen)
        return min(self.slowest, max(self.fastest, math.ceil(2 * n / self.budget) / 2))

    def update(self, session: str, now: float | None = None) -> float | None:
        """Note a tick; the interval to give this session's timer, or None when it already ticks at it."""
        every = self.interval(session, now)
        with self._lock:
            if self._sent.get(session, self.fastest) == every:
                return None
            self._sent[session] = every
        return every


class Lab:
    """The lab's actions for one server: start, pause, step, stop, watch, compare, export."""

    HELD = 48  # recent chart builds kept, so a tab a few versions behind still gets a delta

    def __init__(self, manager: RunManager, shared: bool = False, tick_budget: float = 12.0):
        self.manager, self.store, self.shared = manager, manager.store, shared
        self.pacer = TickPacer(tick_budget)
        self._labels: dict[str, str] = {}
        self._numbers: dict[str, int | None] = {}
        self._columns: dict[str, figures.Columns] = {}  # per run, read incrementally tick after tick
        self._charts = SharedBuilds()
        self._held: collections.OrderedDict[tuple, list] = collections.OrderedDict()  # (key, version) -> figures
        self._held_lock = threading.Lock()
        self._payloads = SharedBuilds(max_age=0.0, size=256)  # full and delta JSON, built once for all tabs
        self._samples = SharedBuilds()

    # -------------------------------------------------------------------------------------------- runs

    def status(self, run_id: str | None) -> dict[str, Any] | None:
        if not run_id:
            return None
        try:
            return self.manager.status(run_id)
        except (ValueError, OSError):
            return None

    def mine(self, owner: str, run_id: str | None) -> bool:
        st = self.status(run_id)
        return bool(st) and (st.get("owner") == owner or not self.shared)

    def active(self, run_id: str | None) -> bool:
        st = self.status(run_id)
        return bool(st) and st.get("state") in ACTIVE

    def visible_runs(self, owner: str) -> list[dict[str, Any]]:
        """Runs this session may watch, newest first."""
        runs = self.manager.runs()
        if self.shared:
            runs = [r for r in runs if r.get("owner") == owner or r.get("published")]
        return runs[::-1]

    def run_choices(self, owner: str) -> list[tuple[str, str]]:
        out = []
        for r in self.visible_runs(owner):
            when = time.strftime("%H:%M", time.localtime(r.get("created") or 0))
            you = " (yours)" if r.get("owner") == owner else ""
            progress = f"{r.get('state')} {r.get('step', 0)}/{r.get('steps', '?')}"
            out.append((f"{r.get('name') or r.get('recipe')} · {progress} · {when} · {r['run_id'][-6:]}{you}",
                        r["run_id"]))
        return out

    TABLE_HEADERS = ["overlay", "colour", "run", "differs from its recipe", "state", "steps", "reward", "KL", "id"]

    def run_table(self, owner: str, shown: str | None, overlay: list[str] | None) -> list[list[Any]]:
        """The runs table (as TensorBoard's and W&B's): one row per run this session may overlay on the run shown,
        newest first, with its colour, name, what differs from its recipe, state, steps, and its last reward and
        KL. Runs without a step record are left out (nothing to draw)."""
        overlay = [r for r in overlay or [] if r != shown]
        runs = [r for r in self.visible_runs(owner) if r["run_id"] != shown]
        rows = []
        for r in runs:
            try:
                records = self.store.metrics(r["run_id"])
            except (ValueError, OSError):
                continue
            if records:
                rows.append((r, records[-1]))
        order = ([shown] if shown else []) + overlay + [r["run_id"] for r, _ in rows if r["run_id"] not in overlay]
        colors = figures.assign_colors([(rid, self.number(rid)) for rid in order])
        out = []
        for r, last in rows:
            rid = r["run_id"]
            cfg = self.config(rid)
            differs = ", ".join(f"{k.split('.', 1)[1]}={b}" for k, _, b in settings.diff_items(cfg)) if cfg else ""
            you = " (yours)" if r.get("owner") == owner else ""
            swatch = f'<span style="color:{colors[rid]};font-size:18px" title="{colors[rid]}">■</span>'
            kl = last.get("kl/mean")
            out.append([rid in overlay, swatch, f"{r.get('name') or r.get('recipe')}{you}", differs or "-",
                        STATE_TEXT.get(r.get("state"), r.get("state")), f"{last.get('step', 0)}/{r.get('steps', '?')}",
                        round(last.get("reward/mean", float("nan")), 4),
                        round(kl, 4) if isinstance(kl, (int, float)) else None, rid[-6:]])
        return out

    def overlay_ids(self, owner: str, rows: list[list[Any]] | None) -> list[str]:
        """The run ids ticked in the runs table (rows name runs by their last six characters)."""
        by_tail = {r["run_id"][-6:]: r["run_id"] for r in self.visible_runs(owner)}
        return [by_tail[row[-1]] for row in rows or [] if row and row[0] is True and row[-1] in by_tail]

    def latest_active(self, owner: str) -> str | None:
        mine = [r for r in self.manager.runs() if r.get("owner") == owner and r.get("state") in ACTIVE]
        return mine[-1]["run_id"] if mine else None

    def config(self, run_id: str | None) -> C.Config | None:
        """The settings a run was started with (None for no run, or one whose config cannot be read)."""
        if not run_id:
            return None
        try:
            return self.store.config(run_id)
        except (C.ConfigError, OSError, ValueError):
            return None

    def label(self, run_id: str) -> str:
        if run_id not in self._labels:
            try:
                self._labels[run_id] = settings.run_label(self.store.config(run_id))
            except (C.ConfigError, OSError, ValueError):
                self._labels[run_id] = run_id
        return self._labels[run_id]

    # -------------------------------------------------------------------------------------------- control

    def start(self, owner: str, values: Mapping[str, Any], paused: bool = False) -> tuple[str | None, list]:
        """Submit a run with the controls' settings. Returns (run id, []) or (None, problems)."""
        try:
            cfg = settings.controls_to_config(values)
        except C.ConfigError:
            return None, settings.every_problem(values, self.manager.limits)
        try:
            return self.manager.submit(cfg, owner, paused=paused), []
        except C.ConfigError as e:
            return None, e.problems

    def act(self, owner: str, run_id: str | None, action: str) -> str:
        """pause, resume, toggle, step or stop the session's run. Returns a problem ('' when done)."""
        st = self.status(run_id)
        if not st or st.get("state") not in ACTIVE:
            return "" if action == "stop" else "No run is going: press Start."
        if not self.mine(owner, run_id):
            return "You are watching someone else's run: only its owner can control it."
        if action == "toggle":
            action = "resume" if st["state"] == "paused" else "pause"
        try:
            getattr(self.manager, {"step": "step_once"}.get(action, action))(run_id)
        except KeyError as e:
            return str(e)
        return ""

    def set_live(self, owner: str, run_id: str | None, lr: Any, kl_coef: Any, temperature: Any) -> str:
        """Apply the hot parameters to the session's going run. Returns a note for the status area."""
        if not self.active(run_id):
            return ""
        if not self.mine(owner, run_id):  # a watched run of another session: refused, and said so
            return problems_html(["this run is another session's: only its owner can change it live. Your edits "
                                  "prepare your next run."], "Live change not applied")
        try:
            self.manager.set_live(run_id, lr=float(lr), kl_coef=float(kl_coef),
                                  temperature=float(temperature))
        except (C.ConfigError, TypeError, ValueError) as e:
            return problems_html(getattr(e, "problems", [str(e)]), "Live change not applied")
        except KeyError:
            return ""
        return (f'<div class="rl-live">Live: lr {float(lr):g}, β {float(kl_coef):g}, temperature '
                f'{float(temperature):g} apply from the next step.</div>')

    def publish(self, owner: str, run_id: str | None) -> str:
        st = self.status(run_id)
        if not st or st.get("owner") != owner:
            return "Only your own runs can be published."
        self.manager.publish(run_id)
        return "Published: everyone on this server can now watch and compare this run."

    def export(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        out = Path(tempfile.gettempdir()) / "rlhf-lab-exports"
        out.mkdir(parents=True, exist_ok=True)
        return str(self.store.export_zip(run_id, out / f"{run_id}.zip"))

    # -------------------------------------------------------------------------------------------- views

    def run_views(self, run_id: str | None, compare: list[str] | None) -> list[figures.RunView]:
        ids = ([run_id] if run_id else []) + [r for r in (compare or []) if r and r != run_id]
        views = []
        for rid in ids:
            try:
                views.append(figures.RunView(rid, self.label(rid), self.store.metrics(rid),
                                             self._columns.setdefault(rid, figures.Columns())))
            except (ValueError, OSError):
                continue
        labels = [v.label for v in views]
        colors = figures.assign_colors([(v.run_id, self.number(v.run_id)) for v in views])
        return [figures.RunView(v.run_id, f"{v.label} #{v.run_id[-4:]}" if labels.count(v.label) > 1 else v.label,
                                v.records, v.columns, colors[v.run_id]) for v in views]

    def number(self, run_id: str) -> int | None:
        """The run's creation number on this server (its colour), None for runs made before numbers."""
        if run_id not in self._numbers:
            st = self.status(run_id) or {}
            self._numbers[run_id] = st.get("seq")
        return self._numbers[run_id]

    def charts_payload(self, run_id: str | None, compare: list[str] | None, smoothing: float,
                       x: str, since: list | None = None) -> tuple[list, str]:
        """(signature, chart-grid JSON) for these runs and view settings, shared by every tab (see SharedBuilds).

        `since`: the signature of what this tab last received. When it shows the same runs with the same view
        settings, and those figures are still held, the JSON is only what changed since (`app.chart_delta`):
        during a run, the new points."""
        views = self.run_views(run_id, compare)
        key = (run_id, tuple(v.run_id for v in views), float(smoothing), x)
        version = tuple(len(v.records) for v in views)

        def build():
            figs = figures.build_figures(views, smoothing, x)
            with self._held_lock:
                self._held[(key, version)] = figs
                while len(self._held) > self.HELD:
                    self._held.popitem(last=False)
            return figs

        used, figs = self._charts.get(key, version, build)
        sig = [*key[:2], list(used), *key[2:]]
        tag = f"{zlib.crc32(repr(key).encode()):08x}:" + "-".join(map(str, used))
        base = self._base(key, since)
        with self._held_lock:
            old = self._held.get((key, base)) if base is not None else None
        if base == tuple(used):  # the tab holds these already (a tick that sends nothing, in practice)
            return sig, chart_delta.delta_payload([], [], tag, tag)
        if old is None:
            return sig, self._payloads.get(("full", key), tuple(used), lambda: chart_delta.full_payload(figs, tag))[1]
        since_tag = f"{zlib.crc32(repr(key).encode()):08x}:" + "-".join(map(str, base))
        return sig, self._payloads.get(("delta", key, base), tuple(used),
                                       lambda: chart_delta.delta_payload(old, figs, since_tag, tag))[1]

    @staticmethod
    def _base(key: tuple, since: list | None) -> tuple | None:
        """The record counts a tab holds if its last signature `since` is of these runs and view settings."""
        if not since or len(since) != 5:
            return None
        run_id, ids, used, smoothing, x = since
        same = run_id == key[0] and tuple(ids or ()) == key[1] and float(smoothing) == key[2] and x == key[3]
        return tuple(used) if same else None

    def samples_view(self, run_id: str | None, step: int | None, quantity: str,
                     page: int | None = 1) -> tuple[int, str, list, list]:
        """(version, grouped HTML, table rows, logged steps) of the samples at `step` (None: the latest), page
        `page` of its groups (app.samples), shared across tabs like the charts."""
        steps = self.samples_at(run_id, None)[1] if run_id else []
        version = steps[-1] if step is None and steps else step
        page = max(1, int(page or 1))

        def build():
            rows, _ = self.samples_at(run_id, step)
            book = samples.pages(rows)
            on_page = [s for g in book[min(page, len(book)) - 1] for s in g] if book else []
            return samples.samples_html(rows, quantity, page), samples.samples_rows(on_page), steps

        used, (shown, table, at) = self._samples.get((run_id, step is None, quantity, page), version, build)
        return used, shown, table, at

    def step_at(self, run_id: str | None, x: Any, axis: str) -> int | None:
        """The step of a chart's x value: the step itself, or the step whose record's time is nearest."""
        if not run_id or not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
            return None
        if axis == "step":
            return int(round(x))
        try:
            records = self.store.metrics(run_id)
        except (ValueError, OSError):
            return None
        timed = [r for r in records if isinstance(r.get("time"), (int, float)) and "step" in r]
        return min(timed, key=lambda r: abs(r["time"] - x))["step"] if timed else None

    def samples_at(self, run_id: str | None, step: int | None) -> tuple[list[dict[str, Any]], list[int]]:
        if not run_id:
            return [], []
        try:
            return self.store.samples(run_id, step), self.store.sample_steps(run_id)
        except (ValueError, OSError):
            return [], []

    def details(self, run_id: str | None, owner: str = "") -> dict[str, Any]:
        """The run's status plus how many step records it has and its latest one (the public status API).
        `yours` says whether `owner` may control it; the owner id itself is never returned."""
        st = self.status(run_id)
        if not st:
            return {"state": "none", "records": 0}
        rows = self.store.metrics(run_id)
        public = {k: v for k, v in st.items() if k != "owner"}
        return {**public, "yours": self.mine(owner, run_id), "records": len(rows), "last": rows[-1] if rows else None}

    def empty_samples(self) -> str:
        return samples.samples_html([])

"""Pure figure builders: step records -> Plotly figure dicts for the live charts.

A chart is a list of `Series` (metric keys) drawn for one or more runs. Each series is smoothed with the
debiased exponential moving average TensorBoard uses (the raw line stays, faint), then downsampled server-side
to at most `MAX_POINTS` points per trace (min/max buckets for the raw line, so spikes survive; an even stride
for the smooth one; buckets fixed from the first step, so a growing trace keeps its earlier points). One run: each series has its own colour. Several runs (compare): each run has its colour (`RunView.color`,
given by `assign_colors`: by creation order, distinct on screen), and series are told apart by dash.

Every layout carries a constant `uirevision`, so `Plotly.react` keeps the user's zoom and hidden traces
across updates (it changes only with the x axis). Traces carry stable `uid`s for the same reason.
Left out: log axes and outlier-robust y ranges (Plotly's own zoom covers them).
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_POINTS = 500

# Colours: series of one run (first is the lab's blue), and runs when comparing (a stable hash picks one).
SERIES_COLORS = ("#2563eb", "#ea580c", "#059669", "#7c3aed", "#db2777", "#0891b2", "#ca8a04", "#475569")
RUN_COLORS = ("#2563eb", "#ea580c", "#059669", "#7c3aed", "#db2777", "#0891b2", "#ca8a04", "#dc2626",
              "#4f46e5", "#65a30d", "#0d9488", "#c026d3")
DASHES = ("solid", "dash", "dot", "dashdot")
FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    axis: str = "y"        # "y2": the right-hand axis, for a quantity on another scale
    dash: str = "solid"
    smooth: bool = True    # False for a setting (β): its steps are exact, an average would blur them


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    series: tuple[Series, ...]
    y_title: str = ""
    y2_title: str = ""


CHARTS: tuple[Chart, ...] = (
    Chart("reward", "Reward", (Series("reward/mean", "mean"),), "reward"),
    Chart("kl", "KL", (Series("kl/mean", "KL to ref"), Series("approx_kl", "approx KL", dash="dash"),
                       Series("kl/coef", "β", axis="y2", dash="dot", smooth=False)), "KL", "β"),
    Chart("clip", "Clip fraction", (Series("clip/frac_low", "low"), Series("clip/frac_high", "high"),
                                    Series("clip/frac", "all", dash="dot")), "fraction of tokens"),
    # the live knobs are drawn as the settings they are (unsmoothed, on the right axis): temperature beside the
    # entropy it shapes, the learning rate beside the loss it scales
    Chart("entropy", "Entropy", (Series("entropy/mean", "entropy"),
                                 Series("temperature", "temperature", axis="y2", dash="dot", smooth=False)),
          "nats per token", "temperature"),
    Chart("loss", "Loss", (Series("loss/policy", "policy"), Series("loss/value", "value"),
                           Series("loss/kl", "KL"), Series("lr", "lr", axis="y2", dash="dot", smooth=False)),
          "loss", "learning rate"),
    Chart("advantage", "Advantage", (Series("adv/mean", "mean"), Series("adv/std", "std"),
                                     Series("groups/zero_std_frac", "flat groups", axis="y2", dash="dot")),
          "advantage", "fraction of groups"),
    Chart("length", "Length and EOS rate", (Series("len/mean", "length"),
                                             Series("eos/rate", "EOS rate", axis="y2")),
          "tokens", "EOS rate"),
    Chart("gradvar", "Gradient variance", (Series("grad/variance", "variance"),
                                           Series("grad/norm", "grad norm", axis="y2", dash="dot")),
          "variance", "norm"),
    Chart("ratio", "Ratio", (Series("ratio/mean", "mean ρ"), Series("ratio/max", "max ρ", dash="dot")),
          "π/π_old"),
)
X_TITLES = {"step": "step", "time": "time (s)"}


class Columns:
    """A run's step records as per-metric columns of finite values, extended incrementally.

    Records only ever grow, so `update` reads just the new ones: a tick on a 1,000-step run costs the one new
    record, not 1,000 dict lookups per metric. One Columns is shared by every tab watching the run, and tabs
    tick on several server threads: `lock` guards `update` and the trace builds that read the columns.
    """

    def __init__(self, records: Sequence[dict[str, Any]] = ()):
        self.lock = threading.RLock()
        self.n = 0
        # key -> (steps, times, values)
        self.cols: dict[str, tuple[list[float], list[float], list[float]]] = {}
        self._ema: dict[str, list[Any]] = {}  # key -> [smoothed values, last, debias] for `_ema_weight`
        self._ema_weight = -1.0
        self.traces: dict[tuple, list[dict[str, Any]]] = {}  # built traces, valid while no record arrives
        self.events: list[tuple[Any, Any, dict[str, float]]] = []  # live changes: (step, time, {name: value})
        self.update(records)

    def update(self, records: Sequence[dict[str, Any]]) -> None:
        with self.lock:
            self._extend(records)

    def _extend(self, records: Sequence[dict[str, Any]]) -> None:
        if len(records) > self.n:
            self.traces = {}
        for r in records[self.n:]:
            step, t = r.get("step"), r.get("time")
            if isinstance(r.get("live"), dict):
                self.events.append((step, t, r["live"]))
            for k, v in r.items():
                if type(v) in (float, int) and math.isfinite(v):
                    c = self.cols.get(k)
                    if c is None:
                        c = self.cols[k] = ([], [], [])
                    c[0].append(step)
                    c[1].append(t)
                    c[2].append(v)
        self.n = max(self.n, len(records))

    def xy(self, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(xs, ys) of one metric; records without it (or with a non-finite value) are skipped."""
        c = self.cols.get(key)
        if c is None:
            return [], []
        xs = c[0] if x == "step" else c[1]
        if None in xs:
            keep = [i for i, v in enumerate(xs) if v is not None]
            return [xs[i] for i in keep], [c[2][i] for i in keep]
        return xs, c[2]

    def keys(self) -> list[str]:
        with self.lock:
            return list(self.cols)

    def smoothed(self, key: str, weight: float) -> list[float]:
        """`ema(values of key, weight)`, extended by the new values only (one smoothing weight is kept)."""
        ys = self.cols[key][2] if key in self.cols else []
        if weight <= 0:
            return ys
        if weight != self._ema_weight:
            self._ema, self._ema_weight = {}, weight
        out, last, debias = self._ema.setdefault(key, [[], 0.0, 0.0])
        for y in ys[len(out):]:  # the same recurrence as `ema`
            last = last * weight + (1.0 - weight) * y
            debias = debias * weight + (1.0 - weight)
            out.append(last / debias)
        self._ema[key][1:] = [last, debias]
        return out


@dataclass
class RunView:
    """One run to draw: its id (for colour and trace ids), its legend label and its step records.

    `columns` may be passed in (and kept between ticks) to read only new records; else it is built here.
    """
    run_id: str
    label: str
    records: Sequence[dict[str, Any]]
    columns: Columns | None = None
    color: str = ""        # its colour when compared; "" falls back to a hash of the id

    def __post_init__(self) -> None:
        if self.columns is None:
            self.columns = Columns(self.records)
        else:
            self.columns.update(self.records)


# ------------------------------------------------------------------------------------------------ numerics


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average: s_n = sum_i w^(n-i) (1-w) y_i / (1 - w^n).

    Dividing by 1 - w^n removes the pull towards 0 that a zero-initialised average has at the start.
    """
    if weight <= 0 or not values:
        return list(values)
    out, last, debias = [], 0.0, 0.0
    for y in values:
        last = last * weight + (1.0 - weight) * y
        debias = debias * weight + (1.0 - weight)
        out.append(last / debias)
    return out


def downsample_indices(ys: Sequence[float], max_points: int = MAX_POINTS, minmax: bool = True) -> np.ndarray:
    """Indices to keep, in order, at most `max_points`, always the first and the last.

    minmax: the smallest and the largest value of each bucket (spikes survive); else one point per bucket.
    Buckets are `size` points wide, `size` a power of two, from the start: as a run grows, every bucket but the
    last keeps its points until `size` doubles, so a live chart's earlier points stay put (`app.chart_delta`
    then resends only the tail).
    """
    n = len(ys)
    if n <= max_points:
        return np.arange(n)
    per_bucket = 2 if minmax else 1
    buckets = max(1, (max_points - 2) // per_bucket)
    size = 1 << max(0, math.ceil(math.log2((n - 2) / buckets)))
    while math.ceil((n - 2) / size) > buckets:  # float rounding at an exact power of two
        size *= 2
    if not minmax:
        idx = np.arange(1, n - 1, size)
        return np.concatenate(([0], idx[idx > 0], [n - 1]))
    inner = np.asarray(ys[1:-1], dtype=float)
    count = math.ceil(len(inner) / size)
    padded = np.full(count * size, np.nan)
    padded[: len(inner)] = inner
    grid = padded.reshape(count, size)
    full = ~np.all(np.isnan(grid), axis=1)
    grid = grid[full]
    offsets = np.arange(count)[full] * size + 1
    lo = np.nanargmin(grid, axis=1) + offsets
    hi = np.nanargmax(grid, axis=1) + offsets
    idx = np.sort(np.concatenate(([0], lo, hi, [n - 1])))
    return idx[np.concatenate(([True], idx[1:] != idx[:-1]))]


def _round(values: np.ndarray, digits: int = 4) -> list[float]:
    """`digits` significant digits of each value (at most 12 decimals; hovers show 4): smaller JSON, no visible
    change. Each
    value is rounded on its own, so a trace that grows keeps its earlier points exactly (`app.chart_delta` then
    sends only the new ones)."""
    if values.size == 0:
        return []
    if values.dtype.kind in "iu":  # steps
        return values.tolist()
    v = values.astype(float)
    mag = np.floor(np.log10(np.abs(v), out=np.zeros_like(v), where=(v != 0) & np.isfinite(v)))
    scale = 10.0 ** np.clip(digits - 1 - mag, 0, 12)  # exact powers of ten
    return (np.round(v * scale) / scale).tolist()


def series_xy(records: Sequence[dict[str, Any]], key: str, x: str = "step") -> tuple[list, list]:
    """(xs, ys) of one metric straight from records (`Columns.xy` does the same incrementally)."""
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if v is None or isinstance(v, bool) or not math.isfinite(v) or r.get(x) is None:
            continue
        xs.append(r[x])
        ys.append(v)
    return xs, ys


def uid(group: str, kind: str) -> str:
    """A trace id Plotly can also use in CSS selectors (it builds class names from it): [A-Za-z0-9_-] only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{group}_{kind}")


def run_color(run_id: str) -> str:
    """A stable colour for a run without a creation number (crc32, not Python's salted hash)."""
    return RUN_COLORS[zlib.crc32(run_id.encode()) % len(RUN_COLORS)]


def assign_colors(runs: Sequence[tuple[str, int | None]]) -> dict[str, str]:
    """Colours of the runs on screen, given (run id, creation number or None), the watched run first.

    Each run has its own colour, RUN_COLORS[number % 12], so consecutive runs always differ and a run keeps its
    colour from view to view. When two on screen would share one, the later takes the first colour not yet
    on screen: runs drawn together are always distinct (up to 12 of them).
    """
    wanted = {run_id: RUN_COLORS[n % len(RUN_COLORS)] if n is not None else run_color(run_id) for run_id, n in runs}
    out: dict[str, str] = {}
    for run_id, color in wanted.items():  # first come keeps its own
        if color not in out.values():
            out[run_id] = color
    for run_id, color in wanted.items():  # the rest take a colour no run on screen wants
        if run_id not in out:
            free = [c for c in RUN_COLORS if c not in out.values()]
            out[run_id] = next((c for c in free if c not in wanted.values()), free[0] if free else color)
    return {run_id: out[run_id] for run_id in wanted}


def chart_series(chart: Chart, runs: Sequence[RunView]) -> tuple[Series, ...]:
    """The chart's series; the reward chart adds one line per reward function found in the records."""
    if chart.id != "reward":
        return chart.series
    fns: list[str] = []
    for run in runs:
        fns += [k for k in run.columns.keys() if k.startswith("reward/") and k.endswith("/mean")
                and k.count("/") == 2 and k not in fns]
    extra = tuple(Series(k, k.split("/")[1], dash="dot") for k in fns)
    return chart.series + extra if len(fns) > 1 else chart.series


# ------------------------------------------------------------------------------------------------ figures


def _traces(run: RunView, s: Series, color: str, dash: str, name: str, group: str, ident: str,
            smoothing: float, x: str, max_points: int, raw_line: bool) -> list[dict[str, Any]]:
    """The smoothed trace (and the faint raw one) of one series of one run; cached until a record arrives."""
    smoothing = smoothing if s.smooth else 0.0
    key = (s, color, dash, name, group, ident, smoothing, x, max_points, raw_line)
    with run.columns.lock:  # another tab's tick may be extending these columns right now
        if key not in run.columns.traces:
            run.columns.traces[key] = _build_traces(run, s, color, dash, name, group, ident, smoothing, x,
                                                    max_points, raw_line)
        return [dict(t) for t in run.columns.traces[key]]  # callers may set yaxis/showlegend on their copy


def _build_traces(run: RunView, s: Series, color: str, dash: str, name: str, group: str, ident: str,
                  smoothing: float, x: str, max_points: int, raw_line: bool) -> list[dict[str, Any]]:
    xs, ys = run.columns.xy(s.key, x)
    base = {"type": "scatter", "mode": "lines", "legendgroup": group, "yaxis": s.axis,
            "line": {"color": color, "dash": dash, "width": 2}}
    xa, ya = np.asarray(xs), np.asarray(ys, dtype=float)  # steps stay integers
    whole = len(ys) == len(run.columns.cols[s.key][2]) if ys else True  # nothing filtered out by a missing x
    smooth = np.asarray(run.columns.smoothed(s.key, smoothing) if whole else ema(ys, smoothing), dtype=float)
    keep = downsample_indices(smooth, max_points, minmax=False)
    mode = "lines+markers" if len(xs) <= 1 else "lines"
    main = {**base, "uid": uid(ident, "s"), "name": name, "mode": mode, "x": _round(xa[keep], 6),
            "y": _round(smooth[keep]), "hovertemplate": "%{y:.4g}"}
    if smoothing <= 0 or not raw_line:  # the raw line from the first point (empty until the second): a tick
        return [main]                     # then sends the new points, not every chart again
    raw_keep = downsample_indices(ys, max_points)
    raw = {**base, "uid": uid(ident, "r"), "name": f"{name} (raw)", "showlegend": False, "opacity": 0.25,
           "hoverinfo": "skip", "x": _round(xa[raw_keep], 6), "y": _round(ya[raw_keep]),
           "line": {"color": color, "dash": dash, "width": 1}}
    return [raw, main]


def chart_layout(chart: Chart, x: str, has_y2: bool, legend: bool, empty_note: str = "") -> dict[str, Any]:
    grid = "rgba(100, 116, 139, 0.15)"
    axis = {"tickmode": "auto", "nticks": 6, "gridcolor": grid, "zeroline": False,
            "linecolor": "rgba(100,116,139,0.4)", "ticks": "outside",
            "tickcolor": "rgba(100,116,139,0.4)", "automargin": True}
    layout: dict[str, Any] = {
        "title": {"text": chart.title, "x": 0.01, "xanchor": "left", "y": 0.985, "yref": "container",
                  "yanchor": "top", "font": {"size": 16, "color": "#0f172a"}},
        "uirevision": f"rl-{x}",  # constant: Plotly.react keeps zoom and legend state across updates
        "autosize": True, "margin": {"l": 52, "r": 52 if has_y2 else 16, "t": 34, "b": 40},  # height: the CSS
        "xaxis": {**axis, "title": {"text": X_TITLES.get(x, x), "standoff": 4}},
        "yaxis": {**axis, "title": {"text": chart.y_title, "standoff": 4}},
        "hovermode": "x unified", "showlegend": legend,
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "xanchor": "left",
                   "font": {"size": 12}, "bgcolor": "rgba(0,0,0,0)", "groupclick": "togglegroup",
                   "itemwidth": 30, "tracegroupgap": 0},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "size": 13, "color": "#334155"},  # readable from the back of a room
        "annotations": [],
    }
    if legend:  # the legend takes a row between the title and the plot
        layout["margin"]["t"] = 58
    if has_y2:
        layout["yaxis2"] = {**axis, "overlaying": "y", "side": "right", "showgrid": False,
                            "title": {"text": chart.y2_title, "standoff": 4}, "rangemode": "tozero"}
    if empty_note:  # no axes around nothing: just the note
        for ax in ("xaxis", "yaxis"):
            layout[ax]["visible"] = False
        layout["annotations"].append({"text": empty_note, "xref": "paper", "yref": "paper", "x": 0.5,
                                      "y": 0.5, "showarrow": False, "font": {"size": 12, "color": "#94a3b8"}})
    return layout


def fit_axes(layout: dict[str, Any], drawn: Sequence[dict[str, Any]], x: str) -> None:
    """Axes for what is drawn: a constant series gets a small range around its value (Plotly's own is -1..1
    around it, which reads as a swing), and a few steps get whole-number ticks (one point gave 0.5, 1.5)."""
    for axis, name in (("y", "yaxis"), ("y2", "yaxis2")):
        ys = {v for t in drawn if t["yaxis"] == axis for v in t["y"]}
        if len(ys) == 1 and name in layout:
            v = next(iter(ys))
            pad = abs(v) * 0.1 or 0.05
            layout[name]["range"] = [v - pad, v + pad]
    if x == "step" and drawn:
        last = max((max(t["x"]) for t in drawn if len(t["x"])), default=0)
        layout["xaxis"].update({"tickmode": "linear", "tick0": 0, "dtick": 1} if last <= 6 else {"tickformat": "d"})


LIVE_NAMES = {"lr": "lr", "kl_coef": "β", "temperature": "T"}


def live_marks(run: RunView, x: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(shapes, annotations): a dotted vertical line at each step where a live change took effect, labelled
    with the new values (`lr 0.002`)."""
    shapes, notes = [], []
    with run.columns.lock:
        events = list(run.columns.events)
    for step, t, changes in events:
        at = step if x == "step" else t
        if at is None:
            continue
        text = ", ".join(f"{LIVE_NAMES.get(k, k)} {v:g}" for k, v in changes.items())
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1,
                       "line": {"color": "#64748b", "width": 1, "dash": "dot"}, "name": "live"})
        notes.append({"text": text, "x": at, "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom",
                      "xanchor": "left", "showarrow": False, "font": {"size": 10, "color": "#64748b"},
                      "name": "live"})
    return shapes, notes


DASH_GLYPHS = {"solid": "——", "dash": "– –", "dot": "···", "dashdot": "–·–"}


def chart_figure(chart: Chart, runs: Sequence[RunView], smoothing: float = 0.6, x: str = "step",
                 max_points: int = MAX_POINTS) -> dict[str, Any]:
    """{"id", "data", "layout"} of one chart for `runs` (the first is the run being watched).

    One run: a legend entry per series. Several: one entry per run (its colour; a click hides the whole run
    in this chart), series told apart by dash, with the dash key in the title.
    """
    series = chart_series(chart, runs)
    compare = len(runs) > 1
    data: list[dict[str, Any]] = []
    for run in runs:
        for i, s in enumerate(series):
            ident = f"{run.run_id}:{s.key}"
            if compare:
                color, dash = run.color or run_color(run.run_id), DASHES[i % len(DASHES)]
                name, group = run.label, run.run_id
            else:
                color, dash, name, group = SERIES_COLORS[i % len(SERIES_COLORS)], s.dash, s.label, ident
            # Raw lines only for the watched run: overlays stay readable (and the payload small).
            data += _traces(run, s, color, dash, name, group, ident, smoothing, x, max_points,
                            raw_line=run is runs[0])
    entries: set[str] = set()
    for t in data:
        if not len(t["x"]) or t.get("showlegend") is False or t["legendgroup"] in entries:
            t["showlegend"] = False  # empty (a metric this recipe does not log), raw, or a run already listed
        else:
            entries.add(t["legendgroup"])
    drawn = [t for t in data if len(t["x"])]
    note = "" if drawn else ("no run yet: press Start" if not runs else
                             "waiting for the first step…" if not any(r.records for r in runs)
                             else "not logged by this recipe")
    has_y2 = any(t["yaxis"] == "y2" for t in drawn)
    for t in data:
        t["yaxis"] = "y2" if t["yaxis"] == "y2" and has_y2 else "y"
    layout = chart_layout(chart, x, has_y2, len(entries) > 1, note)
    fit_axes(layout, drawn, x)
    if runs and drawn:
        layout["shapes"], marks = live_marks(runs[0], x)
        layout["annotations"] += marks
    if compare and len(series) > 1:
        key = "  ".join(f"{DASH_GLYPHS[DASHES[i % len(DASHES)]]} {s.label}" for i, s in enumerate(series))
        layout["title"]["text"] += f"  <span style='font-size:10.5px;color:#64748b'>{key}</span>"
    return {"id": chart.id, "data": data, "layout": layout}


def build_figures(runs: Sequence[RunView], smoothing: float = 0.6, x: str = "step",
                  max_points: int = MAX_POINTS) -> list[dict[str, Any]]:
    """Every chart of the lab for `runs`, in display order."""
    return [chart_figure(c, runs, smoothing, x, max_points) for c in CHARTS]

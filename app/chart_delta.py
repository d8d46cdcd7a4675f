"""What a tick sends to the chart grid: the new points only, when the charts only grew.

A running run adds a few step records between two ticks, and redrawing means most traces gained a few points at
their end while everything else stayed. So a tick compares the figures the tab last received (`base`) with the
current ones, chart by chart (`chart_delta`):
- unchanged: the chart is left out;
- every trace is its old self plus points at the end, layout unchanged: an `extend` entry with only the new
  points of the traces that grew (a downsampled trace's last bucket may be redone: the entry says how many old
  points to keep);
- anything else (a layout change such as a live-change mark or new axis ticks, a trace added, a downsampled
  trace that shifted, re-rounded values): the whole chart.

The payload is JSON: {"v": version, "base": version or null, "charts": [whole charts], "extend": [...]}.
`base` null means a full payload: the grid draws exactly its charts. Otherwise the client holds version `base`
and applies the rest (`apply`, which the browser's code in `app.charts` mirrors); a client that holds another
version asks for a full payload instead of drawing a gap.
Left out: windowing (`maxPoints` of Plotly.extendTraces). A long run's downsampled trace is resent whole when
its buckets double in width (`app.figures.downsample_indices`).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

XY = ("x", "y")


def _prefix(a: list, b: list) -> int:
    """How many leading items `a` and `b` share."""
    if b[: len(a)] == a:
        return len(a)
    k = 0
    for u, v in zip(a, b):
        if u != v:
            break
        k += 1
    return k


def chart_delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """None if `new` equals `old`; {"id", "traces", "keep", "x", "y"} if each changed trace of `new` is the first
    `keep` points of its `old` self (at least half of them) followed by new points `x`, `y` (one entry per trace
    index in `traces`): appended steps, and the last bucket of a downsampled trace redone; else {"full": new}."""
    if old["layout"] != new["layout"] or len(old["data"]) != len(new["data"]):
        return {"full": new}
    traces, keep, xs, ys = [], [], [], []
    for i, (a, b) in enumerate(zip(old["data"], new["data"])):
        if any(a.get(k) != b.get(k) for k in (a.keys() | b.keys()) - set(XY)):
            return {"full": new}
        n = len(a["x"])
        k = min(_prefix(a["x"], b["x"]), _prefix(a["y"], b["y"]))
        if k == n == len(b["x"]):
            continue
        if k < n // 2:  # mostly redrawn (a downsampled trace's buckets doubled): send it whole
            return {"full": new}
        traces.append(i)
        keep.append(k)
        xs.append(b["x"][k:])
        ys.append(b["y"][k:])
    if not traces:
        return None
    return {"id": new["id"], "traces": traces, "keep": keep, "x": xs, "y": ys}


def full_payload(figs: list[dict[str, Any]], version: str) -> str:
    """Every chart, whole: the grid draws exactly these."""
    return orjson.dumps({"v": version, "base": None, "charts": figs, "extend": []}).decode()


def delta_payload(old: list[dict[str, Any]], new: list[dict[str, Any]], base: str, version: str) -> str:
    """What turns the charts of version `base` (`old`) into those of `version` (`new`)."""
    before = {f["id"]: f for f in old}
    whole, extend = [], []
    for fig in new:
        d = chart_delta(before[fig["id"]], fig) if fig["id"] in before else {"full": fig}
        if d is None:
            continue
        if "full" in d:
            whole.append(d["full"])
        else:
            extend.append(d)
    return orjson.dumps({"v": version, "base": base, "charts": whole, "extend": extend}).decode()


def apply(held: dict[str, dict[str, Any]], version: str | None, payload: str) -> tuple[dict, str | None]:
    """What the browser does with a payload, given the charts it holds (id -> chart) at `version`: returns the
    charts it holds afterwards and their version. A delta on another version than `base` is a gap: the client
    keeps what it has and asks for a full payload (here: raises)."""
    spec = orjson.loads(payload)
    if spec["base"] is None:
        return {c["id"]: c for c in spec["charts"]}, spec["v"]
    if spec["base"] != version:
        raise LookupError(f"a delta on version {spec['base']} reached a client at version {version}")
    out = dict(held)
    for c in spec["charts"]:
        out[c["id"]] = c
    for e in spec["extend"]:
        chart = copy.deepcopy(out[e["id"]])
        for i, k, x, y in zip(e["traces"], e["keep"], e["x"], e["y"]):
            chart["data"][i]["x"] = chart["data"][i]["x"][:k] + x
            chart["data"][i]["y"] = chart["data"][i]["y"][:k] + y
        out[e["id"]] = chart
    return out, spec["v"]

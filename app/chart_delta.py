"""What a tick sends to the chart grid: the new points only, when the charts only grew.

A running run adds a few step records between two ticks, and redrawing means most traces gained a few points at
their end while everything else stayed. So a tick compares the figures the tab last received (`base`) with the
current ones, chart by chart (`chart_delta`):
- unchanged: the chart is left out;
- every trace is its old self plus points at the end: an `extend` entry with only the new points of the traces
  that grew (a downsampled trace's last bucket may be redone: the entry says how many old points to keep), and
  the layout's top-level keys that changed (a live-change mark, whole-number step ticks given up at step 7, a
  constant series that moved: an axis or the marks, not the whole chart);
  a trace's style keys that changed (a line's second point turns its markers off) go the same way;
- anything else (a trace added, a downsampled trace that shifted, re-rounded values): the whole chart.

The payload is JSON: {"v": version, "base": version or null, "common": {...}, "charts": [whole charts],
"extend": [...]}, each whole chart's layout less what the whole charts' layouts hold alike (`common`: a third of
a full payload).
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
    index in `traces`; an `x` of None: the same as the trace before it, as a raw line and its smoothed line
    have): appended steps, and the last bucket of a downsampled trace redone; with "layout": the
    layout's top-level keys that changed (None: removed), if any did; with "style": [trace index, its keys that
    changed besides x and y], if any did; else {"full": new} (traces added or removed, most points redrawn)."""
    if len(old["data"]) != len(new["data"]):
        return {"full": new}
    traces, keep, xs, ys, last_x, styles = [], [], [], [], None, []
    for i, (a, b) in enumerate(zip(old["data"], new["data"])):
        restyled = {k: b.get(k) for k in (a.keys() | b.keys()) - set(XY) if a.get(k) != b.get(k)}
        if restyled:  # a line's second point: markers off, its legend entry on
            styles.append([i, restyled])
        n = len(a["x"])
        k = min(_prefix(a["x"], b["x"]), _prefix(a["y"], b["y"]))
        if k == n == len(b["x"]):
            continue
        if k < n // 2:  # mostly redrawn (a downsampled trace's buckets doubled): send it whole
            return {"full": new}
        traces.append(i)
        keep.append(k)
        new_x = b["x"][k:]
        xs.append(None if new_x == last_x else new_x)
        last_x = new_x
        ys.append(b["y"][k:])
    relaid = {k: new["layout"].get(k) for k in old["layout"].keys() | new["layout"].keys()
              if old["layout"].get(k) != new["layout"].get(k)}
    if not traces and not relaid and not styles:
        return None
    out = {"id": new["id"], "traces": traces, "keep": keep, "x": xs, "y": ys}
    return {**out, **({"layout": relaid} if relaid else {}), **({"style": styles} if styles else {})}


def relayout(layout: dict[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """`layout` with the top-level keys of `changed` replaced (removed where None)."""
    out = {**layout, **changed}
    return {k: v for k, v in out.items() if v is not None}


def shared(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """What every dict of `dicts` holds alike, key by key, nested dicts key by key too (the charts' layouts share
    their fonts, margins, legend and axis styles: about 1 KiB of each)."""
    out: dict[str, Any] = {}
    for k in set(dicts[0]).intersection(*dicts[1:]) if dicts else ():
        values = [d[k] for d in dicts]
        if all(isinstance(v, dict) for v in values):
            if inner := shared(values):
                out[k] = inner
        elif all(v == values[0] for v in values):
            out[k] = values[0]
    return out


def without(d: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    """`d` less what it holds alike with `common` (`merged(common, without(d, common)) == d`)."""
    out = {}
    for k, v in d.items():
        if k not in common:
            out[k] = v
        elif isinstance(v, dict) and isinstance(common[k], dict):
            if rest := without(v, common[k]):
                out[k] = rest
        elif v != common[k]:
            out[k] = v
    return out


def merged(common: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    """`common` overlaid with `d`, nested dicts key by key (what the browser does with a payload's `common`)."""
    out = dict(common)
    for k, v in d.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _dumps(version: str, base: str | None, whole: list[dict[str, Any]], extend: list[dict[str, Any]]) -> str:
    """The payload; the whole charts' layouts are sent as what they share (`common`) and what is their own."""
    common = shared([f["layout"] for f in whole]) if len(whole) > 1 else {}
    charts = [{**f, "layout": without(f["layout"], common)} for f in whole] if common else whole
    return orjson.dumps({"v": version, "base": base, "common": common, "charts": charts, "extend": extend}).decode()


def full_payload(figs: list[dict[str, Any]], version: str) -> str:
    """Every chart, whole: the grid draws exactly these."""
    return _dumps(version, None, figs, [])


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
    return _dumps(version, base, whole, extend)


def apply(held: dict[str, dict[str, Any]], version: str | None, payload: str) -> tuple[dict, str | None]:
    """What the browser does with a payload, given the charts it holds (id -> chart) at `version`: returns the
    charts it holds afterwards and their version. A delta on another version than `base` is a gap: the client
    keeps what it has and asks for a full payload (here: raises)."""
    spec = orjson.loads(payload)
    charts = [{**c, "layout": merged(spec.get("common") or {}, c["layout"])} for c in spec["charts"]]
    if spec["base"] is None:
        return {c["id"]: c for c in charts}, spec["v"]
    if spec["base"] != version:
        raise LookupError(f"a delta on version {spec['base']} reached a client at version {version}")
    out = dict(held)
    for c in charts:
        out[c["id"]] = c
    for e in spec["extend"]:
        chart = copy.deepcopy(out[e["id"]])
        if "layout" in e:
            chart["layout"] = relayout(chart["layout"], e["layout"])
        for i, changed in e.get("style", []):
            chart["data"][i] = relayout(chart["data"][i], changed)
        x = None
        for i, k, own_x, y in zip(e["traces"], e["keep"], e["x"], e["y"]):
            x = x if own_x is None else own_x
            chart["data"][i]["x"] = chart["data"][i]["x"][:k] + x
            chart["data"][i]["y"] = chart["data"][i]["y"][:k] + y
        out[e["id"]] = chart
    return out, spec["v"]

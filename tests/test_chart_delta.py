"""A tick sends what changed (issue 13): the new points of the charts, not every figure again.

Hand figures for `chart_delta`, then the lab's own tick handler on a run that grows as a default run does (the
step records of a real tiny GRPO run, added a few at a time between ticks): after the first full payload each
tick is an append of only the new steps, a few KiB, and a client that applies them holds exactly the charts a
full payload would draw.
"""

import time

import orjson
import pytest
from ui_fixtures import require_model

from app import chart_delta, figures
from labcore import config as C
from labcore.runner import RunManager


def fig(xs, ys, title="Reward", mode="lines"):
    return {"id": "reward", "data": [{"uid": "a", "mode": mode, "x": xs, "y": ys}],
            "layout": {"title": {"text": title}}}


def test_chart_delta_appends_only_new_points_and_resends_a_changed_chart():
    assert chart_delta.chart_delta(fig([1, 2], [0.1, 0.2]), fig([1, 2], [0.1, 0.2])) is None
    grown = chart_delta.chart_delta(fig([1, 2], [0.1, 0.2]), fig([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4]))
    assert grown == {"id": "reward", "traces": [0], "keep": [2], "x": [[3, 4]], "y": [[0.3, 0.4]]}
    # the last point redone (a downsampled trace's last bucket): keep the rest, send the tail
    redone = chart_delta.chart_delta(fig([1, 2, 3], [0.1, 0.2, 0.3]), fig([1, 2, 4, 6], [0.1, 0.2, 0.35, 0.5]))
    assert redone == {"id": "reward", "traces": [0], "keep": [2], "x": [[4, 6]], "y": [[0.35, 0.5]]}
    before = fig([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4])
    # a new layout (a live-change mark, other axis ticks) with grown traces: the layout and the new points only
    relaid = chart_delta.chart_delta(before, fig([1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 0.5], title="KL"))
    assert relaid == {"id": "reward", "traces": [0], "keep": [4], "x": [[5]], "y": [[0.5]],
                      "layout": {"title": {"text": "KL"}}}  # the keys that changed
    assert chart_delta.relayout({"title": 1, "shapes": [2]}, {"title": 3, "shapes": None}) == {"title": 3}
    assert chart_delta.chart_delta(before, fig([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], title="KL"))["traces"] == []
    # a trace's style (a line's second point turns its markers off): the keys that changed, and the new points
    restyled = chart_delta.chart_delta(before, fig([1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 0.5], mode="markers"))
    assert restyled == {"id": "reward", "traces": [0], "keep": [4], "x": [[5]], "y": [[0.5]],
                        "style": [[0, {"mode": "markers"}]]}
    two_traces = {**before, "data": before["data"] * 2}
    for changed in (two_traces,                                                 # a trace added
                    fig([1, 3, 5, 7], [0.1, 0.3, 0.5, 0.7]),                   # most points moved (buckets doubled)
                    fig([1, 2, 3, 4], [0.15, 0.2, 0.3, 0.4])):                 # the first value changed
        assert chart_delta.chart_delta(before, changed) == {"full": changed}
    held, v = chart_delta.apply({}, None, chart_delta.full_payload([fig([1], [0.1])], "a"))
    held, v = chart_delta.apply(held, v, chart_delta.delta_payload([fig([1], [0.1])], [fig([1, 2], [0.1, 0.2])],
                                                                   "a", "b"))
    assert (v, held["reward"]["data"][0]["x"]) == ("b", [1, 2])
    held, v = chart_delta.apply(held, v, chart_delta.delta_payload([fig([1, 2], [0.1, 0.2])],
                                                                   [fig([1, 2, 3], [0.1, 0.2, 0.3], "KL")], "b", "c"))
    assert held["reward"] == fig([1, 2, 3], [0.1, 0.2, 0.3], "KL")
    held, v = chart_delta.apply(held, v, chart_delta.delta_payload(
        [fig([1, 2, 3], [0.1, 0.2, 0.3], "KL")], [fig([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], "KL", "markers")], "c", "d"))
    assert held["reward"] == fig([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], "KL", "markers")
    # a raw line and its smoothed line gain the same steps: their x is sent once
    pair = [{"id": "p", "layout": {}, "data": [{"uid": u, "x": xs, "y": [0.5] * len(xs)} for u in "rs"]}
            for xs in ([1], [1, 2, 3])]
    assert chart_delta.chart_delta(*pair)["x"] == [[2, 3], None]
    assert chart_delta.apply(*chart_delta.apply({}, None, chart_delta.full_payload(pair[:1], "a")),
                             chart_delta.delta_payload(pair[:1], pair[1:], "a", "b"))[0]["p"] == pair[1]
    # whole charts carry only their own layout; what all share is sent once (`common`), and merged back
    two = [{"id": i, "data": [], "layout": {"font": {"size": 13, "color": c}, "margin": {"l": 50}, "title": i}}
           for i, c in (("a", "#111"), ("b", "#222"))]
    spec = orjson.loads(chart_delta.full_payload(two, "v"))
    assert spec["common"] == {"font": {"size": 13}, "margin": {"l": 50}}
    assert [c["layout"] for c in spec["charts"]] == [{"font": {"color": "#111"}, "title": "a"},
                                                     {"font": {"color": "#222"}, "title": "b"}]
    assert list(chart_delta.apply({}, None, chart_delta.full_payload(two, "v"))[0].values()) == two
    with pytest.raises(LookupError):  # a gap: a delta from a version the client does not hold
        chart_delta.apply(held, "a", chart_delta.delta_payload([], [], "z", "c"))


@pytest.fixture(scope="module")
def default_records(tmp_path_factory):
    """The step records of 24 steps of the default preset on the tiny model (prompts and length as the preset)."""
    manager = RunManager(tmp_path_factory.mktemp("real"))
    cfg = C.load_preset("grpo")
    run_id = manager.submit(C.build("grpo", {**C.flat(cfg), "model.policy": require_model(), "run.steps": 24}),
                            owner="t")
    manager.wait(run_id, 300)
    records, samples = manager.store.metrics(run_id), manager.store.samples(run_id)
    manager.shutdown()
    assert len(records) == 24
    return records, samples


def test_a_tick_during_a_run_sends_only_the_new_steps(tmp_path, default_records):
    from app.main import build_demo

    records, samples = default_records
    manager = RunManager(tmp_path)
    run_id = manager.store.create(C.load_preset("grpo"), "t")
    manager.store.update_meta(run_id, state="running")
    view = next(f.fn for f in build_demo(manager).fns.values() if getattr(f.fn, "__name__", "") == "view")
    inputs = ["t", run_id, [], 0.6, "step", "advantage", True, 0]

    sig, held, version, sizes, kinds = {}, {}, None, [], []
    for n in range(0, len(records), 3):  # three steps a tick, as a default run gives at one tick a second
        for r in records[n:n + 3]:
            manager.store.append(run_id, r, samples)
        time.sleep(0.6)  # tabs share a build younger than 0.5 s (app.lab.SharedBuilds); a tick is ~1 s apart
        out = view(*inputs, sig)
        sig = out[6] if isinstance(out[6], dict) else sig
        assert isinstance(out[0], str), "new steps: the charts are sent"
        spec = orjson.loads(out[0])
        kinds.append("full" if spec["base"] is None else "delta")
        held, version = chart_delta.apply(held, version, out[0])
        if n >= 9:  # past the first steps (whose axes still change: whole-number ticks up to step 6)
            sizes.append(len(out[0]))
            assert spec["base"] is not None and spec["extend"], "an append, not the whole figures"
            steps = {x for e in spec["extend"] for xs in e["x"] if xs is not None for x in xs}
            assert steps == {r["step"] for r in records[n:n + 3]}, "only the new steps"
        # what the client holds is what a full payload draws now
        views = [figures.RunView(run_id, "", manager.store.metrics(run_id))]
        full = {f["id"]: f for f in orjson.loads(orjson.dumps(figures.build_figures(views, 0.6, "step")))}
        assert {k: c["data"] for k, c in held.items()} == {k: c["data"] for k, c in full.items()}
        assert {k: c["layout"] for k, c in held.items()} == {k: c["layout"] for k, c in full.items()}
    assert kinds[0] == "full"
    assert max(sizes) < 20 * 1024, f"tick payloads {sizes} bytes"
    manager.shutdown()


def test_a_long_runs_downsampled_charts_grow_by_their_last_bucket():
    """Past MAX_POINTS steps the traces are downsampled; their buckets are fixed from the first step, so three new
    steps change the last bucket only: the delta is small, and applied it gives the full figures."""
    import math

    def rec(s):
        return {"step": s, "time": 0.3 * s, "reward/mean": math.sin(s / 9), "kl/mean": 0.001 * s,
                "entropy/mean": 1 / s}

    old = orjson.loads(orjson.dumps(figures.build_figures([figures.RunView("r", "", [rec(s) for s in range(1, 1201)])])))
    new = orjson.loads(orjson.dumps(figures.build_figures([figures.RunView("r", "", [rec(s) for s in range(1, 1204)])])))
    assert max(len(t["x"]) for f in new for t in f["data"]) > 200, "downsampled, not empty"
    payload = chart_delta.delta_payload(old, new, "a", "b")
    held, _ = chart_delta.apply({}, None, chart_delta.full_payload(old, "a"))
    held, _ = chart_delta.apply(held, "a", payload)
    assert {k: c["data"] for k, c in held.items()} == {f["id"]: f["data"] for f in new}
    assert not orjson.loads(payload)["charts"], "no chart resent whole"
    assert len(payload) < 2048, len(payload)


def test_a_followed_running_runs_samples_are_paced_and_the_last_ones_always_arrive(tmp_path, default_records,
                                                                                    monkeypatch):
    """While the tab follows a running run, the samples markup is re-sent at most every SAMPLES_EVERY seconds
    (a tick a second carries it one tick in three), never with every chart whole (the first tick: they follow on
    the next), never when no step logged new samples; when the run ends, the last step's samples arrive at once."""
    import app.main as main

    now = [100.0]
    monkeypatch.setattr(main, "clock", lambda: now[0])
    records, samples = default_records
    manager = RunManager(tmp_path)
    run_id = manager.store.create(C.load_preset("grpo"), "t")
    manager.store.update_meta(run_id, state="running")
    view = next(f.fn for f in main.build_demo(manager).fns.values() if getattr(f.fn, "__name__", "") == "view")
    inputs = ["t", run_id, [], 0.6, "step", "advantage", True, 0]
    sig, sent, whole = {}, [], []
    for n in range(0, 21, 3):  # a tick a second, three new steps each
        for r in records[n:n + 3]:
            manager.store.append(run_id, r, samples if n < 15 else [])  # the last two ticks: no new samples
        time.sleep(0.6)  # tabs share a build younger than 0.5 s (app.lab.SharedBuilds)
        out = view(*inputs, sig)
        sig = out[6] if isinstance(out[6], dict) and "__type__" not in out[6] else sig  # else: unchanged (skip)
        sent.append(isinstance(out[3], str))
        whole.append(bool(orjson.loads(out[0])["charts"]))
        now[0] += 1.0
    assert whole[0] and not any(whole[2:]), "every chart whole at first, then (a series' second point aside) deltas"
    assert sent == [False, True, False, False, True, False, False], sent
    manager.store.append(run_id, records[21], samples)  # the last step, a moment after samples were sent
    manager.store.update_meta(run_id, state="done")
    time.sleep(0.6)
    out = view(*inputs, sig)
    assert isinstance(out[3], str), "the finished run's last samples are sent at once"
    sig = out[6] if isinstance(out[6], dict) and "__type__" not in out[6] else sig
    manager.store.update_meta(run_id, state="running")
    following = view(*inputs[:6], False, 2, sig)  # another step asked for: sent at once, not paced
    assert isinstance(following[3], str)
    manager.shutdown()

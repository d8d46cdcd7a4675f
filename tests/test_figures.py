"""The UI's pure parts: figure builders, token colouring, controls -> Config, and share links.

No server and no browser: these are plain functions from records (or control values) to dicts and strings.
"""

import json
import math
import re
from urllib.parse import parse_qsl

import pytest

from app import charts, figures, samples, settings
from labcore import config as C


def records(n, key="reward/mean", f=lambda s: s / 10):
    return [{"step": s, "time": 0.5 * s, key: f(s)} for s in range(1, n + 1)]


# ------------------------------------------------------------------------------------------------ smoothing


def test_ema_hand_computed_and_debiased():
    """w = 0.5 on [1, 2, 4]: numerators 0.5, 1.25, 2.625 over debias 0.5, 0.75, 0.875 -> 1, 5/3, 3.

    Without the debias the first value would be 0.5: a zero-initialised average starts too low.
    """
    out = figures.ema([1.0, 2.0, 4.0], 0.5)
    assert out == pytest.approx([1.0, 5 / 3, 3.0])


def test_ema_of_a_constant_is_the_constant_and_zero_weight_is_identity():
    assert figures.ema([2.0] * 50, 0.99) == pytest.approx([2.0] * 50)
    assert figures.ema([1.0, 5.0, 2.0], 0.0) == [1.0, 5.0, 2.0]
    assert figures.ema([], 0.6) == []


# ----------------------------------------------------------------------------------------------- downsampling


@pytest.mark.parametrize("minmax", [True, False])
def test_downsample_keeps_endpoints_and_bounds_points(minmax):
    ys = [math.sin(i / 7) for i in range(2003)]
    keep = figures.downsample_indices(ys, 500, minmax=minmax)
    assert len(keep) <= 500
    assert keep[0] == 0 and keep[-1] == len(ys) - 1
    assert list(keep) == sorted(set(keep))


def test_downsample_minmax_keeps_spikes_and_short_series_untouched():
    ys = [0.0] * 3000
    ys[1234], ys[2222] = 9.0, -9.0
    keep = set(figures.downsample_indices(ys, 500).tolist())
    assert {1234, 2222} <= keep
    assert list(figures.downsample_indices([1.0, 2.0, 3.0], 500)) == [0, 1, 2]


def test_figure_traces_are_downsampled_to_max_points():
    run = figures.RunView("r1", "GRPO", records(1200))
    fig = figures.chart_figure(figures.CHARTS[0], [run], smoothing=0.6)
    assert fig["data"] and all(len(t["x"]) <= figures.MAX_POINTS for t in fig["data"])
    smooth = next(t for t in fig["data"] if t["uid"].endswith("_s"))
    assert smooth["x"][0] == 1 and smooth["x"][-1] == 1200


# ------------------------------------------------------------------------------------------------ figures


def test_missing_keys_give_empty_traces_not_errors():
    """A recipe without a value head logs no loss/value: its trace is empty and has no legend entry."""
    recs = [{"step": 1, "time": 0.1, "loss/policy": 0.5},
            {"step": 2, "time": 0.2, "loss/policy": float("nan")}]
    loss = next(c for c in figures.CHARTS if c.id == "loss")
    fig = figures.chart_figure(loss, [figures.RunView("r", "GRPO", recs)], smoothing=0.0)
    by_uid = {t["uid"]: t for t in fig["data"]}
    assert by_uid["r_loss_value_s"]["x"] == [] and by_uid["r_loss_value_s"]["showlegend"] is False
    assert by_uid["r_loss_policy_s"]["y"] == [0.5]  # the NaN step is skipped
    empty = figures.chart_figure(loss, [], smoothing=0.6)
    assert empty["data"] == [] and empty["layout"]["annotations"]


def test_overlay_colours_are_stable_per_run_and_layout_keeps_uirevision():
    runs = [figures.RunView("run-a", "GRPO", records(20)),
            figures.RunView("run-b", "DAPO lr=0.001", records(20))]
    fig1 = figures.chart_figure(figures.CHARTS[0], runs, smoothing=0.6)
    more = runs[::-1] + [figures.RunView("run-c", "x", records(3))]
    fig2 = figures.chart_figure(figures.CHARTS[0], more, 0.6)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", t["uid"]) for t in fig1["data"])  # usable in CSS selectors
    colour = {t["uid"]: t["line"]["color"] for t in fig1["data"] + fig2["data"]}
    for run in ("run-a", "run-b"):
        assert len({c for uid, c in colour.items() if uid.startswith(run)}) == 1
    assert figures.run_color("run-a") == figures.run_color("run-a")  # crc32: same across processes
    names = [t["name"] for t in fig1["data"] if t.get("showlegend", True)]
    assert "DAPO lr=0.001" in names
    # The user's zoom survives updates: uirevision depends on the x axis only.
    assert fig1["layout"]["uirevision"] == fig2["layout"]["uirevision"]
    assert figures.chart_figure(figures.CHARTS[0], runs, 0.6, x="time")["layout"]["uirevision"] != \
        fig1["layout"]["uirevision"]


def test_time_axis_and_raw_trace_is_faint():
    fig = figures.chart_figure(figures.CHARTS[0], [figures.RunView("r", "GRPO", records(10))], 0.6, x="time")
    raw, smooth = fig["data"][0], fig["data"][1]
    assert raw["opacity"] < 0.5 and raw["showlegend"] is False and smooth["x"][-1] == 5.0
    assert fig["layout"]["xaxis"]["title"]["text"] == "time (s)"


def test_every_chart_builds_and_encodes():
    figs = figures.build_figures([figures.RunView("r", "GRPO", records(5))])
    assert [f["id"] for f in figs] == [c.id for c in figures.CHARTS]
    assert [c.title for c in figures.CHARTS] == ["Reward", "KL", "Clip fraction", "Entropy", "Loss",
                                                  "Advantage", "Length and EOS rate", "Gradient variance",
                                                  "Ratio"]
    assert len(json.loads(charts.encode(figs))["charts"]) == 9


def test_one_columns_shared_by_tabs_ticking_on_many_threads_stays_consistent():
    """Tabs watching one run share its Columns and tick on server threads while the run appends records.

    Unguarded, two ticks extended the columns twice (duplicated points) or built a trace while another tick
    appended (x and y of different lengths: an IndexError and an HTTP 500 for that tab).
    """
    import sys
    import threading
    import time

    shared, recs, errors = figures.Columns(), [], []
    chart = next(c for c in figures.CHARTS if c.id == "kl")
    full = [{"step": s, "time": 0.1 * s, "kl/mean": s / 7, "approx_kl": s / 9, "kl/coef": 0.05}
            for s in range(1, 1001)]
    done = threading.Event()

    def writer():
        for r in full:
            recs.append(r)
            time.sleep(0.0002)  # a run appending records while the tabs tick
        done.set()

    def tab(smoothing):
        try:
            while not done.is_set():
                view = figures.RunView("r", "PPO", list(recs), shared)
                figures.chart_figure(chart, [view], smoothing, max_points=50)
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            errors.append(repr(e))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to provoke the interleavings
    try:
        threads = [threading.Thread(target=tab, args=(w,)) for w in (0.0, 0.6, 0.6, 0.9)]
        for t in threads:
            t.start()
        writer()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors
    figures.RunView("r", "PPO", recs, shared)
    steps, ys = shared.xy("kl/mean")
    assert steps == list(range(1, 1001)) and ys == [s / 7 for s in range(1, 1001)]  # no duplicates, none lost


def test_tick_pacer_slows_every_tab_as_the_room_grows_and_recovers():
    from app.lab import TickPacer

    pacer = TickPacer(budget=12, window=6, slowest=4)
    assert [pacer.interval(f"tab{i}", now=0.0) for i in range(12)][-1] == 1.0  # 12 tabs: every second
    assert pacer.interval("tab12", now=0.1) == 1.5                            # 13 / 12 -> 1.5 s (half steps)
    for i in range(13, 30):
        pacer.interval(f"tab{i}", now=0.2)
    assert pacer.interval("tab0", now=1.0) == 2.5                             # 30 tabs: every 2.5 s
    for i in range(100):
        pacer.interval(f"more{i}", now=2.0)
    assert pacer.interval("tab0", now=2.0) == 4.0                             # never slower than `slowest`
    assert pacer.interval("tab0", now=9.0) == 1.0                             # the others left: back to 1 s
    # `update` gives a tab its interval once, and again only when it changes
    pacer = TickPacer(budget=1, window=6, slowest=4)
    assert pacer.update("a", now=0.0) is None                                 # 1 tab: 1 s, the timer's own
    assert pacer.update("b", now=0.1) == 2.0 and pacer.update("b", now=2.1) is None
    assert pacer.update("a", now=2.2) == 2.0
    with pytest.raises(ValueError, match="budget"):
        TickPacer(budget=0)
    with pytest.raises(ValueError, match="window"):
        TickPacer(window=3, slowest=4)


# ------------------------------------------------------------------------------------------------ samples


SAMPLE = {"step": 3, "prompt": "2 + 2 =", "completion": "4", "tokens": ["4", "<x>"], "reward": 1.0,
          "advantage": 0.5, "eos": True, "adv": [1.0, -0.5], "logp": [-0.1, -3.0], "ref_logp": [-0.2, -2.0],
          "ratio": [1.1, 0.9], "kl": [0.01, -0.02]}


def test_token_colours_are_diverging_blue_orange():
    """Advantage 1.0 is the largest |value|, so full blue; -0.5 is half-strength orange."""
    assert samples.token_scores("advantage", [1.0, -0.5], 1.0) == [1.0, -0.5]
    assert samples.shade(1.0) == "rgba(37, 99, 235, 0.80)"
    assert samples.shade(-0.5) == "rgba(234, 88, 12, 0.40)"
    # log-probs map p = 1 to blue, p = 1/2 to white, p -> 0 to orange; ratios use log(ratio).
    assert samples.token_scores("logp", [0.0, math.log(0.5)], 1.0) == pytest.approx([1.0, 0.0])
    assert samples.token_scores("ratio", [math.e], 2.0) == pytest.approx([0.5])


def test_samples_html_escapes_and_has_legend():
    out = samples.samples_html([SAMPLE], "advantage")
    assert "&lt;x&gt;" in out and "<x>" not in out
    assert samples.token_shade(1.0) == "#2563ebcc" and samples.token_shade(-0.5) == "#ea580c66"
    assert "#2563ebcc" in out and "rl-legend" in out and "Step 3" in out  # the full-strength token
    assert "No samples yet" in samples.samples_html([], "kl")
    assert samples.samples_rows([SAMPLE]) == [["2 + 2 =", "4", 1.0, 0.5, "yes"]]


# ------------------------------------------------------------------------------------------------ controls


def test_controls_to_config_round_trip_and_every_field_is_a_control():
    assert set(settings.KEYS) == set(C.flat(C.Config())) and len(settings.KEYS) == len(set(settings.KEYS))
    values = settings.config_to_controls(C.build("dapo", {"optim.lr": 1e-3, "run.steps": 7}))
    cfg = settings.controls_to_config(values)
    assert cfg == C.build("dapo", {"optim.lr": 1e-3, "run.steps": 7})
    # Numbers arrive as floats from number boxes; ints are coerced.
    assert settings.controls_to_config({**values, "run.steps": 7.0}).run.steps == 7


def test_controls_to_config_reports_empty_and_bad_values():
    values = settings.config_to_controls(C.build("grpo"))
    with pytest.raises(C.ConfigError) as e:
        settings.controls_to_config({**values, "optim.lr": None, "run.steps": 2.5})
    assert any("optim.lr is empty" in p for p in e.value.problems)
    with pytest.raises(C.ConfigError) as e:
        settings.controls_to_config({**values, "run.steps": 2.5})
    assert "run.steps" in e.value.problems[0]
    assert settings.problems(settings.controls_to_config({**values, "algorithm.clip_low": 1.5}))


def test_recipe_switch_fills_recipe_defaults_and_keeps_the_rest():
    values = settings.config_to_controls(C.build("grpo", {"rollout.task": "length", "run.steps": 9,
                                                          "algorithm.clip_high": 0.5}))
    cfg = settings.recipe_switch(values, "dapo")
    assert cfg.algorithm.recipe == "dapo" and cfg.algorithm.clip_high == 0.28  # DAPO's own
    assert cfg.rollout.task == "length" and cfg.run.steps == 9                  # kept


def test_query_params_restore_settings():
    cfg = settings.config_from_query({"preset": "grpo", "algorithm.clip_high": "0.28", "__theme": "dark"})
    assert cfg.algorithm.recipe == "grpo" and cfg.algorithm.clip_high == 0.28
    assert settings.config_from_query({}) is None
    with pytest.raises(C.ConfigError) as e:
        settings.config_from_query({"recipe": "grpo", "optim.lrr": "1"})
    assert "Did you mean 'lr'" in e.value.problems[0]


def test_share_link_round_trips():
    cfg = C.build("dapo", {"optim.lr": 0.002, "algorithm.dynamic_filter": False, "run.name": "a b&c"})
    query = settings.share_query(cfg)
    assert query.startswith("recipe=dapo&")
    assert settings.config_from_query(dict(parse_qsl(query))) == cfg


def test_run_label_names_recipe_and_differences():
    assert settings.run_label(C.build("grpo")) == "GRPO"
    assert settings.run_label(C.build("dapo", {"optim.lr": 0.001})) == "DAPO lr=0.001"

"""The rlhf-lab web UI: controls, a Playground-style transport bar, live charts, samples and the objective.

`build_demo(manager)` lays out the page first and wires the events last, as Gradio's own demo apps do. The
UI only reads run records: Start turns the controls into a `Config` (`app.settings.controls_to_config`) and
submits it to the `RunManager`; a `gr.Timer(1.0)` tick, active only while something runs, polls the run
store and redraws the charts through one custom HTML component (`app.charts`), so zoom and hidden traces
survive.
Public API endpoints: start, step, pause (toggles resume), stop, reset, status, watch, publish, export, replay.
None takes an owner id: a session's owner id is server-side state, derived from a secret the server issued to the
browser (`app.owners`), and no endpoint returns it.
Left out: authentication (use `launch(auth=...)` or a private Space).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import gradio as gr

from app import chart_explain, charts, figures, present, samples, settings, userfiles
from app.chart_help import constant_notes, notes_html
from app.lab import Lab, advice_html, diff_html, formula_markdown, next_run_html, problems_html, status_html
from app.lessons import lessons_panel
from app.library_export import add_export_panel
from app.owners import Owners
from app.style import CSS, HEAD, HEADER_CSS, NOTES_CSS, SHORTCUTS_JS, STATUS_CSS, THEME
from labcore import config as C
from labcore.runner import ACTIVE, RunManager, SharedLimits

TITLE = "rlhf-lab"
FAST_TICK, FAST_TICKS = 0.2, 25  # seconds between the ticks right after Start, and at most how many of them
# While a tab follows a running run's latest step, its samples are re-sent at most this often: the token-coloured
# markup (~11 KiB for 16 completions) would otherwise be most of every tick, and text that changes every second
# cannot be read anyway. A finished or paused run, another step or page, and a redraw are sent at once.
SAMPLES_EVERY = 3.0
# ... and not on a tick whose charts already fill this many bytes (the first after Start sends every chart whole):
# they follow on a lighter tick (within SAMPLES_EVERY), so a tick stays under 20 KiB per tab (issue 13).
TICK_BYTES = 16 * 1024
clock = time.monotonic  # the samples' pacing clock (a test steps it by hand)
TAGLINE = ("Train a tiny language model with RLHF policy-gradient algorithms and watch every part move: "
           "swap the baseline, the loss, the KL, and see the reward, KL and clipping react live.")
WIDE = {"algorithm.recipe", "model.policy", "model.reward_model", "model.lora_targets", "run.name"}
LATEX = [{"left": "$$", "right": "$$", "display": True}]
HEADER = f"""
<div class="rl-header"><div class="rl-logo">∇</div><div><h1>{TITLE}</h1>
<p>{TAGLINE}</p></div></div>
"""


def _step(value: float) -> float:
    """Arrow step of a number box: one decade below the default's (0.003 -> 1e-4, 0.2 -> 0.01)."""
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 0.01


def _control(key: str, value: Any) -> gr.components.Component:
    kw = {"label": settings.label(key), "info": settings.chosen_info(key, value), "min_width": 120,
          "elem_id": "ctl-" + key.replace(".", "-")}
    options, kind = settings.choices(key), settings.kind(key)
    if options is not None:
        return gr.Dropdown(choices=options, value=value, **kw)
    if kind is bool:
        return gr.Checkbox(value=value, **kw)
    if kind is int:
        return gr.Number(value=value, precision=0, **kw)
    if kind is float:
        return gr.Number(value=value, step=_step(value), **kw)
    return gr.Textbox(value=value, **kw)


def _control_rows(keys: list[str], values: dict[str, Any]) -> dict[str, gr.components.Component]:
    """Controls two to a row (the recipe and free-text fields get a row of their own)."""
    out: dict[str, gr.components.Component] = {}
    pending: list[str] = []

    def flush() -> None:
        with gr.Row(equal_height=True):
            for k in pending:
                out[k] = _control(k, values[k])
        pending.clear()

    for key in keys:
        if key in WIDE:
            if pending:
                flush()
            out[key] = _control(key, values[key])
            continue
        pending.append(key)
        if len(pending) == 2:
            flush()
    if pending:
        flush()
    return out


def _html(value: str = "", css: str = "", **kw: Any) -> gr.HTML:
    return gr.HTML(value, css_template=css, js_on_load=None, **kw)


def build_demo(manager: RunManager, shared: bool = False, tick_budget: float = 12.0) -> gr.Blocks:
    """The lab for `manager`'s runs. `shared`: list only a session's own and published runs. `tick_budget`:
    timer ticks per second the server aims to serve in all; tabs tick more slowly beyond it (`TickPacer`)."""
    gr.set_static_paths([str(charts.PLOTLY_JS)])
    lab = Lab(manager, shared, tick_budget)
    owners = Owners(manager.store.root)
    presets = C.list_presets()
    first = "grpo" if "grpo" in presets else next(iter(presets), None)
    start_cfg = C.load_preset(first) if first else C.build("grpo")
    start_values = C.flat(start_cfg)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        token = gr.BrowserState("", storage_key="rlhf-lab-owner")  # the server-issued secret (app.owners)
        owner = gr.State(None)         # this session's owner id: server-side, never sent to the browser
        run_state = gr.State(None)     # the run this tab shows (its own or a watched one)
        sig_state = gr.State({})       # what the last tick drew, so unchanged ticks skip
        base_url = gr.State("")
        timer = gr.Timer(1.0, active=False)

        _html(HEADER, HEADER_CSS, elem_id="rl-header")
        with gr.Row(equal_height=False):
            # ------------------------------------------------------------------------------ controls
            with gr.Column(scale=1, min_width=330, elem_id="rl-side"):
                preset = gr.Dropdown(choices=list(presets), value=first, label="Preset",
                                     info="A named experiment; picking one fills every control.")
                preset_note = gr.Markdown(presets.get(first, ""), elem_classes=["rl-cite"])
                controls: dict[str, gr.components.Component] = {}
                for group, keys in settings.CONTROL_GROUPS.items():
                    with gr.Accordion(group, open=True):
                        controls.update(_control_rows(keys, start_values))
                        if group == "Algorithm parts":  # the chosen option's meaning is under each dropdown
                            with gr.Accordion("What every option means", open=False, elem_id="rl-options"):
                                gr.Markdown(settings.options_markdown(), elem_classes=["rl-cite"])
                with gr.Accordion("Advanced settings", open=False):
                    controls.update(_control_rows(settings.ADVANCED, start_values))
                with gr.Accordion("Import and share", open=False):
                    import_btn = gr.UploadButton("Import config (.toml)", file_types=[".toml"], size="sm")
                    with gr.Row(visible=not shared):  # a shared server never reads a visitor's files or code
                        data_btn = gr.UploadButton("Your prompts (.jsonl, .csv, .parquet)", size="sm",
                                                   file_types=[".jsonl", ".json", ".csv", ".parquet"])
                        fns_btn = gr.UploadButton("Your reward functions (.py)", file_types=[".py"], size="sm")
                    link = gr.Textbox(label="Link to these settings", buttons=["copy"], interactive=False,
                                      info="Open it to restore every setting (query parameters).")

            # ------------------------------------------------------------------------------ main area
            with gr.Column(scale=3, min_width=600, elem_id="rl-main"):
                with gr.Row(elem_id="rl-transport"):
                    start_btn = gr.Button("▶ Start", variant="primary", size="md", elem_id="rl-start")
                    pause_btn = gr.Button("Pause", size="md", elem_id="rl-pause")
                    step_btn = gr.Button("Step ›", size="md", elem_id="rl-step")
                    stop_btn = gr.Button("■ Stop", variant="stop", size="md", elem_id="rl-stop")
                    reset_btn = gr.Button("↺ Reset", size="md", elem_id="rl-reset")
                    dark_btn = gr.Button("◐", size="md", elem_id="rl-dark", min_width=44, scale=0)
                    present_btn = gr.Button("Present", size="md", elem_id="rl-present-btn", min_width=80, scale=0)
                    room_btn = gr.Button("Room link", size="md", elem_id="rl-room-btn", min_width=120, scale=0)
                status = _html(status_html(None), STATUS_CSS, elem_id="rl-status", label="run status")
                room = _html("", present.ROOM_CSS, elem_id="rl-room", label="link for the room")
                live_note = _html("", STATUS_CSS, elem_id="rl-live", label="live changes")
                problems = _html("", NOTES_CSS, elem_id="rl-problems", label="problems")
                checks = _html("", NOTES_CSS, elem_id="rl-checks", label="setting checks")
                diff = _html(diff_html(start_cfg), NOTES_CSS, elem_id="rl-diff", label="recipe differences")
                compare = gr.State([])     # the runs overlaid on the charts (ticked in the runs table)
                # The charts right under the status (one screen on a projector), their view settings and the runs
                # table below them; the samples beside them on a wide screen, under them elsewhere (app.style.CSS).
                with gr.Row(equal_height=False, elem_id="rl-view"):
                    with gr.Column(scale=2, min_width=0, elem_id="rl-view-charts"):
                        grid = charts.chart_grid(charts.encode(figures.build_figures([])))
                        # why a chart is flat under the settings shown, copied onto the charts by app.chart_explain
                        chart_notes = _html(notes_html(constant_notes(start_cfg)), elem_id="rl-chart-notes")
                        with gr.Row(equal_height=True, elem_id="rl-chart-opts"):
                            smoothing = gr.Slider(0.0, 0.99, value=0.6, step=0.01, label="Smoothing", scale=2,
                                                  info="Debiased EMA, as in TensorBoard; the raw line stays faint.",
                                                  elem_id="rl-smoothing")
                            xaxis = gr.Radio([("step", "step"), ("time (s)", "time")], value="step",
                                             label="x axis")
                        runs_table = gr.Dataframe(headers=Lab.TABLE_HEADERS, value=[], type="array",
                                                  interactive=True,
                                                  static_columns=list(range(1, len(Lab.TABLE_HEADERS))),
                                                  datatype=["bool", "html", "str", "str", "str", "str", "number",
                                                            "number", "str"],
                                                  label="Runs: tick to overlay on the charts", max_height=260,
                                                  elem_id="rl-runs")
                    with gr.Column(scale=1, min_width=0, elem_id="rl-view-samples"):
                        with gr.Row(equal_height=False, elem_id="rl-samples-row"):
                            with gr.Column(scale=2):
                                gr.Markdown("### Samples")
                                with gr.Row():
                                    quantity = gr.Radio([("advantage", "advantage"), ("ratio", "ratio"),
                                                         ("KL to reference", "kl"), ("log-prob", "logp")],
                                                        value="advantage", label="Colour tokens by", scale=3)
                                    follow = gr.Checkbox(True, label="Follow the latest step", scale=1)
                                    sample_step = gr.Slider(0, 1, value=0, step=1, label="Step", scale=2,
                                                            info="Look back at an earlier step, or click a "
                                                                 "chart point.")
                                with gr.Row():  # the group view's options (app/samples.py): values as text, pages
                                    # CSS reads it (app/samples.py): no event, no round trip
                                    gr.Checkbox(True, label="Values under tokens", elem_id="rl-token-values",
                                                scale=2, interactive=True,
                                                info="Each token's number printed under it; tap a token to pin all.")
                                    sample_page = gr.Number(1, precision=0, minimum=1, label="Page of groups",
                                                            scale=1, elem_id="rl-sample-page")
                                samples_view = _html(samples.samples_html([]), samples.SAMPLES_CSS,
                                                     elem_id="rl-samples")
                                samples_table = gr.Dataframe(headers=samples.SAMPLE_HEADERS, value=[],
                                                             interactive=False, wrap=True, max_height=320,
                                                             label="Generations of this step")
                            with gr.Column(scale=1, min_width=320):
                                gr.Markdown("### Objective")
                                formula = gr.Markdown(formula_markdown(start_cfg), latex_delimiters=LATEX,
                                                      elem_id="rl-formula", label="objective")
                with gr.Accordion("Runs: watch, export, details", open=False, elem_id="rl-runs-panel"):
                    with gr.Row():
                        watch = gr.Dropdown(choices=[], label="Watch a run", allow_custom_value=True,
                                            info="Any run on this server, without starting one.", scale=3)
                        refresh_btn = gr.Button("↻ Refresh lists", size="sm", scale=1)
                    with gr.Row():
                        export_btn = gr.Button("Export run (.zip)", size="sm")
                        replay_btn = gr.Button("Replay page (.html)", size="sm")
                        publish_btn = gr.Button("Publish run", size="sm", visible=shared)
                        details_btn = gr.Button("Show details", size="sm")
                    export_file = gr.File(label="Export", visible=False)
                    share_note = gr.Markdown("")
                    details = gr.JSON(label="Run details")
                    add_export_panel(lab.store, run_state)  # `rlhf-lab export` as a button

        # ====================================================================================== events
        ctl = list(controls.values())
        ctl_kwargs = {settings.param_name(k): c for k, c in controls.items()}
        view_inputs = [owner, run_state, compare, smoothing, xaxis, quantity, follow, sample_step, sig_state,
                       sample_page]
        view_outputs = [grid, status, timer, samples_view, samples_table, sample_step, sig_state, pause_btn,
                        watch, runs_table, details]  # details last: load tests read the tick's last output
        private = {"api_visibility": "private", "show_progress": "hidden"}

        def who(owner_id: str | None, request: gr.Request | None) -> str:
            return owner_id or Owners.of_session(request.session_hash if request is not None else None)

        def values(kw: dict[str, Any]) -> dict[str, Any]:
            return {k: kw[settings.param_name(k)] for k in settings.KEYS}

        def fill(cfg: C.Config) -> dict:
            flat = C.flat(cfg)
            return {controls[k]: flat[k] for k in settings.KEYS}

        def shown(run_id: str | None) -> dict:
            """The controls, formula and notes of the run a tab shows: its own settings (editing prepares the next)."""
            cfg = lab.config(run_id)
            if cfg is None:
                return {}
            return {**fill(cfg), preset: None, preset_note: "The settings of the run shown.",
                    formula: formula_markdown(cfg, "the run shown"),
                    diff: diff_html(cfg) + next_run_html(cfg, cfg, run_id)}

        def lists(owner_id: str, run_id: str | None = None, overlay: list[str] | None = None) -> dict:
            choices = lab.run_choices(owner_id)
            return {watch: gr.Dropdown(choices=choices, value=run_id if run_id else None),
                    runs_table: lab.run_table(owner_id, run_id, overlay)}

        def view(owner_id, run_id, compare_ids, smooth, x, qty, follow_latest, at_step, sig, page=1, force=False,
                 request: gr.Request = None):
            """One tick: redraw what changed since `sig`; gr.skip() for the rest (for all, if nothing did)."""
            st = lab.status(run_id)
            out: dict[Any, Any] = {}
            new = dict(sig or {})
            every = lab.pacer.update(request.session_hash) if request is not None and request.session_hash else None
            if every is not None:  # a timer tick in a room that grew or shrank: tick at the new pace
                out[timer] = gr.update(value=every)
            chart_sig, payload = lab.charts_payload(run_id, compare_ids, smooth, x,
                                                    None if force else new.get("charts"))  # only what changed
            chart_sig = json.loads(json.dumps(chart_sig))  # as the session's state stores it
            if force or chart_sig != new.get("charts"):
                out[grid] = payload
                new["charts"] = chart_sig
            status_sig = [run_id, st and [st.get(k) for k in ("state", "step", "queue_position", "message")]]
            if force or status_sig != new.get("status"):
                me = who(owner_id, request)
                out[status] = status_html(st, mine=lab.mine(me, run_id) if st else True)
                out[details] = lab.details(run_id, me)
                table_sig = [run_id, st and st.get("state")]
                if force or table_sig != new.get("table"):  # a run started or finished: the lists are not stale
                    out.update(lists(me, run_id, compare_ids))
                    new["table"] = table_sig
                paused = bool(st) and st.get("state") == "paused"
                if force or paused != new.get("paused"):  # updates are plain dicts: building components is slow
                    out[pause_btn] = gr.update(value="▶ Resume" if paused else "Pause")
                    new["paused"] = paused
                new["status"] = status_sig
            version, shown_html, table, steps = lab.samples_view(run_id, None if follow_latest else int(at_step or 0),
                                                                 qty, page)
            samples_sig = [run_id, version, qty, follow_latest, len(steps), page]
            last = new.get("samples")
            only_newer = bool(last) and [last[0], *last[2:4], last[5]] == [run_id, qty, follow_latest, page]
            following = follow_latest and bool(st) and st.get("state") == "running"
            paced = following and only_newer and clock() - new.get("samples_t", 0.0) < SAMPLES_EVERY
            crowded = following and len(out.get(grid, "")) + len(shown_html) > TICK_BYTES
            if crowded and samples_sig != last:  # wait for a lighter tick, but not past SAMPLES_EVERY
                crowded = clock() - new.setdefault("deferred_t", clock()) < SAMPLES_EVERY
            paced = paced or crowded
            if force or (samples_sig != last and not paced):
                new["samples_t"] = clock()
                new.pop("deferred_t", None)
                out[samples_view] = shown_html
                out[samples_table] = table
                if steps:
                    out[sample_step] = gr.update(**samples.step_range(steps, follow_latest))
                new["samples"] = samples_sig
            if new.get("fast"):  # just started: back to the normal pace once the first point is drawn
                new["fast"] = 0 if any(chart_sig[2]) else new["fast"] - 1
                if not new["fast"]:
                    every = lab.pacer.interval(request.session_hash) if request is not None and \
                        request.session_hash else 1.0
                    out[timer] = gr.update(value=every)
            if not st or st.get("state") not in ACTIVE:
                out[timer] = gr.update(active=False, **({"value": every} if every is not None else {}))
            if out or new != (sig or {}):
                out[sig_state] = new
            return tuple(out.get(c, gr.skip()) for c in view_outputs)

        def redraw(owner_id, run_id, compare_ids, smooth, x, qty, follow_latest, at_step, sig, page=1,
                   request: gr.Request = None):
            return view(owner_id, run_id, compare_ids, smooth, x, qty, follow_latest, at_step, {}, page, force=True,
                        request=request)

        def on_load(secret: str, request: gr.Request):
            owner_id = owners.owner(secret)
            if owner_id is None:  # a new browser (or a token this server did not sign): issue one
                secret = owners.issue()
                owner_id = owners.owner(secret)
            out: dict[Any, Any] = {token: secret, owner: owner_id}
            referer = request.headers.get("referer", "") if request is not None else ""
            out[base_url] = referer.split("?")[0].split("#")[0]
            params = dict(request.query_params) if request is not None else {}
            run_id = lab.latest_active(owner_id)
            asked = params.get("run")  # ?run=<id>: watch that run (a link to share a run in a workshop)
            if asked and asked in {r["run_id"] for r in lab.visible_runs(owner_id)}:
                run_id = asked
            if run_id:
                out.update({run_state: run_id, timer: gr.Timer(active=True), sig_state: {}, **shown(run_id)})
            try:
                cfg = settings.config_from_query(params)
                if cfg is not None:
                    out.update(fill(cfg))
                    named = params.get("preset") if params.get("preset") in presets else None
                    out[preset], out[preset_note] = named, presets.get(named, "Settings from the link.")
            except C.ConfigError as e:
                out[problems] = problems_html(e.problems, "The link's settings could not be used")
            out.update(lists(owner_id, run_id))
            return out

        def derived(base: str, run_id: str | None, **kw):
            try:
                cfg = settings.controls_to_config(values(kw))
            except C.ConfigError:  # list every problem at once, not just the first kind
                return {checks: problems_html(settings.every_problem(values(kw), manager.limits),
                                              "Check these settings")}
            found = settings.problems(cfg, manager.limits)
            url = f"{base or 'http://127.0.0.1:7860/'}?{settings.share_query(cfg)}"
            on_screen = lab.config(run_id)
            whose = "" if on_screen is None else "the run shown" if on_screen == cfg else "the next run"
            flat = C.flat(cfg)
            infos = {controls[k]: gr.update(info=settings.chosen_info(k, flat[k])) for k in settings.EXPLAINED}
            return {**infos, formula: formula_markdown(cfg, whose), diff: diff_html(cfg) + next_run_html(cfg, on_screen, run_id),
                    chart_notes: notes_html(constant_notes(on_screen or cfg)), link: url,
                    checks: problems_html(found, "Check these settings") + advice_html(cfg)}

        def pick_preset(name: str):
            try:
                cfg = C.load_preset(name)
                return {**fill(cfg), preset_note: C.list_presets().get(name, ""), problems: ""}
            except C.ConfigError as e:
                return {problems: problems_html(e.problems)}

        def pick_recipe(**kw):
            vals = values(kw)
            cfg = settings.recipe_switch(vals, vals["algorithm.recipe"])
            return {**fill(cfg), preset: None, preset_note: ""}

        def import_toml(path: str, run_id: str | None):
            """The settings of a TOML file into the controls, and the recipe-difference chips with them (in this
            event, not in the `derived` that follows it)."""
            try:
                with open(path, encoding="utf-8") as fh:
                    cfg = C.from_toml_text(fh.read())
            except (OSError, UnicodeDecodeError) as e:
                return {problems: problems_html([f"the file could not be read: {e}"], "Import failed")}
            except C.ConfigError as e:
                return {problems: problems_html(e.problems, "Import failed")}
            return {**fill(cfg), preset: None, preset_note: "Imported from a TOML file.", problems: "",
                    diff: diff_html(cfg) + next_run_html(cfg, lab.config(run_id), run_id)}

        def use_dataset(path: str):
            return {controls["rollout.dataset"]: path, problems: ""}

        def use_reward_file(path: str):
            try:
                return {controls["rollout.reward_fns"]: userfiles.reward_fns_setting(path), problems: ""}
            except (OSError, UnicodeDecodeError, ValueError) as e:
                return {problems: problems_html([str(e)], "Upload failed")}

        def started(owner_id: str, run_id: str) -> dict:
            # poll fast until the first step record is drawn (at most FAST_TICKS ticks), then at the room's pace
            return {run_state: run_id, problems: "", checks: "", live_note: "", sig_state: {"fast": FAST_TICKS},
                    timer: gr.Timer(FAST_TICK, active=True),
                    status: status_html(lab.status(run_id)), **lists(owner_id, run_id)}

        def start(owner_id: str, current: str | None, request: gr.Request, **kw):
            """Start a run with these settings; returns the problems instead when they are invalid. Like a play
            button, Start resumes this tab's paused run, and does not queue a second run while one is going
            (a double click must not start two)."""
            owner_id = who(owner_id, request)
            if lab.active(current) and lab.mine(owner_id, current):
                st = lab.status(current)
                if st["state"] == "paused":
                    lab.act(owner_id, current, "resume")
                    return {problems: "", status: status_html(lab.status(current)), timer: gr.Timer(active=True)}
                return {problems: problems_html([f"Your run is already {st['state']} (step {st['step']} of "
                                                 f"{st['steps']}): press Stop first to start another."],
                                                "Not started")}
            run_id, found = lab.start(owner_id, values(kw))
            if run_id is None:
                return {checks: problems_html(found)}
            return started(owner_id, run_id)

        def step(owner_id: str, run_id: str | None, request: gr.Request, **kw):
            """One training step: pause a going run after its next step, or start a paused run and step it."""
            owner_id = who(owner_id, request)
            if lab.active(run_id) and lab.mine(owner_id, run_id):
                return {problems: problems_html([p] if (p := lab.act(owner_id, run_id, "step")) else []),
                        timer: gr.Timer(active=True)}
            new_id, found = lab.start(owner_id, values(kw), paused=True)
            if new_id is None:
                return {checks: problems_html(found)}
            lab.act(owner_id, new_id, "step")
            return started(owner_id, new_id)

        def control(action: str):
            def fn(owner_id: str, run_id: str | None, request: gr.Request):
                found = lab.act(who(owner_id, request), run_id, action)
                out = {problems: problems_html([found], "Not done") if found else "",
                       status: status_html(lab.status(run_id)), timer: gr.Timer(active=lab.active(run_id))}
                return {**out, live_note: ""} if action == "stop" else out
            fn.__name__ = action
            return fn

        def reset(owner_id: str, run_id: str | None, request: gr.Request):
            """Stop the run and clear the charts."""
            lab.act(who(owner_id, request), run_id, "stop")
            return {run_state: None, sig_state: {}, timer: gr.Timer(active=False), status: status_html(None),
                    grid: charts.encode(figures.build_figures([])), samples_view: samples.samples_html([]),
                    samples_table: [], problems: "", live_note: "", details: {}}

        def run_status(owner_id: str | None, run_id: str | None, request: gr.Request):
            """The run's status line and details (state, step, records, latest record; `yours`: whether this
            session may control it). No owner id is ever part of it."""
            me = who(owner_id, request)
            return status_html(lab.status(run_id), mine=lab.mine(me, run_id)), lab.details(run_id, me)

        def watch_run(owner_id: str, run_id: str | None, request: gr.Request):
            """Show any run this session may see (in shared mode: its own and published ones), with its settings."""
            me = who(owner_id, request)
            visible = {r["run_id"] for r in lab.visible_runs(me)}
            if not run_id or run_id not in visible:
                return {status: status_html(None) if run_id else gr.skip()}
            return {run_state: run_id, sig_state: {}, timer: gr.Timer(active=True), **shown(run_id),
                    status: status_html(lab.status(run_id), mine=lab.mine(me, run_id))}

        def publish(owner_id: str | None, run_id: str | None, request: gr.Request):
            """Let every session of a shared server list and watch this session's run."""
            return lab.publish(who(owner_id, request), run_id)

        def refresh(owner_id: str | None, run_id: str | None, overlay: list[str] | None, request: gr.Request):
            return lists(who(owner_id, request), run_id, overlay)

        def pick_overlay(owner_id: str | None, rows: list[list[Any]] | None, request: gr.Request):
            return lab.overlay_ids(who(owner_id, request), rows)

        def pick_step(run_id, qty, at_step, page):
            _, shown_html, table, _ = lab.samples_view(run_id, int(at_step), qty, page)
            return False, shown_html, table

        def pick_page(run_id, qty, follow_latest, at_step, page):
            _, shown_html, table, _ = lab.samples_view(run_id, None if follow_latest else int(at_step or 0), qty,
                                                       page)
            return shown_html, table

        def pick_point(run_id, x_axis, qty, evt: gr.EventData):
            """A click on a chart point (the grid's `select`): the samples of that step, or of the last logged
            step before it, and the view stops following the latest step."""
            at = lab.step_at(run_id, (getattr(evt, "_data", None) or {}).get("index"), x_axis)
            if at is None:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            logged = [s for s in lab.samples_at(run_id, None)[1] if s <= at]
            shown = logged[-1] if logged else at
            _, shown_html, table, _ = lab.samples_view(run_id, shown, qty, 1)
            return False, gr.update(value=shown), 1, shown_html, table

        def live(owner_id: str, run_id: str | None, lr: Any, kl_coef: Any, temperature: Any,
                 request: gr.Request):
            return lab.set_live(who(owner_id, request), run_id, lr, kl_coef, temperature)

        def room_link(owner_id: str | None, run_id: str | None, base: str, request: gr.Request):
            """The presenter URL of the run shown, for attendees (app/present.py)."""
            return present.room_html(*present.room_link(lab, who(owner_id, request), run_id, base))

        def export(run_id: str | None):
            path = lab.export(run_id)
            return gr.File(value=path, visible=bool(path))

        def replay_page(run_id: str | None):  # one self-contained HTML file of the run (app/replay.py)
            from app.replay import replay_file

            path = replay_file(manager.store, run_id) if run_id else None
            return gr.File(value=path, visible=bool(path))

        # The Lessons mode (app/lessons.py: its own layout and events) under the lab, so the transport bar and the
        # charts keep the first screen (a projector's 1280x720).
        lessons_panel(manager, owner, who)  # lessons train through the run queue (labcore/lesson_runs.py)

        # Layout is done; wire the events.
        # always_last: edits made while a refresh is pending must still be reflected (the default "once" drops them)
        derived_io = {"fn": derived, "inputs": [base_url, run_state],
                      "outputs": [formula, diff, chart_notes, link, checks,
                                  *(controls[k] for k in settings.EXPLAINED)],
                      "inputs_kwargs": ctl_kwargs, "trigger_mode": "always_last", **private}
        load_outputs = [token, owner, base_url, problems, preset, preset_note, run_state, timer, sig_state, watch,
                        runs_table, formula, diff, *ctl]
        demo.load(on_load, [token], load_outputs, **private).then(**derived_io)
        # dark mode in the browser only (Gradio's theme follows the `dark` class); the charts follow at the next draw
        dark_btn.click(None, js="() => { document.body.classList.toggle('dark'); "
                                "document.querySelector('.gradio-container')?.classList.toggle('dark'); }")
        # presenter mode in the browser only (app/present.py); the room link asks the server (it may publish the run)
        present_btn.click(None, js="() => { window.rlPresent && window.rlPresent.toggle(); }")
        room_btn.click(room_link, [owner, run_state, base_url], [room], **private).then(
            None, js="() => { setTimeout(() => { const a = document.querySelector('#rl-room a'); "
                     "if (a && navigator.clipboard) navigator.clipboard.writeText(a.href).catch(() => {}); }, 100); }")
        # Ticks are read-only and cheap: skip the queue (no SSE round trip), as trackio does.
        timer.tick(view, view_inputs, view_outputs, queue=False, api_name="tick", api_visibility="undocumented",
                   show_progress="hidden")
        gr.on([smoothing.change, xaxis.change, compare.change, quantity.change, follow.input], redraw,
              view_inputs, view_outputs, concurrency_limit=None, trigger_mode="always_last", **private)
        sample_step.release(pick_step, [run_state, quantity, sample_step, sample_page],
                            [follow, samples_view, samples_table], **private)
        sample_page.input(pick_page, [run_state, quantity, follow, sample_step, sample_page],
                          [samples_view, samples_table], trigger_mode="always_last", **private)
        # the chart grid (app/charts.py): a click on a point shows that step's samples; a client that missed a
        # tick's delta asks for every chart again
        grid.select(pick_point, [run_state, xaxis, quantity], [follow, sample_step, sample_page, samples_view,
                                                               samples_table], **private)
        grid.submit(redraw, view_inputs, view_outputs, concurrency_limit=None, **private)

        hot = [controls[k] for k in settings.LIVE]
        # straight to the server (no queue round trip), and the last edit always lands (typing is many inputs).
        # Wired before `derived` on purpose: the page runs an input's events one after another, each awaited to
        # the end, so a live change wired after it waited for the queued refresh of the formula and notes
        # (1-2 s on a busy server; benchmarks/README.md, live changes).
        gr.on([c.input for c in hot], live, [owner, run_state, *hot], [live_note], queue=False,
              trigger_mode="always_last", **private)
        preset.input(pick_preset, [preset], [*ctl, preset_note, problems], **private).then(**derived_io)
        controls["algorithm.recipe"].input(pick_recipe, None, [*ctl, preset, preset_note],
                                           inputs_kwargs=ctl_kwargs, **private).then(**derived_io)
        gr.on([c.input for k, c in controls.items() if k != "algorithm.recipe"], concurrency_limit=None,
              **derived_io)
        # the chain task has its own built-in model: picking it (or leaving it) moves a built-in policy along
        controls["rollout.task"].input(settings.model_for_task, [controls["rollout.task"], controls["model.policy"]],
                                       [controls["model.policy"]], **private).then(**derived_io)
        import_btn.upload(import_toml, [import_btn, run_state], [*ctl, preset, preset_note, problems, diff],
                          **private).then(**derived_io)
        data_btn.upload(use_dataset, [data_btn], [controls["rollout.dataset"], problems], **private).then(**derived_io)
        fns_btn.upload(use_reward_file, [fns_btn], [controls["rollout.reward_fns"], problems],
                       **private).then(**derived_io)

        run_outputs = [run_state, problems, checks, live_note, sig_state, timer, status, watch, runs_table]
        start_btn.click(start, [owner, run_state], run_outputs, inputs_kwargs=ctl_kwargs, api_name="start")
        # a press is never dropped while the previous one is in flight (Gradio's default for a click is "once"):
        # two presses of space resume then pause, five presses of Step are five steps
        step_btn.click(step, [owner, run_state], run_outputs, inputs_kwargs=ctl_kwargs, api_name="step",
                       trigger_mode="multiple")
        pause_btn.click(control("toggle"), [owner, run_state], [problems, status, timer], api_name="pause",
                        trigger_mode="multiple")
        stop_btn.click(control("stop"), [owner, run_state], [problems, status, timer, live_note],
                       api_name="stop")
        reset_btn.click(reset, [owner, run_state], [run_state, sig_state, timer, status, grid, samples_view,
                                                    samples_table, problems, live_note, details],
                        api_name="reset")
        details_btn.click(run_status, [owner, run_state], [status, details], api_name="status", queue=False)

        watch.input(watch_run, [owner, watch], [run_state, sig_state, timer, status, preset, preset_note, formula,
                                                diff, *ctl], api_name="watch", show_progress="hidden",
                    queue=False).then(**derived_io)
        refresh_btn.click(refresh, [owner, run_state, compare], [watch, runs_table], **private)
        runs_table.input(pick_overlay, [owner, runs_table], [compare], **private)
        export_btn.click(export, [run_state], [export_file], api_name="export")
        replay_btn.click(replay_page, [run_state], [export_file], api_name="replay")
        publish_btn.click(publish, [owner, run_state], [share_note], api_name="publish")
    demo.queue(default_concurrency_limit=8)
    return demo


def launch(runs_dir: str = "runs", host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           shared: bool = False, manager: RunManager | None = None, tick_budget: float = 12.0, **kwargs: Any):
    """Serve the lab. `shared`: a workshop or Space (caps from SharedLimits, runs listed per session).
    `tick_budget`: timer ticks per second served in all before tabs tick more slowly (see `TickPacer`)."""
    manager = manager or RunManager(runs_dir, limits=SharedLimits() if shared else None, isolation="process")
    manager.warm_up("tiny")  # load the built-in model while the page opens: the first Start steps at once
    demo = build_demo(manager, shared=shared, tick_budget=tick_budget)
    kwargs.setdefault("quiet", True)  # Gradio's own hint says "set share=True in launch()"; ours names the flag
    out = demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                      **launch_options(manager), **kwargs)
    print(launch_hint(demo.local_url, demo.share_url), flush=True)
    try:
        demo.block_thread()  # returns on Ctrl-C, once Gradio has closed the server
    finally:  # the running run stops at its next step (ends `stopped`), and the worker process exits on its own
        manager.shutdown()
    return out


def launch_hint(local_url: str | None, share_url: str | None) -> str:
    """What to open, and how to get a public link (the command-line flag, not Gradio's launch() argument)."""
    lines = [f"rlhf-lab: open {local_url}"]
    lines.append(f"public link (expires in a week): {share_url}" if share_url else
                 "For a temporary public link, restart with `rlhf-lab --share` (or put the lab on a Space).")
    return "\n".join(lines)


def launch_options(manager: RunManager) -> dict[str, Any]:
    """What `demo.launch` needs besides the address: theme, CSS, the runs folder for exports, and gzip for
    responses over 1 KiB (a tick is a JSON POST: its numbers shrink several times over a room's Wi-Fi; Starlette
    leaves the queue's event stream uncompressed)."""
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware

    return {"theme": THEME, "css": CSS + chart_explain.CSS, "head": HEAD,
            "js": present.page_js(SHORTCUTS_JS, chart_explain.script()),
            "allowed_paths": [str(manager.store.root.resolve())], "footer_links": ["api", "gradio"],
            "app_kwargs": {"middleware": [Middleware(GZipMiddleware, minimum_size=1024)]}}

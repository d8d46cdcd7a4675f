"""The Lessons mode: pick a lesson, read the question, lock a prediction, run it, read the verdict in numbers.

Predicting first is the point (Crouch et al. 2004; Miller et al. 2013: learners who predicted an outcome are
markedly more likely to see it), so Start stays disabled until a prediction is locked. Start queues the lesson's
arms as ordinary runs of the server's queue (`labcore.lesson_runs`: seed 0, the configs `rlhf-lab lesson check`
trains, judged the same way), one after another, owned by the learner's session, draws the lesson's metrics per
arm while they run, marks the steps where the signature is read, then says what happened against the
prediction, with the explanation, the formula, the source and a one-knob follow-up. Each lesson chart has its
explanation beside it (`app.chart_help`). The 3-seed check is the CLI's job; the app shows one seed.
The arms are runs like any other: they wait their turn, count against a shared server's caps, and stay in the
Runs table, where they can be watched and overlaid on the main charts. A probe lesson (a paired measurement on
one batch, not a run) trains in this process, one at a time per server.
"""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from app.chart_help import CHART_HELP, METRIC_CHART, chart_help_markdown
from labcore import config as C
from labcore import lessons as L
from labcore.lesson_runs import LessonRunError, queued_progress

ARM_COLORS = ("#4f46e5", "#d97706", "#059669", "#dc2626")
NO_LESSON = "Pick a lesson above."


def question_markdown(lesson: L.Lesson) -> str:
    arms = "; ".join(f"**{a.label}**" for a in lesson.arms) if not lesson.probe else "one batch, measured paired"
    return (f"### {lesson.title}\n\n{lesson.question}\n\n"
            f"<small>Runs preset `{lesson.preset}` for {lesson.steps} step(s): {arms}.</small>")


def claim_numbers(lesson: L.Lesson, v: L.Verdict, records: dict[str, list[dict]]) -> str:
    """One claim's outcome in numbers, e.g. 'clip/frac over steps 1-20: two passes 0.016, one pass 0 ...'."""
    c = v.claim
    arms = {a.name: a.label for a in lesson.arms}
    parts = []
    if c.band:  # both arms over their own steps inside the band of the matched metric
        for name in (c.arm, c.against):
            mean, n = L.band_mean(records[name], c.metric, c.match, c.band, c.window)
            parts.append(f"{arms[name]}: {mean:.4g} over its {n} step(s) with {c.band[0]:g} <= `{c.match}` <= "
                         f"{c.band[1]:g}" + (f" (fewer than {L.BAND_MIN_STEPS}: no comparison)"
                                             if n < L.BAND_MIN_STEPS else ""))
    for name in (c.arm, None if c.match else c.against):
        if name and not c.band:
            try:
                parts.append(f"{arms[name]}: {L.window_mean(records[name], c.metric, c.window):.4g}")
            except L.LessonError:
                parts.append(f"{arms[name]}: not recorded")
    side = {"greater": ">", "less": "<", "equal": "within ±"}[c.direction]
    steps = f"steps {c.window[0]}-{c.window[1]}" if c.window[0] != c.window[1] else f"step {c.window[0]}"
    mark = "✔ showed" if v.holds else "✘ did not show in this run"
    if c.since:
        parts.append(f"{arms[c.arm]} over steps {c.since[0]}-{c.since[1]}: "
                     f"{L.window_mean(records[c.arm], c.metric, c.since):.4g}")
    if c.target is not None:
        parts.append(f"target: {c.target:g}")
    if c.match and not c.band:
        try:
            where = L.compared_window(c, records)
        except L.LessonError:
            where = None
        parts.append(f"{arms[c.against]} where its `{c.match}` first reached the same value, steps "
                     f"{where[0]}-{where[1]}: {L.window_mean(records[c.against], c.metric, where):.4g}" if where else
                     f"{arms[c.against]}: its `{c.match}` never reached the same value")
    kind = " (log10 of the ratio)" if c.scale == "log10" else ""
    return (f"- {mark}: {c.text}. `{c.metric}` over {steps}: {', '.join(parts)}; "
            f"effect{kind} {v.mean:+.4g} (claimed {side} {c.threshold:g}).")


def verdict_markdown(lesson: L.Lesson, result: L.Result, prediction: str) -> str:
    records = result.records[result.seeds[0]]
    right = prediction == lesson.answer
    lines = [f"### What happened ({result.seconds:.0f} s, seed {result.seeds[0]})",
             *[claim_numbers(lesson, v, records) for v in result.verdicts], "",
             f"**You predicted:** {prediction} — {'right.' if right else 'not what the lab found.'}", "",
             f"**The answer:** {lesson.answer}", "", f"**Why.** {lesson.explanation}"]
    if lesson.formula:
        lines += ["", f"`{lesson.formula}`"]
    lines += ["", f"**Source.** {lesson.source}" + (f" — {lesson.figure}" if lesson.figure else "")]
    if lesson.follow_up:
        lines += ["", f"**Follow-up (one knob).** {lesson.follow_up}"]
    return "\n".join(lines)


def claim_line(c: L.Claim) -> float:
    """Where a probe claim's raw value crosses its threshold. The bar is the metric itself; the claim reads it minus
    its target (0 without one), or with scale = "log10" the log10 of their ratio (a target of 1 without one)."""
    base = c.target if c.target is not None else (0.0 if c.scale == "linear" else 1.0)
    return base * 10 ** c.threshold if c.scale == "log10" else base + c.threshold


def lesson_figure(lesson: L.Lesson, records: dict[str, list[dict]]) -> go.Figure:
    """The lesson's metrics, one line per arm, with the claims' windows shaded (where the signature is read).
    A probe lesson (one record) gets bars."""
    metrics = list(lesson.charts) or [c.metric for c in lesson.claims]
    fig = go.Figure()
    if lesson.probe:
        rows = records.get("probe") or []
        vals = rows[-1] if rows else {}
        fig.add_bar(x=metrics, y=[vals.get(m, 0.0) for m in metrics], marker_color=ARM_COLORS[0])
        for c in lesson.claims:
            y = claim_line(c)
            fig.add_hline(y=y, line_dash="dot", annotation_text=f"claim: {c.direction} {y:g}")
        fig.update_layout(title={"text": "measured on one batch at the same weights"}, height=320,
                          margin={"l": 40, "r": 10, "t": 40, "b": 40})
        return fig
    for i, arm in enumerate(lesson.arms):
        rows = records.get(arm.name, [])
        for j, m in enumerate(metrics):
            pts = [(r["step"], r[m]) for r in rows if m in r]
            fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                            name=f"{arm.label} · {m}", line={"color": ARM_COLORS[i % len(ARM_COLORS)],
                                                             "dash": ("solid", "dash", "dot")[j % 3]},
                            yaxis="y" if j == 0 else "y2")
    for c in lesson.claims:
        fig.add_vrect(x0=c.window[0] - 0.5, x1=c.window[1] + 0.5, fillcolor="#fde68a", opacity=0.18,
                      line_width=0, annotation_text="signature", annotation_position="top left")
        if c.target is not None and c.metric in metrics:  # the fixed value the claim compares with, on its axis
            axis = "y" if c.metric == metrics[0] else "y2"
            fig.add_hline(y=c.target, yref=axis, line_dash="dash", line_color="#374151",
                          annotation_text=f"target {c.metric} = {c.target:g}", annotation_position="bottom right")
    layout: dict[str, Any] = {"height": 360, "margin": {"l": 40, "r": 40, "t": 30, "b": 40},
                              "xaxis": {"title": {"text": "step"}, "range": [0.5, lesson.steps + 0.5]},
                              "yaxis": {"title": {"text": metrics[0]}}, "legend": {"orientation": "h", "y": -0.2}}
    if len(metrics) > 1:
        layout["yaxis2"] = {"title": {"text": ", ".join(metrics[1:])}, "overlaying": "y", "side": "right"}
    fig.update_layout(**layout)
    return fig


def charts_help_markdown(lesson: L.Lesson) -> str:
    """The explanations of the charts this lesson draws."""
    ids = []
    for m in lesson.charts:
        cid = METRIC_CHART.get(m)
        if cid and cid not in ids:
            ids.append(cid)
    return "\n\n---\n\n".join(f"#### {cid}\n\n{chart_help_markdown(cid)}" for cid in ids)


class LessonRunner:
    """Runs a lesson for one learner: its arms through `manager`'s queue (or, for a probe lesson or without a
    manager, in this process, one lesson at a time per server)."""

    def __init__(self, manager: Any = None, poll: float = 0.5) -> None:
        self.manager, self.poll = manager, poll
        self.lock = threading.Lock()

    def run(self, name: str, prediction: str | None, owner: str = ""):
        """Generator of (status, figure, verdict) while the lesson runs."""
        if not name or not prediction:
            yield "Pick a lesson and lock a prediction first.", gr.skip(), ""
            return
        lesson = L.load_lesson(name)
        if lesson.probe or self.manager is None:
            yield from self._in_process(lesson, prediction)
            return
        progress = queued_progress(lesson, self.manager, 0, owner, self.poll)
        runs: list[str] = []
        try:
            while True:
                try:
                    arm, st, records = next(progress)
                except StopIteration as done:
                    res = done.value
                    break
                if st["run_id"] not in runs:
                    runs.append(st["run_id"])
                where = (f"queued (position {st['queue_position']})" if st.get("state") == "queued"
                         else f"{st.get('state')}, step {st.get('step', 0)} of {lesson.steps}")
                yield (f"Arm {lesson.arms.index(arm) + 1} of {len(lesson.arms)} ({arm.label}): {where}. "
                       f"Run `{st['run_id']}`.", lesson_figure(lesson, records), "")
        except C.ConfigError as e:  # a shared server's cap, or the learner's own run holding the slot
            yield f"The lesson could not start: {'; '.join(e.problems)}", gr.skip(), ""
            return
        except LessonRunError as e:
            yield f"The lesson stopped: {e}", gr.skip(), ""
            return
        finally:  # the learner left: closing the progress stops the arm in flight
            progress.close()
        listed = ", ".join(f"`{r}`" for r in runs)
        yield (f"Done. The arms are runs {listed}: watch or overlay them from the Runs table.",
               lesson_figure(lesson, res.records[0]), verdict_markdown(lesson, res, prediction))

    def _in_process(self, lesson: L.Lesson, prediction: str):
        if not self.lock.acquire(blocking=False):
            yield "Another lesson is running on this server; try again in a minute.", gr.skip(), ""
            return
        try:
            records: dict[str, list[dict]] = {a.name: [] for a in lesson.arms}
            box: dict[str, Any] = {}

            def on_step(m: dict) -> None:
                records[m["arm"]].append(m)

            def work() -> None:
                try:
                    box["result"] = L.check(lesson, 1, on_step=on_step)
                except Exception as e:  # shown to the learner, not swallowed
                    box["error"] = f"{type(e).__name__}: {e}"

            t = threading.Thread(target=work, daemon=True)
            t.start()
            while t.is_alive():
                t.join(1.0)
                done = sum(len(v) for v in records.values())
                total = lesson.steps * len(lesson.arms)
                yield f"Running… {done}/{total} steps", lesson_figure(lesson, records), ""
            if "error" in box:
                yield f"The lesson failed: {box['error']}", gr.skip(), ""
                return
            res = box["result"]
            yield ("Done.", lesson_figure(lesson, res.records[0]), verdict_markdown(lesson, res, prediction))
        finally:
            self.lock.release()


def lessons_panel(manager: Any = None, owner: Any = None, who: Any = None) -> None:
    """The Lessons accordion, layout and events; call inside the app's `gr.Blocks`. With a `manager`, the arms
    are runs of its queue owned by the session (`owner`: the session's owner-id State; `who(owner_id, request)`
    resolves it as the app's other events do)."""
    names = L.list_lessons()
    runner = LessonRunner(manager)
    private = {"api_visibility": "private", "show_progress": "hidden"}
    with gr.Accordion("Lessons: predict, run, see it happen", open=False, elem_id="rl-lessons"):
        pick = gr.Dropdown(choices=[(t, n) for n, t in names.items()], value=None, label="Lesson",
                           elem_id="rl-lesson-pick", info="Each lesson asks a question, runs, and checks the answer.")
        question = gr.Markdown(NO_LESSON, elem_id="rl-lesson-question")
        choice = gr.Radio(choices=[], label="Your prediction", elem_id="rl-lesson-choice")
        with gr.Row():
            lock = gr.Button("Lock my prediction", size="sm", elem_id="rl-lesson-lock", interactive=False)
            start = gr.Button("▶ Run the lesson", variant="primary", size="sm", elem_id="rl-lesson-start",
                              interactive=False)
        locked = gr.State("")
        status = gr.Markdown("", elem_id="rl-lesson-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                plot = gr.Plot(label="lesson chart", elem_id="rl-lesson-plot")
            with gr.Column(scale=1, min_width=280):
                help_md = gr.Markdown("", elem_id="rl-lesson-help")
        verdict = gr.Markdown("", elem_id="rl-lesson-verdict")
        with gr.Accordion("Explain a chart", open=False):
            which = gr.Dropdown(choices=list(CHART_HELP), value=None, label="Chart", elem_id="rl-chart-help-pick")
            which_md = gr.Markdown("")

    def on_pick(name: str | None):
        if not name:
            return NO_LESSON, gr.Radio(choices=[], value=None), gr.Button(interactive=False), \
                gr.Button(interactive=False), "", "", "", None
        lesson = L.load_lesson(name)
        return (question_markdown(lesson), gr.Radio(choices=list(lesson.choices), value=None, interactive=True),
                gr.Button(interactive=True), gr.Button(interactive=False), "", "", charts_help_markdown(lesson),
                lesson_figure(lesson, {}))

    def on_lock(prediction: str | None):
        if not prediction:
            return "", gr.Radio(), gr.Button(interactive=False), "Choose an answer first, then lock it."
        return (prediction, gr.Radio(interactive=False), gr.Button(interactive=True),
                f"Prediction locked: **{prediction}**. Now run the lesson.")

    pick.input(on_pick, [pick], [question, choice, lock, start, locked, verdict, help_md, plot], **private)
    lock.click(on_lock, [choice], [locked, choice, start, status], **private)
    def run(name: str, prediction: str | None, owner_id: str | None = None, request: gr.Request = None):
        yield from runner.run(name, prediction, who(owner_id, request) if who else "")

    # the queue orders the arms: lessons of different learners run side by side in the queue
    start.click(run, [pick, locked] + ([owner] if owner is not None else []), [status, plot, verdict],
                concurrency_limit=None if manager is not None else 1, concurrency_id="lesson",
                api_name="lesson_run", show_progress="hidden")
    which.input(lambda c: chart_help_markdown(c or ""), [which], [which_md], **private)

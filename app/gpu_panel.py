"""The ZeroGPU panel: Start / Continue / Stop a real model's run, one GPU chunk per click.

Added below the lab by `space_app.py` on a ZeroGPU Space (or with RLHF_LAB_GPU_CHUNKS=1 anywhere, where the chunks
run on whatever device there is). Layout first, wiring last; the handlers only call `app.gpu_chunks.ChunkedRuns`
and draw with the lab's own builders (`app.figures`, `app.samples`). Each Continue streams the chunk's steps:
the reward chart and the latest samples redraw after every step. The note under the buttons says what the next
chunk books and what is left of the visitor's quota.
Left out: the lab's full chart grid for GPU runs (open the run with "Watch a run" or `?run=<id>` for it), and
keeping control of a GPU run across a page reload (a run belongs to the page session that started it).
"""

from __future__ import annotations

import html

import gradio as gr
import plotly.graph_objects as go

from app import figures, samples, space
from app.gpu_chunks import ChunkedRuns
from labcore.config import ConfigError, list_presets, load_preset


def _chart(chunked: ChunkedRuns, run_id: str | None) -> go.Figure:
    records = chunked.store.metrics(run_id) if run_id else []
    view = figures.RunView(run_id or "none", "reward", records)
    fig = figures.chart_figure(figures.CHARTS[0], [view] if run_id else [], smoothing=0.0)
    return go.Figure({"data": fig["data"], "layout": fig["layout"]})


def _samples(chunked: ChunkedRuns, run_id: str | None) -> str:
    return samples.samples_html(chunked.store.samples(run_id) if run_id else [])


def _problems(e: ConfigError) -> str:
    return "**Cannot do that:** " + "; ".join(html.escape(p) for p in e.problems)


def add_gpu_panel(chunked: ChunkedRuns) -> None:
    """Build the panel inside the current Blocks (call it within `with demo:`)."""
    first = space.steps_that_fit(None)
    with gr.Accordion(f"Train {chunked.model} on the GPU: one chunk of steps per click (ZeroGPU)", open=True):
        gr.Markdown("On ZeroGPU the GPU is lent for one call at a time, charged to your daily quota, so a real "
                    "model trains in chunks: **Start on GPU** makes the run, each **Continue** trains the next "
                    "chunk and hands the adapter and optimiser state to the one after.")
        with gr.Row():
            preset = gr.Dropdown(list(list_presets()), value="grpo", label="Preset")
            steps = gr.Slider(1, 50, value=first, step=1, label="Steps per chunk")
        with gr.Row():
            start_btn = gr.Button("Start on GPU")
            continue_btn = gr.Button("Continue (one chunk)", variant="primary")
            stop_btn = gr.Button("Stop", variant="stop")
        note = gr.Markdown(chunked.note(None, "", first), elem_id="rl-gpu-note")
        progress = gr.Markdown(elem_id="rl-gpu-progress")
        chart = gr.Plot(label="Reward")
        sample_view = gr.HTML("", css_template=samples.SAMPLES_CSS, js_on_load=None)
        run_state = gr.State(None)

    def start(preset_name: str, n: int, request: gr.Request):
        try:
            run_id = chunked.start(load_preset(preset_name), request.session_hash)
        except ConfigError as e:
            return None, _problems(e), "", _chart(chunked, None), ""
        return (run_id, chunked.note(run_id, request.session_hash, int(n)),
                f"Run `{run_id}` is ready: press Continue.", _chart(chunked, run_id), "")

    def cont(run_id: str | None, n: int, request: gr.Request):
        owner, n = request.session_hash, int(n)
        if not run_id:
            yield chunked.note(None, owner, n) + "\n\nPress **Start on GPU** first.", gr.skip(), gr.skip(), gr.skip()
            return
        try:
            for p in chunked.continue_run(run_id, owner, n):
                yield (gr.skip(), f"Step {p['step']} of {p['steps']} · reward {p['metrics']['reward/mean']:.3f}",
                       _chart(chunked, run_id), _samples(chunked, run_id))
        except ConfigError as e:
            yield _problems(e), gr.skip(), gr.skip(), gr.skip()
            return
        except Exception as e:  # noqa: BLE001 - the GPU call was aborted, or training failed: say so, keep the page
            yield (f"**The GPU chunk failed:** {html.escape(str(e))}. Its records so far are kept; start a new "
                   "run to go on.", gr.skip(), _chart(chunked, run_id), _samples(chunked, run_id))
            return
        meta = chunked.store.meta(run_id)
        yield (chunked.note(run_id, owner, n), f"{meta.get('message', '')}", _chart(chunked, run_id),
               _samples(chunked, run_id))

    def stop(run_id: str | None, request: gr.Request):
        if not run_id:
            return gr.skip(), gr.skip()
        try:
            chunked.stop(run_id, request.session_hash)
        except ConfigError as e:
            return _problems(e), gr.skip()
        return chunked.note(None, request.session_hash, first), f"Run `{run_id}` stopped."

    def renote(run_id: str | None, n: int, request: gr.Request) -> str:
        return chunked.note(run_id, request.session_hash, int(n))

    start_btn.click(start, [preset, steps], [run_state, note, progress, chart, sample_view], api_name="gpu_start")
    continue_btn.click(cont, [run_state, steps], [note, progress, chart, sample_view], api_name="gpu_continue",
                       concurrency_id="gpu", concurrency_limit=1)
    stop_btn.click(stop, [run_state], [note, progress], api_name="gpu_stop")
    steps.release(renote, [run_state, steps], [note], show_progress="hidden")

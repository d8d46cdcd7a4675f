"""The live chart grid: one custom `gr.HTML` component that keeps Plotly charts alive across updates.

`gr.Plot` remounts its div whenever its figure changes, which throws away the user's zoom, pan and hidden
traces every second. This component instead renders a constant template (an empty grid, so Gradio never
re-renders the DOM under it) and, in `js_on_load`, creates one div per chart and calls
`Plotly.react(div, data, layout)` on the same div at every value change (`watch('value', ...)`). Layouts carry
a constant `uirevision` (see `app/figures.py`), so Plotly keeps user-made view changes between updates.

The value is one JSON string {"charts": [{"id", "data", "layout"}, ...]}; Python builds it with the pure
builders in `app/figures.py`. plotly.js comes from the installed plotly package, served by Gradio as a static
file (no CDN: the lab runs offline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import plotly

from app import chart_delta
from app.chart_stream import HELD_JS

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"

TEMPLATE = '<div class="rl-grid" data-rl-charts></div>'

CSS = """
.rl-grid { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px; }
/* two rows of charts fit under the transport bar and status of a 1280x720 projector; taller on big screens */
.rl-chart { height: clamp(190px, calc((100vh - 320px) / 2), 330px); border: 1px solid var(--border-color-primary);
  border-radius: 10px; background: var(--background-fill-primary); padding: 2px 4px; overflow: hidden; }
/* a big screen (1920x1080): all nine charts, three rows */
@media (min-width: 1600px) and (min-height: 900px) { .rl-chart { height: calc((100vh - 330px) / 3); } }
@media (max-width: 1100px) { .rl-grid { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
@media (max-width: 700px) { .rl-grid { grid-template-columns: minmax(0, 1fr); } }
"""

# Runs once per page; `watch` re-runs draw() after every value change sent by Python. A tick's charts are drawn
# one per task (setTimeout 0), so typing and clicks are handled between them instead of waiting for all nine;
# a chart scrolled out of view keeps its latest figure and is drawn when it comes back (its first draw is
# immediate, so every chart exists from the start).
JS_ON_LOAD = HELD_JS + """
const grid = element.querySelector('[data-rl-charts]');
const divs = {}, pending = {}, visible = new Set();
let queued = null;
const config = {responsive: true, displaylogo: false, displayModeBar: 'hover',
                // a short toolbar, left of the chart's own full-screen and PNG buttons (app/present.py)
                modeBarButtonsToRemove: ['lasso2d', 'select2d', 'toImage', 'zoomIn2d', 'zoomOut2d', 'autoScale2d']};
const seen = window.IntersectionObserver ? new IntersectionObserver(entries => {
  for (const e of entries) {
    if (e.isIntersecting) { visible.add(e.target.dataset.chart); schedule(); }
    else visible.delete(e.target.dataset.chart);
  }
}) : null;
function schedule() { if (queued === null) queued = setTimeout(pump, 0); }
function pump() {
  queued = null;
  const id = Object.keys(pending).find(id => !seen || visible.has(id) || !divs[id].dataset.drawn);
  if (id === undefined) return;
  const chart = pending[id];
  delete pending[id];
  // Same div every time + constant layout.uirevision: zoom, pan and legend clicks survive. The page script may
  // restyle a layout (larger type in presenter mode or full screen: app/present.py).
  const layout = window.rlChartLayout ? window.rlChartLayout(id, chart.layout) : chart.layout;
  window.Plotly.react(divs[id], chart.data, layout, config);
  if (!divs[id].dataset.drawn) divs[id].on('plotly_click', ev => pick(id, ev));
  divs[id].dataset.drawn = '1';
  schedule();
}
function draw() {
  if (!grid) return;
  if (!window.Plotly) {
    grid.textContent = 'The charts need plotly.js, which could not be loaded from this server.';
    return;
  }
  let spec;
  try { spec = JSON.parse(props.value || '{"charts": []}'); } catch (e) { return; }
  const dark = document.body.classList.contains('dark') ||
               !!document.querySelector('.gradio-container.dark, .dark .gradio-container');
  for (const chart of held.take(spec)) {
    if (dark) {  // the figures are built for a light page; lighten the text on a dark one
      chart.layout.font = {...chart.layout.font, color: '#cbd5e1'};
      if (chart.layout.title && chart.layout.title.font) chart.layout.title.font.color = '#f1f5f9';
    }
    if (!divs[chart.id]) {
      const div = document.createElement('div');
      div.className = 'rl-chart';
      div.id = 'rl-chart-' + chart.id;
      div.dataset.chart = chart.id;
      grid.appendChild(div);
      divs[chart.id] = div;
      if (seen) seen.observe(div);
    }
    pending[chart.id] = chart;
  }
  grid.dataset.updates = String(Number(grid.dataset.updates || 0) + 1);
  schedule();
}
draw();
watch('value', draw);
"""


def head() -> str:
    """The <script> tag that loads plotly.js from the installed package through Gradio's file route."""
    return f'<script src="gradio_api/file={PLOTLY_JS.as_posix()}"></script>'


def encode(figures: list[dict[str, Any]], version: str = "") -> str:
    """The component's value for a list of figures from `app.figures.build_figures`: all of them, whole."""
    return chart_delta.full_payload(figures, version)


def chart_grid(value: str, **kwargs: Any) -> gr.HTML:
    """The component. `gr.set_static_paths` must allow PLOTLY_JS (done in `app.main.build_demo`)."""
    return gr.HTML(value, html_template=TEMPLATE, css_template=CSS, js_on_load=JS_ON_LOAD, head=head(),
                   apply_default_css=False, elem_id="rl-charts", **kwargs)

"""Explanations beside every chart: a "?" on each chart opens what it measures (its formula), what healthy looks
like and what to try (`app.chart_help.CHART_HELP`), in the chart's own box; and a chart that is flat by
construction under the shown settings says so on the chart (`app.chart_help.constant_notes`).

The chart grid (`app.charts`) creates one `.rl-chart` div per chart; this script decorates them from outside, so
the grid's drawing code stays as it is. The notes travel in one hidden element (`#rl-chart-notes`), which the
server updates with the settings (`notes_html`); the script copies them onto the charts.
"""

from __future__ import annotations

import json

from app.chart_help import CHART_HELP

CSS = """
.rl-chart { position: relative; }
.rl-help-btn { position: absolute; right: 6px; bottom: 4px; z-index: 5; width: 22px; height: 22px;
  border-radius: 11px; border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color-subdued); font: 600 13px/20px ui-sans-serif, system-ui, sans-serif; cursor: pointer;
  padding: 0; text-align: center; }
.rl-help-btn:hover, .rl-help-btn[aria-expanded="true"] { color: #1d4ed8; border-color: #93c5fd; }
.rl-help-pop { position: absolute; inset: 4px 4px 30px 4px; z-index: 6; overflow: auto; padding: 8px 10px;
  border-radius: 8px; border: 1px solid #bfdbfe; background: var(--background-fill-primary);
  color: var(--body-text-color); font-size: 13px; line-height: 1.35; box-shadow: 0 4px 14px rgba(15,23,42,.12); }
.rl-help-pop p { margin: 0 0 6px 0; }
.rl-help-pop[hidden] { display: none; }
.rl-note { position: absolute; left: 58px; bottom: 44px; max-width: calc(100% - 96px); z-index: 4;
  pointer-events: none; font-size: 12px;
  line-height: 1.3; color: #92400e; background: rgba(254, 243, 199, 0.85); border-radius: 5px; padding: 1px 6px; }
#rl-chart-notes { display: none; }
"""

_JS = """
() => {
  const HELP = __HELP__;
  const NAMES = {measures: 'Measures', healthy: 'Healthy', try: 'Try', constant: 'Flat by construction'};
  const text = (tag, cls, s) => { const e = document.createElement(tag); if (cls) e.className = cls;
                                  if (s) e.textContent = s; return e; };
  function notes() {
    const el = document.querySelector('#rl-chart-notes [data-notes]');
    try { return JSON.parse(el ? el.dataset.notes : '{}'); } catch (e) { return {}; }
  }
  function helpFor(div, id) {
    const btn = text('button', 'rl-help-btn', '?');
    btn.type = 'button';
    btn.title = 'What this chart shows';
    btn.setAttribute('aria-label', 'Explain the ' + id + ' chart');
    btn.setAttribute('aria-expanded', 'false');
    const pop = text('div', 'rl-help-pop');
    pop.hidden = true;
    pop.setAttribute('role', 'note');
    for (const k of Object.keys(NAMES)) {
      if (!HELP[id][k]) continue;
      const p = text('p');
      p.appendChild(text('b', '', NAMES[k] + '. '));
      p.appendChild(document.createTextNode(HELP[id][k]));
      pop.appendChild(p);
    }
    btn.addEventListener('click', (e) => {
      e.stopPropagation();
      pop.hidden = !pop.hidden;
      btn.setAttribute('aria-expanded', String(!pop.hidden));
    });
    pop.addEventListener('click', () => { pop.hidden = true; btn.setAttribute('aria-expanded', 'false'); });
    div.appendChild(pop);
    div.appendChild(btn);
  }
  function decorate() {
    const n = notes();
    for (const div of document.querySelectorAll('.rl-chart[data-chart]')) {
      const id = div.dataset.chart;
      if (HELP[id] && !div.querySelector(':scope > .rl-help-btn')) helpFor(div, id);
      let note = div.querySelector(':scope > .rl-note');
      if (!n[id]) { if (note) note.remove(); continue; }
      if (!note) { note = text('div', 'rl-note'); div.appendChild(note); }
      if (note.textContent !== n[id]) note.textContent = n[id];
    }
  }
  // Watch only what can change the decoration: a chart div added to the grid, and the notes element's contents
  // (not every Plotly redraw inside the charts). Both appear once Gradio has mounted the page.
  let queued = false;
  const later = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; decorate(); }); } };
  const attach = () => {
    const grid = document.querySelector('#rl-charts [data-rl-charts]'), held = document.getElementById('rl-chart-notes');
    if (!grid || !held) { setTimeout(attach, 200); return; }
    new MutationObserver(later).observe(grid, {childList: true});
    new MutationObserver(later).observe(held, {childList: true, subtree: true, attributes: true,
                                               attributeFilter: ['data-notes']});
    decorate();
  };
  attach();
}
"""


def script() -> str:
    """The decorating script, as a `launch(js=...)` function (the chart texts inlined as JSON)."""
    return _JS.replace("__HELP__", json.dumps(CHART_HELP))

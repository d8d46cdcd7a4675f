"""Presenter mode, per-chart tools and the page fixes that need a script (issue 13: a lab for a room).

Presenter mode (`?present=1`, the Present button or the p key) hides the controls and shows the charts that matter
(reward, KL and the recipe's key chart, `KEY_CHART`) large, with large type, above the samples. "Room link" gives
the presenter URL of the run shown (`room_link`): attendees open it and watch that run live, in presenter mode.
Every chart gets two small buttons: full screen (the browser's Fullscreen API on the chart, or the whole viewport
where that API is missing) and a PNG download (Plotly's own renderer, on a white background).
The same page script keeps long dropdown values readable (a truncated dropdown takes the row's full width) and
fits display formulas to the Objective column (smaller type, down to 80 %; past that, a visible scrollbar and a
shadow at the cut edge).

All of it is in the browser except `room_link`: the charts' component calls `window.rlChartLayout` (if set) on
each layout before drawing it, which is where presenter and full-screen type get larger.
Left out: syncing presenter mode between presenter and attendees (each tab chooses; the link carries it).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

# The chart that shows what a recipe is about, beside reward and KL in presenter mode.
KEY_CHART: dict[str, str] = {
    "reinforce": "gradvar",              # no baseline: the gradient's variance is the lesson
    "reinforce_baseline": "gradvar",     # the same gradient with a baseline: its variance falls
    "actor_critic": "loss",              # the critic's value loss
    "ppo": "clip",                       # several epochs: the clip is what keeps the update in its trust region
    "trpo": "ratio",                     # the trust region on the ratio, found by line search
    "rloo": "advantage",                 # leave-one-out baselines
    "grpo": "advantage",                 # group-normalised advantages, and the flat groups that give none
    "dr_grpo": "length",                 # the length bias it removes
    "dapo": "entropy",                   # clip-higher against entropy collapse
    "reinforce_pp": "advantage",         # batch-whitened advantages
    "reinforce_pp_baseline": "advantage",
    "gspo": "clip",                      # sequence ratios with tiny epsilons: most of them clip
    "cispo": "ratio",                    # the clipped importance weight
    "gmpo": "ratio",                     # the geometric mean of the token ratios
    "sapo": "ratio",                     # the soft gate on the ratio
    "raft": "advantage",                 # advantage 1 for the good samples only
    "remax": "gradvar",                  # the greedy baseline's variance reduction
}
DEFAULT_KEY = "advantage"
SCALE = 1.45  # presenter and full-screen chart type: 13 px -> 19 px, the title 16 px -> 23 px


def room_link(lab: Any, owner: str, run_id: str | None, base: str) -> tuple[str, str]:
    """(url, note): the presenter URL of the run shown, `base?run=<id>&present=1`, and what the room needs to
    know. On a shared server only published runs can be watched by others, so the owner's run is published
    (asking for a link for the room is asking to show it); another session's run is shared only if published."""
    st = lab.status(run_id)
    if not st:
        return "", "Start or watch a run first: the link opens the run shown."
    note = "Open it on any device on this network to watch this run live, in presenter mode."
    if lab.shared and not st.get("published"):
        if not lab.mine(owner, run_id):
            return "", "This run is not published: only its owner can share it with the room."
        lab.publish(owner, run_id)
        note = "Published, so everyone on this server can open it. " + note
    url = f"{base or 'http://127.0.0.1:7860/'}?{urlencode({'run': run_id, 'present': 1})}"
    return url, note


def room_html(url: str, note: str) -> str:
    """The link, large enough to read off a projector, and the note."""
    import html

    if not url:
        return f'<div class="rl-room rl-room-none">{html.escape(note)}</div>'
    link = html.escape(url, quote=True)
    return (f'<div class="rl-room">Link for the room: <a href="{link}" target="_blank" rel="noopener">{link}</a>'
            f'<span class="rl-room-note">{html.escape(note)}</span></div>')


ROOM_CSS = """
.rl-room { font-size: 14px; display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: baseline; }
.rl-room a { font-family: var(--font-mono); font-weight: 600; overflow-wrap: anywhere; }
.rl-room-note, .rl-room-none { color: var(--body-text-color-subdued); font-size: 12.5px; }
"""

# The page script's own style sheet (added to <head> as is: Gradio rewrites launch(css=...) selectors under its
# container, which would break `body.rl-present` rules inside media queries).
CSS = """
/* ---- presenter mode: no controls, large type, the three charts that matter fill the screen ---- */
body.rl-present #rl-side, body.rl-present #rl-header, body.rl-present #rl-problems,
body.rl-present #rl-checks, body.rl-present #rl-diff, body.rl-present #rl-runs,
body.rl-present #rl-chart-opts, body.rl-present #rl-runs-panel, body.rl-present #rl-lessons,
body.rl-present footer { display: none !important; }
body.rl-present .gradio-container { max-width: none !important; }
body.rl-present #rl-status, body.rl-present #rl-live, body.rl-present #rl-room { zoom: 1.25; }
body.rl-present #rl-samples { zoom: 1.35; }
body.rl-present .rl-chart { display: none; }
body.rl-present .rl-chart[data-chart="reward"], body.rl-present .rl-chart[data-chart="kl"],
body.rl-present .rl-chart.rl-key { display: block; height: calc(100vh - 160px) !important; min-height: 260px; }
@media (max-width: 1100px) {
  body.rl-present .rl-chart[data-chart="reward"], body.rl-present .rl-chart[data-chart="kl"],
  body.rl-present .rl-chart.rl-key { height: calc((100vh - 170px) / 2) !important; }
}
@media (max-width: 700px) {
  body.rl-present .rl-chart[data-chart="reward"], body.rl-present .rl-chart[data-chart="kl"],
  body.rl-present .rl-chart.rl-key { height: 52vh !important; }
  body.rl-present .gradio-container { padding-left: 4px !important; padding-right: 4px !important; }
  body.rl-present #rl-transport { gap: 4px !important; }
  body.rl-present #rl-transport > * { min-width: 0 !important; flex: 1 1 22% !important; }
  body.rl-present #rl-transport button { min-width: 0 !important; padding: 6px 4px; font-size: 13px;
    white-space: nowrap; }
}
#rl-room:has(.prose:empty) { display: none; }
#rl-present-btn[aria-pressed="true"] { background: var(--button-primary-background-fill); color: white; }
/* ---- per-chart tools: full screen and PNG, in the title row (the legend sits under the title) ---- */
.rl-chart { position: relative; }
.rl-chart-tools { position: absolute; top: 3px; right: 4px; z-index: 5; display: flex; gap: 2px; opacity: 0.55; }
.rl-chart:hover .rl-chart-tools, .rl-chart-tools:focus-within { opacity: 1; }
.rl-chart-tools button { width: 26px; height: 24px; padding: 3px; border: 1px solid var(--border-color-primary);
  border-radius: 6px; background: var(--background-fill-primary); color: var(--body-text-color); cursor: pointer;
  display: grid; place-items: center; }
.rl-chart-tools svg { width: 15px; height: 15px; }
/* Plotly's own toolbar (zoom, pan, reset) appears left of ours, not over it */
.rl-chart .modebar-container { right: 64px !important; }
.rl-chart:fullscreen, .rl-chart.rl-chart-max { width: 100vw !important; height: 100vh !important; padding: 12px;
  border-radius: 0; background: var(--background-fill-primary, white); }
.rl-chart.rl-chart-max { position: fixed !important; inset: 0; z-index: 1000; display: block !important; }
/* ---- a dropdown whose value does not fit beside its neighbour takes the row's full width ---- */
#rl-side .block.rl-wide { flex: 1 1 100% !important; min-width: 100% !important; }
/* ---- display formulas: fitted by the page script; what still overflows scrolls, with a visible bar ---- */
#rl-formula .katex-display { overflow-x: auto; overflow-y: hidden; }
#rl-formula .katex-display.rl-scrolls { box-shadow: inset -14px 0 10px -10px rgba(100, 116, 139, 0.45);
  padding-bottom: 4px; }
#rl-formula .katex-display::-webkit-scrollbar { height: 7px; }
#rl-formula .katex-display::-webkit-scrollbar-thumb { background: #94a3b8; border-radius: 4px; }
#rl-formula .katex-display::-webkit-scrollbar-track { background: rgba(148, 163, 184, 0.15); }
"""

ICONS = {
    "full": '<svg viewBox="0 0 16 16" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true">'
            '<path d="M1.5 5.5v-4h4M10.5 1.5h4v4M14.5 10.5v4h-4M5.5 14.5h-4v-4"/></svg>',
    "png": '<svg viewBox="0 0 16 16" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true">'
           '<path d="M8 1.5v9M4.5 7l3.5 3.5L11.5 7M2 14.5h12"/></svg>',
}

_JS = """
() => {
  const KEY = __KEY__, DEFAULT_KEY = __DEFAULT__, SCALE = __SCALE__, ICONS = __ICONS__;
  if (!document.getElementById('rl-present-css')) {
    const sheet = document.createElement('style');
    sheet.id = 'rl-present-css';
    sheet.textContent = __CSS__;
    document.head.appendChild(sheet);
  }
  const body = document.body, originals = {};
  const presenting = () => body.classList.contains('rl-present');
  const chartDiv = (id) => document.getElementById('rl-chart-' + id);
  const big = (div) => presenting() || document.fullscreenElement === div || div.classList.contains('rl-chart-max');

  function scaled(layout, k) {  // larger type, and the top and bottom margins that hold it
    const out = structuredClone(layout);
    const grow = (f, d) => ({...(f || {}), size: Math.round(((f && f.size) || d) * k)});
    out.font = grow(out.font, 13);
    if (out.title) out.title.font = grow(out.title.font, 16);
    if (out.legend) out.legend.font = grow(out.legend.font, 12);
    for (const a of out.annotations || []) a.font = grow(a.font, 12);
    if (out.margin) out.margin = {...out.margin, t: Math.round((out.margin.t || 34) * k),
                                  b: Math.round((out.margin.b || 40) * k)};
    return out;
  }
  // Called by the charts' component on every layout it draws (app/charts.py).
  window.rlChartLayout = (id, layout) => {
    originals[id] = layout;
    const div = chartDiv(id);
    if (div) setTimeout(() => tools(div, id), 0);
    if (!div || !big(div)) return layout;
    return scaled(layout, div.clientWidth < 360 ? 1.2 : SCALE);  // a phone: less, or the step ticks turn sideways
  };
  function redraw(div) {  // the same data, the layout for the chart's new size
    const id = div.dataset.chart;
    if (!window.Plotly || !div.data || !div.layout) return;
    if (!originals[id]) originals[id] = structuredClone(div.layout);  // drawn before this script ran
    window.Plotly.react(div, div.data, window.rlChartLayout(id, originals[id]), div._context)
      .then(() => window.Plotly.Plots.resize(div)).catch(() => {});
  }
  const redrawAll = () => requestAnimationFrame(() => document.querySelectorAll('.rl-chart').forEach(redraw));

  // ---- per-chart tools
  function tools(div, id) {
    if (div.querySelector(':scope > .rl-chart-tools')) return;
    const bar = document.createElement('div');
    bar.className = 'rl-chart-tools';
    for (const [act, label] of [['full', 'Full screen'], ['png', 'Download as PNG']]) {
      const b = document.createElement('button');
      b.type = 'button'; b.dataset.act = act; b.title = label; b.setAttribute('aria-label', label + ': ' + id);
      b.innerHTML = ICONS[act];
      b.addEventListener('click', (e) => { e.stopPropagation(); act === 'full' ? fullscreen(div) : png(div, id); });
      bar.appendChild(b);
    }
    div.appendChild(bar);
  }
  function fullscreen(div) {
    if (document.fullscreenElement === div) return document.exitFullscreen();
    if (div.classList.contains('rl-chart-max')) { div.classList.remove('rl-chart-max'); return redraw(div); }
    const viewport = () => { div.classList.add('rl-chart-max'); redraw(div); };  // no Fullscreen API (iPhone)
    if (div.requestFullscreen) div.requestFullscreen().catch(viewport); else viewport();
  }
  document.addEventListener('fullscreenchange', () => document.querySelectorAll('.rl-chart').forEach(redraw));
  document.addEventListener('keydown', (e) => {
    const max = document.querySelector('.rl-chart.rl-chart-max');
    if (e.key === 'Escape' && max) { max.classList.remove('rl-chart-max'); redraw(max); }
  });
  function png(div, id) {  // on white (the page's is transparent), at least 900x520, at twice that resolution
    const layout = {...structuredClone(div.layout), paper_bgcolor: 'white', plot_bgcolor: 'white'};
    const size = {width: Math.max(div.clientWidth, 900), height: Math.max(div.clientHeight, 520)};
    window.Plotly.toImage({data: div.data, layout: layout}, {format: 'png', ...size, scale: 2})
      .then((url) => {
        const a = document.createElement('a');
        a.href = url; a.download = 'rlhf-lab-' + id + '.png';
        document.body.appendChild(a); a.click(); a.remove();
      });
  }

  // ---- presenter mode
  function keyChart() {
    const st = document.querySelector('#rl-status .rl-status[data-recipe]');
    const key = KEY[st ? st.dataset.recipe : ''] || DEFAULT_KEY;
    document.querySelectorAll('.rl-chart').forEach((d) => d.classList.toggle('rl-key', d.dataset.chart === key));
  }
  function setPresent(on) {
    for (const el of [body, document.querySelector('.gradio-container')]) if (el) el.classList.toggle('rl-present', on);
    const b = document.getElementById('rl-present-btn');
    if (b) b.setAttribute('aria-pressed', String(on));
    const url = new URL(location.href);
    if (on) url.searchParams.set('present', '1'); else url.searchParams.delete('present');
    history.replaceState(history.state, '', url);
    keyChart();
    redrawAll();
  }
  window.rlPresent = {toggle: () => setPresent(!presenting()), set: setPresent};
  if (new URLSearchParams(location.search).get('present') === '1') setPresent(true);
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.key !== 'p' || e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(t.tagName))) return;
    window.rlPresent.toggle();
  });

  // ---- dropdown values and formulas that did not fit
  function fitDropdowns() {
    for (const input of document.querySelectorAll('#rl-side input[role="combobox"]')) {
      if (!input.clientWidth) continue;  // in a closed accordion
      input.title = input.value;
      const block = input.closest('.block');
      if (block && input.scrollWidth > input.clientWidth + 1) block.classList.add('rl-wide');
    }
  }
  const MIN_EM = 0.97;  // 80 % of KaTeX's 1.21em: the size of the text around it, still readable
  function fitFormulas() {
    for (const box of document.querySelectorAll('#rl-formula .katex-display')) {
      const k = box.querySelector(':scope > .katex');
      if (!k || !box.clientWidth) continue;
      const sig = box.clientWidth + ':' + k.textContent.length;
      if (box.dataset.fit !== sig) k.style.fontSize = '';  // new text or width: measure afresh
      else if (box.scrollWidth <= box.clientWidth + 1) continue;  // fits (fonts that load late may undo it)
      // KaTeX's own size is 1.21em; spacing that does not scale needs a second look
      let size = parseFloat(k.style.fontSize) || 1.21;
      for (let i = 0; i < 4 && box.scrollWidth > box.clientWidth + 1 && size > MIN_EM; i++) {
        size = Math.max(MIN_EM, size * box.clientWidth / box.scrollWidth * 0.98);
        k.style.fontSize = size.toFixed(3) + 'em';
      }
      box.classList.toggle('rl-scrolls', box.scrollWidth > box.clientWidth + 1);  // still too wide: it scrolls
      box.dataset.fit = sig;
    }
  }
  let lastStatus = '';
  setInterval(() => {
    if (document.visibilityState !== 'visible') return;
    fitDropdowns();
    fitFormulas();
    document.querySelectorAll('.rl-chart').forEach((d) => tools(d, d.dataset.chart));  // drawn before we ran
    const st = document.querySelector('#rl-status .rl-status');
    const now = st ? (st.dataset.recipe || '') : '';
    if (now !== lastStatus) { lastStatus = now; keyChart(); if (presenting()) redrawAll(); }
  }, 700);
}
"""


def page_js(*others: str) -> str:
    """The page script for `launch(js=...)`: this module's, after `others` (each a `() => {...}` function)."""
    mine = (_JS.replace("__KEY__", json.dumps(KEY_CHART)).replace("__DEFAULT__", json.dumps(DEFAULT_KEY))
            .replace("__SCALE__", repr(SCALE)).replace("__ICONS__", json.dumps(ICONS)).replace("__CSS__", json.dumps(CSS)))
    calls = "\n".join(f"  ({js.strip()})();" for js in (*others, mine))
    return "() => {\n" + calls + "\n}"

"""A finished run as one self-contained HTML page: `rlhf-lab replay RUN_DIR --out FILE.html`.

The page needs no server and no network: plotly.js (from the installed `plotly` package, about 4.8 MB) and the
run's records are inlined, so it opens from disk and can be hosted as a free static Hugging Face Space. It shows
what the lab shows of a run: every chart of `app.figures.CHARTS` with the smoothing and x-axis (step / seconds)
controls, the logged samples grouped by prompt as the lab groups them, with token colouring and values and a step slider, the objective's formula, the config and
what differs from the recipe.

Python builds each chart's layout and trace styles with the lab's own builders (`app.figures.chart_figure`) and
inlines the raw per-metric columns; the page's script smooths them with the same debiased EMA (`figures.ema`)
and colours tokens with the same rules as `app.samples` (ported line for line, so a replay looks like the lab).
Formulas are shown as readable text (Greek letters, sub- and superscripts, a/b for fractions) with the LaTeX
source beside them: a LaTeX renderer is not inlined, to keep the page small and offline.
Left out: comparing several runs on one page, and the adapter (it stays in the run folder).
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import plotly

from app import figures, samples, settings
from labcore.algorithms import RECIPES, describe_parts
from labcore.config import Config, ConfigError, to_toml
from labcore.runstore import RunStore

PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
PART_TITLES = {"kl": "KL penalty", "policy_loss": "Policy loss", "filter": "Dynamic filter"}


class ReplayError(ValueError):
    """The folder is not a readable run folder; the message says what is missing and what to pass instead."""


# ------------------------------------------------------------------------------------------------ the data


def _num(v: float) -> float:
    """Six significant digits: a smaller page, no visible change."""
    return float(f"{v:.6g}")


def load_run(run_dir: str | Path) -> tuple[RunStore, str, Config]:
    """The run folder's store, id and config; ReplayError (saying what to pass instead) if it is not one."""
    d = Path(run_dir).expanduser().resolve()
    if not d.is_dir():
        raise ReplayError(f"{run_dir} is not a folder: pass a run folder such as runs/<run-id> "
                          "(the lab and `rlhf-lab run` write one per run)")
    missing = [n for n in ("config.toml", "metrics.jsonl") if not (d / n).is_file()]
    if missing:
        raise ReplayError(f"{d} is not a run folder: it has no {' or '.join(missing)}. Pass one folder inside "
                          "runs/ (runs/<run-id>), not the runs folder itself")
    store = RunStore(d.parent)
    run_id = d.name
    try:
        cfg = store.config(run_id)
    except (ConfigError, ValueError, OSError) as e:
        raise ReplayError(f"{d / 'config.toml'} could not be read: {e}") from e
    if not store.metrics(run_id):
        raise ReplayError(f"{d} has no step records yet (metrics.jsonl is empty): replay a run that ran at least "
                          "one step")
    return store, run_id, cfg


def run_data(store: RunStore, run_id: str, cfg: Config) -> dict[str, Any]:
    """Everything the page's script draws, as JSON-ready values: chart templates, metric columns, samples."""
    records = store.metrics(run_id)
    label = settings.run_label(cfg)
    view = figures.RunView(run_id, label, records)
    charts = []
    for chart in figures.CHARTS:
        fig = figures.chart_figure(chart, [view], smoothing=0.6, x="step", max_points=len(records) + 2)
        traces = []
        for t in fig["data"]:
            key = t["legendgroup"][len(run_id) + 1:]  # one run: each series' group is "<run-id>:<key>"
            style = {k: v for k, v in t.items() if k not in ("x", "y")}
            traces.append({"key": key, "raw": t["uid"].endswith("_r"), "style": style})
        charts.append({"id": chart.id, "layout": fig["layout"], "traces": traces})
    columns = {}
    for key in {t["key"] for c in charts for t in c["traces"]}:
        steps, times, values = view.columns.cols.get(key, ([], [], []))
        columns[key] = {"step": list(steps), "time": [None if t is None else _num(t) for t in times],
                        "y": [_num(v) for v in values]}
    logged = []
    for step in store.sample_steps(run_id):  # the completions in order, and their groups' sizes (app.samples.groups)
        rows = store.samples(run_id, step)
        logged.append({"step": step, "samples": rows, "groups": [len(g) for g in samples.groups(rows)]})
    return {
        "run_id": run_id, "label": label, "charts": charts, "columns": columns, "samples": logged,
        "quantities": samples.QUANTITIES, "blue": samples.BLUE, "orange": samples.ORANGE,
    }


# ------------------------------------------------------------------------------------------------ formulas

_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "lambda": "λ",
    "mu": "μ", "pi": "π", "rho": "ρ", "sigma": "σ", "theta": "θ", "tau": "τ", "phi": "φ", "Delta": "Δ",
    "nabla": "∇", "ell": "ℓ", "sum": "Σ", "prod": "Π", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥",
    "leftarrow": "←", "to": "→", "rightarrow": "→", "iff": "⟺", "top": "ᵀ", "cdot": "·", "times": "×",
    "approx": "≈", "infty": "∞", "mid": "|", "in": "∈", "neq": "≠", "ne": "≠", "log": "log", "exp": "exp", "min": "min",
    "max": "max", "quad": "\u2003", "qquad": "\u2003\u2003",
}
# Script capitals outside the Mathematical Script block (Unicode keeps them in Letterlike Symbols).
_SCRIPT = {"B": "ℬ", "E": "ℰ", "F": "ℱ", "H": "ℋ", "I": "ℐ", "L": "ℒ", "M": "ℳ", "R": "ℛ"}


def _group(text: str) -> str:
    """Parentheses around a fraction's part unless it is one symbol (tags do not count)."""
    return text if len(re.sub(r"<[^>]*>", "", text).strip()) <= 1 else f"({text})"


def readable_formula(latex: str) -> str:
    """LaTeX of `labcore.algorithms.describe_parts` as HTML text: symbols, <sub>/<sup>, (a)/(b) fractions.

    A reading aid, not a typesetter: the page shows the LaTeX source beside it.
    """
    s = html.escape(latex, quote=False)
    s = re.sub(r"\\(?:big|Big|bigg|left|right)(?![A-Za-z])\s*", "", s)
    s = s.replace(r"\tfrac12", "½").replace(r"\!", "").replace(r"\,", "\u2009").replace(r"\ ", " ")
    s = re.sub(r"\\hat\s*\{?([A-Za-z])\}?", lambda m: m.group(1) + "\u0302", s)
    s = re.sub(r"\\mathcal\{([A-Z])\}", lambda m: _SCRIPT.get(m.group(1), chr(0x1D49C + ord(m.group(1)) - 65)), s)
    for _ in range(8):  # innermost braces first, until nothing changes
        before = s
        s = re.sub(r"\\(?:text|operatorname|mathrm)\{([^{}]*)\}", r"\1", s)
        s = re.sub(r"\\overline\{([^{}]*)\}", r"mean[\1]", s)
        s = re.sub(r"_\{([^{}]*)\}", r"<sub>\1</sub>", s)
        s = re.sub(r"\^\{([^{}]*)\}", r"<sup>\1</sup>", s)
        s = re.sub(r"\\t?frac\{([^{}]*)\}\{([^{}]*)\}", lambda m: f"{_group(m.group(1))}/{_group(m.group(2))} ", s)
        if s == before:
            break
    s = re.sub(r"_(\\[A-Za-z]+|[A-Za-z0-9])", r"<sub>\1</sub>", s)
    s = re.sub(r"\^(\\[A-Za-z]+|[A-Za-z0-9])", r"<sup>\1</sup>", s)
    s = re.sub(r"\\([A-Za-z]+)", lambda m: _SYMBOLS.get(m.group(1), m.group(1)), s)
    return s.replace("{", "").replace("}", "")


def formula_html(cfg: Config) -> str:
    r = RECIPES.get(cfg.algorithm.recipe)
    head = (f"<p><b>{html.escape(r.title)}</b>: {html.escape(r.summary)} <span class='cite'>"
            f"{html.escape(r.paper)}</span></p>" if r else "")
    parts = []
    for part, latex, sentence in describe_parts(cfg):
        title = html.escape(PART_TITLES.get(part, part.replace("_", " ").capitalize()))
        parts.append(f'<div class="part"><div class="part-title">{title}</div><div>{html.escape(sentence)}</div>'
                     f'<div class="formula">{readable_formula(latex)}</div>'
                     f'<details><summary>LaTeX</summary><code>{html.escape(latex)}</code></details></div>')
    return head + "".join(parts)


def diff_table(cfg: Config) -> str:
    items = settings.diff_items(cfg)
    title = RECIPES[cfg.algorithm.recipe].title if cfg.algorithm.recipe in RECIPES else cfg.algorithm.recipe
    if not items:
        return f"<p>The <b>{html.escape(title)}</b> recipe's defaults: nothing differs.</p>"
    rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(a)}</td><td>{html.escape(b)}</td>"
                   "</tr>" for k, a, b in items)
    return (f"<p>Differs from the <b>{html.escape(title)}</b> recipe:</p><table class='diff'><tr><th>setting</th>"
            f"<th>recipe</th><th>this run</th></tr>{rows}</table>")


# ------------------------------------------------------------------------------------------------ the page


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no '<' at all, so neither </script> nor <!-- can end it early."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def replay_html(run_dir: str | Path) -> str:
    """The whole page for one run folder (a str of roughly 5 MB, most of it plotly.js)."""
    store, run_id, cfg = load_run(run_dir)
    data, meta = run_data(store, run_id, cfg), store.meta(run_id)
    created = meta.get("created")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(created)) if created else "?"
    facts = " · ".join(html.escape(str(x)) for x in (
        f"state: {meta.get('state', '?')}", f"step {meta.get('step', '?')} of {meta.get('steps', '?')}",
        f"task: {cfg.rollout.task}", f"model: {cfg.model.policy}", f"started {when}"))
    parts = {
        "TITLE": html.escape(f"{data['label']} · rlhf-lab replay"), "LABEL": html.escape(data["label"]),
        "RUN_ID": html.escape(run_id), "FACTS": facts, "MESSAGE": html.escape(str(meta.get("message") or "")),
        "FORMULA": formula_html(cfg), "DIFF": diff_table(cfg), "CONFIG": html.escape(to_toml(cfg)), "CSS": CSS,
        "PLOTLY": _inline_js(PLOTLY_JS.read_text(encoding="utf-8")), "DATA": _script_json(data), "SCRIPT": SCRIPT,
    }
    # One pass: text from the run (a run name, a config value) is never searched for placeholders again.
    return re.sub(r"%([A-Z_]+)%", lambda m: parts.get(m.group(1), m.group(0)), PAGE)


def _inline_js(js: str) -> str:
    """Inline JavaScript: '</script' inside it would end the tag early (plotly.min.js has none; make sure)."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)


def write_replay(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the page; `out` defaults to <run_dir>/<run-id>.html. Returns the path written."""
    page = replay_html(run_dir)
    path = Path(out) if out else Path(run_dir) / f"{Path(run_dir).resolve().name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def replay_file(store: RunStore, run_id: str | None) -> str | None:
    """The lab's Replay button: the page of `run_id` written beside the exports; None with no run or records."""
    if not run_id or not store.metrics(run_id):
        return None
    out = Path(tempfile.gettempdir()) / "rlhf-lab-exports" / f"{run_id}.html"
    return str(write_replay(store.path(run_id), out))


CSS = samples.SAMPLES_CSS + """
:root { --body-text-color: #0f172a; --body-text-color-subdued: #64748b; --border-color-primary: #e2e8f0;
  --background-fill-primary: #fff; --background-fill-secondary: #f1f5f9;
  --font: ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
  --font-mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
body { font-family: var(--font); color: var(--body-text-color); margin: 0 auto; max-width: 1400px;
  padding: 16px 20px 40px; background: #f8fafc; }
h1 { font-size: 20px; margin: 4px 0; } h2 { font-size: 16px; margin: 22px 0 8px; }
.facts, .note, .cite { color: var(--body-text-color-subdued); font-size: 13px; }
.controls { display: flex; flex-wrap: wrap; gap: 18px; align-items: center; font-size: 13px; margin: 8px 0; }
.rl-grid { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px; }
.rl-chart { min-height: 290px; border: 1px solid var(--border-color-primary); border-radius: 10px;
  background: var(--background-fill-primary); padding: 2px 4px; overflow: hidden; }
@media (max-width: 1100px) { .rl-grid { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
@media (max-width: 700px) { .rl-grid { grid-template-columns: minmax(0, 1fr); } }
.panel { background: #fff; border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 14px; }
.part { margin: 8px 0 12px; } .part-title { font-weight: 600; }
.formula { font-family: 'Cambria Math', 'STIX Two Math', 'Times New Roman', serif; font-size: 17px; margin: 4px 0; }
details code { font-size: 12px; white-space: pre-wrap; } pre { font-size: 12px; overflow: auto; }
table.diff { border-collapse: collapse; font-size: 13px; }
table.diff td, table.diff th { border-bottom: 1px solid var(--border-color-primary); padding: 3px 10px; text-align: left; }
input[type=range] { vertical-align: middle; width: 220px; }
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title><style>%CSS%</style>
<script>%PLOTLY%</script>
</head><body>
<h1>%LABEL%</h1>
<div class="facts">run <code>%RUN_ID%</code> · %FACTS%</div>
<div class="facts">%MESSAGE%</div>
<p class="note">A replay of a finished rlhf-lab run: one file, no server, no network (plotly.js is inside it).</p>
<h2>Charts</h2>
<div class="controls">
  <label>Smoothing <input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0.6">
    <span id="smoothing-value">0.60</span></label>
  <label>x axis <select id="x-axis"><option value="step">step</option><option value="time">time (s)</option>
    </select></label>
</div>
<div class="rl-grid" id="charts"></div>
<h2>Samples</h2>
<div class="controls">
  <label>Step <input id="step" type="range" min="0" max="0" step="1" value="0"> <span id="step-value"></span></label>
  <label>Colour tokens by <select id="quantity"></select></label>
</div>
<div class="panel" id="samples"></div>
<h2>Objective</h2>
<div class="panel">%FORMULA%
<p class="note">Formulas: readable text; the LaTeX source is under each (no LaTeX renderer is inlined).</p></div>
<h2>Settings</h2>
<div class="panel">%DIFF%<details><summary>Full config (config.toml)</summary><pre id="config">%CONFIG%</pre>
</details></div>
<script type="application/json" id="rl-data">%DATA%</script>
<script>%SCRIPT%</script>
</body></html>
"""

# The page's script. ema(), scores, shade() and the sample markup follow app/figures.py and app/samples.py.
SCRIPT = r"""
const D = JSON.parse(document.getElementById('rl-data').textContent);
const $ = (id) => document.getElementById(id);
const config = {responsive: true, displaylogo: false, displayModeBar: 'hover',
                modeBarButtonsToRemove: ['lasso2d', 'select2d']};
function ema(ys, w) {
  if (w <= 0) return ys.slice();
  const out = []; let last = 0, debias = 0;
  for (const y of ys) { last = last * w + (1 - w) * y; debias = debias * w + (1 - w); out.push(last / debias); }
  return out;
}
function drawCharts() {
  const w = Number($('smoothing').value), xk = $('x-axis').value;
  $('smoothing-value').textContent = w.toFixed(2);
  for (const chart of D.charts) {
    let div = document.getElementById('rl-chart-' + chart.id);
    if (!div) {
      div = document.createElement('div'); div.className = 'rl-chart'; div.id = 'rl-chart-' + chart.id;
      div.dataset.chart = chart.id; $('charts').appendChild(div);
    }
    const data = chart.traces.map((t) => {
      const c = D.columns[t.key] || {step: [], time: [], y: []};
      const xs = [], ys = [];
      c[xk].forEach((x, i) => { if (x !== null) { xs.push(x); ys.push(c.y[i]); } });
      return {...t.style, x: xs, y: t.raw ? ys : ema(ys, w), visible: t.raw && w <= 0 ? false : true};
    });
    const layout = JSON.parse(JSON.stringify(chart.layout));
    layout.xaxis.title.text = xk === 'step' ? 'step' : 'time (s)';
    layout.uirevision = 'rl-' + xk;
    Plotly.react(div, data, layout, config);
  }
  $('charts').dataset.updates = String(Number($('charts').dataset.updates || 0) + 1);
}
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
const finite = (v) => typeof v === 'number' && isFinite(v);
const g3 = (v) => Number(v.toPrecision(3)).toString();
function scale(q, samples) {
  if (q === 'logp') return 1;
  const key = D.quantities[q][0]; let m = 1e-3;
  for (const s of samples) for (const v of s[key] || []) if (finite(v)) m = Math.max(m, Math.abs(q === 'ratio' ? Math.log(Math.max(v, 1e-9)) : v));
  return m;
}
function score(q, v, sc) {
  if (!finite(v)) return 0;
  const s = q === 'logp' ? 2 * Math.exp(Math.min(v, 0)) - 1 : q === 'ratio' ? Math.log(Math.max(v, 1e-9)) / sc : v / sc;
  return Math.max(-1, Math.min(1, s));
}
function shade(s) { const [r, g, b] = s >= 0 ? D.blue : D.orange; return `rgba(${r}, ${g}, ${b}, ${(Math.abs(s) * 0.8).toFixed(2)})`; }
function tip(s, i) {
  const names = [['adv', 'Â'], ['ratio', 'ρ'], ['kl', 'KL'], ['logp', 'log p'], ['ref_logp', 'log p_ref']];
  return names.filter(([k]) => (s[k] || [])[i] !== undefined && s[k][i] !== null).map(([k, n]) => `${n} ${g3(s[k][i])}`).join(' · ');
}
function legend(q, sc) {
  const [, title, meaning] = D.quantities[q];
  const ticks = q === 'logp' ? ['p = 0', 'p = ½', 'p = 1'] : q === 'ratio' ? [g3(Math.exp(-sc)), '1', g3(Math.exp(sc))] : [`−${g3(sc)}`, '0', `+${g3(sc)}`];
  const o = `rgba(${D.orange.join(', ')}, 0.8)`, b = `rgba(${D.blue.join(', ')}, 0.8)`;
  return `<div class="rl-legend"><span class="rl-legend-title">${esc(title)}</span><span class="rl-legend-bar" style="background: linear-gradient(to right, ${o}, #fff, ${b})"></span>` +
    `<span class="rl-legend-ticks">${ticks.map((t) => `<span>${t}</span>`).join('')}</span><span class="rl-legend-note">${esc(meaning)}</span></div>`;
}
// a token's value printed under it (app.samples.VALUE_FORMATS)
const VALUE = {advantage: (v) => (v >= 0 ? '+' : '') + v.toFixed(2), ratio: (v) => v.toFixed(3),
               kl: (v) => v.toFixed(3), logp: (v) => v.toFixed(2)};
function completion(s, q, key, sc) {
  const vals = s[key] || [];
  const spans = (s.tokens || []).map((t, i) => {
    const v = vals[i], col = i < vals.length ? shade(score(q, v, sc)) : 'transparent';
    return `<span class="rl-tok" tabindex="0" style="background:${col}" data-value="${finite(v) ? v : ''}" data-tip="${esc(tip(s, i))}">${esc(t)}<small>${finite(v) ? VALUE[q](v) : ''}</small></span>`;
  }).join('');
  const adv = s.advantage || 0, eos = s.eos === false ? '<span class="rl-badge rl-warn" title="no EOS: cut at max_new_tokens">cut</span>' : '';
  return `<div class="rl-sample"><span class="rl-badge" title="reward">r ${g3(s.reward || 0)}</span>` +
    `<span class="rl-badge" style="background:${shade(Math.max(-1, Math.min(1, adv)))}" title="mean advantage">Â ${adv >= 0 ? '+' : ''}${g3(adv)}</span>${eos}` +
    `<span class="rl-toks">${spans}</span></div>`;
}
function group(g, q, key, sc) {  // app.samples._group: the prompt once, its completions' reward mean and std
  const r = g.map((s) => s.reward || 0), mean = r.reduce((a, b) => a + b, 0) / r.length;
  const std = r.length > 1 ? Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1)) : 0;
  return `<div class="rl-group"><div class="rl-group-head"><span class="rl-prompt">${esc(g[0].prompt || '')}</span>` +
    `<span class="rl-group-stats">${g.length} completions · reward mean ${g3(mean)}, std ${g3(std)}</span></div>` +
    g.map((s) => completion(s, q, key, sc)).join('') + '</div>';
}
function drawSamples() {
  const box = $('samples');
  if (!D.samples.length) { box.innerHTML = '<div class="rl-samples rl-empty">This run logged no samples.</div>'; return; }
  const line = D.samples[Number($('step').value)], q = $('quantity').value, key = D.quantities[q][0];
  $('step-value').textContent = `${line.step} (${Number($('step').value) + 1} of ${D.samples.length} logged)`;
  const sc = scale(q, line.samples), groups = [];
  let at = 0;
  for (const n of line.groups || [line.samples.length]) { groups.push(line.samples.slice(at, at + n)); at += n; }
  const body = groups.map((g) => group(g, q, key, sc)).join('');
  box.innerHTML = `<div class="rl-samples" data-step="${line.step}">${legend(q, sc)}<div class="rl-samples-head">Step ${line.step} · ${line.samples.length} completions · ${groups.length} groups · tap a token to pin its values</div>${body}</div>`;
}
for (const [q, [, title]] of Object.entries(D.quantities)) $('quantity').insertAdjacentHTML('beforeend', `<option value="${q}">${esc(title)}</option>`);
$('step').max = String(Math.max(0, D.samples.length - 1)); $('step').value = $('step').max;
$('smoothing').addEventListener('input', drawCharts); $('x-axis').addEventListener('change', drawCharts);
$('step').addEventListener('input', drawSamples); $('quantity').addEventListener('change', drawSamples);
if (window.Plotly) drawCharts(); else $('charts').textContent = 'plotly.js did not load: the file may be cut short.';
drawSamples();
"""

"""The browser half of `app.chart_delta`: the charts a grid holds, and what a tick's payload changes.

`HELD_JS` is prepended to the chart grid's `js_on_load` (`app.charts`). `held.take(spec)` applies a payload as
`app.chart_delta.apply` does and returns the charts to redraw, whole (the grid's queue draws them with
`Plotly.react` on the same div). A delta on another version than the one held is a gap (a tick's answer lost):
the grid draws nothing and asks the server for every chart (`trigger('submit')`, wired to a full redraw).
`pick` turns a click on a chart point into the grid's `select` event: {index: the point's x, value: chart id}
(the lab shows that step's samples).
"""

HELD_JS = """
const held = {
  charts: {}, v: null, asked: false,
  take(spec) {
    if (spec.base != null && (spec.base !== this.v || this.asked)) { this.resync(); return []; }
    if (spec.base == null) { this.charts = {}; this.asked = false; }
    const ids = [];
    for (const c of spec.charts || []) {  // layout: what the charts share, then its own; a fresh copy per draw
      this.charts[c.id] = {data: c.data, layout: JSON.stringify(merged(spec.common || {}, c.layout))};
      ids.push(c.id);
    }
    for (const e of spec.extend || []) {
      const c = this.charts[e.id];
      if (!c) { this.resync(); return []; }
      if (e.layout) {  // a new axis or live-change mark (the keys that changed; null: removed)
        const layout = {...JSON.parse(c.layout), ...e.layout};
        for (const k of Object.keys(e.layout)) if (e.layout[k] === null) delete layout[k];
        c.layout = JSON.stringify(layout);
      }
      const data = c.data.slice();  // new arrays for the grown traces: Plotly.react redraws what changed
      for (const [i, changed] of e.style || []) {  // a trace's style keys that changed (null: removed)
        data[i] = {...data[i], ...changed};
        for (const k of Object.keys(changed)) if (changed[k] === null) delete data[i][k];
      }
      let x = null;
      e.traces.forEach((i, j) => {
        const k = e.keep[j];  // the old points that stay (a downsampled trace redoes its last bucket)
        if (e.x[j] !== null) x = e.x[j];  // null: the same new x as the trace before (a raw line and its smooth)
        data[i] = {...data[i], x: data[i].x.slice(0, k).concat(x), y: data[i].y.slice(0, k).concat(e.y[j])};
      });
      c.data = data;
      if (!ids.includes(e.id)) ids.push(e.id);
    }
    this.v = spec.v;
    return ids.map(id => ({id, data: this.charts[id].data, layout: JSON.parse(this.charts[id].layout)}));
  },
  resync() { if (!this.asked) { this.asked = true; trigger('submit'); } },
};
function merged(common, own) {  // app.chart_delta.merged: nested objects key by key
  const out = {...common};
  for (const [k, v] of Object.entries(own)) {
    const both = v && out[k] && typeof v === 'object' && typeof out[k] === 'object' && !Array.isArray(v) && !Array.isArray(out[k]);
    out[k] = both ? merged(out[k], v) : v;
  }
  return out;
}
function pick(id, ev) {
  const p = ev && ev.points && ev.points[0];
  if (p === undefined || p.x === undefined || p.x === null) return;
  trigger('select', {index: p.x, value: id});
  const box = document.getElementById('rl-samples');
  if (box) box.scrollIntoView({behavior: 'smooth', block: 'nearest'});
}
"""

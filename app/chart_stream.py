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
    for (const c of spec.charts || []) {
      this.charts[c.id] = {data: c.data, layout: JSON.stringify(c.layout)};  // layout: a fresh copy per draw
      ids.push(c.id);
    }
    for (const e of spec.extend || []) {
      const c = this.charts[e.id];
      if (!c) { this.resync(); return []; }
      const data = c.data.slice();  // new arrays for the grown traces: Plotly.react redraws what changed
      e.traces.forEach((i, j) => {
        const k = e.keep[j];  // the old points that stay (a downsampled trace redoes its last bucket)
        data[i] = {...data[i], x: data[i].x.slice(0, k).concat(e.x[j]), y: data[i].y.slice(0, k).concat(e.y[j])};
      });
      c.data = data;
      if (!ids.includes(e.id)) ids.push(e.id);
    }
    this.v = spec.v;
    return ids.map(id => ({id, data: this.charts[id].data, layout: JSON.parse(this.charts[id].layout)}));
  },
  resync() { if (!this.asked) { this.asked = true; trigger('submit'); } },
};
function pick(id, ev) {
  const p = ev && ev.points && ev.points[0];
  if (p === undefined || p.x === undefined || p.x === null) return;
  trigger('select', {index: p.x, value: id});
  const box = document.getElementById('rl-samples');
  if (box) box.scrollIntoView({behavior: 'smooth', block: 'nearest'});
}
"""

"""Sampled completions as a table and as token-coloured HTML.

Each token of a completion is shaded by one per-token quantity of the step that sampled it: the advantage
the loss pushed it with, the importance ratio ρ = π/π_old after the update, the KL to the reference, or its
log-probability. Colours follow TensorFlow Playground: orange for negative, blue for positive, white at the
neutral point (0, or ρ = 1, or probability 1/2), with a legend bar that states the scale.
Left out: per-token values of the value head, and text diffs between steps.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

# quantity -> (record key, legend title, what blue and orange mean)
QUANTITIES: dict[str, tuple[str, str, str]] = {
    "advantage": ("adv", "Advantage Â", "blue: pushed up · orange: pushed down"),
    "ratio": ("ratio", "Ratio ρ = π/π_old", "blue: more likely after the update · orange: less likely"),
    "kl": ("kl", "KL to reference (per token)",
           "blue: moved away from the reference · orange: negative estimate"),
    "logp": ("logp", "Log-probability", "blue: likely (p > ½) · orange: unlikely (p < ½)"),
}
BLUE = (37, 99, 235)
ORANGE = (234, 88, 12)


def token_scores(quantity: str, values: Sequence[float], scale: float) -> list[float]:
    """Map raw per-token values to [-1, 1] (sign = colour, size = strength) for `quantity`."""
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(0.0)
        elif quantity == "logp":
            out.append(2.0 * math.exp(min(v, 0.0)) - 1.0)
        elif quantity == "ratio":
            out.append(math.log(max(v, 1e-9)) / scale)
        else:
            out.append(v / scale)
    return [max(-1.0, min(1.0, s)) for s in out]


def color_scale(quantity: str, samples: Sequence[dict[str, Any]]) -> float:
    """The value that maps to full colour: the largest |value| shown (|log ρ| for ratios); 1 for log-probs."""
    if quantity == "logp":
        return 1.0
    key = QUANTITIES[quantity][0]
    vals = [v for s in samples for v in s.get(key) or [] if v is not None and math.isfinite(v)]
    if quantity == "ratio":
        vals = [math.log(max(v, 1e-9)) for v in vals]
    return max([abs(v) for v in vals] + [1e-3])


def shade(score: float) -> str:
    """Background colour for a score in [-1, 1]: orange < 0 < blue, transparent at 0."""
    r, g, b = BLUE if score >= 0 else ORANGE
    return f"rgba({r}, {g}, {b}, {abs(score) * 0.8:.2f})"


def _tip(sample: dict[str, Any], i: int) -> str:
    parts = []
    names = (("adv", "Â"), ("ratio", "ρ"), ("kl", "KL"), ("logp", "log p"), ("ref_logp", "log p_ref"))
    for key, name in names:
        vals = sample.get(key) or []
        if i < len(vals) and vals[i] is not None:
            parts.append(f"{name} {vals[i]:.3g}")
    return " · ".join(parts)


def legend_html(quantity: str, scale: float) -> str:
    _, title, meaning = QUANTITIES[quantity]
    if quantity == "logp":
        ticks = ("p = 0", "p = ½", "p = 1")
    elif quantity == "ratio":
        ticks = (f"{math.exp(-scale):.3g}", "1", f"{math.exp(scale):.3g}")
    else:
        ticks = (f"−{scale:.3g}", "0", f"+{scale:.3g}")
    o, b = "rgba({}, {}, {}, 0.8)".format(*ORANGE), "rgba({}, {}, {}, 0.8)".format(*BLUE)
    return (f'<div class="rl-legend"><span class="rl-legend-title">{html.escape(title)}</span>'
            f'<span class="rl-legend-bar" style="background: linear-gradient(to right, {o}, #fff, {b})">'
            '</span>'
            f'<span class="rl-legend-ticks">{"".join(f"<span>{t}</span>" for t in ticks)}</span>'
            f'<span class="rl-legend-note">{html.escape(meaning)}</span></div>')


def samples_html(samples: Sequence[dict[str, Any]], quantity: str = "advantage") -> str:
    """The completions of one step, tokens shaded by `quantity`, with a legend. Hover a token for values."""
    if not samples:
        return '<div class="rl-samples rl-empty">No samples yet: they appear after the first step.</div>'
    key = QUANTITIES[quantity][0]
    scale = color_scale(quantity, samples)
    rows = []
    for s in samples:
        tokens = s.get("tokens") or []
        scores = token_scores(quantity, (s.get(key) or [])[: len(tokens)], scale)
        colours = [shade(scores[i]) if i < len(scores) else "transparent" for i in range(len(tokens))]
        spans = "".join(
            f'<span class="rl-tok" style="background:{colours[i]}"'
            f' title="{html.escape(_tip(s, i))}">{html.escape(str(t))}</span>'
            for i, t in enumerate(tokens))
        eos = ("" if s.get("eos", True) else
               '<span class="rl-badge rl-warn" title="no EOS: cut at max_new_tokens">cut</span>')
        reward, adv = s.get("reward", 0.0), s.get("advantage", 0.0)
        rows.append(
            f'<div class="rl-sample"><span class="rl-badge" title="reward">r {reward:.3g}</span>'
            f'<span class="rl-badge" style="background:{shade(max(-1.0, min(1.0, adv)))}"'
            f' title="mean advantage">Â {adv:+.3g}</span>{eos}'
            f'<span class="rl-prompt">{html.escape(str(s.get("prompt", "")))}</span>{spans}</div>')
    step = samples[0].get("step", "")
    head = f'<div class="rl-samples-head">Step {step} · {len(samples)} samples</div>'
    return f'<div class="rl-samples">{legend_html(quantity, scale)}{head}{"".join(rows)}</div>'


def samples_rows(samples: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Rows for the samples table: prompt, completion, reward, advantage, EOS."""
    return [[s.get("prompt", ""), s.get("completion", ""), round(float(s.get("reward", 0.0)), 4),
             round(float(s.get("advantage", 0.0)), 4), "yes" if s.get("eos") else "no"] for s in samples]


SAMPLE_HEADERS = ["prompt", "completion", "reward", "advantage", "EOS"]

SAMPLES_CSS = """
.rl-samples { font-size: 13px; }
.rl-samples.rl-empty { color: var(--body-text-color-subdued); padding: 12px 4px; }
.rl-samples-head { color: var(--body-text-color-subdued); margin: 6px 0; font-size: 12px; }
.rl-sample { display: flex; flex-wrap: wrap; align-items: center; gap: 2px; padding: 5px 0;
  border-bottom: 1px solid var(--border-color-primary); font-family: var(--font-mono); }
.rl-prompt { color: var(--body-text-color-subdued); margin: 0 6px 0 4px; }
.rl-tok { padding: 1px 3px; border-radius: 3px; white-space: pre; color: var(--body-text-color); }
.rl-badge { font-family: var(--font); font-size: 11px; padding: 1px 6px; border-radius: 9px;
  background: var(--background-fill-secondary); margin-right: 3px; min-width: 48px; text-align: center; }
.rl-badge.rl-warn { background: #fde68a; color: #78350f; min-width: 0; }
.rl-legend { display: grid; grid-template-columns: auto 220px 1fr; grid-template-rows: auto auto;
  column-gap: 12px; align-items: center; font-size: 12px; margin-bottom: 4px; }
.rl-legend-title { font-weight: 600; grid-row: 1 / span 2; }
.rl-legend-bar { height: 10px; border-radius: 5px; border: 1px solid var(--border-color-primary); }
.rl-legend-ticks { display: flex; justify-content: space-between; grid-column: 2; grid-row: 2;
  color: var(--body-text-color-subdued); font-size: 11px; }
.rl-legend-note { grid-column: 3; grid-row: 1 / span 2; color: var(--body-text-color-subdued); }
"""

"""Sampled completions as a table and as token-coloured HTML, grouped under their prompt.

Each token of a completion is shaded by one per-token quantity of the step that sampled it: the advantage
the loss pushed it with, the importance ratio ρ = π/π_old after the update, the KL to the reference, or its
log-probability. Colours follow TensorFlow Playground: orange for negative, blue for positive, white at the
neutral point (0, or ρ = 1, or probability 1/2), with a legend bar that states the scale.
Completions are grouped by prompt (the group GRPO and RLOO compare), a page of whole groups at a time, and
each token's value is printed under it: projectors and touch screens have no hover. Tapping a token pins all
its values (log-prob, ratio, KL, advantage).
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


def token_shade(score: float) -> str:
    """`shade` as a short #rrggbbaa (a token's or badge's background: a page of them is sent with a tick)."""
    r, g, b = BLUE if score >= 0 else ORANGE
    return f"#{r:02x}{g:02x}{b:02x}{round(abs(score) * 0.8 * 255):02x}"


def _tip(sample: dict[str, Any], i: int) -> str:
    parts = []
    names = (("adv", "Â"), ("ratio", "ρ"), ("kl", "KL"), ("logp", "log p"), ("ref_logp", "ref"))
    for key, name in names:
        vals = sample.get(key) or []
        if i < len(vals) and vals[i] is not None:
            parts.append(f"{name} {vals[i]:.3g}")
    return ", ".join(parts)


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


# How a token's value is printed under it, per quantity (short: it sits under a one-character token).
VALUE_FORMATS = {"advantage": "{:+.2f}", "ratio": "{:.3f}", "kl": "{:.3f}", "logp": "{:.2f}"}
PER_PAGE = 16  # completions on a page of the samples view (whole groups, at least one)


def step_range(steps: Sequence[int], follow: bool) -> dict[str, int]:
    """The samples' step slider for the logged `steps`: 0 .. the last step, on it when following. The minimum stays
    0, the value an empty slider holds: a tick already in flight with 0 would otherwise fall below a raised minimum
    and Gradio would refuse the whole tick (a 500 seen in CI once the first samples came at step 2)."""
    span = {"minimum": 0, "maximum": max(1, steps[-1])}
    if follow:
        span["value"] = steps[-1]
    return span


def groups(samples: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The completions grouped as the step sampled them: by their `group` (prompt index in the batch), or, for
    records without one, by runs of the same prompt. A group is what GRPO and RLOO compare."""
    out: list[list[dict[str, Any]]] = []
    last: Any = object()
    for s in samples:
        ident = s["group"] if "group" in s else s.get("prompt")
        if not out or ident != last:
            out.append([])
        out[-1].append(s)
        last = ident
    return out


def pages(samples: Sequence[dict[str, Any]], per_page: int = PER_PAGE) -> list[list[list[dict[str, Any]]]]:
    """The groups cut into pages of about `per_page` completions (whole groups; at least one a page)."""
    out: list[list[list[dict[str, Any]]]] = []
    n = per_page
    for g in groups(samples):
        if n + len(g) > per_page:
            out.append([])
            n = 0
        out[-1].append(g)
        n += len(g)
    return out


def _token(sample: dict[str, Any], i: int, text: str, colour: str, value: Any, fmt: str) -> str:
    shown = fmt.format(value) if isinstance(value, (int, float)) and math.isfinite(value) else ""
    tip = html.escape(_tip(sample, i))
    # tabindex: a tap (touch screen) or Tab focuses the token and pins its values (CSS :focus::after; hover too)
    return (f'<span class="rl-tok" tabindex="0" style="background:{colour}" data-tip="{tip}">'
            f'{html.escape(text)}<small>{shown}</small></span>')


def _completion(s: dict[str, Any], quantity: str, scale: float) -> str:
    key = QUANTITIES[quantity][0]
    tokens = s.get("tokens") or []
    values = (s.get(key) or [])[: len(tokens)]
    scores = token_scores(quantity, values, scale)
    fmt = VALUE_FORMATS[quantity]
    spans = "".join(_token(s, i, str(t), token_shade(scores[i]) if i < len(scores) else "transparent",
                           values[i] if i < len(values) else None, fmt) for i, t in enumerate(tokens))
    eos = ("" if s.get("eos", True) else
           '<span class="rl-badge rl-warn" title="no EOS: cut at max_new_tokens">cut</span>')
    reward, adv = s.get("reward", 0.0), s.get("advantage", 0.0)
    # what r and Â are is said once, in the head (`samples_html`): a page repeats these badges 16 times a tick
    return (f'<div class="rl-sample"><span class="rl-badge">r {reward:.3g}</span>'
            f'<span class="rl-badge" style="background:{token_shade(max(-1.0, min(1.0, adv)))}">Â {adv:+.3g}'
            f'</span>{eos}<span class="rl-toks">{spans}</span></div>')


def _group(g: list[dict[str, Any]], quantity: str, scale: float) -> str:
    rewards = [float(s.get("reward", 0.0)) for s in g]
    mean = sum(rewards) / len(rewards)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1)) if len(rewards) > 1 else 0.0
    stats = f"{len(g)} completions · reward mean {mean:.3g}, std {std:.3g}"
    return (f'<div class="rl-group"><div class="rl-group-head"><span class="rl-prompt">'
            f'{html.escape(str(g[0].get("prompt", "")))}</span><span class="rl-group-stats">{stats}</span></div>'
            f'{"".join(_completion(s, quantity, scale) for s in g)}</div>')


def samples_html(samples: Sequence[dict[str, Any]], quantity: str = "advantage", page: int = 1,
                 per_page: int = PER_PAGE) -> str:
    """The completions of one step grouped under their prompt (`page` of `pages`), each token shaded by
    `quantity` with its value printed under it, with a legend. Tapping a token pins all its values."""
    if not samples:
        return '<div class="rl-samples rl-empty">No samples yet: they appear after the first step.</div>'
    scale = color_scale(quantity, samples)
    book = pages(samples, per_page)
    page = max(1, min(int(page or 1), len(book)))
    shown = book[page - 1]
    n_groups = sum(len(p) for p in book)
    first = sum(len(p) for p in book[: page - 1]) + 1
    where = (f" · groups {first}-{first + len(shown) - 1} of {n_groups} · page {page} of {len(book)}"
             if len(book) > 1 else f" · {n_groups} groups")
    step = samples[0].get("step", "")
    head = (f'<div class="rl-samples-head">Step {step} · {len(samples)} completions{where} · r: reward, '
            'Â: mean advantage · tap a token to pin its values</div>')
    body = "".join(_group(g, quantity, scale) for g in shown)
    return (f'<div class="rl-samples" data-step="{step}" data-page="{page}" data-pages="{len(book)}">'
            f'{legend_html(quantity, scale)}{head}{body}</div>')


def samples_rows(samples: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Rows for the samples table: prompt, completion, reward, advantage, EOS."""
    return [[s.get("prompt", ""), s.get("completion", ""), round(float(s.get("reward", 0.0)), 4),
             round(float(s.get("advantage", 0.0)), 4), "yes" if s.get("eos") else "no"] for s in samples]


SAMPLE_HEADERS = ["prompt", "completion", "reward", "advantage", "EOS"]

SAMPLES_CSS = """
.rl-samples { font-size: 13px; }
.rl-samples.rl-empty { color: var(--body-text-color-subdued); padding: 12px 4px; }
.rl-samples-head { color: var(--body-text-color-subdued); margin: 6px 0; font-size: 12px; }
.rl-group { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 4px 8px; margin: 6px 0; }
.rl-group-head { display: flex; flex-wrap: wrap; gap: 10px; align-items: baseline; padding: 2px 0 4px;
  border-bottom: 1px solid var(--border-color-primary); }
.rl-group-head .rl-prompt { font-family: var(--font-mono); font-weight: 600; color: var(--body-text-color); margin: 0; }
.rl-group-stats { color: var(--body-text-color-subdued); font-size: 12px; }
.rl-sample { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 2px; padding: 4px 0 2px;
  font-family: var(--font-mono); }
.rl-sample + .rl-sample { border-top: 1px dashed var(--border-color-primary); }
.rl-toks { display: inline-flex; flex-wrap: wrap; gap: 2px; margin-left: 4px; }
.rl-prompt { color: var(--body-text-color-subdued); margin: 0 6px 0 4px; }
.rl-tok { position: relative; display: inline-flex; flex-direction: column; align-items: center; padding: 1px 3px;
  border-radius: 3px; white-space: pre; color: var(--body-text-color); cursor: pointer; outline: none; }
.rl-tok small { font-size: 10.5px; line-height: 1.1; color: inherit; opacity: 0.8; font-family: var(--font); }
/* the lab's "Values under tokens" checkbox, unticked: no numbers (CSS only: no round trip) */
body:has(#rl-token-values input:not(:checked)) & .rl-tok small { display: none; }
.rl-tok:focus { box-shadow: 0 0 0 2px var(--color-accent); }
.rl-tok:focus::after, .rl-tok:hover::after { content: attr(data-tip); position: absolute; top: 100%; left: 0; z-index: 20; margin-top: 4px;
  padding: 4px 8px; border-radius: 6px; background: var(--background-fill-secondary); white-space: nowrap;
  color: var(--body-text-color); font-size: 12px; font-family: var(--font);
  border: 1px solid var(--border-color-primary); box-shadow: 0 2px 6px rgba(0,0,0,.15); }
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

"""Lessons: a question, a prediction, a run, and a claim that the lab checks with a statistic.

A lesson is a TOML file in `presets/lessons/` (adding one needs no code):

    order = 5                           where it sits in the list (the issue's lesson number)
    title, question, choices (list), answer (the text of the right choice)
    preset = "grpo"                     the preset every arm starts from
    steps = 20                          training steps per arm (and seed)
    [set]  "run.grad_variance" = false  overrides shared by every arm
    [arms.<name>]  label, set = {...}   the arms; where a lesson compares, they are one knob apart
    probe = "grad_variance"             instead of training arms: a named measurement (PROBES below)
    [[claims]]  text, metric, arm, against, window, direction, threshold, z, since, scale, target, match, band
    explanation, formula, source, figure, follow_up

A claim's effect in one seed is `metric` averaged over the steps in `window` (1-based, inclusive) in arm `arm`,
minus the same in arm `against`, or minus the same arm's mean over the earlier steps `since` (0 when neither);
with scale = "log10" it is log10 of their ratio instead, for effects that multiply (a KL 10x larger: 1). The arms of one seed share the seed, so the
effect is paired. Two more comparisons:

- `target = x`: against a fixed number (e.g. the KL controller's target): the window's mean minus x, or log10 of
  their ratio. So `scale = "log10", direction = "equal", threshold = 0.301` reads "within a factor of 2 of x".
- `match = "kl/mean"` (with `against`): at a matched value of another metric, for "B passed the same point
  earlier". With w the window's length, m* = the arm's `match` averaged over `window`, and t the first step of
  `against` whose `match` averaged over steps t-w+1..t reaches m* (>= m*), the effect compares the arm's `metric`
  over `window` with `against`'s `metric` over steps t-w+1..t. Only upward: a falling `match` metric is not matched. If `against` never reaches m*, the effect is nan
  and the claim fails (a KL penalty that was never passed is not a matched comparison).
- `match` with `band = [lo, hi]`: in a band of the matched metric, for "gold against KL": each arm's `metric`
  averaged over its steps in `window` whose own `match` lies in lo <= x <= hi, arm minus `against`. An arm with
  fewer than BAND_MIN_STEPS such steps gives nan, and the claim fails (a band one arm barely visited is no
  comparison).

Over n seeds, with mean m and standard error s = sd / sqrt(n), a claim holds when

    greater:  m - z*s > threshold  and every seed's effect > threshold
    less:     m + z*s < threshold  and every seed's effect < threshold
    equal:    |m| + z*s <= threshold and every seed's |effect| <= threshold

(z = 2 unless the claim says otherwise). A probe lesson has one arm, named "probe", whose "metrics" are the
values the probe returns (PROBES: the paired gradient variance of baselines, labcore.variance; the KL placements'
and the credit estimators' token advantages, the std scaling's weight per prompt, the length normaliser's push
per token, and the upper clip's effect on one batch's update, labcore.lesson_probes). Left out: lessons whose phenomenon does not reproduce in the tiny world
(they wait in presets/lessons/unshipped/ with their measurements).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcore.config import ConfigError, apply, load_preset, presets_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DIRECTIONS = {
    "greater": "the arm's value exceeds the other's by more than `threshold`",
    "less": "the arm's value is below the other's by more than `threshold` (threshold is the effect's upper bound)",
    "equal": "the two values agree to within `threshold`",
}
REQUIRED = ("title", "question", "choices", "answer", "preset", "claims", "explanation", "source")
OPTIONAL = ("order", "steps", "seeds", "set", "arms", "probe", "probe_batches", "formula", "figure", "follow_up",
            "charts")
CLAIM_KEYS = ("text", "metric", "arm", "against", "window", "since", "direction", "threshold", "z", "scale",
              "target", "match", "band")
BAND_MIN_STEPS = 5  # a `band` claim needs at least this many steps of each arm in the band
SCALES = ("linear", "log10")
_MISPLACED = ("TOML puts every key that follows a [table] header into that table: move the lesson's own keys "
              "(explanation, source, ...) above the first [set], [arms.*] or [[claims]] header.")


class LessonError(ValueError):
    """A malformed lesson file. `problems` holds one readable line each, naming the file and the field."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Invalid lesson:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    text: str
    metric: str
    arm: str
    against: str | None
    window: tuple[int, int]
    direction: str
    threshold: float
    z: float = 2.0
    since: tuple[int, int] | None = None   # compare the arm with itself over these earlier steps
    scale: str = "linear"                  # "log10": the effect is log10(a / b), for effects that multiply
    target: float | None = None            # compare with this fixed number instead of an arm
    match: str | None = None               # compare with `against` where its `match` metric first reached ours
    band: tuple[float, float] | None = None  # with match: both arms' steps whose `match` lies in [lo, hi]


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    question: str
    choices: tuple[str, ...]
    answer: str
    preset: str
    steps: int
    arms: tuple[Arm, ...]
    claims: tuple[Claim, ...]
    explanation: str
    source: str
    formula: str = ""
    figure: str = ""
    follow_up: str = ""
    probe: str = ""
    probe_batches: int = 4
    seeds: int = 3
    charts: tuple[str, ...] = ()

    def config(self, arm: Arm, seed: int):
        """The Config one arm runs with one seed."""
        cfg = load_preset(self.preset)
        return apply(cfg, {**arm.overrides, "run.steps": self.steps, "run.seed": seed})


def lessons_dir() -> Path:
    return presets_dir() / "lessons"


def _parse(name: str, data: dict[str, Any]) -> Lesson:
    """Build a Lesson from TOML data, collecting every problem before raising."""
    where = f"lesson '{name}'"
    p: list[str] = []
    unknown = [k for k in data if k not in REQUIRED + OPTIONAL]
    if unknown:
        p.append(f"{where}: unknown key(s) {', '.join(unknown)}; a lesson has {', '.join(REQUIRED + OPTIONAL)}.")
    for i, c in enumerate(data.get("claims", []) if isinstance(data.get("claims"), list) else [], 1):
        extra = [k for k in c if k not in CLAIM_KEYS] if isinstance(c, dict) else []
        if extra:
            p.append(f"{where}, claim {i}: unknown key(s) {', '.join(extra)}; a claim has {', '.join(CLAIM_KEYS)}."
                     + (" " + _MISPLACED if set(extra) & set(REQUIRED + OPTIONAL) else ""))
    for key in REQUIRED:
        if key not in data:
            p.append(f"{where}: '{key}' is missing; every lesson needs {', '.join(REQUIRED)}.")
    if p:
        raise LessonError(p)
    choices = data["choices"]
    if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) and c for c in choices)):
        p.append(f"{where}: 'choices' must be a list of at least two answer texts, e.g. choices = [\"rises\", \"falls\"].")
        choices = []
    if choices and data["answer"] not in choices:
        p.append(f"{where}: answer = {data['answer']!r} is not one of the choices; copy one choice's text exactly.")
    shared = data.get("set", {})
    if not isinstance(shared, dict):
        p.append(f"{where}: [set] must be a table of 'section.key' = value overrides.")
        shared = {}
    probe = str(data.get("probe", ""))
    arms_data = data.get("arms", {})
    if probe:
        if probe not in PROBES:
            p.append(f"{where}: probe = {probe!r} is not a probe; choose one of {', '.join(PROBES)}.")
        if arms_data:
            p.append(f"{where}: a probe lesson measures one configuration; remove [arms.*] or the probe.")
        arms = [Arm("probe", "measured", dict(shared))]
    else:
        if not isinstance(arms_data, dict) or not arms_data:
            p.append(f"{where}: no arms; add [arms.<name>] tables with label and set = {{...}}, or a probe.")
            arms_data = {}
        arms = []
        for arm_name, arm in arms_data.items():
            if not isinstance(arm, dict) or not isinstance(arm.get("set", {}), dict):
                p.append(f"{where}: arms.{arm_name} must be a table with label and set = {{'section.key' = value}}.")
                continue
            arms.append(Arm(arm_name, str(arm.get("label", arm_name)), {**shared, **arm.get("set", {})}))
    steps = data.get("steps", 1 if probe else 20)
    if not isinstance(steps, int) or steps < 1:
        p.append(f"{where}: steps = {steps!r} must be a whole number >= 1.")
        steps = 1
    names = [a.name for a in arms]
    claims = []
    raw_claims = data["claims"] if isinstance(data["claims"], list) else []
    if not raw_claims:
        p.append(f"{where}: 'claims' must hold at least one [[claims]] table.")
    for i, c in enumerate(raw_claims, 1):
        cw = f"{where}, claim {i}"
        missing = [k for k in ("text", "metric", "direction", "threshold") if k not in c]
        if missing:
            p.append(f"{cw}: {', '.join(missing)} missing; a claim needs text, metric, direction and threshold.")
            continue
        arm = c.get("arm", names[0] if names else "")
        against = c.get("against")
        for label, value in (("arm", arm), ("against", against)):
            if value is not None and value not in names:
                p.append(f"{cw}: {label} = {value!r} is not an arm; arms are {', '.join(names) or 'none'}.")
        if c["direction"] not in DIRECTIONS:
            p.append(f"{cw}: direction = {c['direction']!r}; choose one of {', '.join(DIRECTIONS)}.")
        window = c.get("window", [1, steps])
        if not (isinstance(window, list) and len(window) == 2 and all(isinstance(w, int) for w in window)
                and 1 <= window[0] <= window[1] <= steps):
            p.append(f"{cw}: window = {window!r} must be [first, last] steps with 1 <= first <= last <= steps = {steps}.")
            window = [1, steps]
        since = c.get("since")
        if since is not None:
            if not (isinstance(since, list) and len(since) == 2 and all(isinstance(w, int) for w in since)
                    and 1 <= since[0] <= since[1] <= steps):
                p.append(f"{cw}: since = {since!r} must be [first, last] steps within 1..{steps}.")
                since = None
            elif against is not None:
                p.append(f"{cw}: use either against (another arm) or since (earlier steps of the same arm), not both.")
        target, match = c.get("target"), c.get("match")
        if target is not None:
            if not isinstance(target, (int, float)) or isinstance(target, bool) or not math.isfinite(target):
                p.append(f"{cw}: target = {target!r} must be a number (the fixed value the arm is compared with).")
                target = None
            elif against is not None or since is not None:
                p.append(f"{cw}: use one of against (another arm), since (earlier steps) or target (a number).")
        if match is not None:
            if not isinstance(match, str) or not match:
                p.append(f"{cw}: match = {match!r} must be a metric name, e.g. match = \"kl/mean\".")
                match = None
            elif against is None or target is not None:
                p.append(f"{cw}: match = {match!r} needs against = <arm> (the arm whose earlier steps are matched) "
                         "and no target.")
        band = c.get("band")
        if band is not None:
            if not (isinstance(band, list) and len(band) == 2
                    and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in band)
                    and band[0] < band[1]):
                p.append(f"{cw}: band = {band!r} must be [lo, hi], two numbers with lo < hi (the range of the "
                         "`match` metric whose steps are compared), e.g. band = [1.0, 4.0].")
                band = None
            elif match is None:
                p.append(f"{cw}: band = {band!r} needs match = <metric> and against = <arm> (the metric whose "
                         "band is read, in both arms).")
        scale = c.get("scale", "linear")
        if scale not in SCALES:
            p.append(f"{cw}: scale = {scale!r}; choose linear (a - b) or log10 (log10(a / b), for ratios).")
            scale = "linear"
        threshold, z = c["threshold"], c.get("z", 2.0)
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not math.isfinite(threshold):
            p.append(f"{cw}: threshold = {threshold!r} must be a number.")
            threshold = 0.0
        if not isinstance(z, (int, float)) or z < 0:
            p.append(f"{cw}: z = {z!r} must be a number >= 0 (standard errors of margin).")
            z = 2.0
        if scale == "log10" and target is not None and target <= 0:
            p.append(f"{cw}: target = {target!r} must be > 0 with scale = \"log10\" (its log is taken).")
        if c["direction"] == "equal" and threshold < 0:
            p.append(f"{cw}: an 'equal' claim needs threshold >= 0 (the largest difference allowed).")
        claims.append(Claim(str(c["text"]), str(c["metric"]), arm, against, (window[0], window[1]),
                            str(c["direction"]), float(threshold), float(z), tuple(since) if since else None, scale,
                            float(target) if target is not None else None, match,
                            (float(band[0]), float(band[1])) if band is not None else None))
    seeds = data.get("seeds", 3)
    if not isinstance(seeds, int) or seeds < 1:
        p.append(f"{where}: seeds = {seeds!r} must be a whole number >= 1 (3 or more for a check).")
        seeds = 3
    lesson = Lesson(
        name=name, title=str(data["title"]), question=str(data["question"]), choices=tuple(choices),
        answer=str(data["answer"]), preset=str(data["preset"]), steps=steps, arms=tuple(arms), claims=tuple(claims),
        explanation=str(data["explanation"]), source=str(data["source"]), formula=str(data.get("formula", "")),
        figure=str(data.get("figure", "")), follow_up=str(data.get("follow_up", "")), probe=probe,
        probe_batches=int(data.get("probe_batches", 4)), seeds=seeds,
        charts=tuple(data.get("charts", [c.metric for c in claims])))
    if not p:  # the arms must be valid configs: a typo in a key fails here, not minutes into a check
        for arm in lesson.arms:
            try:
                lesson.config(arm, 0)
            except ConfigError as e:
                p.extend(f"{where}, arm '{arm.name}': {x}" for x in e.problems)
    if p:
        raise LessonError(p)
    return lesson


def load_lesson(name_or_path: str | Path) -> Lesson:
    """A lesson by name (a file in presets/lessons/) or by path. Raises LessonError naming every problem."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = lessons_dir() / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(list_lessons()) or "none"
        raise LessonError([f"no lesson named {str(name_or_path)!r}; lessons are {known}."])
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise LessonError([f"lesson '{path.stem}': the TOML could not be read: {e}. Check quotes and brackets."]) from None
    return _parse(path.stem, data)


def list_lessons() -> dict[str, str]:
    """{name: title} for every lesson file, ordered by each lesson's `order` (then by name)."""
    found = []
    for path in sorted(lessons_dir().glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError:
            data = {"title": "(unreadable: `rlhf-lab lesson check` names the problem)"}
        order = data.get("order", 1000)
        found.append((order if isinstance(order, (int, float)) else 1000, path.stem, str(data.get("title", ""))))
    return {name: title for _, name, title in sorted(found)}


# ------------------------------------------------------------------------------------------------- statistic


@dataclass
class Verdict:
    claim: Claim
    effects: list[float]
    mean: float
    se: float
    holds: bool
    agree: int          # seeds whose own effect is on the claimed side


def judge(claim: Claim, effects: list[float]) -> Verdict:
    """Test a claim on per-seed paired effects (see the module docstring for the rule)."""
    n = len(effects)
    if n == 0 or any(not math.isfinite(e) for e in effects):
        return Verdict(claim, effects, float("nan"), float("nan"), False, 0)
    m = statistics.fmean(effects)
    se = statistics.stdev(effects) / math.sqrt(n) if n > 1 else 0.0
    t, z = claim.threshold, claim.z
    if claim.direction == "greater":
        agree, holds = sum(e > t for e in effects), m - z * se > t
    elif claim.direction == "less":
        agree, holds = sum(e < t for e in effects), m + z * se < t
    else:
        agree, holds = sum(abs(e) <= t for e in effects), abs(m) + z * se <= t
    return Verdict(claim, effects, m, se, holds and agree == n, agree)


def window_mean(rows: list[dict[str, float]], metric: str, window: tuple[int, int]) -> float:
    """Mean of `metric` over the step records with window[0] <= step <= window[1]."""
    vals = [r[metric] for r in rows if window[0] <= r["step"] <= window[1] and metric in r]
    if not vals:
        known = sorted({k for r in rows for k in r})
        raise LessonError([f"metric '{metric}' was not recorded in steps {window[0]}-{window[1]}; "
                           f"recorded metrics: {', '.join(known)}."])
    return statistics.fmean(vals)


def matched_window(rows: list[dict[str, float]], match: str, value: float, width: int) -> tuple[int, int] | None:
    """The first window of `width` steps, (s - width + 1, s), over which `match` averages >= value; None if none.
    A running mean, not one step, so a single noisy step does not count as reaching the value."""
    steps = sorted(r["step"] for r in rows if match in r)
    for s in steps:
        if s - width + 1 >= steps[0] and window_mean(rows, match, (s - width + 1, s)) >= value:
            return (s - width + 1, s)
    return None


def band_mean(rows: list[dict[str, float]], metric: str, match: str, band: tuple[float, float],
              window: tuple[int, int]) -> tuple[float, int]:
    """Mean of `metric` over the steps in `window` whose `match` lies in band[0] <= x <= band[1], and how many
    steps that was (nan, 0 when none)."""
    vals = [r[metric] for r in rows if window[0] <= r["step"] <= window[1] and metric in r and match in r
            and band[0] <= r[match] <= band[1]]
    return (statistics.fmean(vals) if vals else float("nan")), len(vals)


def compared_window(claim: Claim, records: dict[str, list[dict[str, float]]]) -> tuple[int, int] | None:
    """The steps of `claim.against` a matched claim compares with (see the module docstring); None if never."""
    width = claim.window[1] - claim.window[0] + 1
    value = window_mean(records[claim.arm], claim.match, claim.window)
    return matched_window(records[claim.against], claim.match, value, width)


def effect(claim: Claim, records: dict[str, list[dict[str, float]]]) -> float:
    """One seed's effect for a claim, from each arm's step records."""
    a = window_mean(records[claim.arm], claim.metric, claim.window)
    if claim.target is not None:
        b = claim.target
    elif claim.since:
        b = window_mean(records[claim.arm], claim.metric, claim.since)
    elif claim.match and claim.band:
        a, n_a = band_mean(records[claim.arm], claim.metric, claim.match, claim.band, claim.window)
        b, n_b = band_mean(records[claim.against], claim.metric, claim.match, claim.band, claim.window)
        if min(n_a, n_b) < BAND_MIN_STEPS:
            return float("nan")
    elif claim.match:
        where = compared_window(claim, records)
        if where is None:
            return float("nan")
        b = window_mean(records[claim.against], claim.metric, where)
    elif claim.against:
        b = window_mean(records[claim.against], claim.metric, claim.window)
    else:
        b = 0.0 if claim.scale == "linear" else 1.0
    if claim.scale == "log10":
        return math.log10(a / b) if a > 0 and b > 0 else float("nan")
    return a - b


# ------------------------------------------------------------------------------------------------------ runs


def _grad_variance_probe(lesson: Lesson, arm: Arm, seed: int) -> list[dict[str, float]]:
    """Train `lesson.steps - 1` steps, then measure the paired gradient variance of the baselines."""
    from labcore.trainer import Trainer
    from labcore.variance import paired_probe

    trainer = Trainer(lesson.config(arm, seed))
    for _ in range(lesson.steps - 1):
        trainer.train_step()
    return [{"step": lesson.steps, **paired_probe(trainer, lesson.probe_batches)}]


def _kl_placement_probe(lesson: Lesson, arm: Arm, seed: int) -> list[dict[str, float]]:
    from labcore.lesson_probes import kl_placement_probe

    return kl_placement_probe(lesson, arm, seed)


def _credit_spread_probe(lesson: Lesson, arm: Arm, seed: int) -> list[dict[str, float]]:
    from labcore.lesson_probes import credit_spread_probe

    return credit_spread_probe(lesson, arm, seed)


def _clip_growth_probe(lesson: Lesson, arm: Arm, seed: int) -> list[dict[str, float]]:
    from labcore.lesson_probes import clip_growth_probe

    return clip_growth_probe(lesson, arm, seed)


def _difficulty_probe(lesson: Lesson, arm: Arm, seed: int) -> list[dict[str, float]]:
    from labcore.lesson_probes import difficulty_probe

    return difficulty_probe(lesson, arm, seed)


def _length_bias_probe(lesson: Lesson, arm: Arm, seed: int) -> list[dict[str, float]]:
    from labcore.lesson_probes import length_bias_probe

    return length_bias_probe(lesson, arm, seed)


PROBES: dict[str, Callable[[Lesson, Arm, int], list[dict[str, float]]]] = {
    "grad_variance": _grad_variance_probe,
    "kl_placement": _kl_placement_probe,      # labcore.lesson_probes: per-token vs per-sequence KL, same batch
    "credit_spread": _credit_spread_probe,    # labcore.lesson_probes: RLOO vs GAE advantages, same batch
    "clip_growth": _clip_growth_probe,        # labcore.lesson_probes: clip 0.2 vs 0.28 from the same weights
    "difficulty": _difficulty_probe,          # labcore.lesson_probes: group-std vs no scaling, weight by pass rate
    "length_bias": _length_bias_probe,        # labcore.lesson_probes: 1/|o_i| vs a constant normaliser, same batch
}


def run_arm(lesson: Lesson, arm: Arm, seed: int, on_step: Callable[[dict], None] | None = None) -> list[dict]:
    """Step records of one arm and seed (a probe's single record for a probe lesson)."""
    if lesson.probe:
        return PROBES[lesson.probe](lesson, arm, seed)
    from labcore.trainer import Trainer

    trainer = Trainer(lesson.config(arm, seed))
    rows = []
    for _ in range(lesson.steps):
        m = trainer.train_step().metrics
        rows.append(m)
        if on_step:
            on_step({"arm": arm.name, "seed": seed, **m})
    return rows


@dataclass
class Result:
    lesson: Lesson
    seeds: list[int]
    records: dict[int, dict[str, list[dict]]] = field(default_factory=dict)   # seed -> arm -> step records
    verdicts: list[Verdict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return bool(self.verdicts) and all(v.holds for v in self.verdicts)


def check(lesson: Lesson, seeds: int | None = None, on_step: Callable[[dict], None] | None = None,
          on_arm: Callable[[str, int, float], None] | None = None, first_seed: int = 0) -> Result:
    """Run every arm over seeds first_seed .. first_seed + n - 1 and judge every claim (fresh seeds confirm a
    claim whose threshold was set on seeds 0..n-1). `on_arm(arm, seed, seconds)` reports progress."""
    n = seeds or lesson.seeds
    res = Result(lesson, list(range(first_seed, first_seed + n)))
    t0 = time.perf_counter()
    for seed in res.seeds:
        res.records[seed] = {}
        for arm in lesson.arms:
            t_arm = time.perf_counter()
            res.records[seed][arm.name] = run_arm(lesson, arm, seed, on_step)
            if on_arm:
                on_arm(arm.name, seed, time.perf_counter() - t_arm)
    res.seconds = time.perf_counter() - t0
    res.verdicts = [judge(c, [effect(c, res.records[s]) for s in res.seeds]) for c in lesson.claims]
    return res

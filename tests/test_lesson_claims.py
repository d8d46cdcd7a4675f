"""The claim comparisons beyond arm against arm: against a fixed number (`target`, e.g. a KL controller's target)
and at a matched value of another metric (`match`: arm A's end against arm B where B's KL first reached A's end
KL, for "a KL penalty is early stopping"). Hand-made step records whose effect is known by hand; cases that must
fail (never reached, off by more than the factor claimed); malformed claims named with their fix."""

import math

import pytest

from labcore import lessons as L
from tests.test_lessons import GOOD, lesson_dir  # noqa: F401  (the fixture)


def _rows(**series):
    """Step records 1..n from equal-length lists, e.g. _rows(kl=[...], gold=[...])."""
    n = len(next(iter(series.values())))
    return [{"step": i + 1, **{k.replace("_", "/"): v[i] for k, v in series.items()}} for i in range(n)]


def _matched(window, direction="equal", threshold=0.5):
    return L.Claim("c", "gold", "pen", "free", window, direction, threshold, match="kl")


def test_target_compares_with_a_fixed_number():
    """KL over steps 3-4 averages 0.3 against a target of 0.2: log10(1.5) = 0.176, within a factor of 2
    (0.301); over steps 1-2 it averages 0.7: log10(3.5) = 0.544, not within 2x. Linear: 0.3 - 0.2."""
    rows = {"a": _rows(kl=[0.6, 0.8, 0.25, 0.35])}
    within2 = L.Claim("c", "kl", "a", None, (3, 4), "equal", 0.301, z=0.0, scale="log10", target=0.2)
    assert L.effect(within2, rows) == pytest.approx(math.log10(1.5))
    assert L.judge(within2, [L.effect(within2, rows)] * 3).holds
    early = L.Claim("c", "kl", "a", None, (1, 2), "equal", 0.301, z=0.0, scale="log10", target=0.2)
    assert L.effect(early, rows) == pytest.approx(math.log10(3.5))
    assert not L.judge(early, [L.effect(early, rows)] * 3).holds
    linear = L.Claim("c", "kl", "a", None, (3, 4), "greater", 0.0, target=0.2)
    assert L.effect(linear, rows) == pytest.approx(0.1)


def test_matched_claim_compares_with_the_other_arm_where_it_passed_the_same_kl():
    """The penalised arm ends (steps 5-6) at KL 2.0 and gold 1.0. The free arm's 2-step running mean of KL is
    0.5, 1.5, 2.5, ... at steps 2, 3, 4: it first reaches 2.0 over steps 3-4, where its gold averages
    (1.2 + 0.8) / 2 = 1.0, so the effect is 0; its own end (steps 5-6, gold -2) is far lower."""
    records = {"pen": _rows(kl=[0.0, 0.5, 1.0, 1.5, 2.0, 2.0], gold=[0.0, 0.2, 0.5, 0.8, 1.0, 1.0]),
               "free": _rows(kl=[0.0, 1.0, 2.0, 3.0, 8.0, 20.0], gold=[0.0, 0.5, 1.2, 0.8, -1.0, -3.0])}
    claim = _matched((5, 6))
    assert L.compared_window(claim, records) == (3, 4)
    assert L.effect(claim, records) == pytest.approx(0.0)
    assert L.judge(claim, [0.0, 0.1, -0.1]).holds
    end_vs_end = L.Claim("c", "gold", "pen", "free", (5, 6), "greater", 0.0)
    assert L.effect(end_vs_end, records) == pytest.approx(1.0 - (-2.0))
    # a lower gold at the matched point is measured as such: the same free run with its gold at steps 3-4 down 1
    worse = {**records, "free": _rows(kl=[0.0, 1.0, 2.0, 3.0, 8.0, 20.0], gold=[0.0, 0.5, 0.2, -0.2, -1.0, -3.0])}
    assert L.effect(claim, worse) == pytest.approx(1.0 - 0.0)
    assert not L.judge(claim, [1.0, 1.0, 1.0]).holds


def test_matched_claim_fails_when_the_other_arm_never_reaches_the_value():
    """The free arm's KL never averages 2.0 over two steps (one spike of 3 is not enough): the effect is nan,
    and a nan fails the claim rather than comparing with some other step."""
    records = {"pen": _rows(kl=[0.0, 1.0, 2.0, 2.0], gold=[0.0, 0.5, 1.0, 1.0]),
               "free": _rows(kl=[0.0, 3.0, 0.5, 1.0], gold=[0.0, 0.1, 0.2, 0.3])}
    claim = _matched((3, 4))
    assert L.compared_window(claim, records) is None
    assert math.isnan(L.effect(claim, records))
    assert not L.judge(claim, [L.effect(claim, records), 0.0, 0.0]).holds


CLAIM = GOOD.split("[[claims]]")[0]


@pytest.mark.parametrize("claim, fragment", [
    ('metric = "kl/mean"\narm = "a"\nmatch = "kl/mean"', "needs against = <arm>"),
    ('metric = "kl/mean"\narm = "a"\nagainst = "b"\ntarget = 1.0', "use one of against"),
    ('metric = "kl/mean"\narm = "a"\ntarget = "one"', "target = 'one' must be a number"),
    ('metric = "kl/mean"\narm = "a"\ntarget = 0.0\nscale = "log10"', "must be > 0 with scale"),
])
def test_a_malformed_comparison_is_named(lesson_dir, claim, fragment):  # noqa: F811
    (lesson_dir / "bad.toml").write_text(CLAIM + f'[[claims]]\ntext = "c"\n{claim}\ndirection = "equal"\n'
                                                 f'threshold = 0.3\n')
    with pytest.raises(L.LessonError) as e:
        L.load_lesson("bad")
    assert fragment in str(e.value)


def test_well_formed_comparisons_load(lesson_dir):  # noqa: F811
    (lesson_dir / "ok.toml").write_text(
        CLAIM + '[[claims]]\ntext = "c"\nmetric = "reward/mean"\narm = "a"\nagainst = "b"\nmatch = "kl/mean"\n'
                'direction = "equal"\nthreshold = 0.3\n\n'
                '[[claims]]\ntext = "d"\nmetric = "kl/mean"\narm = "a"\ntarget = 0.2\nscale = "log10"\n'
                'direction = "equal"\nthreshold = 0.301\n')
    lesson = L.load_lesson("ok")
    assert lesson.claims[0].match == "kl/mean" and lesson.claims[0].against == "b"
    assert lesson.claims[1].target == 0.2 and lesson.claims[1].against is None


def test_the_app_verdict_names_the_matched_steps_and_the_target():
    """The Lessons panel says which steps of the other arm a matched claim compared with, and the fixed target."""
    from app.lessons import claim_numbers

    lesson = L.load_lesson("adaptive_kl")
    arms = [a.name for a in lesson.arms]
    records = {"with": _rows(kl=[0.0, 0.5, 1.0, 1.5, 2.0, 2.0], gold=[0.0, 0.2, 0.5, 0.8, 1.0, 1.0]),
               "free": _rows(kl=[0.0, 1.0, 2.0, 3.0, 8.0, 20.0], gold=[0.0, 0.5, 1.2, 0.8, -1.0, -3.0])}
    records = {arms[0]: records["with"], arms[1]: records["free"]}
    matched = L.Claim("c", "gold", arms[0], arms[1], (5, 6), "equal", 0.5, match="kl")
    text = claim_numbers(lesson, L.judge(matched, [L.effect(matched, records)]), records)
    assert "first reached the same value, steps 3-4: 1; effect +0 (claimed within ± 0.5)" in text
    never = L.Claim("c", "gold", arms[1], arms[0], (5, 6), "equal", 0.5, match="kl")
    assert "never reached the same value" in claim_numbers(lesson, L.judge(never, [float("nan")]), records)
    target = L.Claim("c", "kl", arms[0], None, (5, 6), "equal", 0.301, scale="log10", target=0.2)
    assert "target: 0.2" in claim_numbers(lesson, L.judge(target, [L.effect(target, records)]), records)


def test_a_matched_window_is_never_shorter_than_the_claims_window():
    """The free arm's very first step spikes to KL 3 and then stays low: the search starts at the first full
    2-step window (steps 1-2, mean 1.5), so the spike alone, a 'window' of one recorded step, does not count."""
    records = {"pen": _rows(kl=[0.0, 1.0, 2.0, 2.0], gold=[0.0, 0.5, 1.0, 1.0]),
               "free": _rows(kl=[3.0, 0.0, 0.5, 1.0], gold=[0.0, 0.1, 0.2, 0.3])}
    assert L.compared_window(_matched((3, 4)), records) is None


def test_a_probe_claims_line_is_drawn_where_the_raw_value_must_cross():
    """A probe lesson's chart draws each metric's raw value as a bar and each claim as a line. A claim against a
    target (the clip-growth lesson: the up-clipped tokens' mean probability is below 0.2) is read on the value
    minus the target, so its line sits at the target + threshold, not at the threshold (0); with scale = "log10"
    at target * 10**threshold."""
    from app.lessons import claim_line, lesson_figure

    lesson = L.load_lesson(L.lessons_dir() / "unshipped" / "clip_growth.toml")
    lines = [s.y0 for s in lesson_figure(lesson, {"probe": [{"step": 1}]}).layout.shapes]
    assert lines == [0.0, 0.0, 0.2]
    log = L.Claim("c", "kl", "a", None, (1, 1), "equal", 0.301, scale="log10", target=0.2)
    assert claim_line(log) == pytest.approx(0.4, rel=1e-3)
    assert claim_line(L.Claim("c", "kl", "a", None, (1, 1), "greater", 1.0, scale="log10")) == pytest.approx(10.0)


def test_a_trained_lessons_chart_draws_its_target_on_the_claims_axis():
    """adaptive_kl compares the KL with a target of 0.2: the chart draws that value as a line on the KL's axis
    (its first metric), beside the shaded windows, so the learner sees what 'near the target' means."""
    from app.lessons import lesson_figure

    lesson = L.load_lesson("adaptive_kl")
    recs = {arm.name: [{"step": s, "kl/mean": 0.3, "kl/coef": 0.1, "reward/mean": 0.5} for s in (1, 2)]
            for arm in lesson.arms}
    shapes = lesson_figure(lesson, recs).layout.shapes
    lines = [(s.y0, s.yref) for s in shapes if s.type == "line"]
    assert (0.2, "y") in lines, lines
    assert sum(s.type == "rect" for s in shapes) == len(lesson.claims)


def _banded(band=(1.0, 4.0), threshold=0.2):
    return L.Claim("c", "gold", "pen", "free", (1, 8), "equal", threshold, z=0.0, match="kl", band=band)


def test_a_banded_claim_compares_both_arms_over_their_steps_inside_the_kl_band():
    """Gold against KL in the band 1 <= KL <= 4. The penalised arm's steps 3-7 lie in it, gold 0.2 0.4 0.4 0.4 0.6
    (mean 0.4); the free arm races through, but its steps 2-6 are in it too, gold 0.5 0.3 0.4 0.4 0.4 (mean 0.4):
    the same curve, effect 0. The same free arm with its in-band gold 0.3 lower is measured so, and fails."""
    pen = _rows(kl=[0.1, 0.5, 1.0, 1.5, 2.0, 2.0, 3.0, 0.8], gold=[0.0, 0.1, 0.2, 0.4, 0.4, 0.4, 0.6, 0.3])
    free = _rows(kl=[0.2, 1.0, 2.0, 3.0, 3.5, 4.0, 9.0, 20.0], gold=[0.0, 0.5, 0.3, 0.4, 0.4, 0.4, -1.0, -3.0])
    records = {"pen": pen, "free": free}
    assert L.band_mean(pen, "gold", "kl", (1.0, 4.0), (1, 8)) == (pytest.approx(0.4), 5)
    assert L.effect(_banded(), records) == pytest.approx(0.0)
    assert L.judge(_banded(), [0.0, 0.05, -0.05]).holds
    worse = {"pen": pen, "free": [{**r, "gold": r["gold"] - 0.3} if 1.0 <= r["kl"] <= 4.0 else r for r in free]}
    assert L.effect(_banded(), worse) == pytest.approx(0.3)
    assert not L.judge(_banded(), [L.effect(_banded(), worse)] * 3).holds


def test_a_banded_claim_fails_when_an_arm_barely_visits_the_band():
    """The free arm jumps from KL 0.2 to 9 and spends one step in the band: fewer than BAND_MIN_STEPS, so nan,
    and the claim fails rather than reading one noisy step."""
    records = {"pen": _rows(kl=[0.1, 1.0, 1.5, 2.0, 2.0, 3.0, 2.5, 2.0], gold=[0.0] * 8),
               "free": _rows(kl=[0.2, 0.2, 2.0, 9.0, 9.0, 20.0, 20.0, 20.0], gold=[0.0] * 8)}
    assert math.isnan(L.effect(_banded(), records))
    assert not L.judge(_banded(), [L.effect(_banded(), records), 0.0, 0.0]).holds


@pytest.mark.parametrize("band, extra, fragment", [
    ("[4.0, 1.0]", 'against = "b"\nmatch = "kl/mean"', "must be [lo, hi], two numbers with lo < hi"),
    ("[1.0]", 'against = "b"\nmatch = "kl/mean"', "must be [lo, hi]"),
    ("[1.0, 4.0]", 'against = "b"', "needs match = <metric>"),
])
def test_a_malformed_band_is_named(lesson_dir, band, extra, fragment):  # noqa: F811
    (lesson_dir / "bad.toml").write_text(CLAIM + f'[[claims]]\ntext = "c"\nmetric = "reward/mean"\narm = "a"\n'
                                                 f'{extra}\nband = {band}\ndirection = "equal"\nthreshold = 0.3\n')
    with pytest.raises(L.LessonError) as e:
        L.load_lesson("bad")
    assert fragment in str(e.value)


def test_the_app_verdict_names_each_arms_steps_in_the_band():
    from app.lessons import claim_numbers

    lesson = L.load_lesson("adaptive_kl")
    arms = [a.name for a in lesson.arms]
    records = {arms[0]: _rows(kl=[0.1, 1.0, 1.5, 2.0, 2.0, 3.0, 2.5, 2.0], gold=[0.5] * 8),
               arms[1]: _rows(kl=[0.2, 0.2, 2.0, 9.0, 9.0, 20.0, 20.0, 20.0], gold=[0.25] * 8)}
    banded = L.Claim("c", "gold", arms[0], arms[1], (1, 8), "equal", 0.2, match="kl", band=(1.0, 4.0))
    text = claim_numbers(lesson, L.judge(banded, [L.effect(banded, records)]), records)
    assert "0.5 over its 7 step(s) with 1 <= `kl` <= 4" in text
    assert "0.25 over its 1 step(s) with 1 <= `kl` <= 4 (fewer than 5: no comparison)" in text
    assert "first reached" not in text

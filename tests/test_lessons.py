"""Lessons: every shipped lesson file is valid, a malformed one is refused with a message naming the problem and
its fix, the statistic decides on hand-made numbers as its rule says, the paired variance is right on
hand-computed gradients, and one real lesson (PPO with one pass is REINFORCE) is checked end to end."""

import shutil
from pathlib import Path

import pytest
import torch

from labcore import cli
from labcore import lessons as L
from labcore.variance import estimate_variance, estimator_variances

GOOD = '''
title = "t"
question = "q?"
choices = ["up", "down"]
answer = "down"
preset = "grpo"
steps = 4
explanation = "e"
source = "s"

[set]
"run.grad_variance" = false

[arms.a]
label = "A"
set = { "algorithm.epochs" = 2 }

[arms.b]
label = "B"

[[claims]]
text = "c"
metric = "clip/frac"
arm = "a"
against = "b"
direction = "greater"
threshold = 0.0
'''


@pytest.fixture
def lesson_dir(tmp_path, monkeypatch):
    """A presets folder holding the real presets and an empty lessons/ folder for hand-written lessons."""
    presets = Path(__file__).resolve().parent.parent / "presets"
    root = tmp_path / "presets"
    root.mkdir()
    for p in presets.glob("*.toml"):
        shutil.copy(p, root / p.name)
    (root / "lessons").mkdir()
    monkeypatch.setenv("RLHF_LAB_PRESETS", str(root))
    return root / "lessons"


def test_every_shipped_lesson_loads():
    names = L.list_lessons()
    assert len(names) >= 4
    unshipped = sorted((L.lessons_dir() / "unshipped").glob("*.toml"))
    for name in [*names, *unshipped]:  # unshipped lessons stay valid, so they can be re-measured
        lesson = L.load_lesson(name)
        assert lesson.answer in lesson.choices and lesson.claims and lesson.source
        assert lesson.seeds >= 3, "a shipped lesson is checked over at least 3 seeds"
        for arm in lesson.arms:
            lesson.config(arm, 0)  # every arm is a valid config


def test_a_lesson_needs_no_code(lesson_dir):
    (lesson_dir / "mine.toml").write_text(GOOD)
    lesson = L.load_lesson("mine")
    assert [a.name for a in lesson.arms] == ["a", "b"]
    assert lesson.config(lesson.arms[0], 3).algorithm.epochs == 2
    assert lesson.config(lesson.arms[1], 3).run.seed == 3
    assert lesson.claims[0].window == (1, 4)


@pytest.mark.parametrize("edit, fragment", [
    (lambda s: s.replace('answer = "down"', 'answer = "sideways"'), "is not one of the choices"),
    (lambda s: s.replace('source = "s"\n', ""), "'source' is missing"),
    (lambda s: s.replace('against = "b"', 'against = "c"'), "against = 'c' is not an arm; arms are a, b"),
    (lambda s: s.replace('direction = "greater"', 'direction = "bigger"'), "choose one of greater, less, equal"),
    (lambda s: s.replace('threshold = 0.0', 'threshold = 0.0\nwindow = [3, 9]'), "window = [3, 9]"),
    (lambda s: s.replace('"algorithm.epochs" = 2', '"algorithm.epoch" = 2'), "Did you mean 'epochs'"),
    (lambda s: s + 'follow_up = "late"\n', "move the lesson's own keys"),
    (lambda s: s.replace('[arms.a]', '[arms.a\n'), "could not be read"),
    (lambda s: s.replace('choices = ["up", "down"]', 'choices = "up"'), "'choices' must be a list"),
])
def test_a_malformed_lesson_names_its_problem(lesson_dir, edit, fragment):
    (lesson_dir / "bad.toml").write_text(edit(GOOD))
    with pytest.raises(L.LessonError) as e:
        L.load_lesson("bad")
    assert fragment in str(e.value)
    assert "lesson 'bad'" in str(e.value)


def test_check_cli_refuses_a_malformed_lesson(lesson_dir, capsys):
    (lesson_dir / "bad.toml").write_text(GOOD.replace('answer = "down"', 'answer = "x"'))
    assert cli.main(["lesson", "check", "bad"]) == 2
    assert "is not one of the choices" in capsys.readouterr().err
    assert cli.main(["lesson", "check", "nope"]) == 2
    assert "no lesson named 'nope'" in capsys.readouterr().err


def test_lessons_lists_in_order(capsys):
    assert cli.main(["lessons"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("baseline_variance") and out[1].startswith("reward_hacking"), \
        "ordered by the lesson's `order`, not by file name"
    assert any(line.startswith("clip_fraction") for line in out)
    assert not any(line.startswith("clip_higher") for line in out), "unshipped lessons are not listed"


def _claim(direction, threshold, z=2.0):
    return L.Claim("c", "m", "a", "b", (1, 1), direction, threshold, z)


def test_judge_on_hand_made_numbers():
    """greater: mean 0.2, sd 0.1, s.e. 0.1/sqrt(3) = 0.0577; 0.2 - 2 * 0.0577 = 0.085 > 0 holds, > 0.1 does not."""
    v = L.judge(_claim("greater", 0.0), [0.1, 0.2, 0.3])
    assert v.mean == pytest.approx(0.2) and v.se == pytest.approx(0.1 / 3 ** 0.5) and v.holds and v.agree == 3
    assert not L.judge(_claim("greater", 0.1), [0.1, 0.2, 0.3]).holds
    # every seed must agree: a large mean carried by one seed is not enough
    assert not L.judge(_claim("greater", 0.0, z=0.0), [-0.01, 1.0, 1.0]).holds
    assert L.judge(_claim("less", -0.3), [-0.5, -0.6, -0.55]).holds
    assert not L.judge(_claim("less", -0.3), [-0.5, -0.6, 0.2]).holds
    assert L.judge(_claim("equal", 1e-6, z=0.0), [0.0, 0.0, 0.0]).holds
    assert not L.judge(_claim("equal", 1e-6, z=0.0), [0.0, 2e-6, 0.0]).holds
    assert not L.judge(_claim("greater", 0.0), [float("nan"), 1.0, 1.0]).holds


def test_effect_is_paired_and_names_missing_metrics():
    claim = L.Claim("c", "x", "a", "b", (2, 3), "greater", 0.0)
    records = {"a": [{"step": 1, "x": 9.0}, {"step": 2, "x": 1.0}, {"step": 3, "x": 3.0}],
               "b": [{"step": 1, "x": 0.0}, {"step": 2, "x": 0.5}, {"step": 3, "x": 0.5}]}
    assert L.effect(claim, records) == pytest.approx(2.0 - 0.5)
    with pytest.raises(L.LessonError, match="metric 'y' was not recorded in steps 2-3"):
        L.effect(L.Claim("c", "y", "a", None, (2, 3), "greater", 0.0), records)


def test_estimator_variance_on_hand_computed_gradients():
    """One parameter, two prompts of two samples, score gradients +1, +1 | -1, -1, constant reward 2: REINFORCE's
    prompt units are X = 2 and -2, so Var = ((2-0)^2 + (-2-0)^2) / (P (P-1)) = 8 / 2 = 4; any mean baseline makes
    every weight 0."""
    grads = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    rewards = torch.full((2, 2), 2.0)
    var = estimator_variances(grads, rewards)
    assert var["none"] == pytest.approx(4.0)
    assert var["batch_mean"] == 0.0 and var["group_mean"] == 0.0 and var["leave_one_out"] == 0.0
    assert estimate_variance(torch.ones(1, 3)) == 0.0
    with pytest.raises(ValueError, match="rows but rewards is 2 x 2"):
        estimator_variances(grads[:3], rewards)


def test_ppo_one_pass_is_reinforce_checked_end_to_end():
    """The cheapest real lesson: same seed, PPO's clip with one pass against -A log pi; the claim is equality of
    the gradient norm and of every step's reward. It fails if the trainer's ratio is not exactly 1 on pass 1."""
    lesson = L.load_lesson("ppo_is_reinforce")
    res = L.check(lesson, seeds=3)
    assert res.holds, [(v.claim.text, v.effects) for v in res.verdicts]
    assert all(len(res.records[s]["ppo_clip"]) == lesson.steps for s in res.seeds)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["clip_fraction", "std_difficulty", "length_bias_probe"])
def test_the_cheapest_lessons_hold_in_ci(name):
    """The lessons that fit CI's time (about 10 s each for their seeds on 2 cores) are checked as `rlhf-lab lesson
    check` checks them, over the lesson's own seeds; the rest are run by benchmarks/lessons.py and reported."""
    lesson = L.load_lesson(name)
    res = L.check(lesson)
    assert res.holds, [(v.claim.text, v.effects) for v in res.verdicts]
    assert len(res.seeds) == lesson.seeds >= 3


def test_a_claim_that_does_not_hold_fails_the_check(lesson_dir, capsys):
    """Both arms one pass, so both clip fractions are exactly 0: 'a clips more than b' must fail (exit 1) and
    'a and b are equal' must hold (exit 0)."""
    same = GOOD.replace('set = { "algorithm.epochs" = 2 }', "").replace("steps = 4", "steps = 2")
    (lesson_dir / "wrong.toml").write_text(same)
    (lesson_dir / "right.toml").write_text(same.replace('direction = "greater"', 'direction = "equal"'))
    assert cli.main(["lesson", "check", "wrong", "--seeds", "2"]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT HOLD" in out and "some claims do not hold" in out
    assert cli.main(["lesson", "check", "right", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "every claim holds" in out and "2/2" in out


def test_the_app_verdict_gives_numbers_and_the_prediction():
    """The Lessons panel's verdict (pure function): each claim's arm values, effect and threshold, the learner's
    prediction against the answer, then explanation, source and follow-up; the figure has one line per arm."""
    from app.lessons import lesson_figure, verdict_markdown

    lesson = L.load_lesson("clip_fraction")
    recs = {"two_passes": [{"step": s, "clip/frac": 0.02, "ratio/mean": 1.0} for s in range(1, 21)],
            "one_pass": [{"step": s, "clip/frac": 0.0, "ratio/mean": 1.0} for s in range(1, 21)]}
    res = L.Result(lesson, [0], {0: recs})
    res.verdicts = [L.judge(c, [L.effect(c, recs)]) for c in lesson.claims]
    text = verdict_markdown(lesson, res, lesson.choices[0])
    assert "epochs = 2: 0.02" in text and "effect +0.02 (claimed > 0)" in text
    assert "not what the lab found" in text and lesson.answer in text
    assert "Source." in text and "Follow-up" in text
    assert "right." in verdict_markdown(lesson, res, lesson.answer)
    assert len(lesson_figure(lesson, recs).data) == 2 * len(lesson.charts)

"""The charts explain themselves, and their "flat by construction" notes are true.

Each note of `app.chart_help.constant_notes` is a claim about the step; the trainer test below trains the configs
that get a note and checks the charted metric really is constant there, and that it moves once the note's
advice is followed. The browser test opens a chart's explanation and sees the note come and go with the settings.
"""

import os

import pytest
from ui_fixtures import CHROMIUM, SHOTS, lab_page, require_model

from app import settings
from app.chart_help import CHART_HELP, constant_notes, notes_html
from app.figures import CHARTS, RunView, build_figures
from labcore import config as C


def test_every_chart_has_an_explanation():
    assert set(CHART_HELP) == {c.id for c in CHARTS}
    for h in CHART_HELP.values():
        assert h["measures"] and h["healthy"] and h["try"]


def test_notes_follow_the_settings():
    grpo = constant_notes(C.build("grpo", {}))
    assert {"clip", "ratio", "kl"} <= set(grpo) and "epochs = 4" in grpo["clip"] and "epochs = 2" in grpo["ratio"]
    two = constant_notes(C.build("grpo", {"algorithm.epochs": 2}))
    assert not {"clip", "ratio", "kl"} & set(two)
    assert not {"clip", "ratio"} & set(constant_notes(C.build("grpo", {"algorithm.minibatches": 2})))
    assert "no clip" in constant_notes(C.build("reinforce", {}))["clip"]
    assert "no clip" in constant_notes(C.build("reinforce", {"algorithm.epochs": 2}))["clip"]
    assert "ratio" in constant_notes(C.build("trpo", {}))
    assert "gradvar" in constant_notes(C.build("grpo", {"run.grad_variance": False}))
    assert "gradvar" not in grpo
    assert 'data-notes="{&quot;' in notes_html(grpo)  # escaped for the attribute


def test_option_meanings_cover_every_option():
    for key in settings.EXPLAINED:
        meanings = settings.option_help(key)
        assert [v for _, v in settings.choices(key)] == list(meanings), key
        assert all(m.strip() for m in meanings.values()), key
    assert "leave_one_out" in settings.options_markdown()
    info = settings.chosen_info("algorithm.baseline", "leave_one_out")
    assert info.startswith(settings.help_text("algorithm.baseline")) and "other K-1" in info


def _train(recipe: str, steps: int = 3, **overrides) -> list[dict]:
    from labcore.trainer import Trainer

    cfg = C.build(recipe, {"rollout.prompts_per_step": 4, "rollout.samples_per_prompt": 4, "run.steps": steps,
                           "rollout.max_new_tokens": 8, "run.grad_variance": False, **overrides})
    trainer = Trainer(cfg)
    return [trainer.train_step().metrics for _ in range(steps)]


@pytest.mark.parametrize("recipe,overrides", [("grpo", {}), ("gspo", {}), ("cispo", {}), ("reinforce", {}),
                                              ("trpo", {"algorithm.critic_iters": 1})])
def test_a_noted_chart_is_constant_in_training(recipe, overrides):
    """Where the lab writes "flat by construction" on a chart, the trained metric is constant."""
    require_model()
    cfg = C.build(recipe, overrides)
    notes = constant_notes(cfg)
    records = _train(recipe, **overrides)
    if "ratio" in notes:
        assert all(abs(r["ratio/mean"] - 1) < 1e-6 and abs(r["ratio/max"] - 1) < 1e-5 for r in records)
    if "clip" in notes and notes["clip"].startswith("no clip"):
        assert not any("clip/frac" in r for r in records), "a loss without a clip logs no clip fraction"
    elif "clip" in notes:
        assert all(r["clip/frac"] == 0 for r in records)
    if "kl" in notes:
        assert all(abs(r["approx_kl"]) < 1e-6 for r in records)


def test_following_the_note_makes_the_chart_move():
    """The notes' advice: with two epochs the ratio leaves 1; with four, tokens get clipped within a few steps."""
    require_model()
    records = _train("grpo", steps=3, **{"algorithm.epochs": 2})
    assert max(r["ratio/max"] for r in records) > 1.001
    assert max(r["approx_kl"] for r in records) > 0
    records = _train("grpo", steps=3, **{"algorithm.epochs": 4})
    assert max(r["clip/frac"] for r in records) > 0



@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM}")
def test_a_chart_explains_itself_in_the_browser(tmp_path):
    with lab_page(tmp_path / "runs", 1280, 720, isolation="thread") as (page, _):
        page.wait_for_selector("#rl-chart-clip .rl-help-btn")
        assert page.locator(".rl-chart .rl-help-btn").count() == len(CHARTS)
        # the default experiment (GRPO, one pass): the clip chart says why it is flat, on the chart
        page.wait_for_function("() => /epochs = 4/.test(document.querySelector('#rl-chart-clip .rl-note')"
                               "?.textContent || '')")
        assert page.locator("#rl-chart-reward .rl-note").count() == 0
        page.locator("#rl-chart-clip .rl-help-btn").click()
        pop = page.locator("#rl-chart-clip .rl-help-pop")
        assert pop.is_visible() and "Measures." in pop.inner_text() and "rho_t" in pop.inner_text()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "chart-explained-1280x720.png"))
        pop.click()
        assert not pop.is_visible()
        # two epochs: the note goes, the chosen baseline's meaning is under its dropdown
        box = page.locator("#ctl-algorithm-epochs input")
        box.fill("2")
        box.press("Tab")
        page.wait_for_function("() => !document.querySelector('#rl-chart-clip .rl-note')")
        assert "group_mean: Subtract the mean reward" in page.locator("#ctl-algorithm-baseline").inner_text()
        assert page.errors == []


def test_the_live_knobs_are_drawn_as_set():
    """lr and temperature are drawn unsmoothed on the right axis of the loss and entropy charts."""
    records = [{"step": i, "time": float(i), "entropy/mean": 1.0 - 0.01 * i, "loss/policy": 0.1,
                "lr": 3e-3 if i < 5 else 1e-3, "temperature": 1.0 if i < 5 else 0.7} for i in range(10)]
    figs = {f["id"]: f for f in build_figures([RunView("r", "GRPO", records)], smoothing=0.9)}
    for chart, key, after in (("loss", "lr", 1e-3), ("entropy", "temperature", 0.7)):
        drawn = [t for t in figs[chart]["data"] if t["name"] == key]
        assert len(drawn) == 1 and drawn[0]["yaxis"] == "y2", chart
        assert list(drawn[0]["y"])[4:6] == [list(drawn[0]["y"])[0], after], "a setting's step is not smoothed"

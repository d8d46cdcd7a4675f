"""A lesson in a real browser, from question to verdict: open Lessons, pick the cheapest lesson (PPO with one pass is
REINFORCE, 2 arms x 10 steps), see the question with Run disabled, lock a prediction, run it, and read the verdict
in numbers against the prediction, with the explanation, the source and the chart's explanation beside it."""


import pytest
from ui_fixtures import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, free_port, require_model

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    from app.main import build_demo, launch_options
    from labcore.runner import RunManager

    require_model()
    manager = RunManager(tmp_path_factory.mktemp("runs"), isolation="process")
    demo = build_demo(manager)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port, **launch_options(manager))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(f"http://127.0.0.1:{port}/")
        yield pg
        browser.close()
    demo.close()
    manager.shutdown()


def test_a_lesson_from_question_to_verdict(page):
    page.get_by_text("Lessons: predict, run, see it happen").click()
    page.get_by_label("Lesson", exact=True).click()
    page.get_by_role("option", name="PPO with one pass is REINFORCE with a baseline").click()
    page.wait_for_function("() => document.querySelector('#rl-lesson-question').innerText.includes('How different')")
    assert page.locator("#rl-lesson-start").is_disabled(), "no run before a prediction is locked"
    assert "Measures." in page.locator("#rl-lesson-help").inner_text(), "the lesson's chart is explained beside it"

    page.get_by_label("Identical gradients and the same run: the clip never acts on pass 1").check()
    page.locator("#rl-lesson-lock").click()
    page.wait_for_function("() => !document.querySelector('#rl-lesson-start').disabled")
    assert "Prediction locked" in page.locator("#rl-lesson-status").inner_text()

    page.locator("#rl-lesson-start").click()
    page.wait_for_function("() => document.querySelector('#rl-lesson-verdict').innerText.includes('You predicted')",
                           timeout=240_000)
    verdict = page.locator("#rl-lesson-verdict").inner_text()
    assert "right." in verdict and "✔ showed" in verdict and "✘" not in verdict
    assert "grad/norm" in verdict and "effect +0" in verdict
    assert "Source." in verdict and "Follow-up" in verdict
    assert page.locator("#rl-lesson-plot .js-plotly-plot").count() == 1
    SHOTS.mkdir(exist_ok=True)
    page.locator("#rl-lessons").screenshot(path=str(SHOTS / "lesson-verdict.png"))
    assert page.errors == []

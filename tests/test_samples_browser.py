"""Samples as a teaching piece, and ticks that send only what changed, in a real browser (issue 13).

Headless Chromium (the system's, as in test_browser.py) against a served lab:
- a finished run's samples are grouped under their prompt, K completions a group, each token's value printed
  under it (no hover needed), and clicking a point on a chart shows that step's samples;
- while a run goes, ticks after the first send deltas, and the charts the page draws from them hold every step
  record (the reward trace's length equals the run's record count).
"""

import json

import pytest
from ui_fixtures import BROWSER_MARKS, SHOTS, require_model, serve

from labcore import config as C

pytestmark = BROWSER_MARKS

P, K = 3, 3
REWARD_LEN = """() => {
  const d = document.querySelector('#rl-chart-reward').data || [];
  const t = d.find(t => t.uid && t.uid.endsWith('reward_mean_s'));
  return t ? t.x.length : -1;
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from labcore.runner import RunManager

    model = require_model()
    manager = RunManager(tmp_path_factory.mktemp("runs"), isolation="process")
    small = {"model.policy": model, "rollout.prompts_per_step": P, "rollout.samples_per_prompt": K,
             "rollout.max_new_tokens": 4, "run.grad_variance": False}
    done = manager.submit(C.build("grpo", {**small, "run.steps": 6}), owner="someone")
    manager.wait(done, 120)
    url, demo = serve(manager)
    yield url, manager, done, small
    demo.close()
    manager.shutdown()


def open_run(browser, url: str, run_id: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(f"{url}?run={run_id}")
    page.wait_for_function("() => document.querySelectorAll('.rl-chart .main-svg').length >= 9")
    return page


def test_samples_are_grouped_with_values_as_text_and_a_chart_click_shows_its_step(served, browser):
    url, manager, done, _ = served
    page = open_run(browser, url, done)
    page.wait_for_function("() => document.querySelector('#rl-samples .rl-samples')?.dataset.step === '6'")
    groups = page.locator("#rl-samples .rl-group")
    assert groups.count() == P, "one group per prompt"
    for i in range(P):
        assert groups.nth(i).locator(".rl-sample").count() == K, "the group's K completions under its prompt"
        assert groups.nth(i).locator(".rl-prompt").count() == 1, "the prompt shown once"
    # every token's value is on screen as text (no hover): a number under the token
    values = page.locator("#rl-samples .rl-tok small")
    assert values.count() == page.locator("#rl-samples .rl-tok").count() > 0
    first = values.first
    assert first.is_visible() and float(first.inner_text()) == pytest.approx(
        manager.store.samples(done, 6)[0]["adv"][0], abs=0.006)
    page.locator("#rl-token-values input").uncheck()
    page.wait_for_function("() => !document.querySelector('#rl-samples .rl-tok small').offsetHeight")
    page.locator("#rl-token-values input").check()
    # a tap pins the token's values
    page.locator("#rl-samples .rl-tok").first.focus()
    pinned = page.evaluate("() => getComputedStyle(document.querySelector('#rl-samples .rl-tok'), '::after')"
                           ".content")
    assert "ρ" in pinned and "log p" in pinned

    # a click on the reward chart at step 2: the samples of step 2
    box = page.evaluate("""() => { const gd = document.querySelector('#rl-chart-reward');
      gd.scrollIntoView({block: 'center'});
      const r = gd.getBoundingClientRect(), s = gd._fullLayout._size;
      return [r.left + s.l + gd._fullLayout.xaxis.l2p(2), r.top + s.t + s.h / 2]; }""")
    page.mouse.click(box[0], box[1])
    page.wait_for_function("() => document.querySelector('#rl-samples .rl-samples')?.dataset.step === '2'")
    assert page.get_by_label("Follow the latest step").is_checked() is False
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "samples-grouped.png"), full_page=True)
    assert page.errors == []
    page.close()


def test_ticks_send_deltas_and_the_drawn_charts_hold_every_record(served, browser):
    url, manager, _, small = served
    going = manager.submit(C.build("grpo", {**small, "run.steps": 100_000}), owner="someone")
    page = open_run(browser, url, going)
    tick = page.evaluate("() => window.gradio_config.dependencies.find(d => d.api_name === 'tick').id")
    payloads = []

    def on_response(response):
        post = (response.request.post_data or "").replace(" ", "")
        if "/gradio_api/run/predict" in response.url and f'"fn_index":{tick},' in post:
            grid = response.json()["data"][0]
            if isinstance(grid, str):
                payloads.append(json.loads(grid))

    page.on("response", on_response)
    page.wait_for_function(f"() => ({REWARD_LEN})() >= 8", timeout=90_000)
    page.wait_for_timeout(3000)
    manager.pause(going)
    page.wait_for_timeout(1500)
    n = len(manager.store.metrics(going))
    page.wait_for_function(f"() => ({REWARD_LEN})() === {n}", timeout=30_000)
    page.remove_listener("response", on_response)
    deltas = [p for p in payloads if p["base"] is not None]
    assert deltas and any(p["extend"] for p in deltas), "ticks during the run sent appends"
    assert page.errors == []
    page.close()
    manager.stop(going)
    manager.wait(going, 60)

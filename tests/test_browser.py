"""The lab in a real browser: pick a preset, Start, watch the charts fill, zoom, smooth, Stop.

Headless Chromium (the system's /usr/bin/chromium, driven by Playwright's sync API) against the app served in
this process. Checks that the Reward chart gets points from a real run, that a user's zoom survives live
updates (the reason the charts are a custom component), and that nothing reaches the browser console as an
error. Screenshots of the running lab go to screenshots/ (gitignored).
"""

import time

import pytest
from ui_fixtures import ARGS, BROWSER_MARKS, CHROMIUM, SHOTS, free_port, require_model, running_lab

pytestmark = BROWSER_MARKS

REWARD_DIV = "document.querySelector('#rl-chart-reward')"
REWARD_POINTS = """() => {
  const div = document.querySelector('#rl-chart-reward');
  const t = div && div.data ? div.data.find(t => t.uid && t.uid.endsWith('reward_mean_s')) : null;
  return t ? t.x.length : 0;
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from app.main import build_demo, launch_options
    from labcore.runner import RunManager

    model_name = require_model()
    manager = RunManager(tmp_path_factory.mktemp("runs"), isolation="process")
    demo = build_demo(manager)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port, **launch_options(manager))
    yield f"http://127.0.0.1:{port}/", model_name, manager
    demo.close()
    manager.shutdown()


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1600, "height": 1000})
        pg.set_default_timeout(60_000)  # a loaded 2-core machine can be slow to answer
        pg.errors = []
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        yield pg
        browser.close()


def set_number(pg, key: str, value) -> None:
    box = pg.locator(f"#ctl-{key.replace('.', '-')} input")
    box.fill(str(value))
    box.press("Tab")


def test_preset_start_charts_zoom_smoothing_stop(served, page):
    url, model, manager = served
    SHOTS.mkdir(exist_ok=True)
    page.goto(url)
    page.wait_for_function("() => document.querySelectorAll('.rl-chart .main-svg').length >= 9",
                           timeout=30_000)

    # Pick a preset from the dropdown: every control fills in, the formula follows.
    page.get_by_label("Preset").click()
    page.get_by_role("option", name="rloo", exact=True).click()
    page.wait_for_function("() => document.querySelector('#ctl-algorithm-recipe input').value === 'RLOO'")
    page.wait_for_function("() => document.querySelector('#rl-formula').innerText.includes('RLOO')")

    # Small and fast: 2 prompts x 2 samples, 4 tokens, long enough to zoom while it runs.
    page.locator("#ctl-model-policy input, #ctl-model-policy textarea").first.fill(model)
    for key, value in {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
                       "rollout.max_new_tokens": 4, "run.steps": 5000}.items():
        set_number(page, key, value)
    page.wait_for_function("() => document.querySelector('#rl-diff').innerText.includes('run.steps')")

    page.locator("#rl-start").click()
    page.wait_for_function(f"() => ({REWARD_POINTS})() >= 3", timeout=90_000)
    assert "Running" in page.locator("#rl-status").inner_text()

    # Zoom the reward chart; the next live updates must keep the user's x range.
    page.evaluate(f"() => Plotly.relayout({REWARD_DIV}, {{'xaxis.range': [1, 2]}})")
    n = page.evaluate(REWARD_POINTS)
    page.wait_for_function(f"() => ({REWARD_POINTS})() >= {n + 2}", timeout=60_000)
    x_range = page.evaluate("() => document.querySelector('#rl-chart-reward').layout.xaxis.range")
    assert x_range == [1, 2]
    page.screenshot(path=str(SHOTS / "lab-running.png"), full_page=True)

    # A hot parameter: the learning rate changes from the run's next step on.
    set_number(page, "optim.lr", 0.002)
    page.wait_for_function("() => document.querySelector('#rl-live')?.innerText.includes('lr 0.002')")
    run_id = manager.runs()[-1]["run_id"]
    end = time.monotonic() + 60
    while manager.store.metrics(run_id)[-1]["lr"] != 0.002 and time.monotonic() < end:
        time.sleep(0.2)
    assert manager.store.metrics(run_id)[-1]["lr"] == 0.002
    # ... and the charts mark the step it took effect at
    page.wait_for_function("() => (document.querySelector('#rl-chart-reward').layout.annotations || [])"
                           ".some(a => a.text === 'lr 0.002')", timeout=30_000)
    page.evaluate(f"() => Plotly.relayout({REWARD_DIV}, {{'xaxis.autorange': true}})")

    # Smoothing 0: the faint raw line goes away and the drawn line is the raw data.
    slider = page.locator("#rl-smoothing input[type=number]")
    slider.fill("0")
    slider.press("Tab")
    page.wait_for_function("""() => {
      const d = document.querySelector('#rl-chart-reward').data;
      return d && !d.some(t => t.uid && t.uid.endsWith('reward_mean_r'));
    }""", timeout=20_000)

    page.locator("#rl-stop").click()
    page.wait_for_function("() => /Stopped|Done/.test(document.querySelector('#rl-status').innerText)",
                           timeout=60_000)
    page.locator("#rl-samples .rl-tok").first.wait_for(timeout=10_000)
    page.screenshot(path=str(SHOTS / "lab-stopped.png"), full_page=True)
    assert page.errors == []


def test_link_restores_settings_and_bad_settings_show_problems(served, page):
    url, _, _ = served
    page.goto(url + "?preset=dapo&optim.lr=0.002")
    page.wait_for_function("() => document.querySelector('#ctl-optim-lr input')?.value === '0.002'",
                           timeout=30_000)
    page.wait_for_function("() => document.querySelector('#rl-diff')?.innerText.includes('optim.lr')")
    set_number(page, "algorithm.clip_low", 1.5)
    page.wait_for_function("() => document.querySelector('#rl-checks')?.innerText.includes('clip_low')")
    page.screenshot(path=str(SHOTS / "lab-problems.png"))
    assert page.errors == []


def test_picking_the_chain_task_moves_the_built_in_model_along(served, page):
    """The chain task has its own built-in model: picking it in the Task dropdown sets the model to tiny-chain
    (and back), so no problem is shown for a task the user merely picked."""
    url, _, _ = served
    page.goto(url)
    page.wait_for_function("() => document.querySelector('#ctl-model-policy textarea, #ctl-model-policy input')?.value === 'tiny'",
                           timeout=30_000)
    page.locator("#ctl-rollout-task input").click()
    page.get_by_role("option", name="chain", exact=True).click()
    page.wait_for_function("() => document.querySelector('#ctl-model-policy textarea, #ctl-model-policy input')?.value === 'tiny-chain'")
    page.wait_for_function("() => document.querySelector('#rl-diff')?.innerText.includes('rollout.task')")
    page.wait_for_function("() => !document.querySelector('#rl-checks')?.innerText.includes('tiny-chain')")
    assert page.errors == []


def test_the_timer_follows_the_server_pace(tmp_path, page):
    """With a budget of 0.5 ticks a second, one tab is told to tick every 2 s, and the browser's timer does.

    What is asserted does not depend on the machine's speed: the tick's answer carries the new interval (2.0), and
    over 10 s the browser sends no more ticks than a 2 s timer can (a 1 s timer would send about 10; a busy machine
    only ever sends fewer)."""
    with running_lab(tmp_path, tick_budget=0.5) as (manager, url, _):
        page.goto(url)
        page.wait_for_function("() => document.querySelectorAll('.rl-chart .main-svg').length >= 9",
                               timeout=30_000)
        set_number(page, "run.steps", 5000)
        tick = page.evaluate("() => window.gradio_config.dependencies.find(d => d.api_name === 'tick').id")
        ticks, paces = [], []

        def is_tick(request) -> bool:
            return request.url.endswith("/gradio_api/run/predict") and \
                f'"fn_index":{tick},' in (request.post_data or "").replace(" ", "")

        def on_request(request):
            if is_tick(request):
                ticks.append(time.monotonic())

        def on_response(response):
            if is_tick(response.request):
                try:
                    data = response.json().get("data", [])
                except Exception:  # noqa: BLE001 - a streamed or empty answer carries no pace
                    return
                paces.extend(d["value"] for d in data if isinstance(d, dict) and d.get("__type__") == "update"
                             and isinstance(d.get("value"), (int, float)) and not isinstance(d.get("value"), bool))

        page.on("response", on_response)
        page.locator("#rl-start").click()
        page.wait_for_function("() => /Running/.test(document.querySelector('#rl-status').innerText)",
                               timeout=60_000)
        page.wait_for_timeout(3000)  # the first tick carries the new pace
        page.on("request", on_request)
        page.wait_for_timeout(10_000)  # (Playwright delivers events while it waits)
        page.remove_listener("request", on_request)
        page.remove_listener("response", on_response)
        page.locator("#rl-stop").click()
        manager.wait(manager.runs()[-1]["run_id"], 60)
    assert 2.0 in paces, paces
    assert 1 <= len(ticks) <= 7, ticks

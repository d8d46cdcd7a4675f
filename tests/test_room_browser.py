"""The lab on a projector, a big screen and a phone, in a real browser (issue 13): one screen, and the keys.

Headless Chromium (the system's, as in test_browser.py) against a served lab with two tiny runs: a finished one
and a long one that the page opens with `?run=`. Screenshots go to screenshots/ (gitignored).
"""


import pytest
from ui_fixtures import BROWSER_MARKS, SHOTS, require_model, serve

from labcore import config as C

pytestmark = BROWSER_MARKS

IN_VIEW = """(sel) => [...document.querySelectorAll(sel)].filter(e => { const r = e.getBoundingClientRect();
  return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth; }).length"""

BOX = "(sel) => document.querySelector(sel).getBoundingClientRect().toJSON()"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from labcore.runner import RunManager

    model = require_model()
    manager = RunManager(tmp_path_factory.mktemp("runs"), isolation="process")
    small = {"model.policy": model, "rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
             "rollout.max_new_tokens": 4}
    done = manager.submit(C.build("rloo", {**small, "run.steps": 3}), owner="someone")
    manager.wait(done, 120)
    going = manager.submit(C.build("grpo", {**small, "run.steps": 100_000}), owner="someone")
    url, demo = serve(manager)
    yield url, manager, done, going
    demo.close()
    manager.stop(going)
    manager.shutdown()


def open_page(browser, url: str, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(60_000)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => document.querySelectorAll('.rl-chart .main-svg').length >= 9")
    return page


@pytest.mark.parametrize("width,height,charts", [(1280, 720, 4), (1920, 1080, 9), (390, 844, 1)])
def test_one_screen_shows_the_transport_the_status_and_the_charts(served, browser, width, height, charts):
    """A projector (1280x720): transport bar, status and at least four charts without scrolling; a big screen:
    all nine, and the samples beside them; a phone: Start and the status on the first screen, the logo square,
    the transport bar in two rows with one-line labels."""
    url, _, _, going = served
    page = open_page(browser, f"{url}?run={going}", width, height)
    page.wait_for_function("() => /Running/.test(document.querySelector('#rl-status').innerText)")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"room-{width}x{height}.png"))
    assert page.evaluate(IN_VIEW, "#rl-start") == 1 and page.evaluate(IN_VIEW, "#rl-status .rl-pill") == 1
    assert page.evaluate(IN_VIEW, ".rl-chart") >= charts
    logo = page.evaluate("() => { const r = document.querySelector('.rl-logo').getBoundingClientRect(); "
                         "return [r.width, r.height]; }")
    assert logo[0] == logo[1], "the logo is not squashed"
    # the samples beside the charts on a big screen (their top in view), under them on smaller ones
    grid, panel = (page.evaluate(BOX, sel) for sel in ("#rl-charts", "#rl-view-samples"))
    if width >= 1600:
        assert panel["left"] >= grid["right"] and panel["top"] < height / 3 and panel["right"] <= width, (grid, panel)
    else:
        assert panel["top"] >= grid["bottom"] and panel["right"] <= width, (grid, panel)
    # every transport button's label on one line ("Room link" wrapped on a phone), the bar within the screen
    start, room = page.evaluate(BOX, "#rl-start"), page.evaluate(BOX, "#rl-room-btn")
    assert room["height"] == start["height"] and room["right"] <= width, (start, room)
    assert page.evaluate(BOX, "#rl-transport")["bottom"] - start["top"] < 2.5 * start["height"], "two rows at most"
    assert page.errors == []
    page.close()


def test_keys_step_and_toggle_pause(served, browser):
    """s steps (a new run starts paused after one step); space resumes, space again pauses."""
    url, manager, _, going = served
    manager.stop(going)  # free the device: a new run would queue behind it
    manager.wait(going, 60)
    page = open_page(browser, url, 1280, 720)
    page.locator("#ctl-model-policy input, #ctl-model-policy textarea").first.fill(require_model())
    for key, value in {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
                       "rollout.max_new_tokens": 4, "run.steps": 5000}.items():
        box = page.locator(f"#ctl-{key.replace('.', '-')} input")
        box.fill(str(value))
        box.press("Tab")
    page.locator("h1").click()  # focus out of the fields: keys go to the page
    page.keyboard.press("s")
    page.wait_for_function("() => /Paused/.test(document.querySelector('#rl-status').innerText)")
    page.wait_for_function("() => /at step 1 of/.test(document.querySelector('#rl-status').innerText)",
                           timeout=90_000)
    page.keyboard.press(" ")
    page.wait_for_function("() => /Running/.test(document.querySelector('#rl-status').innerText)")
    page.wait_for_function("() => document.querySelector('#rl-pause').innerText.trim() === 'Pause'")
    page.keyboard.press(" ")
    page.wait_for_function("() => /Paused/.test(document.querySelector('#rl-status').innerText)")
    run_id = manager.runs()[-1]["run_id"]
    manager.stop(run_id)
    manager.wait(run_id, 60)
    assert page.errors == []
    page.close()


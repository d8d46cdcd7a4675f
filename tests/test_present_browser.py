"""Presenter mode, the room link, the per-chart tools and the sidebar's small bugs, in a real browser (issue 13).

Headless Chromium (the system's, as in test_room_browser.py) against a served lab with one long GRPO run that
the pages open with `?run=`. Screenshots go to screenshots/ (gitignored).
"""

from pathlib import Path

import pytest
from ui_fixtures import BROWSER_MARKS, SHOTS, require_model, serve

from app.present import KEY_CHART
from labcore import config as C

pytestmark = BROWSER_MARKS

SHOWN = """() => [...document.querySelectorAll('.rl-chart')].filter(d => d.offsetHeight > 0).map(d => {
  const r = d.getBoundingClientRect();
  return {id: d.dataset.chart, top: r.top, bottom: r.bottom, left: r.left, right: r.right}; })"""
TITLE_SIZE = """(id) => parseFloat(getComputedStyle(document.querySelector(
  `.rl-chart[data-chart="${id}"] .gtitle`)).fontSize)"""
TICK_SIZE = """(id) => parseFloat(getComputedStyle(document.querySelector(
  `.rl-chart[data-chart="${id}"] .xtick text`)).fontSize)"""
VISIBLE = "(sel) => { const e = document.querySelector(sel); return !!e && e.offsetParent !== null; }"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from labcore.runner import RunManager

    model = require_model()
    manager = RunManager(tmp_path_factory.mktemp("runs"), isolation="process")
    small = {"model.policy": model, "rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
             "rollout.max_new_tokens": 4, "run.steps": 100_000}
    going = manager.submit(C.build("grpo", small), owner="someone")
    url, demo = serve(manager)
    yield url, going
    demo.close()
    manager.stop(going)
    manager.shutdown()


@pytest.fixture(scope="module")
def page(served, browser):
    """One tab at 1280x720 on the running run, in the normal view (shared by the tests: opening one is slow)."""
    url, going = served
    page = open_page(browser, f"{url}?run={going}", charts=9)
    yield page
    page.close()


def open_page(browser, url: str, width: int = 1280, height: int = 720, charts: int = 3, running: bool = True):
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.set_default_timeout(60_000)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("(n) => document.querySelectorAll('.rl-chart .main-svg').length >= n", arg=charts)
    if running:
        page.wait_for_function("() => /Running/.test(document.querySelector('#rl-status').innerText)")
        page.wait_for_function("() => document.querySelector('.rl-chart[data-chart=reward] .xtick text')")
    return page


def test_each_chart_goes_full_screen_and_downloads_a_png(page, tmp_path):
    kl = page.locator(".rl-chart[data-chart=kl]")
    kl.hover()
    kl.locator(".rl-chart-tools [data-act=full]").click()
    page.wait_for_function("""() => { const d = document.querySelector('.rl-chart[data-chart=kl]');
      const r = d.getBoundingClientRect();
      return document.fullscreenElement === d || (r.width >= innerWidth - 1 && r.height >= innerHeight - 1); }""")
    page.wait_for_function("() => document.querySelector('.rl-chart[data-chart=kl] .main-svg')"
                           ".getBoundingClientRect().height > innerHeight * 0.8")  # the plot resized to it
    page.keyboard.press("Escape")
    page.evaluate("() => document.fullscreenElement && document.exitFullscreen()")
    page.wait_for_function("() => !document.fullscreenElement")

    reward = page.locator(".rl-chart[data-chart=reward]")
    reward.hover()
    with page.expect_download() as got:
        reward.locator(".rl-chart-tools [data-act=png]").click()
    path = Path(tmp_path) / got.value.suggested_filename
    got.value.save_as(path)
    assert path.name == "rlhf-lab-reward.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.errors == []


def test_dropdowns_and_formulas_fit_and_an_imported_toml_updates_the_chips(page, tmp_path):
    """Bug 8's small ones: a long dropdown value (seq_mean_token_mean) was cut off under its caret; the
    Objective's display formulas overflowed their column with no visible cue; an imported TOML must update the
    recipe-difference chips (#rl-diff) at once (this one already did on this code: a guard, not a fix)."""
    page.get_by_text("Advanced settings").click()
    cut = """() => [...document.querySelectorAll('#rl-side input[role=combobox]')]
      .filter(i => i.clientWidth > 0 && i.scrollWidth > i.clientWidth + 1).map(i => i.getAttribute('aria-label'))"""
    page.wait_for_function(f"() => ({cut})().length === 0", timeout=20_000)
    assert page.input_value("#ctl-algorithm-aggregation input") == "seq_mean_token_mean"
    # each display formula fits its column, or (shrunk to 80 %) scrolls with a visible cue at the cut edge
    page.wait_for_function("""() => { const boxes = [...document.querySelectorAll('#rl-formula .katex-display')];
      return boxes.length > 0 && boxes.every(b => b.scrollWidth <= b.clientWidth + 1 ||
        (b.classList.contains('rl-scrolls') && getComputedStyle(b).overflowX === 'auto' &&
         getComputedStyle(b).boxShadow !== 'none')); }""", timeout=20_000)

    toml = tmp_path / "mine.toml"
    toml.write_text('[algorithm]\nrecipe = "grpo"\nclip_high = 0.31\n[optim]\nlr = 0.0042\n')
    page.get_by_text("Import and share").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Import config (.toml)").click()
    chooser.value.set_files(str(toml))
    page.wait_for_function("() => /clip_high[^]*0\\.31/.test(document.querySelector('#rl-diff').innerText) && "
                           "/0\\.0042/.test(document.querySelector('#rl-diff').innerText)",
                           timeout=20_000)  # generous: a loaded CI machine
    assert page.errors == []


def test_presenter_mode_for_the_room(served, browser, page):
    """The room link of the run shown opens it in presenter mode (?run=<id>&present=1), live. At 1280x720: no
    sidebar; reward, KL and GRPO's key chart (advantage) fill the screen, in larger type than the normal view's;
    the Present button leaves the mode and enters it again (the URL follows). At 1920x1080 the three charts
    stand side by side; on a phone (390x844) each is half the screen or more."""
    url, going = served
    page.locator("#rl-room-btn").click()
    link = page.locator("#rl-room a")
    link.wait_for()
    assert link.get_attribute("href") == f"{url}?run={going}&present=1"

    room = open_page(browser, link.get_attribute("href"))
    room.wait_for_function("() => document.querySelectorAll('.rl-chart.rl-key').length === 1")
    assert room.evaluate("() => document.body.classList.contains('rl-present')")
    assert going in room.inner_text("#rl-status")
    updates = room.evaluate("() => Number(document.querySelector('[data-rl-charts]').dataset.updates)")
    room.wait_for_function("(n) => Number(document.querySelector('[data-rl-charts]').dataset.updates) > n",
                           arg=updates)  # live: the charts keep updating
    assert not room.evaluate(VISIBLE, "#rl-side"), "the settings sidebar is hidden"
    shown = room.evaluate(SHOWN)
    assert [c["id"] for c in shown] == ["reward", "kl", KEY_CHART["grpo"]]
    for c in shown:  # all three on the first screen
        assert c["top"] >= 0 and c["bottom"] <= 720 and c["left"] >= 0 and c["right"] <= 1280, c
    area = sum((c["bottom"] - c["top"]) * (c["right"] - c["left"]) for c in shown)
    assert area > 0.6 * 1280 * 720, f"the charts fill the screen: {area / (1280 * 720):.0%} of it"
    big_title, big_tick = room.evaluate(TITLE_SIZE, "reward"), room.evaluate(TICK_SIZE, "reward")
    SHOTS.mkdir(exist_ok=True)
    room.screenshot(path=str(SHOTS / "present-1280x720.png"))

    room.locator("#rl-present-btn").click()  # leave: the normal view
    room.wait_for_function("() => !document.body.classList.contains('rl-present')")
    room.wait_for_function("(t) => parseFloat(getComputedStyle(document.querySelector("
                           "'.rl-chart[data-chart=reward] .gtitle')).fontSize) < t", arg=big_title)
    assert room.evaluate(VISIBLE, "#rl-side") and len(room.evaluate(SHOWN)) == 9
    assert "present" not in room.url
    assert room.evaluate(TICK_SIZE, "reward") < big_tick, "chart text is larger in presenter mode"
    room.locator("#rl-present-btn").click()  # and back
    room.wait_for_function("() => document.body.classList.contains('rl-present')")
    assert not room.evaluate(VISIBLE, "#rl-side") and "present=1" in room.url

    for width, height in ((1920, 1080), (390, 844)):
        room.set_viewport_size({"width": width, "height": height})
        room.wait_for_function("([w, h]) => [...document.querySelectorAll('.rl-chart.rl-key .main-svg')].some("
                               "s => s.getBoundingClientRect().height >= 0.45 * h && "
                               "s.getBoundingClientRect().right <= w)", arg=[width, height])
        room.screenshot(path=str(SHOTS / f"present-{width}x{height}.png"))
        shown = room.evaluate(SHOWN)
        assert len(shown) == 3
        for c in shown:
            assert c["bottom"] - c["top"] >= 0.45 * height and c["right"] <= width, c
        if width > 1100:
            assert len({c["top"] for c in shown}) == 1 and all(c["bottom"] <= height for c in shown)
    assert room.errors == [] and page.errors == []
    room.close()

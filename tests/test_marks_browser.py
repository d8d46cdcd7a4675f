"""Live changes are marked on the charts, in a real browser (issues 12 and 13): typing a new learning rate while a
run goes draws a dotted line labelled with the new value at the step it took effect, on every chart, and the
learning-rate line itself steps to the new value on the loss chart's right axis."""

from ui_fixtures import BROWSER_MARKS, SHOTS, lab_page, require_model

pytestmark = BROWSER_MARKS


def test_a_live_change_is_marked_and_drawn(tmp_path):
    model = require_model()
    with lab_page(tmp_path / "runs", 1920, 1080, timeout_ms=90_000) as (page, _):
        page.wait_for_function("() => document.querySelectorAll('.rl-chart .main-svg').length >= 9")
        page.locator("#ctl-model-policy input, #ctl-model-policy textarea").first.fill(model)
        for key, value in {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
                           "rollout.max_new_tokens": 4, "run.steps": 100_000}.items():
            box = page.locator(f"#ctl-{key.replace('.', '-')} input")
            box.fill(str(value))
            box.press("Tab")
        page.locator("#rl-start").click()
        page.wait_for_function("() => /Running/.test(document.querySelector('#rl-status').innerText)")
        # a few steps drawn at the old lr first: a live change reaches the trainer in well under a second, so typed
        # before the first record it would take effect at step 1 and leave no old value to step from
        page.wait_for_function("() => { const gd = document.getElementById('rl-chart-loss');"
                               " const t = gd && gd.data && gd.data.find(t => t.name === 'lr');"
                               " return !!t && t.x.length >= 3; }")
        lr = page.locator("#ctl-optim-lr input")
        lr.fill("0.0007")
        lr.press("Tab")
        marked = """() => ['reward', 'loss', 'kl'].every(id => {
            const gd = document.getElementById('rl-chart-' + id);
            return gd && gd.layout && (gd.layout.annotations || []).some(a => /lr 0.0007/.test(a.text));
        })"""
        page.wait_for_function(marked)
        # the mark sits at a step the run reached, and the lr line steps to the new value after it
        at = page.evaluate("() => document.getElementById('rl-chart-loss').layout.shapes"
                           ".find(s => s.name === 'live').x0")
        lrs = page.evaluate("() => { const t = document.getElementById('rl-chart-loss').data"
                            ".find(t => t.name === 'lr'); return [t.x, t.y]; }")
        assert lrs[1][0] != 0.0007 and 0.0007 in lrs[1], "the lr line shows the old value, then the new one"
        assert min(x for x, y in zip(*lrs) if y == 0.0007) == at, "the mark is at the first step at the new lr"
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "live-mark-1920x1080.png"))
        assert page.errors == []
        page.locator("#rl-stop").click()

"""`rlhf-lab replay`: a finished run as one HTML page that opens from disk with the network off.

One real 4-step GRPO run on the tiny model feeds every test. The browser test opens the page from file:// in
headless Chromium with every non-file request aborted, and checks what a reader does: the charts carry the
run's values, smoothing 0 shows the raw values, the x axis switches to seconds, and the step slider (moved with
the keyboard) shows an earlier step whose token values match samples.jsonl, grouped by prompt.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ui_fixtures import require_model

from app import cli
from app.replay import ReplayError, load_run, readable_formula
from app.space import front_matter

ROOT = Path(__file__).resolve().parent.parent
NAME = "a </script> run named %DATA%"  # text from the run must stay text in the page

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from labcore import cli as core_cli

    model = require_model()
    out = tmp_path_factory.mktemp("runs")
    rc = core_cli.main(["run", "grpo", "--steps", "4", "--out", str(out), "--set", "rollout.prompts_per_step=2",
                        "--set", f"model.policy={model}", "--set", "algorithm.clip_high=0.3",
                        "--set", f"run.name={NAME}"])
    assert rc == 0
    (d,) = list(out.iterdir())
    return d


@pytest.fixture(scope="module")
def page_file(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "run.html"
    assert cli.main(["replay", str(run_dir), "--out", str(out)]) == 0
    return out


def _records(run_dir: Path, name: str) -> list:
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def test_page_is_self_contained(page_file, run_dir):
    """plotly.js and the records are inside the file: no <script src>, no link to fetch, every step present."""
    text = page_file.read_text()
    assert "<script src" not in text and "<link" not in text
    assert "plotly.js v" in text  # the library's own banner, inlined
    data = json.loads(text.split('<script type="application/json" id="rl-data">')[1].split("</script>")[0])
    steps = [r["step"] for r in _records(run_dir, "metrics.jsonl")]
    assert data["columns"]["reward/mean"]["step"] == steps
    assert [s["step"] for s in data["samples"]] == [line["step"] for line in _records(run_dir, "samples.jsonl")]
    assert "algorithm.clip_high" in text  # what differs from the recipe is listed
    assert "<h1>a &lt;/script&gt; run named %DATA% (GRPO)" in text


def test_bad_folders_get_a_message(tmp_path, capsys):
    assert cli.main(["replay", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert cli.main(["replay", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and "runs/<run-id>" in err
    with pytest.raises(ReplayError, match="not a run folder"):
        load_run(tmp_path)


def test_readme_static_space_steps_work_as_written(run_dir, tmp_path):
    """The README's static-Space commands, up to the upload: a page and a README a static Space accepts."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**A finished run as a static Space.**", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    local = [line for line in block.splitlines() if not line.startswith("hf ")]  # the Hub steps need an account
    script = "\n".join(local).replace("rlhf-lab ", f"{sys.executable} -m app ").replace("runs/<run-id>", str(run_dir))
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "share" / "index.html").stat().st_size > 1_000_000
    meta = front_matter((tmp_path / "share" / "README.md").read_text())
    assert meta["sdk"] == "static" and meta["app_file"] == "index.html"


def test_the_labs_replay_button_writes_the_page(run_dir):
    """/replay (the button beside Export) on the run a tab watches: the same page as the command's."""
    from gradio_client import Client
    from ui_fixtures import running_lab

    with running_lab(run_dir.parent) as (_, url, _):
        client = Client(url, verbose=False)
        assert client.predict(api_name="/replay")["visible"] is False  # no run in this tab yet
        client.predict(run_dir.name, api_name="/watch")
        page = Path(client.predict(api_name="/replay")["value"]).read_text()
    assert f"<code>{run_dir.name}</code>" in page and "plotly.js v" in page


def test_readable_formula_keeps_the_structure():
    """Greek letters, hats, sub/superscripts and a fraction, from a hand-written LaTeX line."""
    got = readable_formula(r"\hat A_{i,t} = \frac{r_i - \operatorname{mean}(r)}{\sigma_g + \epsilon}\quad(\beta^2 > 0)")
    assert got == "A\u0302<sub>i,t</sub> = (r<sub>i</sub> - mean(r))/(σ<sub>g</sub> + ε) \u2003(β<sup>2</sup> &gt; 0)"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM}")
def test_page_works_from_disk_with_the_network_off(page_file, run_dir):
    from playwright.sync_api import sync_playwright

    metrics = _records(run_dir, "metrics.jsonl")
    logged = _records(run_dir, "samples.jsonl")
    blocked, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                       else (blocked.append(route.request.url), route.abort()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_function("document.querySelector('#rl-chart-reward .main-svg') !== null")
            reward = "(k) => document.querySelector('#rl-chart-reward').data.find(t => t.uid.endsWith('_s'))[k]"

            assert page.evaluate(reward, "x") == [r["step"] for r in metrics]
            assert page.inner_text("h1").startswith(NAME)
            page.fill("#smoothing", "0")  # no smoothing: the line is the raw values
            assert page.evaluate(reward, "y") == pytest.approx([r["reward/mean"] for r in metrics], rel=1e-5)
            page.select_option("#x-axis", "time")
            assert page.evaluate(reward, "x") == pytest.approx([r["time"] for r in metrics], rel=1e-5)

            assert page.get_attribute("#samples .rl-samples", "data-step") == str(logged[-1]["step"])
            page.focus("#step")
            page.keyboard.press("Home")  # the slider to the first logged step
            assert page.get_attribute("#samples .rl-samples", "data-step") == str(logged[0]["step"])
            token = page.locator("#samples .rl-tok").first
            assert float(token.get_attribute("data-value")) == pytest.approx(logged[0]["samples"][0]["adv"][0])
            assert token.inner_text().split("\n")[0] == str(logged[0]["samples"][0]["tokens"][0])
            # grouped by prompt as the lab groups them: the prompt once per group, each token's value under it
            first = logged[0]["samples"]
            prompts = [s["prompt"] for i, s in enumerate(first) if i == 0 or s.get("group") != first[i - 1].get("group")]
            assert page.locator("#samples .rl-group .rl-prompt").all_inner_texts() == prompts
            assert page.locator("#samples .rl-group").count() == len(prompts) < len(first)
            assert page.locator("#samples .rl-tok small").first.inner_text() == f"{first[0]['adv'][0]:+.2f}"
            page.select_option("#quantity", "logp")
            assert float(page.locator("#samples .rl-tok").first.get_attribute("data-value")) == \
                pytest.approx(logged[0]["samples"][0]["logp"][0])
        finally:
            browser.close()
    assert blocked == [], f"the page tried to reach the network: {blocked}"
    assert errors == [], errors

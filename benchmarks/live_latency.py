"""How long a live change (the learning rate typed mid-run) takes to reach the trainer, in a real browser.

Serves the lab (worker process, as `rlhf-lab` does), opens it in headless Chromium, starts a small run and
types a new learning rate several times (one `fill`, as a paste). For each edit it prints: edit -> the page sent
the live event's request, edit -> the first step record trained with it is on disk (an upper bound: it includes
that step), the server's own receipt -> applied delay
(`live/delay_s` in the record), and how many steps ran between the edit and the change.

    python benchmarks/live_latency.py [--edits 5] [--model tiny]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# The page's worst main-thread delay over 5 s (a 100 ms interval timer's lateness): what an edit may wait for.
LAG = """() => new Promise(done => { let worst = 0, last = performance.now(), n = 0;
  const id = setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last - 100);
  last = now; if (++n === 50) { clearInterval(id); done(worst); } }, 100); })"""
# When the learning-rate box got each input event, in epoch ms (as Python's time.time()): the edit as the page
# sees it, after Playwright's own wait for the box to be ready (scrolled, stable: frames a busy page delays).
INPUT_TIMES = """window.rlInputs = []; document.addEventListener('input', (e) => {
  if (e.target.closest && e.target.closest('#ctl-optim-lr')) rlInputs.push(performance.timeOrigin + performance.now());
}, true);"""
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--model", default="tiny")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright
    from ui_fixtures import free_port

    from app.main import build_demo, launch_options
    from labcore.runner import RunManager

    manager = RunManager(tempfile.mkdtemp(prefix="rlhf-lab-live-"), isolation="process")
    demo = build_demo(manager)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port, **launch_options(manager))
    rows, lags = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            page.add_init_script(INPUT_TIMES)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("() => document.querySelectorAll('.rl-chart .main-svg').length >= 9")

            def set_number(key: str, value) -> None:
                box = page.locator(f"#ctl-{key.replace('.', '-')} input")
                box.fill(str(value))
                box.press("Tab")

            lags = [f"idle page {page.evaluate(LAG):.0f} ms"]
            page.locator("#ctl-model-policy input, #ctl-model-policy textarea").first.fill(args.model)
            for key, value in {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
                               "rollout.max_new_tokens": 4, "run.steps": 5000}.items():
                set_number(key, value)
            page.wait_for_timeout(500)
            page.locator("#rl-start").click()
            page.wait_for_function("() => /Running/.test(document.querySelector('#rl-status').innerText)")
            run_id = manager.runs()[-1]["run_id"]
            page.wait_for_timeout(2000)
            lags.append(f"running {page.evaluate(LAG):.0f} ms")
            live_fn = next(i for i, f in demo.fns.items() if getattr(f.fn, "__name__", "") == "live")
            sent: list[float] = []  # when the page sent the live event's request
            page.on("request", lambda r: sent.append(time.time())
                    if f'"fn_index":{live_fn},' in (r.post_data or "").replace(" ", "") else None)
            for i in range(args.edits):
                lr = round(0.001 + 0.0001 * (i + 1), 6)
                at = len(manager.store.metrics(run_id))
                sent.clear()
                page.evaluate("() => { rlInputs.length = 0; }")
                t0 = time.time()
                box = page.locator("#ctl-optim-lr input")
                box.fill(str(lr))
                end = t0 + 30
                while time.time() < end:
                    recs = manager.store.metrics(run_id)
                    hit = next((r for r in recs[at:] if r.get("live", {}).get("lr") == lr), None)
                    if hit:
                        now = time.time()
                        typed = page.evaluate("() => rlInputs[0] || null")
                        rows.append((now - t0, hit.get("live/delay_s"), hit["step"] - recs[at - 1]["step"],
                                     hit.get("time/step_s"), sent[0] - t0 if sent else None,
                                     now - typed / 1000 if typed else None))
                        break
                    page.wait_for_timeout(10)  # (not time.sleep: Playwright delivers the request event while it waits)
                else:
                    rows.append((float("nan"), None, None, None, None, None))
                page.wait_for_timeout(1500)
            page.locator("#rl-stop").click()
            browser.close()
    finally:
        demo.close()
        manager.shutdown()
    print("| edit | fill -> request sent (s) | fill -> record on disk (s) | input event -> record on disk (s) "
          "| server receipt -> applied (s) | steps in between | step (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i, (total, delay, steps, step_s, out, typed) in enumerate(rows, 1):
        out = f"{out:.2f}" if out is not None else "-"
        typed = f"{typed:.2f}" if typed is not None else "-"
        print(f"| {i} | {out} | {total:.2f} | {typed} | {delay if delay is not None else '-'} | {steps} | "
              f"{step_s:.3f} |" if step_s else f"| {i} | {out} | {total:.2f} | {typed} | - | - | - |")
    print(f"\nworst main-thread delay in 5 s: {', '.join(lags)}")
    good = [r[0] for r in rows if r[0] == r[0]]
    if good:
        print(f"\nmedian fill -> record: {statistics.median(good):.2f} s over {len(good)} edits")
    typed = [r[5] for r in rows if r[5] is not None]
    if typed:
        print(f"median input event -> record: {statistics.median(typed):.2f} s")


if __name__ == "__main__":
    main()

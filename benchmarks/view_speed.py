"""How fast the lab's page is for a viewer, in a real browser: page weight, time to interactive, Start -> first
point on the reward chart, and the bytes each timer tick sends during a default run.

Serves the lab (worker process, as `rlhf-lab` does) and opens it in headless Chromium (the system's, as the
browser tests do), `--repeats` times, each in a fresh browser context (an empty cache, as a first visit):
- page weight: bytes transferred (headers + body, as the network sent them) for every response until the page is
  interactive;
- time to interactive: from navigation to nine charts drawn, and to a preset pick filling the controls
  (the preset's note shows DAPO's);
- Start -> first point: from the click on Start (default GRPO preset, 100 steps) to the first point drawn on the
  reward chart, measured inside the page (performance.now at the click and at the first frame that has it);
- tick bytes: the size of every timer-tick response during that run (the tab following the latest step).

    python benchmarks/view_speed.py [--repeats 3]

Say the machine's load (`uptime`) with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# Click Start, then look for the reward chart's first point at every animation frame: ms from click to drawn.
FIRST_POINT = """() => new Promise(done => {
  const t0 = performance.now();
  document.querySelector('#rl-start').click();
  const look = () => {
    const d = document.querySelector('#rl-chart-reward').data || [];
    if (d.some(t => t.x && t.x.length > 0)) done(performance.now() - t0); else requestAnimationFrame(look);
  };
  look();
})"""
CHARTS_DRAWN = "() => document.querySelectorAll('.rl-chart .main-svg').length >= 9"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright
    from ui_fixtures import ARGS, CHROMIUM, free_port

    from app.main import build_demo, launch_options
    from labcore import config as C
    from labcore.runner import RunManager

    manager = RunManager(tempfile.mkdtemp(prefix="rlhf-lab-view-"), isolation="process")
    manager.warm_up("tiny")
    demo = build_demo(manager)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port, **launch_options(manager))
    note = C.list_presets()["dapo"][:30]
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for _ in range(args.repeats):
                ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
                page = ctx.new_page()
                page.set_default_timeout(120_000)
                weight, ticks, tick_id, parts = [], [], [None], {}

                def on_response(resp, weight=weight, ticks=ticks, tick_id=tick_id, parts=parts):
                    try:
                        sizes = resp.request.sizes()
                    except Exception:  # a response without a body (a redirect)
                        return
                    size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
                    weight.append(size)
                    post = (resp.request.post_data or "").replace(" ", "")
                    if tick_id[0] is not None and f'"fn_index":{tick_id[0]},' in post:
                        ticks.append(sizes["responseBodySize"])
                        try:
                            data = resp.json()["data"]
                        except Exception:  # noqa: BLE001 - an empty answer
                            return
                        for i, d in enumerate(data):
                            parts.setdefault(i, []).append(len(json.dumps(d)))

                page.on("requestfinished", lambda req: on_response(req.response()) if req.response() else None)
                t0 = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function(CHARTS_DRAWN)
                drawn = time.perf_counter() - t0
                page.locator("#rl-side input[role=listbox], #rl-side input").first.click()
                page.get_by_role("option", name="dapo", exact=True).click()
                page.wait_for_function(f"() => document.querySelector('.rl-cite')?.innerText.startsWith({note!r})")
                picked = time.perf_counter() - t0
                page.wait_for_timeout(500)
                kib = sum(weight) / 1024
                # back to the default preset, then Start
                page.locator("#rl-side input").first.click()
                page.get_by_role("option", name="grpo", exact=True).click()
                page.wait_for_function(f"() => !document.querySelector('.rl-cite')?.innerText.startsWith({note!r})")
                page.wait_for_timeout(1500)
                tick_id[0] = page.evaluate(
                    "() => window.gradio_config.dependencies.find(d => d.api_name === 'tick').id")
                first = page.evaluate(FIRST_POINT) / 1000
                page.wait_for_function("() => /Done/.test(document.querySelector('#rl-status').innerText)",
                                       timeout=300_000)
                page.wait_for_timeout(1500)
                rows.append((kib, drawn, picked, first, list(ticks)))
                print("tick outputs (view_outputs order), median / max bytes:",
                      {i: (statistics.median(v), max(v)) for i, v in sorted(parts.items())})
                ctx.close()
            browser.close()
    finally:
        demo.close()
        manager.shutdown()
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print("| visit | page weight (KiB) | charts drawn (s) | preset pick done (s) | Start -> first point (s) "
          "| ticks | tick bytes: median / p90 / max (KiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i, (kib, drawn, picked, first, ticks) in enumerate(rows, 1):
        med = statistics.median(ticks) / 1024 if ticks else float("nan")
        p90 = statistics.quantiles(ticks, n=10, method="inclusive")[-1] / 1024 if len(ticks) > 1 else float("nan")
        top = max(ticks) / 1024 if ticks else float("nan")
        print(f"| {i} | {kib:.0f} | {drawn:.2f} | {picked:.2f} | {first:.2f} | {len(ticks)} | "
              f"{med:.1f} / {p90:.1f} / {top:.1f} |")
        print("   each tick (KiB):", " ".join(f"{t / 1024:.1f}" for t in ticks))


if __name__ == "__main__":
    main()

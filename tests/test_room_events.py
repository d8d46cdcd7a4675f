"""Events of the lab that must not wait for one another (issue 13), read from the built demo (no browser).

- Importing a TOML config updates the recipe-difference chips at once (bug 8): in the upload's own event, not only
  in the `derived` refresh chained after it (a second round trip, late on a busy server).
- A live change (lr, beta, temperature) reaches the trainer within 1 s of the edit (bug 7): Gradio's page runs an
  input's events one after another and awaits each to its end, so the live event must come before the queued
  `derived` refresh on the same inputs (after it, it waited 1-2 s for that refresh on a busy server).
"""

from app import settings
from app.main import build_demo
from labcore.runner import RunManager


def test_the_import_event_itself_sends_the_chips(tmp_path):
    demo = build_demo(RunManager(tmp_path / "runs"))
    event = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "import_toml")
    diff = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "rl-diff")
    assert diff in event.outputs, "the import event updates the chips"
    toml = tmp_path / "mine.toml"
    toml.write_text('[algorithm]\nrecipe = "grpo"\nclip_high = 0.31\n[optim]\nlr = 0.0042\n')
    out = event.fn(str(toml), None)
    assert "rl-chip" in out[diff] and "clip_high" in out[diff] and "0.0042" in out[diff], out[diff]
    bad = tmp_path / "bad.toml"
    bad.write_text("[algorithm]\nrecipe = 3\n")
    assert diff not in event.fn(str(bad), None), "a file that cannot be used leaves the chips as they were"


def test_a_live_change_is_sent_before_the_queued_refresh(tmp_path):
    demo = build_demo(RunManager(tmp_path / "runs"))
    deps = demo.config["dependencies"]
    ids = {f"ctl-{k.replace('.', '-')}" for k in settings.LIVE}
    hot = [b._id for b in demo.blocks.values() if getattr(b, "elem_id", None) in ids]
    names = {i: getattr(f.fn, "__name__", "") for i, f in demo.fns.items()}
    assert len(hot) == len(settings.LIVE) == 3
    for target in hot:
        on_input = [names[d["id"]] for d in deps if [target, "input"] in [list(t) for t in d["targets"]]]
        assert "live" in on_input and "derived" in on_input, on_input
        assert on_input.index("live") < on_input.index("derived"), on_input


def test_the_served_lab_gzips_its_json(tmp_path):
    """A tick is a plain JSON POST (`queue=False`): gzip shrinks it several times over a room's Wi-Fi
    (benchmarks/README.md, tick bytes); the served lab compresses JSON for a browser that accepts it."""
    import urllib.request

    from ui_fixtures import serve

    url, demo = serve(RunManager(tmp_path / "runs"))
    try:
        ask = urllib.request.Request(url + "config", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(ask, timeout=30) as resp:
            assert resp.headers.get("Content-Encoding") == "gzip"
    finally:
        demo.close()

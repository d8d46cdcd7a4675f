"""Importing a TOML config updates the recipe-difference chips at once (issue 13, bug 8): in the upload's own
event, not only in the `derived` refresh chained after it (a second round trip, late on a busy server)."""

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

"""The app's Export-to-a-library button: the shown run's recipe as a zipped TRL / verl / OpenRLHF directory."""

from __future__ import annotations

import zipfile

from app.library_export import export_run
from labcore.config import build
from labcore.runstore import RunStore


def test_export_run_zips_the_directory_and_shows_the_fidelity_table(tmp_path):
    store = RunStore(tmp_path / "runs")
    run_id = store.create(build("grpo"), owner="me")
    text, path = export_run(store, run_id, "trl")
    assert text.startswith("# Fidelity of") and "| `algorithm.clip_low` |" in text
    names = zipfile.ZipFile(path).namelist()
    assert {"train.py", "rewards.py", "lab_rewards.py", "FIDELITY.md", "data/train.jsonl"} <= set(names)


def test_a_refused_recipe_says_why_and_gives_no_file(tmp_path):
    store = RunStore(tmp_path / "runs")
    run_id = store.create(build("trpo"), owner="me")
    text, path = export_run(store, run_id, "verl")
    assert path is None and "does not go to verl" in text and "`algorithm.update`" in text
    assert export_run(store, None, "trl") == ("Start or watch a run first: the export takes the shown run's "
                                              "settings.", None)

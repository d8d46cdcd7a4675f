"""The app's "Export to a library" control: the shown run's recipe -> a TRL / verl / OpenRLHF directory, zipped.

`main.py` calls `add_export_panel(store, run_state)` in its Runs accordion. The work is `labcore.export`'s (the
same as `rlhf-lab export RUN --to TARGET`); this module only shows its fidelity table and hands the directory back
as a zip. Left out: exporting the settings panel's unsaved edits (start a run, or use the CLI with a TOML).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gradio as gr

TARGET_CHOICES = [("TRL", "trl"), ("verl", "verl"), ("OpenRLHF", "openrlhf")]


def export_run(store, run_id: str | None, target: str) -> tuple[str, str | None]:
    """(Markdown to show, path of the zip or None) for exporting run `run_id` of `store` to `target`."""
    if not run_id:
        return "Start or watch a run first: the export takes the shown run's settings.", None
    from labcore.export import ExportError, export

    out = Path(tempfile.gettempdir()) / "rlhf-lab-library-exports" / f"{run_id}-{target}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        report = export(store.config(run_id), target, out)
    except (ExportError, ValueError) as e:
        return f"**Not exported:** {e}", None
    if not report.ok:
        reasons = "\n".join(f"- `{r.setting}`: {r.note}" for r in report.blocking)
        return f"**This recipe does not go to {target}** (`rlhf-lab export` exits 2):\n\n{reasons}", None
    archive = shutil.make_archive(str(out), "zip", out)
    return (out / "FIDELITY.md").read_text(), archive


def add_export_panel(store, run_state: gr.State) -> None:
    """A target dropdown, a button, the zip and the fidelity table, wired to the run in `run_state`."""
    with gr.Row():
        target = gr.Dropdown(choices=TARGET_CHOICES, value="trl", label="Export the recipe to a library", scale=2,
                             info="A directory that runs there as written, with its fidelity table.")
        button = gr.Button("Export recipe", size="sm", scale=1)
    archive = gr.File(label="Recipe for the library (.zip)", visible=False)
    table = gr.Markdown("")

    def click(run_id: str | None, target_name: str):
        text, path = export_run(store, run_id, target_name)
        return text, gr.File(value=path, visible=bool(path))

    button.click(click, [run_state, target], [table, archive], api_visibility="private", show_progress="minimal")

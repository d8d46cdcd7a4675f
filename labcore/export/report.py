"""The result of an export: the verdict, the fidelity rows, the files; and the directory's first and last steps."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from labcore.export import fidelity


@dataclass
class Report:
    target: str
    source: str  # what was exported (preset name, file or run folder)
    recipe: str
    verdict: str  # exact, approximate or not exportable
    rows: list[fidelity.Row]
    out_dir: Path | None = None  # None when refused
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict != fidelity.BLOCKED

    @property
    def blocking(self) -> list[fidelity.Row]:
        return [r for r in self.rows if r.status == fidelity.BLOCKED]

    def table(self) -> str:
        head = f"{self.source} -> {self.target}: {self.verdict}"
        if not self.ok:
            by_note: dict[str, list[str]] = {}
            for r in self.blocking:
                by_note.setdefault(r.note, []).append(r.setting)
            head += ". Not exported:\n" + "\n".join(f"  - {', '.join(s)}: {n}" for n, s in by_note.items())
        return head + "\n" + fidelity.text(self.rows)


def begin(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)  # an earlier export (checked above): replace it whole
    (out / "data").mkdir(parents=True)


def finish(report: Report, out: Path, intro: str) -> Report:
    title = f"Fidelity of '{report.source}' ({report.recipe}) exported to {report.target}: {report.verdict}"
    (out / "FIDELITY.md").write_text(fidelity.markdown(report.rows, title, intro))
    report.out_dir, report.files = out, sorted(["FIDELITY.md", *report.files])
    return report


def judged(target: str, cfg, label: str, mapped: dict) -> tuple[Report, list[str], list[float]]:
    """The report of a planned export (every setting's row, then the verdict), and the task's reward functions
    and weights to write. A task whose rewards cannot travel blocks the export on its `rollout.task` row."""
    from labcore.export import world
    from labcore.export.fidelity import BLOCKED, Row

    funcs, weights = [], []
    if not any(r.status == BLOCKED for r in mapped.values()):
        try:
            funcs, weights = world.reward_spec(cfg)
        except world.ExportError as e:
            mapped["rollout.task"] = Row("rollout.task", cfg.rollout.task, "", BLOCKED, str(e))
    rows = fidelity.base_rows(cfg, mapped)
    return Report(target, label, cfg.algorithm.recipe, fidelity.verdict(rows), rows), funcs, weights

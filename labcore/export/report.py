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

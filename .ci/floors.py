"""The floor lane's pins: pyproject.toml's declared floors (`name>=version`, one place, each with its reason as a
comment on its line), turned into `name==version` for pip.

    python3 .ci/floors.py        # prints the pins, space-separated

torch is the exception: only torch 2.13.0's CPU build can be installed here (PyPI's Linux torch wheels are CUDA
builds of gigabytes), so the lane keeps the torch CI installed and tests every other floor against it. Floors of
the UI's packages (gradio, plotly) and of small utilities are not installed: the lane runs labcore's tests.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Declared dependencies the lane leaves at what CI installed, and why.
KEPT = {
    "torch": "only the 2.13.0 CPU build is installable here",
    "gradio": "the lane runs labcore's tests, not the UI's",
    "plotly": "the lane runs labcore's tests, not the UI's",
    "starlette": "the lane runs labcore's tests, not the UI's (gradio 6.0 itself asks for starlette >= 0.40)",
    "tqdm": "a progress bar",
    "tomli": "Python < 3.11 only",
}
_DEP = re.compile(r'^\s*"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)[^"]*",?\s*(#\s*(.*))?$')


def declared(pyproject_text: str) -> dict[str, tuple[str, str]]:
    """{name: (floor, reason)} of the [project] dependencies; reason is the line's comment ('' when none).
    A dependency without a `>=` floor maps to ('', reason)."""
    body = pyproject_text.split("dependencies = [", 1)[1].split("]", 1)[0]
    out = {}
    for line in body.splitlines():
        if not line.strip().startswith('"'):
            continue
        m = _DEP.match(line)
        if m:
            out[m.group(1).lower()] = (m.group(2), (m.group(4) or "").strip())
        else:
            name = re.match(r'\s*"([A-Za-z0-9_.-]+)', line).group(1).lower()
            out[name] = ("", line.split("#", 1)[1].strip() if "#" in line else "")
    return out


def pins(pyproject_text: str) -> list[str]:
    """`name==floor` for every declared floor the lane installs (all but KEPT)."""
    return [f"{name}=={floor}" for name, (floor, _) in declared(pyproject_text).items() if name not in KEPT]


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print(" ".join(pins((root / "pyproject.toml").read_text())))
    sys.exit(0)

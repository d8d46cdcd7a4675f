"""Hugging Face Spaces: what ZeroGPU supports, checks of this repository's Space files, and the GPU decorator.

Since 2026, free accounts can host Gradio Spaces only on ZeroGPU (and static Spaces, see `app/replay.py`).
ZeroGPU runs a GPU function in a forked child for the length of one `@spaces.GPU(duration=...)` call made from a
visitor's request, and charges it to that visitor's daily quota; it supports only some Python and torch versions.
`ZEROGPU` holds those facts in one place; `space_problems` checks the README front matter and requirements.txt
against them (tests/test_space.py runs it). `gpu` applies `spaces.GPU` where the `spaces` package exists (it is
importable only on Spaces) and leaves the function as it is elsewhere.

Source: huggingface/hub-docs docs/hub/spaces-zerogpu.md at 242f4a1e (2026-08-22): "Gradio 4+", "PyTorch 2.8.0,
2.9.1, 2.10.0, 2.11.0", "Python 3.10.13 or 3.12.12", default duration 60 s, quotas per visitor and day; and the
PyPI `spaces` 0.51.3 source (zero/wrappers.py forks, zero/client.py schedules with the request's X-IP-Token).
Left out: YAML beyond `key: value` lines (the front matter uses nothing else), and any call to the Hub.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ZeroGPU:
    python: tuple[str, ...]          # python_version values the front matter may name
    torch: tuple[str, ...]           # torch versions requirements.txt may pin
    gradio_major_min: int            # sdk_version must be at least this major version
    default_duration_s: int          # `@spaces.GPU` without a duration
    quota_s: dict[str, int]          # GPU seconds per visitor and day, by account tier
    source: str


ZEROGPU = ZeroGPU(
    python=("3.10", "3.12"),
    torch=("2.8.0", "2.9.1", "2.10.0", "2.11.0"),
    gradio_major_min=4,
    default_duration_s=60,
    quota_s={"unauthenticated": 120, "free": 300, "pro": 2400, "team": 2400, "enterprise": 3600},
    source="huggingface/hub-docs docs/hub/spaces-zerogpu.md @242f4a1e (2026-08-22)",
)
GRADIO_MAJOR = 6  # what the app is written for (pyproject: gradio>=6.0,<7)


def front_matter(readme: str) -> dict[str, str]:
    """The `key: value` lines between the leading `---` lines of a README, values unquoted."""
    lines = readme.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    out: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            return out
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "\t", "#")):
            out[key.strip()] = value.strip().strip("'\"")
    return {}  # no closing ---: not front matter


def requirement_pins(text: str) -> dict[str, str]:
    """{name: specifier} of a requirements.txt (comments and blank lines dropped; names lower-cased)."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", line)
            if m:
                out[m.group(1).lower().replace("_", "-")] = m.group(2).strip()
    return out


def space_problems(root: str | Path = ROOT) -> list[str]:
    """What in README.md / requirements.txt / the app file would stop the repository from running on ZeroGPU."""
    root = Path(root)
    problems = []
    readme = root / "README.md"
    meta = front_matter(readme.read_text(encoding="utf-8")) if readme.is_file() else {}
    if not meta:
        return [f"{readme} has no front matter (a block of key: value lines between two --- lines at the top)"]
    if meta.get("sdk") != "gradio":
        problems.append(f"README front matter: sdk is {meta.get('sdk')!r}; ZeroGPU runs only sdk: gradio")
    py = meta.get("python_version", "3.10")  # the Hub's default
    if ".".join(py.split(".")[:2]) not in ZEROGPU.python:
        problems.append(f"README front matter: python_version {py!r} is not one ZeroGPU runs "
                        f"({' or '.join(ZEROGPU.python)}); set python_version: \"3.12\"")
    sdk = meta.get("sdk_version", "")
    major = int(sdk.split(".")[0]) if re.fullmatch(r"\d+(\.\d+)*", sdk) else None
    if major is None:
        problems.append(f"README front matter: sdk_version {sdk!r} is not a version; pin the tested Gradio, "
                        f"e.g. {GRADIO_MAJOR}.0.0")
    elif major != GRADIO_MAJOR or major < ZEROGPU.gradio_major_min:
        problems.append(f"README front matter: sdk_version {sdk} is not Gradio {GRADIO_MAJOR}.x, which the app "
                        "is written for")
    app_file = meta.get("app_file", "app.py")
    if not (root / app_file).is_file():
        problems.append(f"README front matter: app_file {app_file} does not exist in {root}")
    req = root / "requirements.txt"
    pins = requirement_pins(req.read_text(encoding="utf-8")) if req.is_file() else {}
    torch = pins.get("torch")
    if torch is None:
        problems.append(f"{req} does not name torch; pin one ZeroGPU supports, e.g. torch=={ZEROGPU.torch[-1]}")
    elif not (torch.startswith("==") and torch[2:].strip() in ZEROGPU.torch):
        problems.append(f"requirements.txt: torch{torch} is not pinned to a version ZeroGPU supports "
                        f"({', '.join(ZEROGPU.torch)}); write torch=={ZEROGPU.torch[-1]}")
    if "gradio" in pins:
        problems.append("requirements.txt names gradio: the Space installs it from sdk_version; remove the line")
    return problems


def gpu(duration: int | Callable[..., int]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`spaces.GPU(duration=duration)` where the `spaces` package is importable, else a no-op decorator.

    `duration` (seconds) may be a callable of the decorated function's arguments, as `spaces.GPU` allows.
    """
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def on_zerogpu() -> bool:
    """Whether this process runs on a ZeroGPU Space (the `spaces` package sets SPACES_ZERO_GPU there)."""
    return bool(os.environ.get("SPACES_ZERO_GPU"))


# ------------------------------------------------------------------------------------------------ GPU chunks

MAX_CHUNK_S = 120          # never book more: an unauthenticated visitor's whole day (a longer call is refused)
LOAD_S = 20                # building the Trainer inside the call (model to the GPU, LoRA, optimiser)
FIRST_STEP_GUESS_S = 3.0   # seconds per step before a chunk has measured it


def seconds_per_step(state: dict[str, Any] | None) -> float:
    """Measured by the chunks so far (the state's clock over its steps), else a first guess."""
    if state and state.get("step"):
        return max(0.05, state["elapsed_s"] / state["step"])
    return FIRST_STEP_GUESS_S


def chunk_seconds(cfg: Any, state: dict[str, Any] | None, steps: int) -> int:
    """The GPU time to book for a chunk of `steps` steps: loading, the steps with a 25 % margin, capped.

    ZeroGPU calls this with the decorated function's arguments (`spaces.GPU(duration=callable)`).
    """
    return int(min(MAX_CHUNK_S, math.ceil(LOAD_S + 1.25 * seconds_per_step(state) * steps)))


def steps_that_fit(state: dict[str, Any] | None, seconds: int = ZEROGPU.default_duration_s) -> int:
    """How many steps one chunk of `seconds` holds, at the measured (or guessed) step time; at least 1."""
    return max(1, int((seconds - LOAD_S) / (1.25 * seconds_per_step(state))))


def chunk_note(state: dict[str, Any] | None, steps: int, used_s: float, tier: str = "unauthenticated") -> str:
    """What the UI says beside Continue: what the next chunk books and what is left of the visitor's day."""
    quota = ZEROGPU.quota_s[tier]
    left = max(0.0, quota - used_s)
    cost = chunk_seconds(None, state, steps)
    verdict = "" if cost <= left else " That is more than is left: sign in, or wait for tomorrow's quota."
    return (f"A chunk of {steps} steps books {cost} s of GPU time (about {seconds_per_step(state):.1f} s a step "
            f"plus {LOAD_S} s to load). Left today: {left:.0f} of {quota} s ({tier} visitors get {quota // 60} min "
            f"a day).{verdict}")


def chunk_runner() -> Callable[..., Any]:
    """`labcore.chunks.run_chunk` as a GPU call on ZeroGPU (sized by `chunk_seconds`), as it is elsewhere.

    Call it at import time (space_app.py does): ZeroGPU registers GPU functions when the app starts.
    """
    from labcore.chunks import run_chunk

    return gpu(chunk_seconds)(run_chunk)

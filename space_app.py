"""Hugging Face Spaces entry point: `python space_app.py` from the repository root serves the lab.

On a Space it listens on 0.0.0.0 and the port the Space gives (env PORT / GRADIO_SERVER_PORT), in shared mode
(RLHF_LAB_SHARED=1 is the default here: capped runs, each visitor sees their own and published runs).
On a ZeroGPU Space, `spaces` must be imported before torch initialises CUDA; it exists only on Spaces, so
elsewhere (a laptop, CI) the import is skipped and the lab runs as it does with `rlhf-lab --shared`.
"""

try:
    import spaces  # noqa: F401  (first: it patches torch on ZeroGPU)
except ImportError:
    spaces = None

import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app.cli import _tick_budget  # noqa: E402
from app.main import launch  # noqa: E402

if __name__ == "__main__":
    os.environ.setdefault("RLHF_LAB_SHARED", "1")
    launch(runs_dir=os.environ.get("RLHF_LAB_RUNS", "runs"),
           host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
           port=int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860),
           shared=os.environ.get("RLHF_LAB_SHARED", "1").lower() in ("1", "true", "yes", "on"),
           tick_budget=_tick_budget(os.environ.get("RLHF_LAB_TICK_BUDGET", "12")))

"""Hugging Face Spaces entry point: `python space_app.py` from the repository root serves the lab.

On a Space it listens on 0.0.0.0 and the port the Space gives (env PORT / GRADIO_SERVER_PORT), in shared mode
(RLHF_LAB_SHARED=1 is the default here: capped runs, each visitor sees their own and published runs).
On a ZeroGPU Space, `spaces` must be imported before torch initialises CUDA; it exists only on Spaces, so
elsewhere (a laptop, CI) the import is skipped and the lab runs as it does with `rlhf-lab --shared`.

On ZeroGPU (or with RLHF_LAB_GPU_CHUNKS=1) a panel below the lab trains RLHF_LAB_GPU_MODEL (default: the
built-in tiny model) one GPU chunk per click (`app/gpu_panel.py`). Its GPU function is made here, at import:
ZeroGPU registers GPU functions when the app starts.
"""

try:
    import spaces  # noqa: F401  (first: it patches torch on ZeroGPU)
except ImportError:
    spaces = None

import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import space  # noqa: E402
from app.cli import _tick_budget  # noqa: E402

GPU_CHUNKS = space.on_zerogpu() or os.environ.get("RLHF_LAB_GPU_CHUNKS", "").lower() in ("1", "true", "yes", "on")
GPU_MODEL = os.environ.get("RLHF_LAB_GPU_MODEL", "tiny")
TRAIN_CHUNK = space.chunk_runner() if GPU_CHUNKS else None
if space.on_zerogpu():  # ZeroGPU's advice: load the model at start-up; each forked GPU call finds it cached
    from labcore.model import load_policy

    load_policy(GPU_MODEL)


def build(runs_dir: str, shared: bool, tick_budget: float, gpu_model: str | None):
    """The lab's Blocks and its RunManager, with the GPU panel below when `gpu_model` is given."""
    from app.main import build_demo
    from labcore.runner import RunManager, SharedLimits

    limits = SharedLimits() if shared else None
    manager = RunManager(runs_dir, limits=limits, isolation="process")
    manager.warm_up("tiny")
    demo = build_demo(manager, shared=shared, tick_budget=tick_budget)
    if gpu_model:
        from app.gpu_chunks import ChunkedRuns
        from app.gpu_panel import add_gpu_panel

        with demo:  # appended below the lab; app/main.py stays as it is
            add_gpu_panel(ChunkedRuns(manager.store, TRAIN_CHUNK or space.chunk_runner(), gpu_model, limits))
    return demo, manager


if __name__ == "__main__":
    from app.main import launch, launch_options

    os.environ.setdefault("RLHF_LAB_SHARED", "1")
    runs = os.environ.get("RLHF_LAB_RUNS", "runs")
    host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860)
    shared = os.environ.get("RLHF_LAB_SHARED", "1").lower() in ("1", "true", "yes", "on")
    budget = _tick_budget(os.environ.get("RLHF_LAB_TICK_BUDGET", "12"))
    if GPU_CHUNKS:
        demo, manager = build(runs, shared, budget, GPU_MODEL)
        demo.launch(server_name=host, server_port=port, **launch_options(manager))
    else:
        launch(runs_dir=runs, host=host, port=port, shared=shared, tick_budget=budget)

"""labcore: the training core of rlhf-lab (config, math, tiny world, rollout, trainer, runner, run store).

It never imports gradio: the UI meets the core only in `labcore.config.Config` and in step records.
"""

__version__ = "0.1.0"

"""Runs that last: periodic checkpoints, resuming a run, and starting from a saved adapter.

A checkpoint is two things in the run folder: `adapter/` (the LoRA weights, peft's `save_pretrained`, loadable by
any peft user) and `trainer_state.pt` (what else the next step depends on: the optimiser's moments, the step
count, the prompt and sampling random streams, the KL controller, the moving-average baseline, the critic, and the
position in a dataset's shuffled epoch). The runner writes one every `run.save_every` steps and at the end (done,
stopped or failed: failed steps never reach the optimiser, so it holds the last good weights).

- `run.resume = "runs/<id>"`: a new run continues that one from its checkpoint; its step numbers go on from there
  and it stops at `run.steps` in all. With the same settings it takes exactly the steps the first run would have
  taken (tests/test_checkpoint.py).
- `model.adapter = "path/to/adapter"`: a new run starts from saved LoRA weights (a fresh optimiser, step 0); the
  reference policy stays the base model, so the KL counts from the base, not from the adapter.
Left out: keeping several checkpoints (each save replaces the last), and resuming into another model or LoRA shape
(refused with the settings to use).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from labcore.chunks import restore_state, trainer_state
from labcore.config import Config, ConfigError

STATE = "trainer_state.pt"
ADAPTER = "adapter"


def save(trainer, folder: str | os.PathLike) -> None:
    """Write the adapter and the trainer's state to `folder` (each file replaced whole, never half written)."""
    folder = Path(folder)
    trainer.model.save_pretrained(str(folder / ADAPTER))
    # One description of "what the next step depends on" for checkpoints and GPU chunks alike (labcore.chunks).
    state = {**trainer_state(trainer), "prompt_order": list(getattr(trainer.task.make_prompts, "_order", None) or [])}
    tmp = folder / (STATE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / STATE)


def problems(cfg: Config) -> list[str]:
    """What is wrong with `run.resume` and `model.adapter`, without loading anything heavy."""
    found = []
    if cfg.run.resume:
        run = Path(cfg.run.resume).expanduser()
        if not (run / STATE).is_file() or not (run / ADAPTER).is_dir():
            found.append(f"run.resume = {cfg.run.resume!r}: no checkpoint there (it needs {STATE} and {ADAPTER}/); "
                         "give the folder of a run that saved one (every run does at its end, and every "
                         "run.save_every steps).")
        if cfg.kl.reset_every:
            found.append("run.resume with kl.reset_every: the reference resets merge the adapter into the frozen "
                         "weights, which a checkpoint does not hold; set kl.reset_every = 0 to resume.")
        if cfg.model.adapter:
            found.append("run.resume and model.adapter are both set; a resumed run takes its adapter from its "
                         "checkpoint: clear model.adapter.")
    if cfg.model.adapter:
        adapter = Path(cfg.model.adapter).expanduser()
        if not (adapter / "adapter_config.json").is_file():
            found.append(f"model.adapter = {cfg.model.adapter!r}: no adapter_config.json there; give a folder "
                         "written by peft's save_pretrained (a run folder's adapter/).")
    return found


def restore(trainer, cfg: Config) -> None:
    """Apply `model.adapter` (weights) or `run.resume` (weights and trainer state) to a new trainer."""
    if cfg.run.resume:
        run = Path(cfg.run.resume).expanduser()
        load_adapter(trainer, run / ADAPTER)  # checks the LoRA shape and says which settings to use
        state = torch.load(run / STATE, weights_only=False, map_location="cpu")
        try:
            restore_state(trainer, state)
        except ValueError as e:
            raise ConfigError([f"run.resume = {cfg.run.resume!r}: {e}"]) from None
        if state["prompt_order"] and hasattr(trainer.task.make_prompts, "_order"):
            trainer.task.make_prompts._order = list(state["prompt_order"])
    elif cfg.model.adapter:
        load_adapter(trainer, Path(cfg.model.adapter).expanduser())


def load_adapter(trainer, folder: Path) -> None:
    """Copy saved LoRA weights into the trainer's adapter, in place (the fast path reads the same tensors).
    Raises ConfigError when the saved adapter's rank or target modules differ from this run's."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved = json.loads((folder / "adapter_config.json").read_text())
    mine = trainer.model.peft_config["default"]
    want = (int(saved.get("r", 0)), sorted(saved.get("target_modules") or []))
    have = (int(mine.r), sorted(mine.target_modules or []))
    if want != have:
        raise ConfigError([f"the adapter in {folder} has rank {want[0]} on {', '.join(want[1])}, this run's has rank "
                           f"{have[0]} on {', '.join(have[1])}; set model.lora_rank={want[0]} and "
                           f"model.lora_targets={','.join(want[1])}."])
    weights = load_file(str(folder / "adapter_model.safetensors"), device=str(trainer.device))
    result = set_peft_model_state_dict(trainer.model, weights)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise ConfigError([f"the adapter in {folder} lacks {len(missing)} LoRA tensors of this model (e.g. "
                           f"{missing[0]}); was it saved from another base model? Use that model.policy."])

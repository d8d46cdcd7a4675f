"""A run in chunks: hand a Trainer's whole state from one chunk of steps to the next.

On a ZeroGPU Space the GPU exists only inside one `@spaces.GPU` call, made from a visitor's click, in a forked
child whose arguments and results are pickled (see `app/space.py`). So a real model trains there in chunks of N
steps: each chunk builds a Trainer, restores the state the last chunk handed back, runs its steps, and hands its
state back. `trainer_state` / `restore_state` make that exact: a run of 3 + 3 steps gives the same records as one
run of 6 (tests/test_chunks.py), timing aside.

The state is plain CPU tensors and Python values (picklable, small: the LoRA weights, not the base model):
the trainable (LoRA) weights, AdamW's moments and step counts, the critic, the step count, the KL controller's
coefficient, the moving-average reward baseline, the live knobs, and every random generator a step reads
(the prompt sampler, the sampling generator, Python's and torch's global generators, CUDA's where present).
Left out: the reference model (it is the base model with the adapters off, rebuilt with the Trainer) and
learning-rate schedules (the trainer has none).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import torch

from labcore.config import Config
from labcore.trainer import Trainer

STATE_VERSION = 1


def _cpu(x: Any) -> Any:
    """A copy of a (nested) state dict with every tensor detached on the CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, dict):
        return {k: _cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cpu(v) for v in x)
    return x


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """Everything the next step of `trainer` depends on besides its config and base model, as CPU values."""
    return {
        "version": STATE_VERSION,
        "weights": {n: p.detach().to("cpu", copy=True) for n, p in trainer.model.named_parameters()
                    if p.requires_grad},
        "optimizer": _cpu(trainer.opt.state_dict()),
        "critic": _cpu(trainer.critic.state_dict()) if trainer.critic is not None else None,
        "step": trainer.step_count,
        "elapsed_s": time.perf_counter() - trainer.t_start,
        "kl_coef": float(trainer.kl_ctl.value),
        "kl_applied": trainer._kl_applied,
        "ema_reward": trainer.ema_reward,
        "live": {"lr": trainer.live.lr, "kl_coef": trainer.live.kl_coef, "temperature": trainer.live.temperature},
        "rng": {
            "prompts": trainer.rng.getstate(),
            "sampling": trainer.gen.get_state(),
            "shuffles": trainer.cpu_gen.get_state(),
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
    }


def restore_state(trainer: Trainer, state: dict[str, Any]) -> None:
    """Put `state` (from `trainer_state`) into a freshly built Trainer of the same config, in place.

    Raises ValueError naming the mismatch when the state belongs to another model, LoRA shape or recipe.
    """
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"chunk state version {state.get('version')!r}, expected {STATE_VERSION}: it was written "
                         "by another version of rlhf-lab; start the run again")
    params = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    weights = state["weights"]
    if set(weights) != set(params):
        missing, extra = sorted(set(params) - set(weights)), sorted(set(weights) - set(params))
        raise ValueError(f"the chunk state's weights do not match this model's trainable parameters (missing "
                         f"{missing[:3]}, unexpected {extra[:3]}): continue a run with the config it started with")
    for name, p in params.items():
        if weights[name].shape != p.shape:
            raise ValueError(f"the chunk state's {name} has shape {tuple(weights[name].shape)}, this model's "
                             f"{tuple(p.shape)}: continue a run with the LoRA rank it started with")
    if (state["critic"] is None) != (trainer.critic is None):
        raise ValueError("the chunk state and this config disagree on a critic (a value baseline): continue a run "
                         "with the recipe it started with")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name])  # in place: the optimizer and the fast forward hold these very tensors
    if trainer.critic is not None:
        trainer.critic.load_state_dict(state["critic"])
    trainer.opt.load_state_dict(state["optimizer"])
    trainer.step_count = state["step"]
    trainer.t_start = time.perf_counter() - state["elapsed_s"]
    trainer.kl_ctl.value = state["kl_coef"]
    trainer._kl_applied = state["kl_applied"]
    trainer.ema_reward = state["ema_reward"]
    trainer.live.lr, trainer.live.kl_coef, trainer.live.temperature = (
        state["live"]["lr"], state["live"]["kl_coef"], state["live"]["temperature"])
    rng = state["rng"]
    trainer.rng.setstate(rng["prompts"])
    trainer.gen.set_state(rng["sampling"])
    trainer.cpu_gen.set_state(rng["shuffles"])
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def run_chunk(cfg: Config, state: dict[str, Any] | None, steps: int) -> Iterator[tuple[str, Any]]:
    """Run `steps` steps of the run `cfg` describes, continuing from `state` (None: its first chunk).

    Yields ("record", (metrics, samples)) after every step, then ("state", the state for the next chunk).
    A generator, so a `@spaces.GPU` wrapper streams the records to the browser as they come.
    """
    if cfg.kl.reset_every:
        raise ValueError("kl.reset_every merges the adapter into the frozen weights, which a chunk does not hand "
                         "back; set kl.reset_every = 0 for a run trained in chunks")
    trainer = Trainer(cfg)
    if state is not None:
        restore_state(trainer, state)
    for _ in range(min(steps, cfg.run.steps - trainer.step_count)):
        result = trainer.train_step()
        yield "record", (result.metrics, result.samples)
    yield "state", trainer_state(trainer)

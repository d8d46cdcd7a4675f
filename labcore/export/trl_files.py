"""The files of a TRL export: train.py, rewards.py, README.md, an accelerate + DeepSpeed ZeRO-2 config.

train.py imports only TRL, peft, transformers, datasets and the directory's own rewards.py / lab_rewards.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAIN_PY = '''"""{title} exported from rlhf-lab to TRL {trainer} (recipe '{recipe}').

    python train.py [--max_steps N] [--model PATH_OR_ID] [--output_dir DIR] [--bf16]
    accelerate launch --config_file accelerate_zero2.yaml train.py      # several GPUs, see README.md

Every TRL key is written out below, because TRL's defaults are not the lab's (loss_type="dapo", beta=0.0,
bf16=True, learning_rate=1e-6, gradient checkpointing on). FIDELITY.md says what carried over exactly.
One lab step is {per_step} TRL optimiser step(s) (epochs x minibatches); --max_steps counts TRL's.
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import rewards  # noqa: E402
from datasets import load_dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from trl import {config_cls}, {trainer}  # noqa: E402

CONFIG = {config}

LORA = {lora}

MODEL = {model!r}  # relative paths are inside this directory
DATA = "data/train.jsonl"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max_steps", type=int, default=CONFIG["max_steps"], help="TRL optimiser steps")
    p.add_argument("--model", default=MODEL, help="policy directory or hub id (default: the exported one)")
    p.add_argument("--output_dir", default=str(HERE / "output"))
    p.add_argument("--seed", type=int, default=CONFIG["seed"])
    p.add_argument("--bf16", action="store_true", help="train in bfloat16 (GPUs that have it; the lab uses float32)")
    args = p.parse_args(argv)
    model = str(HERE / args.model) if (HERE / args.model).is_dir() else args.model
    # Keep the lab's P x K samples per step however many processes accelerate starts.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = CONFIG["per_device_train_batch_size"]
    if per_device % world:
        sys.exit(f"per_device_train_batch_size {{per_device}} does not split over {{world}} processes; "
                 "launch a number of processes that divides it, or edit CONFIG.")
    overrides = {{"max_steps": args.max_steps, "output_dir": args.output_dir, "seed": args.seed,
                 "per_device_train_batch_size": per_device // world}}
    if args.bf16:
        overrides.update(bf16=True, model_init_kwargs={{"dtype": "bfloat16"}})
    config = {config_cls}(**{{**CONFIG, **overrides}})
    tokenizer = AutoTokenizer.from_pretrained(model)
    rewards.EOS_TOKEN_ID = tokenizer.eos_token_id
    dataset = load_dataset("json", data_files=str(HERE / DATA), split="train")
    trainer = {trainer}(model=model, reward_funcs=rewards.REWARD_FUNCS, args=config, train_dataset=dataset,
                        processing_class=tokenizer, peft_config=LoraConfig(**LORA))
    trainer.train()
    if trainer.is_world_process_zero():
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "log_history.jsonl"), "w") as fh:
            fh.writelines(json.dumps(row) + "\\n" for row in trainer.state.log_history)


if __name__ == "__main__":
    main()
'''

REWARDS_PY = '''"""Reward functions of the lab task '{task}' in TRL's signature: fn(prompts, completions, **columns) -> list.

The scoring itself is lab_rewards.py, copied verbatim from labcore/rewards.py. TRL does not pass whether a
completion ended with EOS, which the lab's functions read (`eos`); it is derived here from `completion_ids`,
which keep the EOS token. train.py sets EOS_TOKEN_ID from the tokenizer.
"""

import functools

import lab_rewards

EOS_TOKEN_ID = None
MAX_NEW_TOKENS = {max_new_tokens}
OVERLONG_BUFFER = {overlong_buffer}


def _eos(completion_ids):
    return [bool(ids) and ids[-1] == EOS_TOKEN_ID for ids in completion_ids]


def _with_eos(fn):
    @functools.wraps(fn)
    def wrapped(prompts, completions, completion_ids, **columns):
        return fn(prompts, completions, eos=_eos(completion_ids), completion_ids=completion_ids, **columns)
    return wrapped


def missing_eos(prompts, completions, completion_ids, **columns):
    """The lab's missing-EOS penalty as a reward: -1 without EOS (weighted by the penalty)."""
    return lab_rewards.missing_eos(_eos(completion_ids))


def overlong(prompts, completions, completion_ids, **columns):
    """The lab's DAPO soft overlong penalty on the completion's token count (EOS included, as in the lab)."""
    return lab_rewards.overlong([len(ids) for ids in completion_ids], MAX_NEW_TOKENS, OVERLONG_BUFFER)


REWARD_FUNCS = [{funcs}]
REWARD_WEIGHTS = {weights}
'''

README_MD = '''# {title}: a TRL export from rlhf-lab

Recipe `{recipe}` as TRL's `{trainer}` with {n_keys} keys written out in `train.py`. Fidelity: **{verdict}**,
row by row in `FIDELITY.md`.

| file | what |
|---|---|
| `train.py` | the run: `{config_cls}`, peft `LoraConfig`, the dataset and the reward functions |
| `rewards.py`, `lab_rewards.py` | the task's reward functions in TRL's signature; the lab's scoring copied verbatim |
| `data/train.jsonl` | the prompts: {data_source} |
| `model/` | the built-in tiny policy, when the recipe uses it |
| `accelerate_zero2.yaml`, `ds_zero2.json` | several GPUs with DeepSpeed ZeRO-2 |

## Run

On a CPU or one GPU (`pip install trl peft datasets`):

    python train.py --max_steps 2          # a smoke test
    python train.py                        # the whole recipe: {max_steps} TRL optimiser steps

On several GPUs of one machine, with DeepSpeed ZeRO-2 (`pip install deepspeed`; `num_processes` in the YAML):

    accelerate launch --config_file accelerate_zero2.yaml train.py --bf16 --model YOUR/MODEL

train.py divides `per_device_train_batch_size` by the number of processes, so a step still sees the lab's
P x K = {batch} completions; pick a process count that divides {per_device}. For a real model, add the usual
speed-ups to `CONFIG` (`use_vllm=True`, `gradient_checkpointing=True`); they do not change the maths.
'''

ACCELERATE_YAML = '''compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config:
  deepspeed_config_file: ds_zero2.json
  zero3_init_flag: false
machine_rank: 0
main_training_function: main
num_machines: 1
num_processes: 8
rdzv_backend: static
same_network: true
use_cpu: false
'''

DS_ZERO2 = '''{
  "zero_optimization": {"stage": 2, "overlap_comm": true, "contiguous_gradients": true},
  "bf16": {"enabled": "auto"},
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": "auto"
}
'''


def _literal(d: dict[str, Any], notes: dict[str, str] | None = None) -> str:
    """A dict as Python source, one key per line, with a comment where `notes` has one."""
    notes = notes or {}
    lines = [f"    {k!r}: {v!r},  # {notes[k]}" if k in notes else f"    {k!r}: {v!r}," for k, v in d.items()]
    return "{\n" + "\n".join(lines) + "\n}"


def write(out: Path, *, title: str, recipe: str, trainer: str, keys: dict[str, Any], notes: dict[str, str],
          lora: dict[str, Any],
          model: str, task: str, funcs: list[str], weights: list[float], shaping: list[tuple[str, float]],
          max_new_tokens: int, overlong_buffer: int, per_step: int, verdict: str, data_source: str) -> list[str]:
    """Write the TRL files into `out`; returns their names."""
    config_cls = trainer.replace("Trainer", "Config")
    (out / "train.py").write_text(TRAIN_PY.format(
        title=title, recipe=recipe, trainer=trainer, config_cls=config_cls, config=_literal(keys, notes),
        lora=_literal(lora), model=model, per_step=per_step))
    names = [f"_with_eos(lab_rewards.{f})" for f in funcs] + [name for name, _ in shaping]
    all_weights = list(weights) + [w for _, w in shaping]
    (out / "rewards.py").write_text(REWARDS_PY.format(
        task=task, max_new_tokens=max_new_tokens, overlong_buffer=overlong_buffer, funcs=", ".join(names),
        weights=all_weights))
    keys_for_readme = keys["per_device_train_batch_size"]
    (out / "README.md").write_text(README_MD.format(
        title=title, recipe=recipe, trainer=trainer, config_cls=config_cls, n_keys=len(keys), verdict=verdict,
        data_source=data_source, max_steps=keys["max_steps"], batch=keys["generation_batch_size"],
        per_device=keys_for_readme))
    (out / "accelerate_zero2.yaml").write_text(ACCELERATE_YAML)
    (out / "ds_zero2.json").write_text(DS_ZERO2)
    return ["train.py", "rewards.py", "README.md", "accelerate_zero2.yaml", "ds_zero2.json"]

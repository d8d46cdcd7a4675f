"""What every export carries besides its config: the prompts, the model, the reward code.

- Prompts: the built-in task's prompts drawn as the lab draws them (`task.make_prompts` with a
  `random.Random(run.seed)`, P per step), or the user's dataset when `rollout.dataset` names a local file.
- Model: the built-in tiny policy is copied into the export (4 MB), so the directory runs anywhere; any other
  model is referenced by its directory or hub id.
- Rewards: `lab_rewards.py` is a verbatim copy of `labcore/rewards.py` (read with `inspect`), so an export does
  not need labcore installed, and the reward maths cannot drift from the lab's at export time. Each target adds a
  thin wrapper in its own signature. The lab's reward shaping (missing-EOS penalty, DAPO's soft overlong
  penalty) is written out as two more functions, with the lab's formulas; a learned reward model (sentiment) is
  copied beside them with a scorer that loads and scores it as the lab does.
"""

from __future__ import annotations

import csv
import inspect
import json
import random
import shutil
from pathlib import Path

from labcore import rewards
from labcore.config import Config
from labcore.model import BUILTIN, default_lora_targets, resolve_model_path
from labcore.tasks import get_task


class ExportError(ValueError):
    """The export cannot be written (bad source, missing file): the message says what to do."""


def user_dataset(cfg: Config) -> str:
    """The user's dataset setting, when this labcore has one (`rollout.dataset`), else ''."""
    return str(getattr(cfg.rollout, "dataset", "") or "")


def _read_rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text())
        return data if isinstance(data, list) else data.get("rows", data.get("data", []))
    if suffix == ".csv":
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise ExportError(f"rollout.dataset = {str(path)!r}: unknown file type {suffix!r}; "
                      "use a .jsonl, .json, .csv or .parquet file with a 'prompt' column.")


def prompt_rows(cfg: Config) -> tuple[list[dict], str]:
    """(rows {"prompt": str, **columns}, where they came from). Built-in: P x steps rows, as the lab draws them."""
    name = user_dataset(cfg)
    if name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ExportError(f"rollout.dataset = {name!r} is not a local file; the exporter materialises the "
                              "rows it trains on, so download the dataset to a .jsonl/.parquet file first.")
        rows = _read_rows(path)
        if not rows or "prompt" not in rows[0]:
            raise ExportError(f"rollout.dataset = {name!r} has no rows with a 'prompt' column.")
        return rows, f"the user's dataset {path}"
    P, steps = cfg.rollout.prompts_per_step, cfg.run.steps
    rows = get_task(cfg.rollout.task).make_prompts(random.Random(cfg.run.seed), P * steps)
    return rows, f"the built-in '{cfg.rollout.task}' task: {P} prompts x {steps} steps, drawn with seed {cfg.run.seed}"


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def place_model(cfg: Config, out: Path) -> tuple[str, str]:
    """(path or id as the export refers to it, absolute path for reading its config here).

    The built-in tiny policy is copied to out/model and referred to relatively (the export can move).
    """
    source = resolve_model_path(cfg.model.policy)
    if cfg.model.policy.strip() in BUILTIN:
        shutil.copytree(source, out / "model", dirs_exist_ok=True)
        return "model", source
    return source, source


def lora_targets(cfg: Config, model_path: str) -> list[str]:
    """`model.lora_targets`, or the lab's per-architecture default for this model (read on an empty model)."""
    if cfg.model.lora_targets.strip():
        return [t.strip() for t in cfg.model.lora_targets.split(",") if t.strip()]
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    return default_lora_targets(model)


def reward_spec(cfg: Config) -> tuple[list[str], list[float]]:
    """(names of the task's reward functions in lab_rewards, weights).

    A learned reward model (the sentiment task) is `reward_model`, a function appended to lab_rewards.py that
    scores as `labcore.rewards.RewardModelScorer` does, with the model copied to (or named in) the export.
    """
    task = get_task(cfg.rollout.task, cfg.model.reward_model)
    names = []
    for fn in task.reward_funcs:
        if isinstance(fn, rewards.RewardModelScorer):
            names.append("reward_model")
        elif inspect.isfunction(fn) and getattr(rewards, fn.__name__, None) is fn:
            names.append(fn.__name__)
        else:
            raise ExportError(f"the reward function {fn!r} of task '{cfg.rollout.task}' is not one of labcore.rewards; "
                              "the exporter copies only those. Copy yours into lab_rewards.py by hand.")
    return names, list(task.reward_weights)


def place_reward_model(cfg: Config, out: Path) -> str:
    """Copy a built-in reward model to out/reward_model ('' when the task has none); else its path or id."""
    if cfg.rollout.task != "sentiment":
        return ""
    source = resolve_model_path(cfg.model.reward_model)
    if cfg.model.reward_model.strip() in BUILTIN:
        shutil.copytree(source, out / "reward_model", dirs_exist_ok=True)
        return "reward_model"
    return source


def copy_lab_rewards(out: Path, reward_model: str = "") -> None:
    """out/lab_rewards.py: labcore/rewards.py verbatim, with a header saying so, plus the shaping functions and,
    when the task has one, the reward-model scorer (`reward_model` is its path, relative to the export or not)."""
    header = ("# Copied verbatim from labcore/rewards.py by `rlhf-lab export`: the lab's reward functions, so this\n"
              "# directory runs without labcore installed. Edit freely; the lab will not overwrite it.\n")
    text = header + inspect.getsource(rewards) + SHAPING_SOURCE
    if reward_model:
        text += RM_SOURCE.format(path=reward_model)
    (out / "lab_rewards.py").write_text(text)


# The lab's reward shaping (labcore.trainer.Trainer.shape_rewards, labcore.advantages.overlong_penalty), as
# functions of (ended with EOS, completion length in tokens); each target's wrapper calls them.
SHAPING_SOURCE = '''

def missing_eos(eos: list[bool]) -> list[float]:
    """-1 for a completion that did not end with EOS, else 0 (weighted by rollout.missing_eos_penalty)."""
    return [0.0 if e else -1.0 for e in eos]


def overlong(lengths: list[int], max_len: int, buffer: int) -> list[float]:
    """DAPO soft overlong penalty (Yu et al. 2025, eq. 13): 0 up to max_len - buffer, then a ramp to -1."""
    start = max_len - buffer
    return [0.0 if n <= start else (-1.0 if n > max_len else (start - n) / buffer) for n in lengths]
'''


# labcore.rewards.RewardModelScorer with labcore.model.load_reward_model's loading, without labcore.
RM_SOURCE = '''

REWARD_MODEL = {path!r}  # relative paths are next to this file
_RM_LOADED = []


def reward_model(prompts: list[str], completions: list[str], **kwargs) -> list[float]:
    """The lab's learned reward model on prompt + " " + completion (as RewardModelScorer), float32 on the CPU."""
    import os

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not _RM_LOADED:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, REWARD_MODEL) if os.path.isdir(os.path.join(here, REWARD_MODEL)) else REWARD_MODEL
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        _RM_LOADED.append((model.eval().requires_grad_(False), tokenizer))
    model, tokenizer = _RM_LOADED[0]
    texts = [f"{{p.rstrip()}} {{c.strip()}}".strip() for p, c in zip(prompts, completions)]
    max_len = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None) or 10**6)
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_len)
    with torch.no_grad():
        return model(**batch).logits[:, 0].float().tolist()
'''


def shaping(cfg: Config) -> list[tuple[str, float]]:
    """[(shaping function name, weight)] that the lab applies on top of the task's rewards."""
    r = cfg.rollout
    out = []
    if r.missing_eos_penalty:
        out.append(("missing_eos", float(r.missing_eos_penalty)))
    if r.overlong_buffer:
        out.append(("overlong", float(r.overlong_penalty)))
    return out

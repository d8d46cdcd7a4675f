"""Your own reward functions, and the task a config describes.

`rollout.reward_fns` is a comma-separated list; each entry is one of
- `module.fn`: a function of an importable module (the current directory is searched too): `my_rewards.correct`;
- `path/to/file.py:fn`: a function in a Python file (a relative path starts at the current directory);
- a reward-model folder (config.json and the weights of an AutoModelForSequenceClassification with one output),
  or `tiny-rm`: it scores `prompt + " " + completion` (`labcore.rewards.RewardModelScorer`), whatever the prompts.
Every function has TRL's signature `f(prompts, completions, **columns) -> list[float | None]`.
`rollout.reward_weights` gives as many comma-separated numbers (default: 1 each).

`task_for(cfg)` builds a run's Task: prompts from `rollout.dataset` (else the task's own generator), rewards from
`rollout.reward_fns` (else the task's own). `problems(cfg)` builds it too and calls each of your functions once on
two rows of the prompts, with the completions '' and 'hello', so that a broken file, a wrong signature or a wrong
return stops the run before any model loads. Shared servers never get here: they refuse both settings
(`labcore.runner.SharedLimits`), so they never import user code or read server paths.
Left out: reward functions that are async or batched across steps, and remote reward servers.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

from labcore import rewards
from labcore.config import Config, ConfigError
from labcore.tasks import Task, get_task
from labcore.userdata import DatasetPrompts, load_rows

PROBE_COMPLETIONS = ("", "hello")


def _error(entry: str, text: str) -> ConfigError:
    return ConfigError([f"rollout.reward_fns: '{entry}': {text}"])


def parse_list(text: str) -> list[str]:
    return [x.strip() for x in str(text).split(",") if x.strip()]


def parse_weights(text: str, n: int) -> tuple[float, ...]:
    """`rollout.reward_weights` for n functions: empty means 1.0 each."""
    items = parse_list(text)
    if not items:
        return (1.0,) * n
    try:
        weights = tuple(float(x) for x in items)
    except ValueError:
        raise ConfigError([f"rollout.reward_weights = {text!r}: give comma-separated numbers, e.g. '1.0, 0.2'."]) from None
    if len(weights) != n:
        raise ConfigError([f"rollout.reward_weights has {len(weights)} numbers for {n} reward functions; give one "
                           "weight per function, in the same order (or leave it empty for 1 each)."])
    return weights


def load_reward_fn(entry: str, device: str = "auto") -> Callable:
    """One entry of `rollout.reward_fns` as a callable (see the module doc). Raises ConfigError."""
    from labcore.model import TINY_RM

    head, sep, tail = entry.rpartition(":")
    if sep and head.endswith(".py"):
        return _attribute(entry, _module_from_file(entry, head), tail)
    if entry == TINY_RM or os.path.isdir(os.path.expanduser(entry)):
        folder = os.path.expanduser(entry)
        if entry != TINY_RM and not os.path.isfile(os.path.join(folder, "config.json")):
            raise _error(entry, "is a folder without config.json; a reward model folder holds the config, weights "
                                "and tokenizer of an AutoModelForSequenceClassification (save_pretrained writes them).")
        return rewards.RewardModelScorer(entry if entry == TINY_RM else os.path.abspath(folder), device=device)
    module, dot, name = entry.rpartition(".")
    if not dot or not module:
        raise _error(entry, "give module.function (my_rewards.correct), path/to/file.py:function, or a reward "
                            "model folder.")
    return _attribute(entry, _import(entry, module), name)


def _import(entry: str, module: str):
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # `rlhf-lab run` starts from a script folder; the user's module sits where they are
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise _error(entry, f"no module '{module}' in the current folder ({cwd}) or on the Python path; "
                                "run from the folder that holds it, or write path/to/file.py:function.") from None
        raise _error(entry, f"importing '{module}' failed: {e}{rewards.where_raised(e)}; install what it "
                            "needs.") from None
    except Exception as e:
        raise _error(entry, _import_failure(e)) from None


def _module_from_file(entry: str, file: str):
    path = Path(file).expanduser().resolve()
    if not path.is_file():
        raise _error(entry, f"no file {path}; check the path (a relative one starts at {os.getcwd()}).")
    name = f"labcore_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise _error(entry, _import_failure(e)) from None
    return module


def _import_failure(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"{e.filename}:{e.lineno}: SyntaxError: {e.msg}; fix the file."
    return f"loading it raised {type(e).__name__}: {e}{rewards.where_raised(e)}; fix the file."


def _attribute(entry: str, module, name: str) -> Callable:
    fn = getattr(module, name, None)
    if fn is None:
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise _error(entry, f"{getattr(module, '__file__', module.__name__)} has no '{name}'; its functions are "
                            f"{', '.join(names) or 'none'}.{hint}")
    if not callable(fn):
        raise _error(entry, f"'{name}' is a {type(fn).__name__}, not a function.")
    return fn


def task_for(cfg: Config) -> Task:
    """The run's task: `rollout.task`, with its prompts and rewards replaced by `rollout.dataset` and
    `rollout.reward_fns` / `rollout.reward_weights` where those are set. Raises ConfigError."""
    r = cfg.rollout
    try:
        base = get_task(r.task, reward_model=cfg.model.reward_model)
    except ValueError as e:
        raise ConfigError([f"rollout.task: {e}"]) from None
    if not (r.dataset or r.reward_fns or r.reward_weights):
        return base
    make_prompts, name = base.make_prompts, base.name
    if r.dataset:
        make_prompts, name = DatasetPrompts(load_rows(r.dataset)), Path(r.dataset).name
    funcs = tuple(load_reward_fn(e, cfg.model.device) for e in parse_list(r.reward_fns)) or base.reward_funcs
    weights = parse_weights(r.reward_weights, len(funcs))
    return Task(name, base.description, make_prompts, funcs, weights, base.max_new_tokens)


def problems(cfg: Config) -> list[str]:
    """What stops `cfg`'s own prompts or rewards from working, one line each (empty when they work). Loads the
    dataset, imports the functions and calls each function of `rollout.reward_fns` once (see the module doc)."""
    r = cfg.rollout
    if not (r.dataset or r.reward_fns or r.reward_weights):
        return []
    try:
        task = task_for(cfg)
    except ConfigError as e:
        return e.problems
    user = [(e, f) for e, f in zip(parse_list(r.reward_fns), task.reward_funcs)
            if not isinstance(f, rewards.RewardModelScorer)]
    if not user:
        return []
    rows = task.make_prompts(random.Random(0), 2)
    K = len(PROBE_COMPLETIONS)
    prompts = [row["prompt"] for row in rows for _ in range(K)]
    columns = {c: [row.get(c) for row in rows for _ in range(K)] for c in rows[0] if c != "prompt"}
    columns.update(eos=[True] * len(prompts), completion_ids=[[] for _ in prompts])
    found = []
    for entry, fn in user:
        try:
            rewards.call_reward_funcs([fn], [1.0], prompts, list(PROBE_COMPLETIONS) * len(rows), columns)
        except rewards.RewardFnError as e:
            found.append(f"rollout.reward_fns: '{entry}': {e} (checked before starting, on {len(rows)} prompt rows "
                         f"with the completions {', '.join(map(repr, PROBE_COMPLETIONS))}: a model can write "
                         "anything, nothing included)")
    return found

"""Your own prompts: a local JSONL, JSON, CSV or Parquet file, or a folder written by `datasets`' `save_to_disk`.

Loaded with the `datasets` library. The `prompt` column holds a text, or a list of chat messages
(`[{"role": "user", "content": "..."}]`, rendered with the tokenizer's chat template, see `labcore.chat`). Every
other column reaches the reward functions as a keyword argument holding one value per completion (TRL's
convention): a row {"prompt": "18 + 16 =", "answer": 34} gives `answer=[34, 34, ...]`.

Every problem is reported before a run starts, naming the file, the line or row, the column and the fix: a file
that is missing or unreadable, a JSONL line that is not a JSON object, no `prompt` column, an empty prompt, a
message list without roles. Prompts are drawn in epochs: all rows in a shuffled order (from the run's seed), then a
new shuffle. Left out: hub datasets (nothing is downloaded), several files at once, datasets larger than memory.
"""

from __future__ import annotations

import difflib
import json
import random
from pathlib import Path

from labcore.config import ConfigError

LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
RESERVED = ("prompts", "completions", "eos", "completion_ids")  # names the reward functions already receive


def _error(where: str, text: str) -> ConfigError:
    return ConfigError([f"rollout.dataset: {where}: {text}"])


def load_rows(path: str) -> list[dict]:
    """Every row of the dataset at `path`, checked (see the module doc). Raises ConfigError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise _error(path, f"no such file or folder (looked at {p.resolve()}); give the path of a .jsonl, .json, "
                           ".csv or .parquet file, or of a folder saved with datasets' save_to_disk.")
    lines = None
    if p.is_dir():
        rows = _from_disk(p)
    elif p.suffix.lower() in LOADERS:
        if p.suffix.lower() == ".jsonl":
            lines = _check_jsonl(p)
        rows = _from_file(p, LOADERS[p.suffix.lower()])
    else:
        raise _error(str(p), f"unsupported file type '{p.suffix}'; use one of {', '.join(LOADERS)}, or a folder "
                             "saved with datasets' save_to_disk.")
    check_rows(rows, str(p), lines)
    return rows


def _check_jsonl(p: Path) -> list[int]:
    """Line numbers of the rows; every non-blank line must be one JSON object (the datasets error would not say
    which line is broken)."""
    numbers = []
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _error(str(p), f"cannot be read ({type(e).__name__}: {e}); save it as UTF-8 text.") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise _error(f"{p} line {n}", f"not valid JSON ({e.msg}, column {e.colno}); each line must be one "
                                          'object such as {"prompt": "18 + 16 =", "answer": 34}.') from None
        if not isinstance(row, dict):
            raise _error(f"{p} line {n}", f"is a JSON {type(row).__name__}, not an object; each line must be "
                                          'one object such as {"prompt": "18 + 16 =", "answer": 34}.')
        numbers.append(n)
    return numbers


def _from_file(p: Path, kind: str) -> list[dict]:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()  # the error below says it all, once
    try:
        ds = datasets.load_dataset(kind, data_files=str(p), split="train")
    except Exception as e:  # pyarrow / pandas errors wrapped by datasets: report the root cause, name the file
        while e.__cause__ is not None or e.__context__ is not None:
            e = e.__cause__ or e.__context__
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise _error(str(p), f"could not be read as {kind.upper()} ({type(e).__name__}: {first}). Check that "
                             "every row has the same columns and each column one type (all numbers, or all "
                             "text).") from None
    return ds.to_list()


def _from_disk(p: Path) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise _error(str(p), f"is not a dataset saved with datasets' save_to_disk ({type(e).__name__}: {first}); "
                             "give that folder, or a .jsonl, .csv or .parquet file.") from None
    if isinstance(ds, datasets.DatasetDict):
        split = "train" if "train" in ds else next(iter(ds), None)
        if split is None:
            raise _error(str(p), "holds no split; save a Dataset (or a DatasetDict with a 'train' split).")
        ds = ds[split]
    return ds.to_list()


def check_rows(rows: list[dict], where: str, lines: list[int] | None = None) -> None:
    """Raise ConfigError unless every row has a usable `prompt` and no column name is reserved."""
    if not rows:
        raise _error(where, "has no rows; add at least one row with a 'prompt'.")
    columns = list(rows[0])
    if "prompt" not in columns:
        close = difflib.get_close_matches("prompt", [c.lower() for c in columns], n=1, cutoff=0.5)
        hint = f" (is '{columns[[c.lower() for c in columns].index(close[0])]}' it?)" if close else ""
        raise _error(where, f"has no 'prompt' column; its columns are {', '.join(columns) or 'none'}{hint}. "
                            "Rename the column that holds the prompts to 'prompt'.")
    clash = [c for c in columns if c in RESERVED]
    if clash:
        raise _error(where, f"column(s) {', '.join(clash)} clash with what reward functions already receive "
                            f"({', '.join(RESERVED)}); rename them.")
    for i, row in enumerate(rows):
        problem = _prompt_problem(row["prompt"])
        if problem:
            at = f"line {lines[i]}" if lines else f"row {i + 1}"
            raise _error(f"{where} {at}", f"column 'prompt' {problem}")


def _prompt_problem(prompt) -> str:
    if isinstance(prompt, str):
        return "" if prompt.strip() else "is empty; every row needs a prompt text (or remove the row)."
    if isinstance(prompt, list) and prompt:
        for m in prompt:
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                return (f"holds {m!r}; a message list needs objects like {{\"role\": \"user\", \"content\": "
                        "\"...\"}.")
        return ""
    return (f"is {prompt!r}; give a text, or a list of chat messages like "
            '[{"role": "user", "content": "..."}].')


class DatasetPrompts:
    """make_prompts(rng, n) for a task: n rows, drawn in epochs (each row once per shuffle of the dataset)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self._order: list[int] = []

    def __call__(self, rng: random.Random, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            if not self._order:
                self._order = list(range(len(self.rows)))
                rng.shuffle(self._order)
            out.append(dict(self.rows[self._order.pop()]))
        return out

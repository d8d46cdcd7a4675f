"""Uploaded prompts and reward files -> the settings that name them (`rollout.dataset`, `rollout.reward_fns`).

Local mode only: `app/main.py` shows the two upload buttons when the lab is not shared, and a shared server refuses
both settings anyway (`labcore.runner.SharedLimits`). The reward file is read, never imported, here: `ast` lists its
top-level functions with TRL's reward signature, and the run imports them when it starts.
"""

from __future__ import annotations

import ast
from pathlib import Path


def reward_function_names(path: str) -> list[str]:
    """Public top-level functions of a Python file that take (prompts, completions, ...) and **kwargs.

    Raises ValueError (with the line) for a file that does not parse."""
    source = Path(path).read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=Path(path).name)
    except SyntaxError as e:
        raise ValueError(f"{Path(path).name} line {e.lineno}: {e.msg}") from None
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            positional = node.args.posonlyargs + node.args.args
            if len(positional) >= 2 and node.args.kwarg is not None:
                names.append(node.name)
    return names


def reward_fns_setting(path: str) -> str:
    """The `rollout.reward_fns` value for every reward function of an uploaded file: 'file.py:f, file.py:g'."""
    names = reward_function_names(path)
    if not names:
        raise ValueError(f"{Path(path).name} defines no reward function; write f(prompts, completions, **kwargs) "
                         "-> list[float | None] at the top level of the file.")
    return ", ".join(f"{path}:{n}" for n in names)

"""Reward functions for the built-in tasks, with TRL's signature.

Every function is ``fn(prompts, completions, **kwargs) -> list[float | None]``. The trainer passes each
extra column of the prompt rows as a list aligned with ``completions`` (``answer=[...]``,
``target_len=[...]``), plus ``eos: list[bool]`` (the completion ended with EOS; the text excludes it) and
``completion_ids: list[list[int]]``. ``None`` means "cannot score this sample" (TRL turns a sample that
every function left unscored into NaN and gives it zero advantage).

Conventions chosen here:
- an empty or non-numeric arithmetic answer is a wrong answer (0.0), not unscorable; ``None`` is kept for
  prompts whose answer is unknown (a row without ``answer`` whose prompt does not parse as ``a + b =``);
- ``length_match`` gives 0.0 to an EOS-less (truncated) completion: its length is unknown. Penalties for
  missing EOS and DAPO's overlong shaping are the trainer's job, not the task's.

``call_reward_funcs`` runs a task's functions over a batch and checks what they return (the trainer calls it).

Left out: model-graded rewards other than the sequence-classification RM, and any shaping of rewards.
"""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Callable, Sequence

_ARITH = re.compile(r"^\s*(\d+)\s*([+-])\s*(\d+)\s*=\s*$")
_LENGTH = re.compile(r"\bsay\s+(\d+)\s+words?\b")


def _as_int(word: str) -> int | None:
    try:
        return int(word)
    except ValueError:
        return None


def _arith_answer(prompt: str) -> int | None:
    """The answer of an ``a + b =`` / ``a - b =`` prompt, or None when it does not parse."""
    m = _ARITH.match(prompt)
    if m is None:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return a + b if op == "+" else a - b


def correct(prompts: list[str], completions: list[str], answer: list | None = None,
            **kwargs) -> list[float | None]:
    """1.0 if the completion's first word is the right integer, else 0.0.

    The answer comes from the ``answer`` column, or is computed from the prompt when the column is
    missing (e.g. a prompt typed in the UI). None when neither gives one. EOS is not required here;
    ``well_formed`` checks the format.
    """
    out: list[float | None] = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        target = answer[i] if answer is not None and answer[i] is not None else _arith_answer(prompt)
        if target is None:
            out.append(None)
            continue
        words = completion.split()
        out.append(float(bool(words) and _as_int(words[0]) == int(target)))
    return out


def well_formed(prompts: list[str], completions: list[str], eos: list[bool] | None = None,
                **kwargs) -> list[float]:
    """1.0 if the completion is exactly one integer followed by EOS, else 0.0 (right or wrong).

    Without an ``eos`` column every completion is taken to have ended properly.
    """
    out = []
    for i, completion in enumerate(completions):
        words = completion.split()
        ended = True if eos is None else bool(eos[i])
        out.append(float(ended and len(words) == 1 and _as_int(words[0]) is not None))
    return out


def length_match(prompts: list[str], completions: list[str], target_len: list | None = None,
                 eos: list[bool] | None = None, **kwargs) -> list[float | None]:
    """1.0 for exactly ``target_len`` words then EOS, minus 1/3 per word off (0 from 3 off); 0.0 without EOS.

    The target comes from the ``target_len`` column, or from a prompt like ``say 4 words :``; None when
    neither gives one.
    """
    out: list[float | None] = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        target = target_len[i] if target_len is not None else None
        if target is None:
            m = _LENGTH.search(prompt)
            target = int(m.group(1)) if m else None
        if target is None:
            out.append(None)
        elif eos is not None and not eos[i]:
            out.append(0.0)
        else:
            off = abs(len(completion.split()) - int(target))
            out.append(max(0.0, 1.0 - off / 3))
    return out


# What the sentiment task's reward model was trained to approximate is additive ("+1 per positive adjective");
# what a reader wants is a finished review that says something good once. The gold scorer is that reader: it is
# logged beside the reward (`reward/gold/mean`) and never trained on, so over-optimising the learned proxy shows
# as a gold score that peaks and then falls (Gao, Schulman & Hilton 2022, fig. 1).
GOLD_POSITIVE = frozenset(("great", "friendly", "amazing", "delicious", "excellent", "lovely", "perfect",
                           "wonderful", "good", "nice", "fresh", "clean"))
GOLD_NEGATIVE = frozenset(("terrible", "rude", "awful", "bland", "bad", "boring", "dirty", "slow", "cold", "poor",
                           "noisy", "stale"))
GOLD_FUNCTION_WORDS = frozenset(("the", "was", "and", "but", "very", "really", "so", "quite"))


def sentiment_gold(prompts: list[str], completions: list[str], eos: list[bool] | None = None,
                   **kwargs) -> list[float]:
    """A held-out reader's score of a review: +1 per distinct positive adjective and -1 per distinct negative
    one (at most +-2), -0.5 per repeated content word (repetition reads as spam), and -1 for a review that
    never ends (no EOS). Range [-2 - ..., 2]; a good short review such as ``great and the staff was friendly``
    scores 2."""
    out = []
    for i, completion in enumerate(completions):
        words = as_text(completion).split()
        content = [w for w in words if w not in GOLD_FUNCTION_WORDS]
        distinct = set(content)
        said = sum(w in GOLD_POSITIVE for w in distinct) - sum(w in GOLD_NEGATIVE for w in distinct)
        score = max(-2.0, min(2.0, float(said))) - 0.5 * (len(content) - len(distinct))
        if eos is not None and not eos[i]:
            score -= 1.0
        out.append(score)
    return out


def as_text(x: str | list[dict]) -> str:
    """A text prompt or completion as is; chat messages as their contents, one per line."""
    return x if isinstance(x, str) else "\n".join(str(m.get("content", "")) for m in x)


class RewardModelScorer:
    """A learned reward model as a reward function: scores ``prompt + " " + completion``.

    The model is loaded on the first call (``labcore.model.load_reward_model``, which also caches it per
    process), so building a task costs nothing. ``__name__`` is ``"reward_model"`` for the metric names.
    """

    def __init__(self, name_or_path: str = "tiny-rm", device: str = "auto", batch_size: int = 64):
        self.__name__ = "reward_model"
        self.name_or_path = name_or_path
        self.device = device
        self.batch_size = batch_size
        self._loaded = None

    def __repr__(self) -> str:
        return f"RewardModelScorer({self.name_or_path!r})"

    def _load(self):
        if self._loaded is None:
            from labcore.model import load_reward_model  # torch only when a task really scores

            self._loaded = load_reward_model(self.name_or_path, device=self.device)
        return self._loaded

    def __call__(self, prompts: list[str], completions: list[str], **kwargs) -> list[float]:
        import torch

        model, tokenizer = self._load()
        device = next(model.parameters()).device
        texts = [f"{as_text(p).rstrip()} {as_text(c).strip()}".strip() for p, c in zip(prompts, completions)]
        scores: list[float] = []
        max_len = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None) or 10**6)
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                              truncation=True, max_length=max_len).to(device)
            with torch.no_grad():
                logits = model(**batch).logits  # (B, 1)
            scores += logits[:, 0].float().tolist()
        return scores


class RewardFnError(ValueError):
    """A reward function raised, or returned something that is not one number (or None) per completion."""


def fn_name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def where_raised(e: BaseException) -> str:
    """' at file.py:12' for the innermost frame of an exception's traceback, or ''."""
    frames = traceback.extract_tb(e.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def call_reward_funcs(funcs: Sequence[Callable], weights: Sequence[float], prompts: list, completions: list[str],
                      columns: dict[str, list]) -> tuple[list[float], dict[str, float]]:
    """Run every reward function with TRL's signature and add them up with their weights.

    prompts, completions: one per completion (B). A prompt that is a list of chat messages gets, as TRL does, its
    completion as [{"role": "assistant", "content": text}]. columns: keyword arguments, each a list of B values.
    Returns the (B,) weighted sums, NaN where every function said None (unscorable), and each function's mean
    over the completions it scored. Raises RewardFnError naming the function, where it raised, and the fix.
    """
    B = len(completions)
    if prompts and not isinstance(prompts[0], str):
        completions = [[{"role": "assistant", "content": c}] for c in completions]
    total, seen = [0.0] * B, [False] * B
    per_fn: dict[str, float] = {}
    for fn, w in zip(funcs, weights):
        name = fn_name(fn)
        try:
            vals = fn(prompts, completions, **columns)
        except Exception as e:  # a user's reward function: say where it failed, do not crash the process
            raise RewardFnError(f"reward function '{name}' raised {type(e).__name__}: {e}{where_raised(e)}. "
                                "Fix the function; return None for a completion it cannot score.") from e
        if vals is None or isinstance(vals, (str, bytes)) or not hasattr(vals, "__len__") or len(vals) != B:
            got = "None" if vals is None else f"{len(vals)} values" if hasattr(vals, "__len__") else repr(vals)
            raise RewardFnError(f"reward function '{name}' returned {got} for {B} completions; it must return a "
                                "list with one float (or None for an unscorable one) per completion.")
        scored = []
        for i, v in enumerate(vals):
            if v is None:
                continue
            if not isinstance(v, (int, float)) and hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
                v = v.item()  # a numpy or torch scalar
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RewardFnError(f"reward function '{name}' returned {v!r} for completion {i} "
                                    f"({completions[i]!r}); return a finite float, or None if it cannot be scored.")
            total[i] += w * float(v)
            seen[i] = True
            scored.append(float(v))
        per_fn[name] = sum(scored) / len(scored) if scored else float("nan")
    return [t if s else float("nan") for t, s in zip(total, seen)], per_fn

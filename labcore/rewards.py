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

Left out: model-graded rewards other than the sequence-classification RM, and any shaping of rewards.
"""

from __future__ import annotations

import re

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
        texts = [f"{p.rstrip()} {c.strip()}".strip() for p, c in zip(prompts, completions)]
        scores: list[float] = []
        max_len = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None) or 10**6)
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                              truncation=True, max_length=max_len).to(device)
            with torch.no_grad():
                logits = model(**batch).logits  # (B, 1)
            scores += logits[:, 0].float().tolist()
        return scores

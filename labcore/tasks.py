"""Built-in tasks: a prompt source plus weighted reward functions, in a tiny synthetic language.

The language is lowercase words separated by single spaces; numbers are words too ("12"). Four tasks,
each showing a different side of RLHF:

- ``arithmetic`` (default): verifiable rewards (RLVR). ``12 + 7 =`` -> ``19`` then EOS. The built-in
  model starts around 40 % correct because its pretraining corpus writes the right answer only 40 % of
  the time (otherwise a common mistake: ``5`` for the other operation, or ``12`` / ``7`` copied from the
  prompt), so RL has room to sharpen it.
- ``sentiment``: a learned reward model scores ``review : the food was`` -> ``great and the staff was
  friendly``. The reward model is roughly additive in positive words, so without a KL penalty the
  policy can hack it (repeat the best adjective and never stop). A held-out gold scorer
  (``rewards.sentiment_gold``: a finished review that says something good once) is logged beside it and
  never trained on, so over-optimisation shows as gold falling while the proxy climbs.
- ``length``: ``say 4 words :`` -> four words then EOS. Truncated (EOS-less) completions score 0, so the
  trainer's EOS handling (missing-EOS penalty, DAPO overlong shaping) is visible on top of it.
- ``chain`` (``labcore.chain``): ``sum 3 5 2 :`` -> ``3 + 5 + 2 ; 10``, the sum written out 0-3 times before
  the graded answer, so a completion is right or wrong at any length. Its words are not the tiny language's: it
  runs on its own built-in model ``tiny-chain`` (labcore/data/chain).

Reward functions use TRL's signature and live in ``labcore.rewards``. Left out on purpose: chat
templates, multi-turn prompts and dataset files; tasks are generated from a seed, so runs are reproducible
offline.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable
from dataclasses import dataclass

from labcore import chain, rewards

# The whole vocabulary of the tiny language (the tokenizer is built from these lists).
NUMBERS = [str(i) for i in range(61)]
ARITH_SYMBOLS = ["+", "-", "="]
ARITH_MAX_OPERAND = 20  # sums up to 40, differences are never negative

NOUNS = ["food", "service", "staff", "room", "movie", "music", "coffee", "pizza",
         "view", "price", "bed", "menu", "waiter", "soup", "show", "plot"]
POSITIVE = ["great", "friendly", "amazing", "delicious", "excellent", "lovely",
            "perfect", "wonderful", "good", "nice", "fresh", "clean"]
NEGATIVE = ["terrible", "rude", "awful", "bland", "bad", "boring",
            "dirty", "slow", "cold", "poor", "noisy", "stale"]
NEUTRAL = ["okay", "fine", "average", "ordinary", "plain", "simple"]
INTENSIFIERS = ["very", "really", "so", "quite"]
REVIEW_WORDS = ["review", ":", "the", "was", "and", "but"]

LENGTH_WORDS = ["red", "blue", "green", "cat", "dog", "bird", "tree", "river", "stone", "sun",
                "moon", "star", "apple", "bread", "milk", "book", "door", "hat", "ship", "cloud"]
LENGTH_PROMPT_WORDS = ["say", "word", "words"]
LENGTH_MAX_TARGET = 10


def vocabulary() -> list[str]:
    """Every word of the tiny language, without special tokens, in a fixed order."""
    groups = [NUMBERS, ARITH_SYMBOLS, REVIEW_WORDS, NOUNS, POSITIVE, NEGATIVE, NEUTRAL, INTENSIFIERS,
              LENGTH_PROMPT_WORDS, LENGTH_WORDS]
    words: list[str] = []
    for group in groups:
        words += [w for w in group if w not in words]
    return words


@dataclass(frozen=True)
class Task:
    name: str
    description: str  # one line for the UI
    make_prompts: Callable[[random.Random, int], list[dict]]  # n rows {"prompt": str, **extra columns}
    reward_funcs: tuple[Callable, ...]  # fn(prompts, completions, **kwargs) -> list[float | None]
    reward_weights: tuple[float, ...]
    max_new_tokens: int  # a sensible default completion budget
    gold: Callable | None = None  # a held-out scorer, logged as reward/gold/mean and never trained on
    pass_reward: float | None = None  # a completion scoring >= this is right: logs len/right/mean, len/wrong/mean


def arithmetic_problems() -> list[tuple[int, str, int]]:
    """All problems of the arithmetic task as (a, op, b), in a fixed order. 441 sums, 231 differences."""
    n = ARITH_MAX_OPERAND
    sums = [(a, "+", b) for a in range(n + 1) for b in range(n + 1)]
    diffs = [(a, "-", b) for a in range(n + 1) for b in range(a + 1)]
    return sums + diffs


def arithmetic_prompts(rng: random.Random, n: int) -> list[dict]:
    """Rows {"prompt": "12 + 7 =", "answer": 19}, problems drawn uniformly with replacement."""
    problems = arithmetic_problems()
    rows = []
    for _ in range(n):
        a, op, b = rng.choice(problems)
        rows.append({"prompt": f"{a} {op} {b} =", "answer": a + b if op == "+" else a - b})
    return rows


def sentiment_prompts(rng: random.Random, n: int) -> list[dict]:
    """Rows {"prompt": "review : the food was"}."""
    return [{"prompt": f"review : the {rng.choice(NOUNS)} was"} for _ in range(n)]


def length_prompts(rng: random.Random, n: int) -> list[dict]:
    """Rows {"prompt": "say 4 words :", "target_len": 4}, targets 1..LENGTH_MAX_TARGET."""
    rows = []
    for _ in range(n):
        k = rng.randint(1, LENGTH_MAX_TARGET)
        rows.append({"prompt": f"say {k} {'word' if k == 1 else 'words'} :", "target_len": k})
    return rows


TASKS: dict[str, str] = {
    "arithmetic": "Verifiable reward: answer '12 + 7 =' with the right number, then stop (RLVR).",
    "sentiment": "Learned reward model: write a positive review; without KL the policy can hack the RM.",
    "length": "Say exactly N words then stop; truncated answers score 0 (shows EOS handling).",
    "chain": "Add 3 numbers: write the sum out as often as you like, then '; answer' (model tiny-chain; length bias).",
}


def _arithmetic(reward_model: str) -> Task:
    return Task("arithmetic", TASKS["arithmetic"], arithmetic_prompts,
                (rewards.correct, rewards.well_formed), (1.0, 0.2), max_new_tokens=4)


def _sentiment(reward_model: str) -> Task:
    return Task("sentiment", TASKS["sentiment"], sentiment_prompts,
                (rewards.RewardModelScorer(reward_model),), (1.0,), max_new_tokens=16,
                gold=rewards.sentiment_gold)


def _length(reward_model: str) -> Task:
    return Task("length", TASKS["length"], length_prompts, (rewards.length_match,), (1.0,), max_new_tokens=12)


def _chain(reward_model: str) -> Task:
    return Task("chain", TASKS["chain"], chain.chain_prompts, (chain.chain_correct,), (1.0,), max_new_tokens=24,
                pass_reward=1.0)


_BUILDERS: dict[str, Callable[[str], Task]] = {
    "arithmetic": _arithmetic,
    "sentiment": _sentiment,
    "length": _length,
    "chain": _chain,  # its own vocabulary: pair it with the built-in model 'tiny-chain' (labcore.chain)
}


def get_task(name: str, reward_model: str = "tiny-rm") -> Task:
    """The task called ``name``; ``reward_model`` (a name or path) is used by tasks scored by an RM.

    The reward model is loaded lazily on the first scoring call, so this is cheap.
    """
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"Unknown task '{name}'. Allowed tasks: {', '.join(TASKS)}.{hint}")
    return _BUILDERS[name](reward_model)


def register_task(name: str, make_prompts: Callable[[random.Random, int], list[dict]],
                  reward_funcs: Callable | list[Callable] | tuple[Callable, ...],
                  reward_weights: list[float] | tuple[float, ...] | None = None, description: str = "",
                  max_new_tokens: int = 16) -> Task:
    """Add a task; afterwards ``rollout.task = name`` trains on it (in this process: a run in a spawned worker
    process sees only the built-in tasks and those a config names through ``rollout.dataset``).

    make_prompts(rng: random.Random, n) -> n rows {"prompt": text or chat messages, **extra columns}; every
    reward function has TRL's signature f(prompts, completions, **columns) -> list[float | None]. Weights
    default to 1.0 each. Re-registering a name replaces it; the built-in tasks cannot be replaced.
    """
    funcs = (reward_funcs,) if callable(reward_funcs) else tuple(reward_funcs)
    weights = tuple(float(w) for w in reward_weights) if reward_weights is not None else (1.0,) * len(funcs)
    problems = []
    if not isinstance(name, str) or not name.strip():
        problems.append(f"name = {name!r}: give the task a non-empty name")
    elif name in _BUILT_IN:
        problems.append(f"name = {name!r} is a built-in task; pick another name")
    if not callable(make_prompts):
        problems.append("make_prompts must be a function (rng: random.Random, n: int) -> list[dict]")
    if not funcs or not all(callable(f) for f in funcs):
        problems.append("reward_funcs must be one or more functions f(prompts, completions, **columns)")
    if len(weights) != len(funcs):
        problems.append(f"{len(weights)} reward_weights for {len(funcs)} reward functions; give one weight each")
    if problems:
        raise ValueError("register_task: " + "; ".join(problems) + ".")
    task = Task(name, description or f"Your task '{name}'.", make_prompts, funcs, weights, max_new_tokens)
    TASKS[name] = task.description
    _BUILDERS[name] = lambda reward_model: task
    return task


_BUILT_IN = frozenset(TASKS)

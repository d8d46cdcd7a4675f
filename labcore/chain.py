"""The chain task: add up three numbers, writing the sum out first as often as you like, then '; answer'.

    prompt      sum 3 5 2 :
    completion  ; 10                                  (terse: the answer only)
                3 + 5 + 2 ; 10                        (the sum written out once)
                3 + 5 + 2 , 3 + 5 + 2 ; 10            (twice, and so on)

Only the number after the final ';' is graded: the chain before it is free text whose length the policy chooses and
that does not give the answer away (it restates the terms, it does not add them), so a completion can be right or
wrong at any length and the answer is equally hard after a short or a long chain. That is what the length-bias
lesson needs (Liu et al. 2025, Dr. GRPO, section 3.1, fig. 1 and 5): under GRPO's per-sequence 1/|o| normaliser
each token of a long wrong completion is pushed down less than a short one's, so wrong answers after long chains
are unlearned more slowly and the wrong answers that remain grow longer. The task has its own small vocabulary and
pretrained model (`labcore.chain_pretrain`, shipped in labcore/data/chain/), separate from the tiny world's, which
stays as it is.

Left out: chains of partial sums (a chain that adds would hand the answer to a long completion, so correctness would
no longer be independent of length) and numbers above CHAIN_MAX_NUMBER.
"""

from __future__ import annotations

import random
import re

CHAIN_MIN_TERMS, CHAIN_MAX_TERMS = 3, 3  # one chain length per style: the length is the style's alone
CHAIN_MAX_NUMBER = 9                      # terms are 1..9, so sums stay <= 27
CHAIN_WORDS = ["sum", ":", "+", ",", ";"]
CHAIN_NUMBERS = [str(i) for i in range(CHAIN_MAX_NUMBER * CHAIN_MAX_TERMS + 1)]
_PROMPT = re.compile(r"^\s*sum((?:\s+\d+)+)\s*:\s*$")


def chain_vocabulary() -> list[str]:
    """Every word of the chain task, without special tokens, in a fixed order."""
    return CHAIN_NUMBERS + CHAIN_WORDS


def chain_prompts(rng: random.Random, n: int) -> list[dict]:
    """Rows {"prompt": "sum 3 5 2 :", "answer": 10}: CHAIN_MIN_TERMS..CHAIN_MAX_TERMS terms drawn from 1..9."""
    rows = []
    for _ in range(n):
        terms = [rng.randint(1, CHAIN_MAX_NUMBER) for _ in range(rng.randint(CHAIN_MIN_TERMS, CHAIN_MAX_TERMS))]
        rows.append({"prompt": "sum " + " ".join(map(str, terms)) + " :", "answer": sum(terms)})
    return rows


def _prompt_answer(prompt: str) -> int | None:
    m = _PROMPT.match(prompt)
    return sum(int(w) for w in m.group(1).split()) if m else None


def final_answer(completion: str) -> int | None:
    """The graded number: the single word after the completion's last ';', which must end it. None when the
    completion has no ';', or what follows it is not one whole number."""
    words = completion.split()
    if ";" not in words:
        return None
    tail = words[len(words) - words[::-1].index(";"):]
    return int(tail[0]) if len(tail) == 1 and tail[0].isdigit() else None


def chain_correct(prompts: list[str], completions: list[str], answer: list | None = None,
                  eos: list[bool] | None = None, **kwargs) -> list[float | None]:
    """1.0 when the completion ended with EOS and its final answer (see final_answer) is the sum, else 0.0 (wrong,
    malformed or cut off), at any length. None for a prompt whose sum is unknown (no `answer` column and a prompt
    that does not read `sum a b ... :`)."""
    out: list[float | None] = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        target = answer[i] if answer is not None and answer[i] is not None else _prompt_answer(prompt)
        if target is None:
            out.append(None)
            continue
        ended = True if eos is None else bool(eos[i])
        out.append(float(ended and final_answer(completion) == int(target)))
    return out

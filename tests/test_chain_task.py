"""The chain task (labcore.chain): its grade on hand-written completions, right and wrong at several lengths and
malformed; its registration as a built-in task and model; and `rlhf-lab pretrain --world chain` at a tiny scale
writing a model that loads and samples."""

import random

import pytest

from labcore import chain as C
from labcore import parts, tasks

PROMPT = "sum 3 5 2 :"


@pytest.mark.parametrize("completion, right", [
    ("; 10", 1.0),                                                    # terse, 2 words
    ("3 + 5 + 2 ; 10", 1.0),                                          # the sum written out once, 7 words
    ("3 + 5 + 2 , 3 + 5 + 2 , 3 + 5 + 2 ; 10", 1.0),                  # three times, 19 words
    ("3 + 5 ; 10", 1.0),                                              # a sloppy chain: only the answer is graded
    ("; 3", 0.0),                                                     # wrong, short
    ("3 + 5 + 2 ; 5", 0.0),                                           # wrong, longer
    ("3 + 5 + 2 , 3 + 5 + 2 , 3 + 5 + 2 ; 2", 0.0),                   # wrong, longest
    ("10", 0.0),                                                      # malformed: no ';'
    ("; 10 ;", 0.0),                                                  # malformed: nothing after the last ';'
    ("; 10 10", 0.0),                                                 # malformed: two words after it
    ("; +", 0.0),                                                     # malformed: not a number
    ("", 0.0),
])
def test_chain_grade_reads_only_the_final_answer(completion, right):
    assert C.chain_correct([PROMPT], [completion], answer=[10], eos=[True]) == [right]
    assert C.chain_correct([PROMPT], [completion]) == [right]  # the sum read from the prompt


def test_chain_grade_needs_eos_and_a_known_sum():
    """A cut-off completion is wrong even with the right number; a prompt that is not `sum a b ... :` and has no
    answer column cannot be graded."""
    assert C.chain_correct([PROMPT], ["3 + 5 + 2 ; 10"], eos=[False]) == [0.0]
    assert C.chain_correct(["add 3 5"], ["; 8"], eos=[True]) == [None]


def test_chain_prompts_and_vocabulary_cover_every_sum():
    rows = C.chain_prompts(random.Random(0), 200)
    for r in rows:
        terms = [int(w) for w in r["prompt"].split()[1:-1]]
        assert len(terms) == 3 and all(1 <= t <= 9 for t in terms) and r["answer"] == sum(terms)
    words = set(C.chain_vocabulary())
    assert all(w in words for r in rows for w in r["prompt"].split())


def test_chain_is_a_built_in_task_with_a_pass_mark():
    task = tasks.get_task("chain")
    assert task.pass_reward == 1.0 and "chain" in tasks.TASKS
    with pytest.raises(ValueError, match="built-in"):
        tasks.register_task("chain", C.chain_prompts, C.chain_correct)


def test_length_by_outcome_splits_right_and_wrong():
    """Lengths 2, 12, 18 and 6 with the middle two wrong: right 4, wrong 15; no wrong answer: no wrong key."""
    import torch

    lengths = torch.tensor([2.0, 12.0, 18.0, 6.0])
    right = torch.tensor([True, False, False, True])
    assert parts.length_by_outcome(lengths, right) == {"len/right/mean": 4.0, "len/wrong/mean": 15.0}
    assert parts.length_by_outcome(lengths, torch.ones(4, dtype=torch.bool)) == {"len/right/mean": 9.5}


def test_pretrain_world_chain_builds_a_loadable_model(tmp_path):
    """At scale 0.005 (8 steps) the build takes seconds; the folder must load through the lab's one code path and
    its tokenizer must cover the task."""
    from labcore.model import load_policy
    from labcore.pretrain import pretrain_main

    assert pretrain_main(["--world", "chain", "--out", str(tmp_path), "--scale", "0.005", "--threads", "1",
                          "--quiet"]) == 0
    assert (tmp_path / "policy" / "config.json").is_file() and (tmp_path / "stats.json").is_file()
    tok = load_policy(str(tmp_path / "policy"), device="cpu").tokenizer
    ids = tok(PROMPT)["input_ids"]
    assert tok.unk_token_id not in ids and len(ids) == 1 + len(PROMPT.split())

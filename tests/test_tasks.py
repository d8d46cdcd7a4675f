"""Reward functions of the built-in tasks on hand-written completions, including EOS-less and unscorable ones.

No model is needed except for the sentiment task's reward model (the shipped tiny RM, loaded on CPU).
"""

import random

import pytest

from labcore import rewards
from labcore.chain import chain_vocabulary
from labcore.tasks import TASKS, Task, get_task, vocabulary


def test_every_task_builds_prompts_in_the_vocabulary():
    """Prompts only use words their model's tokenizer knows (the tiny world's; the chain task's own for 'chain'),
    and extra columns come with every row."""
    vocab, chain_vocab = set(vocabulary()), set(chain_vocabulary())
    for name in TASKS:
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name and task.description == TASKS[name]
        assert len(task.reward_funcs) == len(task.reward_weights) and task.max_new_tokens > 0
        rows = task.make_prompts(random.Random(0), 50)
        assert len(rows) == 50 and len({tuple(sorted(r)) for r in rows}) == 1
        assert all(set(r["prompt"].split()) <= (chain_vocab if name == "chain" else vocab) for r in rows)
        assert rows == task.make_prompts(random.Random(0), 50)  # deterministic given the rng


def test_unknown_task_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"Unknown task 'arithmetc'.*arithmetic, sentiment, length.*Did you mean 'arithmetic'"):
        get_task("arithmetc")


def test_correct_checks_the_first_word_against_the_answer():
    prompts = ["12 + 7 =", "12 + 7 =", "12 + 7 =", "12 + 7 =", "5 - 3 =", "hello there"]
    completions = ["19", "18", "19 19 19", "", "2", "4"]
    # 'answer' column given for the first five; the sixth has none and its prompt does not parse.
    assert rewards.correct(prompts, completions, answer=[19, 19, 19, 19, 2, None]) == [1.0, 0.0, 1.0, 0.0, 1.0, None]
    # Without the column the answer is computed from the prompt.
    assert rewards.correct(prompts, completions) == [1.0, 0.0, 1.0, 0.0, 1.0, None]
    assert rewards.correct(["3 + 4 ="], ["seven"], answer=[7]) == [0.0]


def test_well_formed_wants_one_number_then_eos():
    completions = ["19", "18", "19 19", "19", "", "cat"]
    eos = [True, True, True, False, True, True]
    assert rewards.well_formed(["1 + 1 ="] * 6, completions, eos=eos) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_length_match_peaks_at_the_target_and_needs_eos():
    prompts = ["say 4 words :"] * 6 + ["say 1 word :", "tell me a story"]
    completions = ["red cat sun moon", "red cat sun", "red cat", "a b c d e f g h", "red cat sun moon", "", "dog", "x y"]
    eos = [True, True, True, True, False, True, True, True]
    out = rewards.length_match(prompts, completions, eos=eos)
    assert out == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0, 0.0, 0.0, 1.0, None])
    # The column wins over the prompt.
    assert rewards.length_match(["say 4 words :"], ["red cat"], target_len=[2], eos=[True]) == [1.0]


def test_arithmetic_weights_and_names():
    task = get_task("arithmetic")
    assert [f.__name__ for f in task.reward_funcs] == ["correct", "well_formed"]
    assert task.reward_weights == (1.0, 0.2)


def test_reward_model_scorer_prefers_positive_reviews():
    """The shipped RM scores a glowing review above a bad one, and is lazy and named for the metrics."""
    task = get_task("sentiment")
    (scorer,) = task.reward_funcs
    assert scorer.__name__ == "reward_model" and scorer._loaded is None
    prompts = ["review : the food was"] * 3
    completions = ["great and the staff was very friendly", "okay", "awful and the staff was very rude"]
    good, neutral, bad = scorer(prompts, completions, eos=[True] * 3, completion_ids=[[]] * 3)
    assert good > neutral > bad
    assert all(isinstance(s, float) for s in (good, neutral, bad))
    # Hackable: repeating the best words scores higher still (what a KL penalty is there to prevent).
    (hacked,) = scorer(prompts[:1], [" ".join(["amazing"] * 12)])
    assert hacked > good

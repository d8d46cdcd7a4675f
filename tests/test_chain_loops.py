"""tiny-chain-loops, the chain task's second built-in model (labcore.chain_pretrain.LOOP_STYLES): its corpus has a
looping style that runs past the 24-token budget, the model is registered and paired with the chain task only,
`rlhf-lab pretrain --world chain-loops` builds it, and the shipped copy starts out cutting itself off (the length-bias
lesson, presets/lessons/length_bias.toml, needs wrong answers at full length)."""

import json
import random

import pytest

from labcore import chain_pretrain as CP
from labcore.config import apply, build, validate


def test_loop_style_writes_past_the_token_budget():
    """Written out 5 times, the sum takes 5 x 5 words + 4 commas, then '; answer': 31 words, more than the 24 tokens
    a completion may have, so it is cut off (no EOS) and graded wrong. The shipped model's styles all fit."""
    words, at = CP.write_chain(random.Random(0), [3, 5, 2], times=5)
    assert len(words) == 31 and at == 30 and words[:6] == ["3", "+", "5", "+", "2", ","]
    assert max(CP.LOOP_STYLES) * 6 + 1 > CP.MAX_NEW_TOKENS >= max(CP.STYLES) * 6 + 1 + 1
    assert abs(sum(CP.LOOP_STYLES.values()) - 1) < 1e-9


def test_loop_styles_draw_the_loop_and_default_draws_stay_as_they_were():
    """The corpus draws a loop about 15 % of the time with LOOP_STYLES, never with STYLES; passing STYLES gives the
    same words as not passing it (the shipped tiny-chain's rebuild depends on the random stream being unchanged)."""
    drawn = [len(CP.write_chain(random.Random(i), [1, 2, 3], styles=CP.LOOP_STYLES)[0]) for i in range(400)]
    assert 0.08 < sum(n == 31 for n in drawn) / 400 < 0.22
    assert all(CP.write_chain(random.Random(i), [1, 2, 3]) == CP.write_chain(random.Random(i), [1, 2, 3],
                                                                             styles=CP.STYLES) for i in range(50))
    assert max(len(CP.write_chain(random.Random(i), [1, 2, 3])[0]) for i in range(400)) == 19


def test_loops_model_pairs_with_the_chain_task_only():
    from app import settings

    ok = apply(build("grpo"), {"rollout.task": "chain", "model.policy": "tiny-chain-loops"})
    assert validate(ok) == []
    bad = validate(apply(build("grpo"), {"rollout.task": "arithmetic", "model.policy": "tiny-chain-loops"}))
    assert any("tiny-chain-loops" in p for p in bad), bad
    assert settings.model_for_task("chain", "tiny-chain-loops") == "tiny-chain-loops"
    assert settings.model_for_task("arithmetic", "tiny-chain-loops") == "tiny"


def test_shipped_loops_model_starts_out_cutting_itself_off():
    """stats.json of labcore/data/chain_loops (written by the build): some completions run out of budget, and the
    wrong answers start longer than the right ones (the cut-off ones are wrong at full length)."""
    stats = json.loads((CP.LOOPS_OUT / "stats.json").read_text())
    assert stats["styles"] == {str(k): v for k, v in CP.LOOP_STYLES.items()}
    assert 0.7 < stats["start"]["eos_rate"] < 0.95
    assert stats["start"]["len_wrong_mean"] > stats["start"]["len_right_mean"] + 1


@pytest.mark.parametrize("world", ["chain-loops"])
def test_pretrain_world_chain_loops_builds_a_loadable_model(tmp_path, world):
    from labcore.model import load_policy, resolve_model_path
    from labcore.pretrain import pretrain_main

    assert pretrain_main(["--world", world, "--out", str(tmp_path), "--scale", "0.005", "--threads", "1",
                          "--quiet"]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["styles"]["5"] == CP.LOOP_STYLES[5]
    assert load_policy(str(tmp_path / "policy"), device="cpu").tokenizer is not None
    assert resolve_model_path("tiny-chain-loops").endswith("chain_loops/policy")

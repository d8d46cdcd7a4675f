"""Gradient accumulation (`algorithm.micro_batch_size`) takes the same optimiser step as the whole minibatch:
each micro-batch's loss carries its share of the minibatch's normaliser (losses.normaliser), never its own.

Hand tensors pin the split identity for every aggregation; real steps on the tiny model compare the accumulated
gradients and the LoRA weights after one step, with and without micro-batches, for a token-level aggregation, a
sequence-level one, Dr. GRPO's constant normaliser, a sequence-level loss (GSPO) and PPO's critic. A trainer
whose micro-batches normalise by themselves fails the same comparison (the test can fail).
"""

import pytest
import torch
from sgd import use_plain_sgd

from labcore import losses
from labcore import trainer as trainer_module
from labcore.config import ConfigError, build, check
from labcore.trainer import Trainer

SMALL = {"model.device": "cpu", "rollout.prompts_per_step": 4, "rollout.samples_per_prompt": 2, "rollout.max_new_tokens": 4,
         "run.grad_variance": False, "optim.lr": 0.1}


@pytest.mark.parametrize("mode", list(losses.AGGREGATIONS))
def test_micro_batch_losses_sum_to_the_minibatch_loss(mode):
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [-1.0, 0.5, 2.0], [3.0, 3.0, 3.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    whole = losses.aggregate(x, mask, mode, max_len=4)
    parts = [slice(0, 2), slice(2, 4), slice(4, 5)]  # the last part has no valid token
    summed = sum(losses.aggregate(x[p], mask[p], mode, max_len=4) * losses.normaliser(mask[p], mode, max_len=4)
                 / losses.normaliser(mask, mode, max_len=4) for p in parts)
    assert float(summed) == pytest.approx(float(whole), rel=1e-6)
    own = sum(losses.aggregate(x[p], mask[p], mode, max_len=4) for p in parts) / len(parts)  # each its own mean
    assert float(own) != pytest.approx(float(whole), rel=1e-3)


def one_step(recipe, over, micro):
    """One training step with plain SGD in place of AdamW, so the weights move by lr x the gradient (Adam's first
    step is lr x sign(g), blind to the gradient's scale and erratic where g is near its eps). Returns the LoRA
    weights after the step and the gradient of every optimiser step (one per minibatch)."""
    trainer = Trainer(build(recipe, {**SMALL, **over, "algorithm.micro_batch_size": micro}))
    grads = use_plain_sgd(trainer)
    trainer.train_step()
    return torch.cat([p.detach().flatten() for p in trainer.params]), torch.stack(grads)


CASES = {
    "token_mean": ("grpo", {"algorithm.aggregation": "token_mean", "algorithm.entropy_coef": 0.01}),
    "seq_mean_token_mean": ("grpo", {}),
    "dr_grpo": ("dr_grpo", {}),
    "gspo": ("gspo", {"algorithm.minibatches": 1}),  # a sequence-level loss
    # a sequence-level loss under a per-token aggregation, on completions of varied lengths: its share still
    # counts sequences, not tokens
    "gspo_token_mean": ("gspo", {"algorithm.minibatches": 1, "algorithm.aggregation": "token_mean",
                                 "rollout.task": "length", "rollout.max_new_tokens": 8}),  # lengths that vary
    # k1 in the loss has a gradient on the first step (k3's is 0 at pi = ref): the KL term's share is checked
    "kl_in_loss": ("grpo", {"kl.placement": "loss", "kl.estimator": "k1", "kl.coef": 0.5,
                            "algorithm.aggregation": "token_mean"}),
    "ppo": ("ppo", {"algorithm.epochs": 1}),         # a critic, two shuffled minibatches
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_step_with_micro_batches_equals_the_whole_minibatch(case):
    recipe, over = CASES[case]
    w_whole, g_whole = one_step(recipe, over, 0)
    w_micro, g_micro = one_step(recipe, over, 3)  # 8 rows (or minibatches of 4): parts of 3 cut across groups
    assert float(g_whole.abs().max()) > 1e-4
    # float32 sums in another order: a few ulps of the largest element (1e-5 of it was 1.09x exceeded by one element
    # of 32,768 on a 16-thread CPU). A wrong share or normaliser is off by a sizeable fraction of the gradient.
    torch.testing.assert_close(g_micro, g_whole, atol=5e-5 * float(g_whole.abs().max()), rtol=1e-4)
    torch.testing.assert_close(w_micro, w_whole, atol=1e-6, rtol=0)


def test_micro_batches_normalised_by_themselves_take_another_step(monkeypatch):
    w_whole, g_whole = one_step("grpo", {"algorithm.aggregation": "token_mean"}, 0)
    monkeypatch.setattr(trainer_module, "_share", lambda mask, whole, max_len: whole is not None and (lambda mode: 1.0))
    w_own, g_own = one_step("grpo", {"algorithm.aggregation": "token_mean"}, 3)
    assert not torch.allclose(g_own, g_whole, atol=1e-5 * float(g_whole.abs().max()), rtol=1e-4)
    assert float((w_own - w_whole).abs().max()) > 1e-4


def test_micro_batch_size_is_checked():
    with pytest.raises(ConfigError, match="micro_batch_size = -1"):
        check(build("grpo", {"algorithm.micro_batch_size": -1}))
    with pytest.raises(ConfigError, match="TRPO's natural-gradient step"):
        check(build("trpo", {"algorithm.micro_batch_size": 2}))
    check(build("grpo", {"algorithm.micro_batch_size": 2}))

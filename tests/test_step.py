"""The training step where its parts meet, on the real tiny model: each test pins one wiring fact that a one-line
bug would break (tests/mutants.py checks that they do), and every option of the config runs at least once."""

import dataclasses

import pytest
import torch

from labcore.config import build, flat
from labcore.trainer import Trainer

SMALL = {"rollout.prompts_per_step": 4, "rollout.samples_per_prompt": 2, "rollout.max_new_tokens": 4,
         "run.grad_variance": False, "run.log_samples": 2}


def lora(trainer):
    return torch.cat([p.detach().flatten().clone() for p in trainer.params])


def constant_reward(trainer, value=1.0):
    """Every completion scores `value`: no group carries a signal."""
    def same(prompts, completions, **kw):
        return [value] * len(completions)
    trainer.task = dataclasses.replace(trainer.task, reward_funcs=(same,), reward_weights=(1.0,))
    return trainer


@pytest.mark.parametrize("fast", [True, False])
def test_no_signal_means_no_update_and_exactly_zero_kl(fast):
    """GRPO's default (k3 KL in the loss) with flat rewards: the policy with a fresh adapter and the reference
    give bit-identical log-probs, so the KL is exactly 0, every gradient is 0 and nothing moves."""
    trainer = constant_reward(Trainer(build("grpo", {**SMALL, "model.fast_forward": fast})))
    before = lora(trainer)
    for _ in range(3):
        m = trainer.train_step().metrics
        assert m["kl/mean"] == 0.0 and m["groups/zero_std_frac"] == 1.0
    assert torch.equal(lora(trainer), before)


def test_a_fully_masked_batch_skips_the_optimiser_step():
    """DAPO filters every flat group: nothing is in the loss, so AdamW must not step (its momentum would move
    the weights a full step with a zero gradient). The first step has signal, the second none."""
    trainer = Trainer(build("dapo", {**SMALL, "algorithm.minibatches": 1, "rollout.overlong_buffer": 0}))
    trainer.train_step()
    after_first = lora(trainer)
    m = constant_reward(trainer).train_step().metrics
    assert m["update/skipped_frac"] == 1.0
    assert torch.equal(lora(trainer), after_first)


def test_dynamic_filter_reads_the_task_score_not_the_kl_shaped_reward():
    """With KL in the reward every shaped reward differs a little; a group is still flat when its task rewards
    are equal (DAPO eq. 11)."""
    trainer = Trainer(build("dapo", {**SMALL, "kl.placement": "reward_token", "kl.coef": 0.5, "kl.estimator": "k1",
                                     "algorithm.minibatches": 1, "rollout.overlong_buffer": 0}))
    trainer.train_step()  # the adapter moves, so the KL is no longer 0
    m = constant_reward(trainer).train_step().metrics
    assert m["kl/mean"] != 0.0
    assert m["groups/zero_std_frac"] == 1.0 and m["update/skipped_frac"] == 1.0


def test_the_entropy_bonus_is_aggregated_like_the_policy_loss():
    """Dr. GRPO divides by B * max_new_tokens, not by the step's longest completion."""
    trainer = Trainer(build("dr_grpo", {**SMALL, "algorithm.entropy_coef": 0.1, "rollout.max_new_tokens": 6}))
    B, T = 2, 3
    out = {"logp": torch.zeros(B, T), "entropy": torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])}
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    old = _old(B, T)
    loss, info = trainer.policy_objective(out, old, torch.zeros(B, T), mask, None)
    assert info["loss/entropy"] == pytest.approx(10.0 / (B * 6))
    assert loss.item() == pytest.approx(-0.1 * 10.0 / (B * 6))


def _old(B, T):
    from labcore.trainer import Old
    return Old(torch.zeros(B, T), torch.zeros(B, T), torch.zeros(B, T))


def test_the_moving_average_baseline_tracks_what_it_is_subtracted_from():
    """With reward normalisation the shaped rewards have mean 0, so the moving average of them is 0 after one
    step (it once tracked the raw task reward, leaving every advantage about -0.6)."""
    trainer = Trainer(build("reinforce_baseline", {**SMALL, "algorithm.baseline": "moving_average",
                                                   "rollout.reward_normalize": True, "kl.placement": "none"}))
    trainer.train_step()
    assert trainer.ema_reward == pytest.approx(0.0, abs=1e-5)
    m = trainer.train_step().metrics
    assert abs(m["adv/mean"]) < 1.0


def test_a_live_kl_change_resets_the_adaptive_controller():
    trainer = Trainer(build("ppo", {**SMALL, "kl.controller": "adaptive", "kl.target": 0.01, "kl.horizon": 10,
                                    "algorithm.minibatches": 1}))
    trainer.train_step()
    assert trainer.kl_ctl.value != 0.02  # it adapted
    trainer.live.kl_coef = 0.3
    m = trainer.train_step().metrics  # set to 0.3, then one update of at most 0.2 * 8 samples / horizon 10
    assert 0.3 * (1 - 0.16) - 1e-9 <= m["kl/coef"] <= 0.3 * (1 + 0.16) + 1e-9
    m2 = trainer.train_step().metrics
    assert m2["kl/coef"] != m["kl/coef"]  # applied once, then the controller adapts from there


def test_the_reference_reset_makes_the_current_policy_the_reference():
    """ProRL: after the reset at step 2 the KL of step 3's samples to the new reference is exactly 0."""
    trainer = Trainer(build("grpo", {**SMALL, "kl.reset_every": 2}))
    kls = [trainer.train_step().metrics["kl/mean"] for _ in range(3)]
    assert kls[1] > 0 and kls[2] == 0.0


def test_top_p_makes_the_sampler_differ_and_the_importance_weights_see_it():
    """Sampling from the top_p-truncated distribution while learning the full one: pi_learner / pi_sampler < 1
    on the kept tokens; with top_p = 1 the weights are exactly 1."""
    on = Trainer(build("grpo", {**SMALL, "rollout.top_p": 0.7, "algorithm.is_correction": "token_tis"}))
    assert on.train_step().metrics["is/weight_mean"] < 1.0
    off = Trainer(build("grpo", {**SMALL, "algorithm.is_correction": "token_tis"}))
    assert off.train_step().metrics["is/weight_mean"] == 1.0


def test_top_entropy_mask_trains_on_a_share_of_the_tokens():
    m = Trainer(build("grpo", {**SMALL, "algorithm.top_entropy_frac": 0.2})).train_step().metrics
    assert 0 < m["tokens/trained_frac"] < 0.5


def test_raft_pushes_only_the_accepted_completions():
    """Every logged completion's advantage is 1 (reward >= 1: right and well formed) or 0."""
    result = Trainer(build("raft", {**SMALL, "run.log_samples": 8, "algorithm.dynamic_filter": False})).train_step()
    for s in result.samples:
        assert s["advantage"] == (1.0 if s["reward"] >= 1.0 else 0.0), s


# Every setting of the config runs in at least one real step. Each entry: overrides, and the recipe.
OPTIONS = [
    ("grpo", {"algorithm.entropy_coef": 0.01}),
    ("ppo", {"kl.controller": "adaptive", "kl.target": 0.5, "kl.horizon": 500, "algorithm.minibatches": 1}),
    ("grpo", {"algorithm.top_entropy_frac": 0.5}),
    ("reinforce_baseline", {"algorithm.baseline": "moving_average"}),
    ("grpo", {"rollout.missing_eos_penalty": 0.5, "rollout.reward_clip": 0.5, "rollout.reward_normalize": True}),
    ("grpo", {"rollout.mask_truncated": True, "rollout.max_new_tokens": 2}),
    ("grpo", {"rollout.top_p": 0.8, "algorithm.is_correction": "seq_mis", "algorithm.is_cap": 1.5}),
    ("grpo", {"algorithm.is_correction": "token_mis"}),
    ("grpo", {"algorithm.is_correction": "seq_tis", "rollout.top_p": 0.9}),
    ("grpo", {"algorithm.dual_clip": 3.0, "algorithm.epochs": 2, "algorithm.scale": "batch_std"}),
    ("grpo", {"kl.estimator": "k3_is"}),
    ("grpo", {"kl.estimator": "k2", "optim.grad_clip": 0.0, "optim.weight_decay": 0.01}),
    ("grpo", {"model.lora_dropout": 0.1, "model.lora_rank": 2, "model.lora_alpha": 4.0,
              "model.lora_targets": "q_proj,v_proj"}),
    ("reinforce", {"algorithm.gamma": 0.9, "algorithm.whiten": True}),
    ("ppo", {"algorithm.value_clip": 0.0, "algorithm.lam": 0.5, "algorithm.value_lr": 0.005}),
    ("trpo", {"algorithm.entropy_coef": 0.01, "algorithm.critic_iters": 2, "algorithm.trpo_cg_iters": 3,
              "algorithm.trpo_damping": 0.2, "algorithm.trpo_max_kl": 0.02}),
    ("gmpo", {}), ("sapo", {}), ("raft", {"algorithm.positive_threshold": 0.5}),
    ("grpo", {"rollout.temperature": 0.7, "run.grad_variance": True, "run.grad_variance_every": 1}),
    ("dapo", {"rollout.overlong_buffer": 2, "rollout.overlong_penalty": 0.5}),
    ("grpo", {"algorithm.ema_decay": 0.5, "algorithm.baseline": "moving_average", "kl.reset_every": 1}),
]


@pytest.mark.parametrize("recipe,over", OPTIONS, ids=[f"{r}-{'-'.join(o) or 'defaults'}" for r, o in OPTIONS])
def test_every_option_runs(recipe, over):
    trainer = Trainer(build(recipe, {**SMALL, **over}))
    for _ in range(2):
        m = trainer.train_step().metrics
    assert all(v == v for v in m.values()), m


def test_the_option_table_covers_every_setting():
    """A new setting must be added to OPTIONS (or be exercised by the recipes themselves)."""
    from labcore.recipes import RECIPES

    covered = {k for _, over in OPTIONS for k in over} | {k for r in RECIPES.values() for k in r.defaults} | set(SMALL)
    exercised_elsewhere = {"model.policy", "model.reward_model", "model.device", "model.fast_forward", "rollout.task", "algorithm.recipe",
                           "run.steps", "run.seed", "run.name", "run.log_samples",
                           # your own data, rewards and checkpoints: tests/test_own_task.py, tests/test_checkpoint.py
                           "rollout.dataset", "rollout.reward_fns", "rollout.reward_weights", "rollout.chat_template",
                           "model.adapter", "run.save_every", "run.resume",
                           "algorithm.micro_batch_size"}  # tests/test_micro_batch.py
    assert set(flat(build("grpo"))) <= covered | exercised_elsewhere


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["none", "reward_token", "reward_seq", "loss"])
def test_reward_rises_with_every_kl_placement(placement):
    """30 steps of REINFORCE with a group baseline on arithmetic: the mean reward of the last 10 steps beats
    the first 10, whatever the KL placement."""
    trainer = Trainer(build("grpo", {"kl.placement": placement, "kl.coef": 0.02, "kl.estimator": "k1"
                                     if placement.startswith("reward") else "k3", "run.grad_variance": False}))
    r = [trainer.train_step().metrics["reward/mean"] for _ in range(30)]
    assert sum(r[-10:]) > sum(r[:10])


@pytest.mark.parametrize("fast", [True, False])
def test_zero_advantages_mean_zero_update_on_a_smollm2_shaped_model(tmp_path, fast):
    """A saved random Llama of SmolLM2-135M's widths (576 hidden, 9 heads, 3 KV heads, 1536 MLP; 2 layers): with
    every advantage 0 and KL in the loss, the KL stays exactly 0 and the adapter does not move. (The sampling
    loop doubling as the training forward once rounded differently from the reference: KL 0 -> 0.05 in 5 steps.)"""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from labcore.model import BUILTIN

    tok = AutoTokenizer.from_pretrained(BUILTIN["tiny"])
    config = LlamaConfig(vocab_size=len(tok), hidden_size=576, intermediate_size=1536, num_hidden_layers=2,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=256,
                         rope_theta=100000.0, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    trainer = constant_reward(Trainer(build("grpo", {**SMALL, "model.policy": str(tmp_path), "model.device": "cpu",
                                                     "model.fast_forward": fast})))
    before = lora(trainer)
    kls = [trainer.train_step().metrics["kl/mean"] for _ in range(3)]
    assert kls == [0.0, 0.0, 0.0]
    assert torch.equal(lora(trainer), before)


def test_dynamic_sampling_refills_the_batch_with_groups_that_carry_signal():
    """DAPO's dynamic sampling: a reward that varies only on prompts whose first number is even leaves about
    half the groups of a round flat; extra rounds replace them, so the trained batch has none (seed fixed)."""
    def half(prompts, completions, **kw):
        return [float(i % 2) if int(p.split()[0]) % 2 == 0 else 0.0 for i, p in enumerate(prompts)]

    trainer = Trainer(build("dapo", {**SMALL, "algorithm.minibatches": 1, "rollout.overlong_buffer": 0,
                                     "algorithm.resample_rounds": 4}))
    trainer.task = dataclasses.replace(trainer.task, reward_funcs=(half,), reward_weights=(1.0,))
    result = trainer.train_step()
    m = result.metrics
    assert m["groups/resample_rounds"] >= 1 and m["groups/zero_std_frac"] == 0.0
    assert len({s["prompt"] for s in result.samples}) >= 1 and m["update/skipped_frac"] == 0.0
    single = Trainer(build("dapo", {**SMALL, "algorithm.minibatches": 1, "rollout.overlong_buffer": 0,
                                    "algorithm.resample_rounds": 0}))
    single.task = trainer.task
    assert single.train_step().metrics["groups/zero_std_frac"] > 0


def test_batches_concatenate_with_their_padding():
    from labcore.rollout import Batch

    a = Batch(torch.tensor([[5, 6]]), torch.tensor([[1, 1]]), torch.tensor([[7, 0, 0]]), torch.tensor([[1.0, 0, 0]]),
              torch.tensor([True]), 1)
    b = Batch(torch.tensor([[9]]), torch.tensor([[1]]), torch.tensor([[3]]), torch.tensor([[1.0]]),
              torch.tensor([False]), 1)
    c = Batch.concat([a, b], pad_id=0)
    assert c.prompt_ids.tolist() == [[5, 6], [0, 9]] and c.prompt_mask.tolist() == [[1, 1], [0, 1]]
    assert c.completion_ids.tolist() == [[7, 0, 0], [3, 0, 0]] and c.mask.tolist() == [[1, 0, 0], [1, 0, 0]]
    assert c.eos.tolist() == [True, False]


def test_the_kl_chart_and_penalty_use_the_policy_against_the_reference():
    """Each logged token's KL is k1 = log pi - log pi_ref, in that order (swapped, its sign flips)."""
    trainer = Trainer(build("grpo", {**SMALL, "run.log_samples": 8, "kl.estimator": "k1"}))
    trainer.train_step()  # move the adapter off the reference
    samples = trainer.train_step().samples
    for s in samples:
        want = torch.tensor(s["logp"]) - torch.tensor(s["ref_logp"])
        assert torch.allclose(torch.tensor(s["kl"]), want, atol=2e-4), s
    assert any(abs(v) > 1e-3 for s in samples for v in s["kl"])


def test_kl_in_the_loss_is_a_penalty():
    """adv 0, log pi = 0, log pi_ref = -0.5: the loss is +beta * k3 = 0.04 * (e^-0.5 - 1 + 0.5) > 0."""
    trainer = Trainer(build("grpo", SMALL))
    old = _old(2, 3)
    old.ref_logp = torch.full((2, 3), -0.5)
    loss, info = trainer.policy_objective({"logp": torch.zeros(2, 3)}, old, torch.zeros(2, 3), torch.ones(2, 3), None)
    k3 = float(torch.exp(torch.tensor(-0.5)) - 1 + 0.5)
    assert info["loss/kl"] == pytest.approx(k3, rel=1e-5) and loss.item() == pytest.approx(0.04 * k3, rel=1e-5)


def test_remax_shapes_the_greedy_reward_with_the_sampled_batchs_statistics():
    from labcore.parts import RewardNorm

    trainer = Trainer(build("remax", {**SMALL, "rollout.reward_normalize": True}))
    greedy = trainer.greedy_rewards(trainer.prompts(4), RewardNorm(mean=10.0, std=1.0))
    assert (greedy < -8.0).all()  # raw rewards <= 1.2, minus the given mean 10, over std 1


def test_unscorable_completions_get_no_advantage():
    """A reward function that cannot score the first completion of every group of 4: those get advantage 0 (RLOO:
    their filled-in reward minus the others' mean would not be 0)."""
    def partial(prompts, completions, **kw):
        return [None if i % 4 == 0 else float(i % 4) for i, c in enumerate(completions)]

    trainer = Trainer(build("rloo", {**SMALL, "rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 4,
                                     "run.log_samples": 8}))
    trainer.task = dataclasses.replace(trainer.task, reward_funcs=(partial,), reward_weights=(1.0,))
    trainer.train_step()  # the second step has a KL in each reward, so a filled-in reward would differ
    samples = trainer.train_step().samples
    assert [s["advantage"] for s in samples[::4]] == [0.0, 0.0]
    assert any(s["advantage"] != 0.0 for s in samples)

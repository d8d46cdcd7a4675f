"""The recipes: each algorithm as defaults for the named parts, with its paper.

A recipe is data (a dict of dotted settings) plus a citation; `labcore.config.build` applies it, and
`labcore.algorithms` lists the parts it is made of. This module imports nothing of labcore, so config and the
algorithms can both read it without an import cycle. ESTIMATORS and UPDATES are the two lists of choices that
have no function dict of their own (the trainer's step implements them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ESTIMATORS = {
    "outcome": "one number per completion, broadcast to its tokens (bandit view; GRPO, RLOO)",
    "returns": "per-token discounted return G_t = sum of gamma^k r_(t+k) (REINFORCE, REINFORCE++)",
    "gae": "generalised advantage estimation with a learned value (Schulman et al. 2016); lambda 0 is one-step TD",
    "positives": "advantage 1 for completions whose reward reaches positive_threshold, else 0 (RAFT, rejection sampling)",
}
UPDATES = {
    "gradient": "Adam on the loss (with epochs and minibatches)",
    "trpo": "natural-gradient step by conjugate gradient, then a backtracking line search under a KL limit",
}


@dataclass(frozen=True)
class Recipe:
    title: str
    paper: str
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)


_PG = {"algorithm.estimator": "outcome", "algorithm.policy_loss": "pg", "algorithm.epochs": 1,
       "algorithm.minibatches": 1, "algorithm.whiten": False, "algorithm.dynamic_filter": False,
       "algorithm.update": "gradient", "kl.controller": "fixed"}
_GROUP = {**_PG, "algorithm.baseline": "group_mean", "algorithm.scale": "group_std",
          "algorithm.policy_loss": "clip", "algorithm.clip_low": 0.2, "algorithm.clip_high": 0.2}
_CRITIC = {**_PG, "algorithm.estimator": "gae", "algorithm.baseline": "value", "algorithm.scale": "none",
           "algorithm.aggregation": "token_mean", "kl.placement": "reward_token", "kl.estimator": "k1",
           "kl.coef": 0.02}

RECIPES: dict[str, Recipe] = {
    "reinforce": Recipe(
        "REINFORCE", "Williams 1992, Simple statistical gradient-following algorithms",
        "The plain likelihood-ratio gradient: every token is pushed by its discounted return, no baseline.",
        {**_PG, "algorithm.estimator": "returns", "algorithm.baseline": "none", "algorithm.scale": "none",
         "algorithm.aggregation": "seq_mean_token_sum", "kl.placement": "reward_token", "kl.estimator": "k1",
         "kl.coef": 0.02}),
    "reinforce_baseline": Recipe(
        "REINFORCE with baseline", "Williams 1992; Sutton & Barto 2018, section 13.4",
        "REINFORCE minus the batch's mean reward: same expected gradient, lower variance.",
        {**_PG, "algorithm.estimator": "returns", "algorithm.baseline": "batch_mean", "algorithm.scale": "none",
         "algorithm.aggregation": "seq_mean_token_sum", "kl.placement": "reward_token", "kl.estimator": "k1",
         "kl.coef": 0.02}),
    "actor_critic": Recipe(
        "Actor-critic (one-step TD)", "Konda & Tsitsiklis 2000; Mnih et al. 2016 (A2C)",
        "A learned critic is the baseline; the advantage is the one-step TD error of the whole completion taken "
        "as one action, r + gamma V(end) - V(prompt) = r - V(prompt). Token-level TD: estimator gae, lambda 0.",
        # Token-level one-step TD (gae, lam 0) starves the answer token on arithmetic: its advantage is
        # V(s_1) - V(s_0), and a critic that cannot yet do arithmetic makes that ~0 (measured: no gain in 100
        # steps). The bandit view is the same TD rule one level up, and it learns (benchmarks in README).
        {**_CRITIC, "algorithm.estimator": "outcome", "algorithm.lam": 0.0,
         "algorithm.value_lr": 0.01}),
    "ppo": Recipe(
        "PPO with GAE", "Schulman et al. 2017, Proximal Policy Optimization; Ouyang et al. 2022 (KL per token)",
        "Clipped surrogate over several epochs of minibatches, GAE advantages from a clipped value head.",
        {**_CRITIC, "algorithm.policy_loss": "clip", "algorithm.clip_low": 0.2, "algorithm.clip_high": 0.2,
         "algorithm.lam": 0.95, "algorithm.whiten": True, "algorithm.epochs": 2, "algorithm.minibatches": 2,
         "algorithm.value_clip": 0.2,
         "optim.lr": 1.5e-3}),  # 4 updates per batch: half the step size (at 3e-3 the KL ran to 4 in 100 steps)
    "trpo": Recipe(
        "TRPO", "Schulman et al. 2015, Trust Region Policy Optimization (GAE critic: Schulman et al. 2016)",
        "A natural-gradient step on the importance-ratio surrogate, found by conjugate gradient, scaled to a KL "
        "trust region, then a backtracking line search that checks the real KL and improvement.",
        {**_CRITIC, "algorithm.update": "trpo", "algorithm.policy_loss": "ratio", "algorithm.lam": 0.95,
         "algorithm.whiten": True, "algorithm.trpo_max_kl": 0.01, "algorithm.critic_iters": 5}),
    "rloo": Recipe(
        "RLOO", "Ahmadian et al. 2024, Back to Basics: Revisiting REINFORCE Style Optimization (Kool et al. 2019)",
        "REINFORCE on the whole completion with the mean reward of the other K-1 samples as the baseline.",
        {**_PG, "algorithm.baseline": "leave_one_out", "algorithm.scale": "none",
         "algorithm.aggregation": "seq_mean_token_sum", "kl.placement": "reward_seq", "kl.estimator": "k1",
         "kl.coef": 0.05}),
    "grpo": Recipe(
        "GRPO", "Shao et al. 2024, DeepSeekMath",
        "Group-normalised advantages, the PPO clip per token, length-normalised per sequence, k3 KL in the loss.",
        {**_GROUP, "algorithm.aggregation": "seq_mean_token_mean", "kl.placement": "loss", "kl.estimator": "k3",
         "kl.coef": 0.04}),
    "dr_grpo": Recipe(
        "Dr. GRPO", "Liu et al. 2025, Understanding R1-Zero-Like Training: A Critical Perspective",
        "GRPO without its two biases: no division by the group std, and a constant length normaliser.",
        {**_GROUP, "algorithm.scale": "none", "algorithm.aggregation": "seq_mean_token_sum_norm",
         "kl.placement": "none", "kl.estimator": "k3", "kl.coef": 0.0}),
    "dapo": Recipe(
        "DAPO", "Yu et al. 2025, DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
        "Clip-higher (epsilon_high 0.28), token-mean loss, dynamic sampling (groups without reward variance are "
        "resampled, up to 3 extra rounds, then dropped), a soft overlong penalty, and no KL.",
        {**_GROUP, "algorithm.clip_high": 0.28, "algorithm.aggregation": "token_mean",
         "algorithm.dynamic_filter": True, "algorithm.resample_rounds": 3, "algorithm.minibatches": 2, "rollout.overlong_buffer": 2,
         "kl.placement": "none", "kl.estimator": "k3", "kl.coef": 0.0}),
    "reinforce_pp": Recipe(
        "REINFORCE++", "Hu 2025, REINFORCE++: A Simple and Efficient Approach for Aligning LLMs",
        "Per-token KL in the reward, returns-to-go, advantages whitened over the whole batch, PPO clip.",
        {**_PG, "algorithm.estimator": "returns", "algorithm.baseline": "none", "algorithm.scale": "none",
         "algorithm.whiten": True, "algorithm.policy_loss": "clip", "algorithm.aggregation": "token_mean",
         "kl.placement": "reward_token", "kl.estimator": "k1", "kl.coef": 0.01}),
    "reinforce_pp_baseline": Recipe(
        "REINFORCE++-baseline", "Hu 2025 (OpenRLHF reinforce_baseline)",
        "REINFORCE++ after subtracting each prompt's group mean reward: suited to verifiable rewards.",
        {**_PG, "algorithm.estimator": "returns", "algorithm.baseline": "group_mean", "algorithm.scale": "none",
         "algorithm.whiten": True, "algorithm.policy_loss": "clip", "algorithm.aggregation": "token_mean",
         "kl.placement": "reward_token", "kl.estimator": "k1", "kl.coef": 0.01}),
    "gspo": Recipe(
        "GSPO", "Zheng et al. 2025, Group Sequence Policy Optimization",
        "One length-normalised importance ratio per sequence, clipped per sequence (tiny epsilons).",
        # The paper's section 5.1 ranges, as TRL and verl use them (we once used 10x these without a word). With
        # two minibatches the second one's sequence ratios mostly fall outside them: GSPO clips far more than
        # GRPO, the point its figure 2 makes, and still learns from what stays inside.
        {**_GROUP, "algorithm.policy_loss": "gspo", "algorithm.clip_low": 3e-4, "algorithm.clip_high": 4e-4,
         "algorithm.aggregation": "seq_mean_token_mean", "algorithm.minibatches": 2, "kl.placement": "none",
         "kl.estimator": "k3", "kl.coef": 0.0}),
    "cispo": Recipe(
        "CISPO", "MiniMax 2025, MiniMax-M1 (Clipped IS-weight Policy Optimization)",
        "REINFORCE weighted by a clipped, stop-gradient importance ratio: no token ever loses its gradient.",
        # MiniMax-M1 leaves the lower bound effectively open; TRL clips only above (epsilon_high 5); verl and the
        # rlhf-book clip both sides. We follow the paper: a lower bound near 0 and an upper bound of 1 + 4.
        {**_GROUP, "algorithm.policy_loss": "cispo", "algorithm.clip_low": 0.99, "algorithm.clip_high": 4.0,
         "algorithm.aggregation": "token_mean", "algorithm.minibatches": 2, "kl.placement": "none",
         "kl.estimator": "k3", "kl.coef": 0.0}),
    "gmpo": Recipe(
        "GMPO", "Zhao et al. 2025, Geometric-Mean Policy Optimization (arXiv:2507.20673)",
        "GRPO with the geometric mean of the token ratios, each clipped in log space first (range e^+-0.4).",
        {**_GROUP, "algorithm.policy_loss": "gmpo", "algorithm.clip_low": 0.4, "algorithm.clip_high": 0.4,
         "algorithm.minibatches": 2, "kl.placement": "none", "kl.estimator": "k3", "kl.coef": 0.0}),
    "sapo": Recipe(
        "SAPO", "Gao et al. 2025, Soft Adaptive Policy Optimization (arXiv:2511.20347)",
        "GRPO with a soft sigmoid gate on the ratio in place of the hard clip (tau 1.0 for A > 0, 1.05 for A < 0).",
        # Half the default lr: the soft gate never cuts a token's gradient, so over two minibatches tokens already
        # far outside the trust region keep moving; at 3e-3 the KL ran to 3.9 and the reward did not rise in 100
        # steps (benchmarks/learning.py, seed 0), at 1.5e-3 it gains +0.32 with a KL of 0.29.
        {**_GROUP, "algorithm.policy_loss": "sapo", "algorithm.minibatches": 2, "kl.placement": "none",
         "kl.estimator": "k3", "kl.coef": 0.0, "optim.lr": 1.5e-3}),
    "raft": Recipe(
        "RAFT / Reinforce-Rej", "Xiong et al. 2025, A Minimalist Approach to LLM Reasoning (arXiv:2504.11343)",
        "Rejection sampling as RL: push up the correct completions only (advantage 1), and drop prompts whose "
        "samples are all right or all wrong.",
        {**_PG, "algorithm.estimator": "positives", "algorithm.positive_threshold": 1.0, "algorithm.baseline": "none",
         "algorithm.scale": "none", "algorithm.aggregation": "token_mean", "algorithm.dynamic_filter": True,
         "kl.placement": "none", "kl.estimator": "k3", "kl.coef": 0.0}),
    "remax": Recipe(
        "ReMax", "Li et al. 2023, ReMax: A Simple, Effective, and Efficient RL Method for Aligning LLMs",
        "REINFORCE with the reward of the greedy completion of the same prompt as the baseline.",
        {**_PG, "algorithm.baseline": "greedy", "algorithm.scale": "none",
         "algorithm.aggregation": "seq_mean_token_sum", "kl.placement": "reward_seq", "kl.estimator": "k1",
         "kl.coef": 0.02}),
}

"""Algorithms as recipes of named parts.

Every part is listed in a plain dict next to the functions that implement it (TensorFlow Playground's
`state.ts` style), and the UI's dropdowns enumerate the same dicts. A recipe is nothing but defaults for those
parts plus a citation; `describe` assembles the objective's LaTeX from the parts a config picks, so a user who
swaps GRPO's aggregation for Dr. GRPO's sees the formula change.

Parts: estimator (how a reward becomes a per-token signal), baseline, scale, policy loss, aggregation, KL
placement, KL estimator, KL controller, and the update rule (Adam or TRPO's natural gradient).
Left out: SAPO, GMPO, VESPO and off-policy importance-sampling corrections (we sample and learn with one model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labcore import advantages, kl, losses
from labcore.config import EXTRA_BASELINES, Config

ESTIMATORS = {
    "outcome": "one number per completion, broadcast to its tokens (bandit view; GRPO, RLOO)",
    "returns": "per-token discounted return G_t = sum of gamma^k r_(t+k) (REINFORCE, REINFORCE++)",
    "gae": "generalised advantage estimation with a learned value (Schulman et al. 2016); lambda 0 is one-step TD",
}
BASELINES = {**advantages.BASELINES, **EXTRA_BASELINES}
SCALES = advantages.SCALES
POLICY_LOSSES = losses.POLICY_LOSSES
AGGREGATIONS = losses.AGGREGATIONS
KL_PLACEMENTS = {
    "none": "no KL penalty (the KL to the reference is still measured for the KL chart)",
    "reward_token": "-beta * KL_t added to each token's reward (InstructGPT, PPO in TRL/OpenRLHF/verl)",
    "reward_seq": "-beta * sum_t KL_t subtracted from the completion's reward (RLOO in TRL)",
    "loss": "+beta * KL added to the loss, aggregated like the policy loss (GRPO)",
}
KL_ESTIMATORS = kl.ESTIMATORS
KL_CONTROLLERS = kl.CONTROLLERS
UPDATES = {
    "gradient": "Adam on the loss (with epochs and minibatches)",
    "trpo": "natural-gradient step by conjugate gradient, then a backtracking line search under a KL limit",
}

# Every part a recipe is made of, with its dict: the UI lists these and shows the recipe-diff over them.
PARTS: dict[str, tuple[str, dict[str, str]]] = {
    "estimator": ("algorithm.estimator", ESTIMATORS),
    "baseline": ("algorithm.baseline", BASELINES),
    "scale": ("algorithm.scale", SCALES),
    "policy_loss": ("algorithm.policy_loss", POLICY_LOSSES),
    "aggregation": ("algorithm.aggregation", AGGREGATIONS),
    "update": ("algorithm.update", UPDATES),
    "kl_placement": ("kl.placement", KL_PLACEMENTS),
    "kl_estimator": ("kl.estimator", KL_ESTIMATORS),
    "kl_controller": ("kl.controller", KL_CONTROLLERS),
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
        {**_CRITIC, "algorithm.estimator": "outcome", "algorithm.lam": 0.0, "algorithm.vf_coef": 0.5,
         "algorithm.value_lr": 0.01}),
    "ppo": Recipe(
        "PPO with GAE", "Schulman et al. 2017, Proximal Policy Optimization; Ouyang et al. 2022 (KL per token)",
        "Clipped surrogate over several epochs of minibatches, GAE advantages from a clipped value head.",
        {**_CRITIC, "algorithm.policy_loss": "clip", "algorithm.clip_low": 0.2, "algorithm.clip_high": 0.2,
         "algorithm.lam": 0.95, "algorithm.whiten": True, "algorithm.epochs": 2, "algorithm.minibatches": 2,
         "algorithm.value_clip": 0.2, "algorithm.vf_coef": 0.5,
         "optim.lr": 1.5e-3}),  # 4 updates per batch: half the step size (at 3e-3 the KL ran to 4 in 100 steps)
    "trpo": Recipe(
        "TRPO", "Schulman et al. 2015, Trust Region Policy Optimization (GAE critic: Schulman et al. 2016)",
        "A natural-gradient step found by conjugate gradient, scaled to a KL trust region, then a backtracking "
        "line search that checks the real KL and improvement.",
        {**_CRITIC, "algorithm.update": "trpo", "algorithm.lam": 0.95, "algorithm.whiten": True,
         "algorithm.trpo_max_kl": 0.01}),
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
        "Clip-higher (epsilon_high 0.28), token-mean loss, dynamic filtering of groups without reward variance, "
        "a soft overlong penalty, and no KL.",
        {**_GROUP, "algorithm.clip_high": 0.28, "algorithm.aggregation": "token_mean",
         "algorithm.dynamic_filter": True, "algorithm.minibatches": 2, "rollout.overlong_buffer": 2,
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
        {**_GROUP, "algorithm.policy_loss": "gspo", "algorithm.clip_low": 3e-3, "algorithm.clip_high": 4e-3,
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
    "remax": Recipe(
        "ReMax", "Li et al. 2023, ReMax: A Simple, Effective, and Efficient RL Method for Aligning LLMs",
        "REINFORCE with the reward of the greedy completion of the same prompt as the baseline.",
        {**_PG, "algorithm.baseline": "greedy", "algorithm.scale": "none",
         "algorithm.aggregation": "seq_mean_token_sum", "kl.placement": "reward_seq", "kl.estimator": "k1",
         "kl.coef": 0.02}),
}


# ------------------------------------------------------------------------------------------------ describe

_ADV_BASE = {
    "none": "r_i",
    "batch_mean": r"r_i - \frac{1}{PK}\sum_{j} r_j",
    "group_mean": r"r_i - \operatorname{mean}_{g(i)}(r)",
    "leave_one_out": r"r_i - \frac{1}{K-1}\sum_{j \in g(i),\, j \ne i} r_j",
    "moving_average": r"r_i - \bar r_{\text{EMA}}",
    "greedy": r"r_i - r(\hat y^{\text{greedy}}_{g(i)})",
    "value": r"r_i - V_\phi(x_i)",
}
_SCALE = {"none": "", "group_std": r"\operatorname{std}_{g(i)}(r) + \epsilon",
          "batch_std": r"\operatorname{std}_{\text{batch}}(r) + \epsilon"}
_LOSS = {
    "pg": r"\ell_{i,t} = -\hat A_{i,t}\,\log \pi_\theta(y_{i,t})",
    "clip": r"\ell_{i,t} = -\min\!\big(\rho_{i,t}\hat A_{i,t},\ \operatorname{clip}(\rho_{i,t}, 1-\epsilon_{lo}, "
            r"1+\epsilon_{hi})\,\hat A_{i,t}\big),\quad \rho_{i,t} = \frac{\pi_\theta(y_{i,t})}{\pi_{\text{old}}(y_{i,t})}",
    "cispo": r"\ell_{i,t} = -\operatorname{sg}\!\big[\operatorname{clip}(\rho_{i,t}, 1-\epsilon_{lo}, 1+\epsilon_{hi})\big]"
             r"\,\hat A_{i,t}\,\log \pi_\theta(y_{i,t})",
    "gspo": r"\ell_{i} = -\min\!\big(s_i \hat A_i,\ \operatorname{clip}(s_i, 1-\epsilon_{lo}, 1+\epsilon_{hi})\hat A_i\big),"
            r"\quad s_i = \exp\!\Big(\frac{1}{|y_i|}\sum_t \log\frac{\pi_\theta(y_{i,t})}{\pi_{\text{old}}(y_{i,t})}\Big)",
}
_AGG = {
    "token_mean": r"\frac{1}{\sum_i |y_i|}\sum_i \sum_{t} \ell_{i,t}",
    "seq_mean_token_mean": r"\frac{1}{B}\sum_i \frac{1}{|y_i|}\sum_{t} \ell_{i,t}",
    "seq_mean_token_sum": r"\frac{1}{B}\sum_i \sum_{t} \ell_{i,t}",
    "seq_mean_token_sum_norm": r"\frac{1}{B\,L_{\max}}\sum_i \sum_{t} \ell_{i,t}",
}
_KL_EST = {"k1": r"\log\frac{\pi_\theta}{\pi_{\text{ref}}}", "k2": r"\tfrac12\big(\log\frac{\pi_\theta}{\pi_{\text{ref}}}\big)^2",
           "k3": r"\frac{\pi_{\text{ref}}}{\pi_\theta} - \log\frac{\pi_{\text{ref}}}{\pi_\theta} - 1"}


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")


def describe_parts(cfg: Config) -> list[tuple[str, str, str]]:
    """[(part, LaTeX, one sentence on what it does)] for the parts `cfg` picks, in the order of a step."""
    a, k = cfg.algorithm, cfg.kl
    out: list[tuple[str, str, str]] = []
    beta = r"\beta"
    beta_note = (rf"\quad(\beta \to \text{{KL target }} {k.target:g})" if k.controller == "adaptive"
                 else rf"\quad(\beta = {k.coef:g})")
    if k.placement == "reward_seq":
        out.append(("kl", rf"r_i \leftarrow r_i - {beta}\sum_t k_{{i,t}},\quad k = {_KL_EST[k.estimator]}{beta_note}",
                    "The KL to the reference is charged once per completion, inside its reward."))
    elif k.placement == "reward_token":
        out.append(("kl", rf"r_{{i,t}} = -{beta}\,k_{{i,t}} + [t = |y_i|]\,r_i,\quad k = {_KL_EST[k.estimator]}{beta_note}",
                    "Every token pays its own KL in the reward; the task reward arrives at the last token."))
    if a.estimator == "gae":
        lam = "one-step TD" if a.lam == 0 else rf"\lambda={a.lam:g}"
        adv = (rf"\delta_t = r_t + \gamma V(s_{{t+1}}) - V(s_t),\quad \hat A_t = \sum_l (\gamma\lambda)^l \delta_{{t+l}}"
               rf"\quad(\gamma={a.gamma:g},\ {lam})")
        why = "A learned value head predicts the return; the advantage is how much better a token did than predicted."
    else:
        signal = "G_{i,t}" if a.estimator == "returns" else "r_i"
        base = _ADV_BASE[a.baseline].replace("r_i", signal, 1)
        adv = rf"\hat A_{{i,t}} = {base}" if not _SCALE[a.scale] else rf"\hat A_{{i,t}} = \frac{{{base}}}{{{_SCALE[a.scale]}}}"
        if a.estimator == "returns":
            adv += rf",\quad G_{{i,t}} = \sum_{{t' \ge t}} \gamma^{{t'-t}} r_{{i,t'}}\ (\gamma={a.gamma:g})"
        why = f"baseline: {_lower(BASELINES[a.baseline])}; scale: {_lower(SCALES[a.scale])}."
    out.append(("advantage", adv, why))
    if a.whiten:
        out.append(("whiten", r"\hat A \leftarrow \frac{\hat A - \operatorname{mean}(\hat A)}{\operatorname{std}(\hat A)}",
                    "Advantages are standardised over every token of the batch."))
    if a.dynamic_filter:
        out.append(("filter", r"\text{keep group } g \iff \operatorname{std}_g(r) > 0",
                    "Groups whose completions all scored the same carry no signal and are dropped."))
    out.append(("policy_loss", _LOSS[a.policy_loss], POLICY_LOSSES[a.policy_loss]))
    if a.dual_clip:
        out.append(("dual_clip", rf"\ell_{{i,t}} \leftarrow \min(\ell_{{i,t}}, -c\,\hat A_{{i,t}})\ \text{{if}}\ \hat A<0,\ c={a.dual_clip:g}",
                    "Caps the loss of very unlikely negative tokens (Ye et al. 2019)."))
    agg = _AGG[a.aggregation] if a.policy_loss != "gspo" else r"\frac{1}{B}\sum_i \ell_i"
    total = rf"\mathcal{{L}}_{{\text{{pg}}}} = {agg}"
    out.append(("aggregation", total, AGGREGATIONS[a.aggregation] if a.policy_loss != "gspo"
                else "GSPO averages its sequence losses over sequences."))
    extra = ""
    if k.placement == "loss":
        extra += rf" + {beta}\,\operatorname{{agg}}\big({_KL_EST[k.estimator]}\big)"
    note = beta_note if k.placement == "loss" else ""
    if a.entropy_coef:
        extra += rf" - {a.entropy_coef:g}\,\bar{{H}}"
    if a.baseline == "value":
        vl = r"\tfrac12\max\big((V-R)^2, (V_{\text{clip}}-R)^2\big)" if a.value_clip else r"\tfrac12 (V - R)^2"
        extra += rf" + {a.vf_coef:g}\,\overline{{{vl}}}"
    out.append(("objective", rf"\mathcal{{L}} = \mathcal{{L}}_{{\text{{pg}}}}{extra}{note}",
                "What the optimiser minimises" + (" (KL charged in the loss)." if k.placement == "loss" else ".")))
    if a.update == "trpo":
        out.append(("update", rf"\theta \leftarrow \theta - \alpha\, F^{{-1}} g,\ \ \tfrac12 \Delta\theta^\top F \Delta\theta"
                              rf" \le \delta = {a.trpo_max_kl:g}",
                    "The step follows the natural gradient, sized to the trust region, shrunk until the real KL fits."))
    return out


def describe(recipe_or_cfg: str | Config) -> str:
    """The objective that a recipe (by name) or a config optimises, as LaTeX display blocks."""
    from labcore.config import build

    cfg = build(recipe_or_cfg) if isinstance(recipe_or_cfg, str) else recipe_or_cfg
    return "\n".join(f"$$ {latex} $$" for _, latex, _ in describe_parts(cfg))

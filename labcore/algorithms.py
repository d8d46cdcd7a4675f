"""Algorithms as recipes of named parts.

Every part is listed in a plain dict next to the functions that implement it (TensorFlow Playground's
`state.ts` style), and the UI's dropdowns enumerate the same dicts. A recipe is nothing but defaults for those
parts plus a citation; `describe` assembles the objective's LaTeX from the parts a config picks, so a user who
swaps GRPO's aggregation for Dr. GRPO's sees the formula change.

Parts: estimator (how a reward becomes a per-token signal), baseline, scale, policy loss, aggregation, KL
placement, KL estimator, KL controller, and the update rule (Adam or TRPO's natural gradient).
Left out: VESPO, Clip-Cov/KL-Cov and the GSPO-token variant (see reference/algorithms.md).
"""

from __future__ import annotations

from labcore import kl, losses, parts
from labcore.config import Config
from labcore.recipes import ESTIMATORS, RECIPES, UPDATES, Recipe  # noqa: F401  (re-exported)


def _help(choices: dict) -> dict[str, str]:
    """name -> one line for the UI: a function's docstring's first line, or the text itself."""
    return {name: (v.__doc__ or "").strip().split("\n")[0] if callable(v) else v for name, v in choices.items()}


BASELINES = _help(parts.BASELINES)
SCALES = _help(parts.SCALES)
POLICY_LOSSES = _help(losses.POLICY_LOSSES)
AGGREGATIONS = losses.AGGREGATIONS
KL_PLACEMENTS = _help(parts.KL_PLACEMENTS)
KL_ESTIMATORS = kl.ESTIMATORS
KL_CONTROLLERS = kl.CONTROLLERS
IS_CORRECTIONS = _help(parts.IS_CORRECTIONS)

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
    "is_correction": ("algorithm.is_correction", IS_CORRECTIONS),
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
    "ratio": r"\ell_{i,t} = -\rho_{i,t}\hat A_{i,t},\quad \rho_{i,t} = \frac{\pi_\theta(y_{i,t})}{\pi_{\text{old}}(y_{i,t})}",
    "gmpo": r"\ell_{i} = -\hat A_i \exp\!\Big(\frac{1}{|y_i|}\sum_t \operatorname{sgn}(\hat A_i)\min\big(\operatorname{sgn}(\hat A_i)"
            r"\log\rho_{i,t},\ \operatorname{sgn}(\hat A_i)\operatorname{clip}(\log\rho_{i,t}, -\epsilon_{lo}, \epsilon_{hi})\big)\Big)",
    "sapo": r"\ell_{i,t} = -\tfrac{4}{\tau}\,\sigma\big(\tau(\rho_{i,t} - 1)\big)\hat A_{i,t},\quad \tau = 1 \text{ if } \hat A > 0 "
            r"\text{ else } 1.05",
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
           "k3": r"\frac{\pi_{\text{ref}}}{\pi_\theta} - \log\frac{\pi_{\text{ref}}}{\pi_\theta} - 1",
           "k3_is": r"\frac{\pi_\theta}{\operatorname{sg}(\pi_{\text{old}})}\Big(\frac{\pi_{\text{ref}}}{\pi_\theta} - \log\frac{\pi_{\text{ref}}}{\pi_\theta} - 1\Big)"}


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
    if a.estimator == "positives":
        adv = rf"\hat A_{{i,t}} = [\,r_i \ge {a.positive_threshold:g}\,]"
        why = "Rejection sampling: the accepted completions are pushed up alike, the rest are not trained on."
    elif a.estimator == "gae":
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
    if a.top_entropy_frac:
        out.append(("token_mask", rf"m_{{i,t}} \leftarrow m_{{i,t}}\,[H_{{i,t}} \ge H_{{(\lceil {a.top_entropy_frac:g}N \rceil)}}]",
                    f"Only the {a.top_entropy_frac:.0%} highest-entropy tokens of the batch are trained on."))
    if a.is_correction != "none":
        level = "t" if a.is_correction.startswith("token") else "i"
        w = r"\frac{\pi_{\text{old}}(y_{i,t})}{\pi_{\text{sampler}}(y_{i,t})}" if level == "t" else \
            r"\prod_t \frac{\pi_{\text{old}}(y_{i,t})}{\pi_{\text{sampler}}(y_{i,t})}"
        op = r"\min(w, C)" if a.is_correction.endswith("tis") else r"w\,[w \le C]"
        out.append(("is_correction", rf"\ell \leftarrow {op}\,\ell,\quad w = {w},\ C = {a.is_cap:g}",
                    IS_CORRECTIONS[a.is_correction]))
    if a.dynamic_filter:
        out.append(("filter", r"\text{keep group } g \iff \operatorname{std}_g(r) > 0",
                    "Groups whose completions all scored the same carry no signal and are dropped."))
    out.append(("policy_loss", _LOSS[a.policy_loss], POLICY_LOSSES[a.policy_loss]))
    if a.dual_clip:
        out.append(("dual_clip", rf"\ell_{{i,t}} \leftarrow \min(\ell_{{i,t}}, -c\,\hat A_{{i,t}})\ \text{{if}}\ \hat A<0,\ c={a.dual_clip:g}",
                    "Caps the loss of very unlikely negative tokens (Ye et al. 2019)."))
    per_sequence = losses.POLICY_LOSSES[a.policy_loss].level == "sequence"
    agg = _AGG[a.aggregation] if not per_sequence else r"\frac{1}{B}\sum_i \ell_i"
    total = rf"\mathcal{{L}}_{{\text{{pg}}}} = {agg}"
    out.append(("aggregation", total, AGGREGATIONS[a.aggregation] if not per_sequence
                else "A sequence-level loss: its sequence losses are averaged over sequences."))
    extra = ""
    if k.placement == "loss":
        extra += rf" + {beta}\,\operatorname{{agg}}\big({_KL_EST[k.estimator]}\big)"
    note = beta_note if k.placement == "loss" else ""
    if a.entropy_coef:
        extra += rf" - {a.entropy_coef:g}\,\bar{{H}}"
    why = "What the optimiser minimises" + (" (KL charged in the loss)." if k.placement == "loss" else ".")
    if k.placement == "loss":
        why += f" In the loss, {k.estimator}'s gradient follows {kl.LOSS_GRADIENT[k.estimator]}."
    out.append(("objective", rf"\mathcal{{L}} = \mathcal{{L}}_{{\text{{pg}}}}{extra}{note}", why))
    if a.baseline == "value":
        vl = r"\tfrac12\max\big((V-R)^2, (V_{\text{clip}}-R)^2\big)" if a.value_clip else r"\tfrac12 (V - R)^2"
        out.append(("critic", rf"\min_\phi\ \overline{{{vl}}}",
                    "The critic is fitted on its own (detached states, its own Adam group): it never pulls the policy."))
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


def advice(cfg: Config) -> list[str]:
    """Settings that run but do not do what they seem to, one sentence each (shown under the buttons). Which KL
    direction each estimator's gradient follows is in the Objective panel (describe_parts) for every setting."""
    a, k = cfg.algorithm, cfg.kl
    out = []
    if k.placement == "loss" and k.coef > 0 and k.estimator == "k1":
        out.append("k1 in the loss has zero expected gradient (E[grad log pi] = 0): its value is charged but it does not "
                   "pull the policy towards the reference. Use k2 or k3_is for the gradient of KL(pi || ref).")
    if a.is_correction != "none" and cfg.rollout.top_p >= 1:
        out.append("The importance correction only has a mismatch to correct when the sampler differs from the learner: "
                   "set rollout.top_p below 1 to see it work.")
    return out

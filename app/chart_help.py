"""What each chart measures (with its formula), what healthy looks like, and what to try: the lab's explanations
on demand, as data. Keys are the chart ids of `app.figures.CHARTS`; `constant` says when a chart is flat by
construction, so a flat line is explained where it is drawn rather than mistaken for a bug.
"""

from __future__ import annotations

from typing import Any

CHART_HELP: dict[str, dict[str, str]] = {
    "reward": {
        "measures": "The mean task reward of the step's P*K completions (one line per reward function when there "
                    "are several). Formula: mean_i r(x_i, y_i).",
        "healthy": "Rises and levels off. On arithmetic the base model starts near 0.63; a rise to 0.9+ means it "
                   "learned. A reward that shoots far above anything the task should allow is a hacked proxy.",
        "try": "Lower optim.lr if it is noisy; raise rollout.samples_per_prompt for steadier group baselines.",
        "constant": "",
    },
    "kl": {
        "measures": "KL to the reference per sequence, sum_t k(log pi_theta - log pi_ref) with the chosen "
                    "estimator (k1 = log ratio, k3 = r - 1 - log r), the approximate KL(old || new) of the update "
                    "(mean of (rho - 1) - log rho), and the coefficient beta.",
        "healthy": "Grows slowly from 0 and stays a few nats per sequence. Tens of nats: the policy has left the "
                   "reference (often reward hacking).",
        "try": "Raise kl.coef, or kl.controller = adaptive with a kl.target.",
        "constant": "approx KL is 0 with one pass over the batch: the trained policy is the sampling one (rho = 1).",
    },
    "clip": {
        "measures": "Share of tokens whose ratio rho_t = pi_theta / pi_old left [1 - eps_low, 1 + eps_high] on "
                    "the side where the clip removes the gradient: low (rho < 1 - eps, A < 0), high "
                    "(rho > 1 + eps, A > 0), all (their sum).",
        "healthy": "0 with one pass; a few percent with several epochs or minibatches; above ~0.3 the updates "
                   "are too large for the trust region.",
        "try": "algorithm.epochs = 2 makes it appear; clip_high = 0.28 (DAPO clip-higher) lets more up-moves through.",
        "constant": "Exactly 0 with one pass over the batch (epochs = 1, minibatches = 1): rho = 1, nothing to clip. "
                    "Set algorithm.epochs to 4 (or minibatches to 4) and it shows within a few steps.",
    },
    "entropy": {
        "measures": "Mean per-token entropy of the policy on its samples, H_t = -sum_v pi(v) log pi(v), in nats; "
                    "the sampling temperature on the right axis (a live setting).",
        "healthy": "Falls gradually as the policy grows confident. A fast fall to ~0 is entropy collapse: "
                   "exploration is gone and the reward stalls.",
        "try": "algorithm.clip_high = 0.28, a small algorithm.entropy_coef, or a higher rollout.temperature.",
        "constant": "",
    },
    "loss": {
        "measures": "The policy loss (the aggregated surrogate), the value loss of value recipes, and the KL term "
                    "when the KL sits in the loss; the learning rate on the right axis (a live setting).",
        "healthy": "The policy loss is not a progress measure: with one pass GRPO's loss is about 0 by "
                   "construction (advantages average to 0), and it may rise while the reward rises.",
        "try": "Watch the reward and KL instead; use the value loss to judge a critic.",
        "constant": "",
    },
    "advantage": {
        "measures": "Mean and std of the token advantages A_t, and the share of groups whose K rewards are all "
                    "equal (they carry no signal under a group baseline).",
        "healthy": "Mean near 0 with a baseline; the flat-group share stays below ~0.5. Near 1, the task is too "
                   "easy or too hard for the batch.",
        "try": "algorithm.dynamic_filter = true (DAPO) drops flat groups; raise samples_per_prompt.",
        "constant": "",
    },
    "length": {
        "measures": "Mean completion length in tokens, and the share of completions that ended with EOS.",
        "healthy": "Stable, with the EOS rate near 1. A falling EOS rate means completions run into "
                   "max_new_tokens (often a hacked reward, or GRPO's length bias).",
        "try": "rollout.missing_eos_penalty, or Dr. GRPO's aggregation seq_mean_token_sum_norm.",
        "constant": "",
    },
    "gradvar": {
        "measures": "The trace of the covariance of the batch gradient estimate, from G groups of prompts: "
                    "(1/G)(1/(G-1)) sum_j ||g_j - g_mean||^2; and the gradient norm before clipping.",
        "healthy": "Lower is steadier. Compare estimators on one batch (labcore.variance measures them paired): "
                   "two runs' lines differ in weights and batches, which swamps the estimator's effect.",
        "try": "A baseline (batch_mean, leave_one_out), more samples per prompt.",
        "constant": "",
    },
    "ratio": {
        "measures": "Mean and maximum of rho_t = pi_theta(y_t) / pi_old(y_t) over the update's tokens.",
        "healthy": "Near 1; a max far above 1 + eps means some tokens moved a lot (off-policy samples).",
        "try": "algorithm.epochs = 2 to see it move; fewer minibatches or a lower lr to keep it near 1.",
        "constant": "Exactly 1 with one pass over the batch: set algorithm.epochs to 2.",
    },
}


def chart_help_markdown(chart_id: str) -> str:
    """The explanation of one chart as Markdown ('' for an unknown id)."""
    h = CHART_HELP.get(chart_id)
    if not h:
        return ""
    lines = [f"**Measures.** {h['measures']}", f"**Healthy.** {h['healthy']}", f"**Try.** {h['try']}"]
    if h["constant"]:
        lines.append(f"**Flat by construction.** {h['constant']}")
    return "\n\n".join(lines)


# Lesson metrics -> the chart that shows them, so a lesson can put the right explanation beside its chart.
METRIC_CHART = {
    "reward/mean": "reward", "kl/mean": "kl", "approx_kl": "kl", "kl/coef": "kl", "clip/frac": "clip",
    "clip/frac_low": "clip", "clip/frac_high": "clip", "entropy/mean": "entropy", "loss/policy": "loss",
    "reward/gold/mean": "reward", "adv/mean": "advantage", "adv/std": "advantage", "groups/zero_std_frac": "advantage", "len/mean": "length",
    "eos/rate": "length", "grad/variance": "gradvar", "grad/norm": "gradvar", "ratio/mean": "ratio",
    "ratio/max": "ratio", "ratio/batch_mean": "gradvar", "ratio/group_mean": "gradvar", "ratio/leave_one_out": "gradvar",
}


def one_pass(cfg: Any) -> bool:
    """Whether every token is trained on exactly once by the policy that sampled it: the ratio is then 1."""
    a = cfg.algorithm
    return a.update == "trpo" or (a.epochs == 1 and a.minibatches == 1)


def constant_notes(cfg: Any) -> dict[str, str]:
    """chart id -> why that chart is flat under `cfg` (a `labcore.config.Config`): one short line, shown on the
    chart itself (the "?" beside it gives the long form, `CHART_HELP[id]["constant"]`).

    Each note is a fact of the step's construction, and `tests/test_chart_help.py` trains the configs that get a
    note and checks the chart really is constant there (and moves once the note's advice is followed)."""
    from labcore.losses import POLICY_LOSSES  # the loss declares whether it clips

    notes: dict[str, str] = {}
    clips = getattr(POLICY_LOSSES.get(cfg.algorithm.policy_loss), "clips", True)
    if one_pass(cfg):
        notes["ratio"] = "ρ is always 1 with one pass (try epochs = 2)"
        notes["clip"] = "always 0 with one pass (try epochs = 4)"
        notes["kl"] = "approx KL is always 0 with one pass"
    if not clips:
        notes["clip"] = f"no clip in the {cfg.algorithm.policy_loss} loss"
    if not cfg.run.grad_variance:
        notes["gradvar"] = "off: run.grad_variance (a backward pass)"
    return notes


def notes_html(notes: dict[str, str]) -> str:
    """The notes as the data attribute `app.chart_explain`'s script reads (one hidden element, escaped)."""
    import html
    import json

    return f'<div data-notes="{html.escape(json.dumps(notes, sort_keys=True), quote=True)}"></div>'

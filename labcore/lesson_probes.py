"""Paired probes for lessons: two ways of computing the advantages, measured on the SAME batch at the SAME weights.

Two training runs side by side compare trajectories (other weights, other batches), and that noise swamps a claim
about what one estimator does differently from another. A probe trains the lesson's preset for `steps - 1` steps,
then samples `probe_batches` fresh batches at those weights (no update) and runs the trainer's own advantage code
(`Trainer.advantages`, after the KL placement of `parts.KL_PLACEMENTS`) twice on each, once per variant of the
config. Each probe returns one record of named numbers (averaged over the batches) that a lesson's claims read.

- `kl_placement`: KL per token in the reward (InstructGPT) against the summed KL taken off the sequence reward
  (RLOO in TRL). With returns-to-go per token, token t's advantage under the per-token penalty no longer carries
  the KL already spent before t: the two differ by beta * sum_{s<t} KL_s. Broadcast as one number per completion
  (the outcome estimator) they are identical, since both placements give the same sequence sum.
- `credit_spread`: RLOO's advantage (one number per completion, broadcast) against GAE's (a learned critic's
  temporal differences, token by token), as the spread of advantages within a completion.
- `clip_growth`: DAPO's clip-higher on one batch (DAPO fig. 3a). From the same weights and optimiser state, the
  preset's update (its epochs, so the clip acts) runs once with the upper clip at 0.2 and once at 0.28; the probe
  reports how much the low-probability tokens with a positive advantage grew, the entropy after the update, and
  the old probability of the tokens clipped at the top. (No lesson ships it yet: presets/lessons/unshipped.)
- `length_bias`: GRPO's per-completion 1/|o_i| against Dr. GRPO's constant normaliser (Dr. GRPO section 3.1):
  the exact gradient of the trainer's policy objective w.r.t. each token's log-prob, long wrong answers against
  short ones, and the log-prob drop after one optimiser step with each.
- `difficulty`: GRPO's division by the group's reward std against none (Dr. GRPO, Liu et al. 2025, section 3.1):
  how the weight of a prompt in the update, sum_i |A_i| over its group, depends on its pass rate p.

Left out: training on a probe's batches (clip_growth updates on each one, then puts the trained weights back) and
minibatching in the advantage probes.
"""

from __future__ import annotations

import copy
import statistics
from typing import Any

import torch

from labcore import kl, parts
from labcore.config import apply


def probe_batch(trainer) -> dict[str, Any]:
    """One batch sampled and scored at the trainer's current weights, with the old/reference log-probs and
    critic values the advantage code reads (no gradient, no update). Returns the pieces by name."""
    from labcore.trainer import Old

    cfg = trainer.cfg
    P, K = cfg.rollout.prompts_per_step, cfg.rollout.samples_per_prompt
    rows = trainer.prompts(P)
    with torch.no_grad():
        trainer.mode(train=False)
        batch = trainer.sample(rows, K)
        batch.logprobs = None
        scores, _, valid = trainer.score(rows, batch, K)                                 # (B,)
        r, norm = trainer.shape(scores, batch)                                           # (B,)
        out = trainer.logprobs(batch, grad=False, with_entropy=True, with_hidden=trainer.critic is not None)
        ref = trainer.logprobs(batch, grad=False, reference=True)
        values = trainer.critic(out["hidden"]) * batch.mask if trainer.critic is not None else None
    old = Old(out["logp"], ref["logp"], out["entropy"], None, values)
    kl_t = kl.estimate(old.logp, old.ref_logp, cfg.kl.estimator) * batch.mask           # (B, T)
    return {"rows": rows, "batch": batch, "r": r, "norm": norm, "valid": valid, "old": old, "kl_t": kl_t,
            "P": P, "K": K}


def advantages_as(trainer, overrides: dict[str, Any], b: dict[str, Any]) -> torch.Tensor:
    """The token advantages (B, T) the trainer computes for probe batch `b` under its config with `overrides`
    (e.g. another KL placement or estimator): the same code path as a training step, on the same numbers."""
    saved = trainer.cfg
    trainer.cfg = apply(saved, overrides)
    try:
        token_r = parts.KL_PLACEMENTS[trainer.cfg.kl.placement](b["r"], b["kl_t"], b["batch"].mask,
                                                                trainer.kl_ctl.value)  # (B, T)
        adv, _ = trainer.advantages(b["rows"], token_r.sum(1), token_r, b["old"], b["batch"], b["valid"],
                                    b["norm"], b["P"], b["K"])
    finally:
        trainer.cfg = saved
    return adv.detach()


def token_spread(adv: torch.Tensor, mask: torch.Tensor) -> float:
    """How much the advantages vary WITHIN completions, relative to how much they vary over the batch: the mean
    over completions of >= 2 tokens of the std of their token advantages, divided by the std of every valid
    token's advantage. 0 when each completion has one advantage for all its tokens.

    Shape: adv (B, T), mask (B, T) -> float (0 when the batch's advantages do not vary at all)."""
    adv, valid = adv.double(), mask > 0  # float64: a constant row's std is 0 up to ~1e-16, not float32's ~1e-8
    overall = adv[valid].std() if valid.sum() > 1 else adv.new_zeros(())
    rows = [adv[i][valid[i]].std() for i in range(adv.size(0)) if valid[i].sum() >= 2]
    if not rows or float(overall) == 0.0:
        return 0.0
    return float(torch.stack(rows).mean() / overall)


def mean_abs_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(max |a - b|, mean |a - b| / std(b)) over the valid tokens. Shape: (B, T) x3 -> (float, float)."""
    valid = mask > 0
    d = (a - b)[valid].abs()
    scale = b[valid].std() if valid.sum() > 1 else b.new_ones(())
    return float(d.max()) if d.numel() else 0.0, float(d.mean() / scale) if float(scale) > 0 else 0.0


def _trained(lesson, arm, seed):
    from labcore.trainer import Trainer

    trainer = Trainer(lesson.config(arm, seed))
    for _ in range(lesson.steps - 1):
        trainer.train_step()
    return trainer


def _average(records: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(r[k] for r in records) for k in records[0]}


def kl_placement_probe(lesson, arm, seed) -> list[dict[str, float]]:
    """Per-token against per-sequence KL in the reward, on the same batches: the per-token advantages' largest
    and mean relative difference with returns-to-go per token (`returns/...`) and with one advantage per
    completion (`outcome/...`), and the mean KL (nats per completion) the policy had drifted to."""
    trainer = _trained(lesson, arm, seed)
    out = []
    for _ in range(lesson.probe_batches):
        b = probe_batch(trainer)
        row = {"kl/mean": float(b["kl_t"].sum(1).mean())}
        for estimator in ("returns", "outcome"):
            tok = advantages_as(trainer, {"kl.placement": "reward_token", "algorithm.estimator": estimator}, b)
            seq = advantages_as(trainer, {"kl.placement": "reward_seq", "algorithm.estimator": estimator}, b)
            row[f"{estimator}/max_diff"], row[f"{estimator}/rel_diff"] = mean_abs_diff(tok, seq, b["batch"].mask)
        out.append(row)
    return [{"step": lesson.steps, **_average(out)}]


RLOO = {"algorithm.estimator": "outcome", "algorithm.baseline": "leave_one_out", "algorithm.scale": "none",
        "algorithm.whiten": False}


def credit_spread_probe(lesson, arm, seed) -> list[dict[str, float]]:
    """RLOO against GAE (the lesson's preset, with its critic trained for steps - 1 steps) on the same batches:
    `spread/rloo` and `spread/gae` (see token_spread)."""
    trainer = _trained(lesson, arm, seed)
    if trainer.critic is None:
        raise ValueError(f"lesson '{lesson.name}': the credit_spread probe needs a preset with a critic "
                         f"(baseline 'value', estimator 'gae'), e.g. ppo; '{lesson.preset}' has none.")
    out = []
    for _ in range(lesson.probe_batches):
        b = probe_batch(trainer)
        mask = b["batch"].mask
        gae = advantages_as(trainer, {}, b)
        rloo = advantages_as(trainer, RLOO, b)
        out.append({"spread/gae": token_spread(gae, mask), "spread/rloo": token_spread(rloo, mask),
                    "len/mean": float(mask.sum(1).mean())})
    return [{"step": lesson.steps, **_average(out)}]


CLIP_HIGH = {"symmetric": 0.2, "clip_higher": 0.28}   # GRPO's upper clip and DAPO's clip-higher
LOW_P = 0.2   # DAPO fig. 3a: the up-clipped tokens' probability is mostly below 0.2


def clip_growth_probe(lesson, arm, seed) -> list[dict[str, float]]:
    """For each upper clip in CLIP_HIGH, on the same batches from the same weights: `<name>/low_growth` (the mean
    ratio pi_new / pi_old of tokens with a positive advantage and pi_old < LOW_P), `<name>/entropy` (mean token
    entropy after the update), `<name>/up_clipped_p` (mean pi_old of tokens with a positive advantage whose ratio
    ended above 1 + eps_high; nan if none), `pos/p` (mean pi_old of every positive-advantage token), and the paired
    differences `gain/low_growth` and `gain/entropy` (clip-higher minus symmetric). Token means are pooled over
    the batches. The trainer's weights and optimiser state are put back after each update, so every batch is
    sampled, and every update starts, at the weights the trainer was trained to."""
    trainer = _trained(lesson, arm, seed)
    if trainer.critic is not None:  # a critic's update needs returns, which the probe does not compute
        raise ValueError(f"lesson '{lesson.name}': the clip_growth probe updates the policy alone; '{lesson.preset}' "
                         "trains a critic (baseline 'value'). Use a preset without one, e.g. grpo or length_eos.")
    params = [p for group in trainer.opt.param_groups for p in group["params"]]
    weights = [p.detach().clone() for p in params]
    opt_state = copy.deepcopy(trainer.opt.state_dict())
    saved, sums = trainer.cfg, {}

    def restore() -> None:
        with torch.no_grad():
            for p, w in zip(params, weights):
                p.copy_(w)
        trainer.opt.load_state_dict(copy.deepcopy(opt_state))

    def add(key: str, values: torch.Tensor) -> None:  # pooled over every batch's tokens, not a mean of means
        total, n = sums.get(key, (0.0, 0))
        sums[key] = (total + float(values.sum()), n + values.numel())

    for _ in range(lesson.probe_batches):
        b = probe_batch(trainer)
        batch, old = b["batch"], b["old"]
        adv = advantages_as(trainer, {}, b)                                               # (B, T)
        p_old = old.logp.exp()                                                            # (B, T)
        pos = (adv > 0) & (batch.mask > 0)
        add("pos/p", p_old[pos])
        shuffles = trainer.cpu_gen.get_state()  # with minibatches, both updates see the same shuffles
        for name, eps in CLIP_HIGH.items():
            trainer.cpu_gen.set_state(shuffles)
            trainer.cfg = apply(saved, {"algorithm.clip_high": eps})
            try:
                trainer.gradient_update(batch, old, adv, None, batch.mask, None)
                trainer.mode(train=False)
                after = trainer.logprobs(batch, grad=False, with_entropy=True)
            finally:
                trainer.cfg = saved
                restore()  # the next update, and the next batch, start from the trained weights again
            ratio = (after["logp"] - old.logp).exp()                                      # (B, T)
            add(f"{name}/low_growth", ratio[pos & (p_old < LOW_P)])
            add(f"{name}/entropy", after["entropy"][batch.mask > 0])
            add(f"{name}/up_clipped_p", p_old[pos & (ratio > 1 + eps)])
    row = {k: total / n if n else float("nan") for k, (total, n) in sums.items()}
    for key in ("low_growth", "entropy"):  # the paired differences the claims read: clip-higher minus symmetric
        row[f"gain/{key}"] = row[f"clip_higher/{key}"] - row[f"symmetric/{key}"]
    return [{"step": lesson.steps, **row}]


# ------------------------------------------------------------------------- difficulty bias of std scaling

PASS_REWARD = 1.0  # a completion "passes" when its reward reaches this (arithmetic: right = 1, well formed + 0.2)


def group_weight(adv: torch.Tensor) -> torch.Tensor:
    """The weight of each prompt in the update: the sum over its K samples of |advantage| (each sample's score
    gradient enters the policy gradient multiplied by its advantage). Shape: adv (P, K) -> (P,)."""
    return adv.abs().sum(1)


def difficulty_tilt(weight: torch.Tensor, p: torch.Tensor) -> float:
    """How far from p = 1/2 the update's weight sits: sum_g w_g |p_g - 1/2| / sum_g w_g (0 when no group has
    weight). 0.5 when every bit of the weight is on groups that all pass or all fail. Shape: (P,), (P,) -> float."""
    total = weight.sum()
    return float((weight * (p - 0.5).abs()).sum() / total) if float(total) > 0 else 0.0


def extreme_share(weight: torch.Tensor, p: torch.Tensor) -> float:
    """The share of the update's weight on groups that are mostly right or mostly wrong but not all alike:
    0 < p <= 1/4 or 3/4 <= p < 1. Shape: (P,), (P,) -> float (0 when no group has weight)."""
    total = weight.sum()
    mixed_far = ((p > 0) & (p <= 0.25)) | ((p >= 0.75) & (p < 1))
    return float(weight[mixed_far].sum() / total) if float(total) > 0 else 0.0


def sequence_advantages(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One advantage per completion from token advantages broadcast per completion: their mean over its valid
    tokens (0 for an empty one). Shape: adv (B, T), mask (B, T) -> (B,)."""
    n = mask.sum(1)                                                                    # (B,)
    return (adv * mask).sum(1) / n.clamp(min=1)


def weight_ratio(weight: torch.Tensor, p: torch.Tensor) -> float:
    """The mean weight of a mostly-right or mostly-wrong group (0 < p <= 1/4 or 3/4 <= p < 1) divided by the mean
    weight of a near-even one (|p - 1/2| <= 1/8); nan when either kind is missing. With right/wrong rewards and no
    scaling, a p = 1/4 group weighs 2Kp(1 - p) = 0.75 of a p = 1/2 group. Shape: (G,), (G,) -> float."""
    far = ((p > 0) & (p <= 0.25)) | ((p >= 0.75) & (p < 1))
    near = (p - 0.5).abs() <= 0.125
    if not far.any() or not near.any() or float(weight[near].mean()) == 0.0:
        return float("nan")
    return float(weight[far].mean() / weight[near].mean())


def difficulty_probe(lesson, arm, seed) -> list[dict[str, float]]:
    """Std scaling against none on the same batches (group-mean baseline both ways): per group g, its pass rate
    p_g (share of samples with reward >= PASS_REWARD) and its weight sum_i |A_i| under each scaling. Pooled over
    the probe's batches, records per scale `weight_ratio/<scale>` (see weight_ratio), `tilt/<scale>` and
    `share/extreme/<scale>`, and `lift` = weight_ratio/group_std / weight_ratio/none: how many times more a
    lopsided group weighs, relative to an even one, once the advantages are divided by the std.
    `share/flat/<scale>` is the weight on groups that all pass or all fail, whose rewards differ by the 0.2 format
    bonus only: the division blows that small difference up to a full-sized advantage."""
    trainer = _trained(lesson, arm, seed)
    ps, weights = [], {"group_std": [], "none": []}
    for _ in range(lesson.probe_batches):
        b = probe_batch(trainer)
        P, K, mask = b["P"], b["K"], b["batch"].mask
        ps.append((b["r"] >= PASS_REWARD).double().view(P, K).mean(1))                # (P,)
        for scale in weights:
            adv = advantages_as(trainer, {"algorithm.scale": scale}, b)                # (B, T)
            weights[scale].append(group_weight(sequence_advantages(adv, mask).double().view(P, K)))  # (P,)
    p = torch.cat(ps)                                                                   # (G,) G = batches * P
    flat = (p == 0) | (p == 1)
    row = {"step": lesson.steps, "groups/even_frac": float(((p - 0.5).abs() <= 0.125).double().mean()),
           "groups/lopsided_frac": float((~flat & ((p - 0.5).abs() >= 0.25)).double().mean())}
    for scale, ws in weights.items():
        w = torch.cat(ws)                                                               # (G,)
        row[f"weight_ratio/{scale}"] = weight_ratio(w, p)
        row[f"tilt/{scale}"] = difficulty_tilt(w, p)
        row[f"share/extreme/{scale}"] = extreme_share(w, p)
        row[f"share/flat/{scale}"] = float(w[flat].sum() / w.sum()) if float(w.sum()) > 0 else 0.0
    row["lift"] = row["weight_ratio/group_std"] / row["weight_ratio/none"]
    return [row]


# ------------------------------------------------------------------------------ length bias of 1/|o_i|

LENGTH_NORMS = {"grpo": "seq_mean_token_mean",          # GRPO: each completion's token mean, 1/|o_i|
                "dr_grpo": "seq_mean_token_sum_norm"}   # Dr. GRPO: one constant, 1/(B * max_new_tokens)


def token_push(objective, logp: torch.Tensor) -> torch.Tensor:
    """How hard a loss pushes each token: -d objective / d logp_t, by autograd through `objective` (a function of
    the (B, T) log-probs that returns the scalar loss). A token of a completion with A < 0 gets a negative push
    (its log-prob is lowered). Shape: logp (B, T) -> (B, T)."""
    x = logp.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(x), x)
    return -grad.detach()


def push_per_unit_advantage(push: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each completion's mean per-token push divided by its advantage: the weight one of its tokens gets per unit
    of advantage (1/(G |o_i|) under GRPO's aggregation, 1/(G T_max) under Dr. GRPO's). nan for a completion with
    no token or a zero advantage. Shape: push (B, T), adv (B,), mask (B, T) -> (B,)."""
    n = mask.sum(1)                                                                     # (B,)
    per_token = (push * mask).sum(1) / n.clamp(min=1)                                   # (B,)
    ok = (n > 0) & (adv != 0)
    return torch.where(ok, per_token / torch.where(ok, adv, torch.ones_like(adv)), torch.full_like(adv, float("nan")))


def long_short_split(lengths: torch.Tensor, wrong: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The wrong completions split at the median of the wrong ones' lengths: (long, short) boolean masks, long
    being strictly above the median (both empty-safe). Shape: lengths (B,), wrong (B,) bool -> (B,), (B,)."""
    if not wrong.any():
        return wrong.clone(), wrong.clone()
    median = lengths[wrong].float().median()
    return wrong & (lengths.float() > median), wrong & (lengths.float() <= median)


def long_short_ratio(values: torch.Tensor, long: torch.Tensor, short: torch.Tensor) -> float:
    """mean(values[long]) / mean(values[short]), ignoring nan; nan when either side is empty or the short side's
    mean is 0. Shape: (B,), (B,) bool, (B,) bool -> float."""
    a, b = values[long & ~values.isnan()], values[short & ~values.isnan()]
    if not a.numel() or not b.numel() or float(b.mean()) == 0.0:
        return float("nan")
    return float(a.mean() / b.mean())


def objective_push(trainer, old, adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """token_push of the trainer's own policy objective (its config's loss, aggregation and KL term) at the old
    log-probs, i.e. at the weights the batch was sampled with. Shape: adv (B, T), mask (B, T) -> (B, T)."""
    return token_push(lambda x: trainer.policy_objective({"logp": x}, old, adv, mask, None)[0], old.logp)


def length_bias_probe(lesson, arm, seed) -> list[dict[str, float]]:
    """GRPO's aggregation (each completion's token mean: 1/|o_i|) against Dr. GRPO's (one constant normaliser), on
    the same batches at the same weights and with the same advantages (the trainer's own, under the lesson's
    preset). Per aggregation `<name>` in LENGTH_NORMS, over the wrong completions (reward below the task's
    pass_reward) split at each batch's median wrong length and pooled over the batches:
    `push/<name>` = mean per-token push per unit of advantage of the long ones / that of the short ones (the exact
    gradient of the trainer's policy objective w.r.t. each token's log-prob: 1 means equal per token);
    `raw/<name>` the same without dividing by the advantage; and, from one optimiser step on the batch from the same
    weights and Adam state, `drop/<name>` = the long ones' mean per-token log-prob drop / the short ones', and
    `drop/relative` = drop/grpo / drop/dr_grpo. Also `len/long`, `len/short` (mean lengths) and `wrong/frac`.
    The weights and Adam state are put back after each step, as in clip_growth_probe."""
    trainer = _trained(lesson, arm, seed)
    if trainer.task.pass_reward is None or trainer.critic is not None:
        raise ValueError(f"lesson '{lesson.name}': the length_bias probe needs a task with right and wrong answers "
                         f"(pass_reward set: rollout.task = \"chain\", model.policy = \"tiny-chain\") and no critic; "
                         f"'{lesson.preset}' has {'a critic' if trainer.critic is not None else 'no pass mark'}.")
    params = [p for group in trainer.opt.param_groups for p in group["params"]]
    weights = [p.detach().clone() for p in params]
    opt_state = copy.deepcopy(trainer.opt.state_dict())
    saved = trainer.cfg
    pools: dict[str, list[torch.Tensor]] = {"long": [], "short": [], "len": [], "wrong": []}
    per = {f"{kind}/{name}": [] for kind in ("push", "raw", "drop") for name in LENGTH_NORMS}

    def restore() -> None:
        with torch.no_grad():
            for p, w in zip(params, weights):
                p.copy_(w)
        trainer.opt.load_state_dict(copy.deepcopy(opt_state))

    for _ in range(lesson.probe_batches):
        b = probe_batch(trainer)
        batch, old, mask = b["batch"], b["old"], b["batch"].mask
        adv = advantages_as(trainer, {}, b)                                               # (B, T)
        seq_adv = sequence_advantages(adv, mask)                                          # (B,)
        lengths = mask.sum(1)                                                             # (B,)
        wrong = (b["r"] < trainer.task.pass_reward) & (lengths > 0)
        long, short = long_short_split(lengths, wrong)
        pools["long"].append(long), pools["short"].append(short)
        pools["len"].append(lengths), pools["wrong"].append(wrong)
        for name, agg in LENGTH_NORMS.items():
            trainer.cfg = apply(saved, {"algorithm.aggregation": agg})
            try:
                push = objective_push(trainer, old, adv, mask)                            # (B, T)
                trainer.gradient_update(batch, old, adv, None, mask, None)
                trainer.mode(train=False)
                after = trainer.logprobs(batch, grad=False)["logp"]                       # (B, T)
            finally:
                trainer.cfg = saved
                restore()
            per[f"push/{name}"].append(push_per_unit_advantage(push, seq_adv, mask))
            per[f"raw/{name}"].append((push * mask).sum(1).abs() / lengths.clamp(min=1))
            per[f"drop/{name}"].append(((old.logp - after) * mask).sum(1) / lengths.clamp(min=1))
    long, short = torch.cat(pools["long"]), torch.cat(pools["short"])
    lengths, wrong = torch.cat(pools["len"]).float(), torch.cat(pools["wrong"])
    row = {key: long_short_ratio(torch.cat(vals).double(), long, short) for key, vals in per.items()}
    row["len/long"] = float(lengths[long].mean()) if long.any() else float("nan")
    row["len/short"] = float(lengths[short].mean()) if short.any() else float("nan")
    row["wrong/frac"] = float(wrong.double().mean())
    row["drop/relative"] = row["drop/grpo"] / row["drop/dr_grpo"]  # < 1: GRPO's step spares the long ones more
    return [{"step": lesson.steps, **row}]

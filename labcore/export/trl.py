"""Lab config -> TRL (`GRPOTrainer` / `RLOOTrainer`), keys as in trl 1.16 (grpo_config.py, rloo_config.py).

`plan(cfg)` is the one mapping from a lab config to TRL's config keys (benchmarks/vs_trl.py uses it too);
`write(...)` renders a runnable `train.py` with every key written out, because TRL's defaults are not the
textbook's: `loss_type="dapo"`, `beta=0.0`, `bf16=True`, `learning_rate=1e-6`, gradient checkpointing on.

Which trainer: GRPOTrainer for the group-mean baseline with the KL in the loss (GRPO, Dr. GRPO, DAPO, GSPO,
CISPO), RLOOTrainer for the leave-one-out baseline with the KL in the sequence reward (RLOO). TRL has no
critic, no per-token KL in the reward, no adaptive KL controller, no greedy baseline and no TRPO: those refuse.
"""

from __future__ import annotations

from typing import Any

from labcore.config import Config
from labcore.export.fidelity import APPROX, BLOCKED, DROPPED, EXACT, Row, reward_model_row, row_adder

_NO_RATIO = "one optimiser step per batch keeps the ratio at 1, where the clipped surrogate's gradient is REINFORCE's"


def trainer_for(cfg: Config) -> tuple[str | None, str, str]:
    """('GRPOTrainer' | 'RLOOTrainer' | None, why not, the setting to blame) for this config."""
    a, k = cfg.algorithm, cfg.kl
    if a.update == "trpo":
        return None, "TRPO's natural-gradient step exists in no library; TRL updates with a first-order optimiser", \
            "algorithm.update"
    if a.estimator != "outcome":
        return None, f"estimator '{a.estimator}': TRL scores whole completions only (no per-token returns or " \
            "GAE); export to verl or OpenRLHF", "algorithm.estimator"
    if a.baseline == "group_mean" and k.placement in ("loss", "none"):
        return "GRPOTrainer", "", ""
    if a.baseline == "leave_one_out" and k.placement in ("reward_seq", "none"):
        return "RLOOTrainer", "", ""
    why = {"value": "a learned critic (TRL's PPO is experimental and needs a reward model and a value model)",
           "greedy": "ReMax's greedy-rollout baseline", "moving_average": "a moving-average baseline",
           "batch_mean": "a batch-mean baseline", "none": "REINFORCE without a baseline"}.get(a.baseline)
    if why:
        return None, f"TRL has no {why}; export to verl or OpenRLHF", "algorithm.baseline"
    return None, f"baseline '{a.baseline}' with kl.placement '{k.placement}': TRL puts the KL in the loss for " \
                 "the group baseline and in the sequence reward for leave-one-out only", "kl.placement"


def plan(cfg: Config) -> tuple[str | None, dict[str, Any], dict[str, Row]]:
    """(trainer class name or None, {TRL config key: value}, {lab setting: Row}). Pure: reads `cfg` only."""
    a, r, o = cfg.algorithm, cfg.rollout, cfg.optim
    trainer, why, blame = trainer_for(cfg)
    rows: dict[str, Row] = {}
    row = row_adder(cfg, rows)

    row("algorithm.recipe", trainer or "", EXACT if trainer else BLOCKED, why)
    if trainer is None:
        row(blame, "", BLOCKED, why)
        return None, {}, rows
    grpo = trainer == "GRPOTrainer"
    P, K, mb = r.prompts_per_step, r.samples_per_prompt, a.minibatches
    single = a.epochs == 1 and mb == 1
    keys: dict[str, Any] = {
        # the batch: P prompts x K samples generated at once, cut into `minibatches` optimiser steps
        "num_generations": K, "generation_batch_size": P * K, "per_device_train_batch_size": P * K // mb,
        "gradient_accumulation_steps": 1, "num_iterations": a.epochs,
        "max_steps": cfg.run.steps * a.epochs * mb, "seed": cfg.run.seed,
        # sampling
        "max_completion_length": r.max_new_tokens, "temperature": r.temperature, "top_p": r.top_p, "top_k": 0,
        "mask_truncated_completions": r.mask_truncated,
        # optimiser: the lab's plain AdamW, constant learning rate, no warmup
        "learning_rate": o.lr, "weight_decay": o.weight_decay, "max_grad_norm": o.grad_clip,
        "optim": "adamw_torch", "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8,
        "lr_scheduler_type": "constant", "warmup_steps": 0,
        # numerics: float32 like the lab (TRL defaults to bf16), no checkpointing, no dropout
        "bf16": False, "fp16": False, "gradient_checkpointing": False, "disable_dropout": True,
        "model_init_kwargs": {"dtype": "float32"},
        # logging
        "logging_steps": 1, "report_to": "none", "save_strategy": "no", "log_completions": False,
    }
    row("rollout.samples_per_prompt", "num_generations")
    row("rollout.prompts_per_step", "generation_batch_size")
    row("algorithm.epochs", "num_iterations")
    row("algorithm.minibatches", "steps_per_generation (generation_batch_size / per_device_train_batch_size)")
    row("run.steps", "max_steps", note=f"TRL counts optimiser steps: steps x epochs x minibatches = {keys['max_steps']}")
    row("run.seed", "seed", note="the same prompts; sampling and LoRA initialisation draw other random numbers")
    row("rollout.task", "train_dataset + reward_funcs")
    reward_model_row(row, r.task)
    row("rollout.max_new_tokens", "max_completion_length")
    row("rollout.temperature", "temperature")
    row("rollout.top_p", "top_p")
    row("rollout.mask_truncated", "mask_truncated_completions")
    row("optim.lr", "learning_rate")
    row("optim.weight_decay", "weight_decay")
    row("optim.grad_clip", "max_grad_norm", note="0 turns clipping off in both")
    row("model.policy", "model (train.py --model)")
    row("model.lora_rank", "peft LoraConfig.r")
    row("model.lora_alpha", "peft LoraConfig.lora_alpha")
    row("model.lora_dropout", "peft LoraConfig.lora_dropout")
    row("model.lora_targets", "peft LoraConfig.target_modules", note="empty: the lab's default for the architecture")
    if r.missing_eos_penalty:
        row("rollout.missing_eos_penalty", "reward_funcs += missing_eos (weight = penalty)")
    else:
        row("rollout.missing_eos_penalty", "-", note="off in both")
    if r.overlong_buffer:
        row("rollout.overlong_buffer", "reward_funcs += overlong (DAPO eq. 13)")
    else:
        row("rollout.overlong_buffer", "-", note="off in both")
    if r.overlong_buffer:
        row("rollout.overlong_penalty", "reward_weights (overlong)")
    for s, what in (("rollout.reward_clip", "reward clipping"), ("rollout.reward_normalize", "batch reward normalisation")):
        val = getattr(r, s.split(".")[1])
        if val:
            row(s, "", BLOCKED, f"TRL's trainers have no {what} before the advantage; set it to off in the lab")
        else:
            row(s, "-", note="off in both")
    if a.whiten:
        row("algorithm.whiten", "", BLOCKED, "TRL does not whiten advantages over the batch")
    else:
        row("algorithm.whiten", "-", note="off in both")
    row("algorithm.estimator", "-", note="TRL scores whole completions (outcome)")
    row("algorithm.update", "-", note="gradient steps with the optimiser")
    if not a.entropy_coef:
        row("algorithm.entropy_coef", "entropy_coef" if grpo else "-", note="0 in both")
    elif grpo:
        row("algorithm.entropy_coef", "entropy_coef", APPROX, "TRL normalises the entropy bonus like its loss_type; "
            "the lab like its aggregation (the same for seq_mean_token_mean and token_mean on one minibatch)")
    else:
        row("algorithm.entropy_coef", "", BLOCKED, "RLOOTrainer has no entropy bonus")
    if a.dynamic_filter:
        row("algorithm.dynamic_filter", "", DROPPED, "TRL has no dynamic sampling: groups whose rewards are all equal "
            "stay in the batch with zero advantage, where DAPO resamples to refill it (export to verl or OpenRLHF)")
        if a.resample_rounds:
            row("algorithm.resample_rounds", "", DROPPED, "TRL has no dynamic sampling (export to verl)")
    else:
        row("algorithm.dynamic_filter", "-", note="off in both")
    if a.dual_clip:
        ok = grpo and a.policy_loss == "clip"
        row("algorithm.dual_clip", "delta" if ok else "", EXACT if ok else BLOCKED,
            "TRL's two-sided clip caps the ratio at delta in the unclipped term: the dual clip's -c*A bound"
            if ok else "only GRPOTrainer's clipped loss has it (delta)")
        if ok:
            keys["delta"] = a.dual_clip
    else:
        row("algorithm.dual_clip", "-", note="off in both")
        if grpo:
            keys["delta"] = None

    if grpo:
        _grpo(cfg, keys, row, single)
    else:
        _rloo(cfg, keys, row, single)
    return trainer, keys, rows


def _grpo(cfg: Config, keys: dict[str, Any], row, single: bool) -> None:
    a, k = cfg.algorithm, cfg.kl
    keys["scale_rewards"] = {"group_std": "group", "batch_std": "batch", "none": "none"}[a.scale]
    row("algorithm.baseline", "GRPOTrainer (group mean)")
    row("algorithm.scale", f"scale_rewards={keys['scale_rewards']!r}")
    loss_types = {"seq_mean_token_mean": "grpo", "token_mean": "dapo", "seq_mean_token_sum_norm": "dr_grpo"}
    keys["importance_sampling_level"] = "sequence" if a.policy_loss == "gspo" else "token"
    keys["epsilon"], keys["epsilon_high"] = a.clip_low, a.clip_high
    if a.policy_loss == "cispo":
        keys["loss_type"] = "cispo"
        # TRL's CISPO caps the ratio at epsilon_high itself (not 1 + epsilon_high) and has no lower bound.
        keys["epsilon_high"] = 1.0 + a.clip_high
        row("algorithm.policy_loss", "loss_type='cispo'")
        row("algorithm.clip_high", "epsilon_high", note="TRL caps the ratio at epsilon_high itself: 1 + clip_high")
        row("algorithm.clip_low", "", APPROX, f"TRL's CISPO clips above only; the lab also clips below at "
            f"1 - {a.clip_low:g} = {1 - a.clip_low:g} (MiniMax-M1 leaves the lower side open, as TRL does)")
        if a.aggregation != "token_mean":
            row("algorithm.aggregation", "", BLOCKED, "TRL's CISPO averages over every token of the batch "
                "(token_mean) only")
        else:
            _token_mean_row(cfg, row)
    elif a.policy_loss == "gmpo":
        row("algorithm.policy_loss", "", BLOCKED, "GMPO is only in trl.experimental, not GRPOTrainer; export to verl "
            "(loss_mode=geo_mean)")
    elif a.policy_loss == "sapo":
        keys["loss_type"] = "sapo"  # the soft gate; TRL's sapo_temperature_pos/neg defaults are the paper's 1.0/1.05
        row("algorithm.policy_loss", "loss_type='sapo'", note="TRL's tau defaults (1.0 / 1.05) are the lab's")
        row("algorithm.clip_low", "-", note="SAPO has no hard clip (the lab reports clip fractions only)")
        row("algorithm.clip_high", "-", note="SAPO has no hard clip")
        if a.aggregation != "seq_mean_token_mean":
            row("algorithm.aggregation", "", BLOCKED, "TRL's SAPO averages per sequence, then over sequences")
        else:
            row("algorithm.aggregation", "loss_type='sapo' (per sequence, then over sequences)")
    else:
        if a.aggregation not in loss_types:
            row("algorithm.aggregation", "", BLOCKED, f"TRL's GRPO loss types have no '{a.aggregation}'; "
                "use seq_mean_token_mean (grpo), token_mean (dapo) or seq_mean_token_sum_norm (dr_grpo)")
        elif a.policy_loss == "gspo" and a.aggregation != "seq_mean_token_mean":
            row("algorithm.aggregation", "", BLOCKED, "GSPO in TRL is importance_sampling_level='sequence' with "
                "loss_type='grpo' (seq_mean_token_mean)")
        else:
            keys["loss_type"] = loss_types[a.aggregation]
            if a.aggregation == "token_mean":
                _token_mean_row(cfg, row)
            else:
                row("algorithm.aggregation", f"loss_type={keys['loss_type']!r}",
                    note="dr_grpo divides by B x max_completion_length, as the lab" if keys["loss_type"] == "dr_grpo"
                    else "")
        keys.setdefault("loss_type", "grpo")
        if a.policy_loss == "gspo":
            row("algorithm.policy_loss", "importance_sampling_level='sequence'")
        elif a.policy_loss == "pg":
            row("algorithm.policy_loss", "loss_type (clipped surrogate)", EXACT if single else APPROX,
                _NO_RATIO if single else "TRL always clips the ratio; the lab's plain policy gradient does not")
        else:
            row("algorithm.policy_loss", "loss_type (clipped surrogate)")
        if a.policy_loss != "pg":
            row("algorithm.clip_low", "epsilon")
            row("algorithm.clip_high", "epsilon_high")
        else:
            keys["epsilon"], keys["epsilon_high"] = 0.2, 0.2
    keys["beta"] = k.coef if k.placement == "loss" else 0.0
    keys["use_bias_correction_kl"] = False  # the lab's k3 is not weighted by the importance ratio
    if k.placement == "loss":
        row("kl.placement", "beta > 0 (KL in the loss)")
        row("kl.coef", "beta")
        if k.estimator != "k3":
            row("kl.estimator", "", BLOCKED, f"TRL's GRPO loss uses the k3 estimator only (got {k.estimator})")
        else:
            row("kl.estimator", "(k3, built in)")
        if k.controller == "adaptive":
            row("kl.controller", "", BLOCKED, "TRL has no adaptive KL controller (removed in PR #2480); verl/OpenRLHF")
        else:
            row("kl.controller", "-", note="a fixed beta")
    else:
        row("kl.placement", "beta=0.0", note="no KL and no reference model")


def _token_mean_row(cfg: Config, row) -> None:
    if cfg.algorithm.minibatches == 1:
        row("algorithm.aggregation", "loss_type (token mean over the batch)")
    else:
        row("algorithm.aggregation", "loss_type (token mean over the batch)", APPROX,
            "TRL divides each minibatch's token sum by the generation batch's tokens / steps_per_generation; "
            "the lab by that minibatch's own token count (the paper's batch-level token mean, per minibatch)")


def _rloo(cfg: Config, keys: dict[str, Any], row, single: bool) -> None:
    a, k = cfg.algorithm, cfg.kl
    keys["normalize_advantages"] = a.scale != "none"
    keys["epsilon"], keys["epsilon_high"] = a.clip_low, a.clip_high
    keys["beta"] = k.coef if k.placement == "reward_seq" else 0.0
    keys["reward_clip_range"] = None
    row("algorithm.baseline", "RLOOTrainer (leave-one-out)")
    if a.scale == "none":
        row("algorithm.scale", "normalize_advantages=False")
    else:
        row("algorithm.scale", "normalize_advantages=True", APPROX,
            f"TRL standardises over the whole batch; the lab's '{a.scale}'" if a.scale != "batch_std" else "")
    if a.aggregation == "seq_mean_token_sum":
        row("algorithm.aggregation", "(RLOOTrainer: sequence log-prob, mean over sequences)")
    else:
        row("algorithm.aggregation", "", BLOCKED, "RLOOTrainer sums each sequence's log-probs and averages over "
            f"sequences (seq_mean_token_sum); got '{a.aggregation}'")
    if a.policy_loss in ("pg", "clip"):
        row("algorithm.policy_loss", "(RLOOTrainer: clipped per sequence)", EXACT if single else APPROX,
            _NO_RATIO if single else "TRL clips the ratio of whole sequences, the lab per token")
        if a.policy_loss == "clip":
            row("algorithm.clip_low", "epsilon", EXACT if single else APPROX)
            row("algorithm.clip_high", "epsilon_high", EXACT if single else APPROX)
    else:
        row("algorithm.policy_loss", "", BLOCKED, f"RLOOTrainer has no '{a.policy_loss}' loss")
    if k.placement == "reward_seq":
        row("kl.placement", "beta > 0 (KL in the sequence reward)")
        row("kl.coef", "beta")
        row("kl.estimator", "(k1, built in)", EXACT if k.estimator == "k1" else BLOCKED,
            "" if k.estimator == "k1" else f"RLOOTrainer uses k1 only (got {k.estimator})")
        row("kl.controller", "-" if k.controller == "fixed" else "", EXACT if k.controller == "fixed" else BLOCKED,
            "a fixed beta" if k.controller == "fixed" else "TRL has no adaptive KL controller")
    else:
        row("kl.placement", "beta=0.0", note="no KL and no reference model")


def comments(cfg: Config, keys: dict[str, Any]) -> dict[str, str]:
    """{TRL key: why it has this value}, for the keys where TRL's default or another library differs."""
    a = cfg.algorithm
    out = {
        "learning_rate": "the lab's; TRL's default is 1e-6",
        "bf16": "the lab trains in float32; TRL's default is bf16 (train.py --bf16 on GPUs)",
        "gradient_checkpointing": "TRL's default is on; it changes speed, not maths",
        "max_steps": f"TRL counts optimiser steps: lab steps x epochs x minibatches ({a.epochs * a.minibatches} each)",
        "generation_batch_size": "P x K completions per lab step",
        "beta": "KL coefficient; TRL's default is 0.0 (no KL, no reference model)",
        "use_bias_correction_kl": "the lab's k3 KL is not weighted by the importance ratio",
        "top_k": "0: no top-k filtering, as the lab",
        "delta": "the dual clip (Ye et al. 2020): TRL's two-sided clip caps the ratio in the unclipped term",
    }
    if "loss_type" in keys:
        out["loss_type"] = {"grpo": "per-sequence token mean (the GRPO paper's); TRL's default is 'dapo'",
                            "dapo": "token mean over the batch (the DAPO paper's); TRL's default",
                            "dr_grpo": "sum / (B x max_completion_length): Dr. GRPO's constant normaliser",
                            "cispo": "MiniMax-M1's clipped IS-weight loss",
                            "sapo": "SAPO's soft sigmoid gate in place of the clip (per-sequence mean)"}[keys["loss_type"]]
    if keys.get("loss_type") == "cispo":
        out["epsilon_high"] = ("TRL caps the CISPO ratio at epsilon_high itself: 1 + the lab's clip_high, the "
                               "paper's upper bound; the paper, like TRL, has no lower bound")
    if keys.get("importance_sampling_level") == "sequence":
        out["importance_sampling_level"] = "GSPO: one length-normalised ratio per sequence"
    return {k: v for k, v in out.items() if k in keys}


def lora_kwargs(cfg: Config, targets: list[str]) -> dict[str, Any]:
    m = cfg.model
    return {"r": m.lora_rank, "lora_alpha": m.lora_alpha, "lora_dropout": m.lora_dropout,
            "target_modules": targets, "bias": "none", "task_type": "CAUSAL_LM"}

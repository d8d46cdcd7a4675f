"""Lab config -> verl (`python3 -m verl.trainer.main_ppo` Hydra overrides), keys as in verl 1dda039b.

The keys are those of verl/trainer/config/_generated_ppo_trainer.yaml (tests/data holds the list); keys the yaml
does not have are written with Hydra's `+`. The prompts become Parquet rows in verl's format, and `reward.py`
holds `compute_score(data_source, solution_str, ground_truth, extra_info)` over the lab's reward functions.

verl covers the lab's estimators widely (GRPO, RLOO, ReMax, REINFORCE++, GAE with a critic, adaptive KL, DAPO's
overlong reward); it cannot see whether a completion ended with EOS (verl decodes without special tokens), so
the missing-EOS penalty and `mask_truncated` refuse, and `well_formed` takes every completion as ended.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from labcore.config import Config
from labcore.export import fidelity, world
from labcore.export.fidelity import APPROX, BLOCKED, EXACT, Row, reward_model_row, row_adder
from labcore.export.report import Report, begin, finish, judged

KL_TYPES = {"k1": "kl", "k2": "mse", "k3": "low_var_kl"}
AGG = {"token_mean": "token-mean", "seq_mean_token_mean": "seq-mean-token-mean",
       "seq_mean_token_sum": "seq-mean-token-sum", "seq_mean_token_sum_norm": "seq-mean-token-sum-norm"}
LOSS_MODES = {"clip": "vanilla", "pg": "vanilla", "gspo": "gspo", "cispo": "cispo", "gmpo": "geo_mean", "sapo": "sapo"}
# Tasks whose reward functions read whether a completion ended with EOS, and which function does.
EOS_READERS = {"arithmetic": "well_formed", "length": "length_match"}
# A pass-through chat template: verl wraps prompts as chat messages; the lab feeds raw text.
RAW_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def estimator(cfg: Config) -> tuple[str | None, str, str]:
    """(verl adv_estimator or None, fidelity, note) for the lab's estimator + baseline + scale + whiten."""
    a = cfg.algorithm
    key = (a.estimator, a.baseline)
    if a.update == "trpo":
        return None, BLOCKED, "TRPO's natural-gradient step exists in no library (verl updates with Adam)"
    if key == ("outcome", "group_mean") and a.scale in ("group_std", "none") and not a.whiten:
        return "grpo", EXACT, ""
    if key == ("outcome", "leave_one_out") and a.scale == "none" and not a.whiten:
        return "rloo", EXACT, ""
    if key == ("outcome", "greedy") and a.scale == "none" and not a.whiten:
        return "remax", EXACT, "the greedy completion's reward is the baseline"
    if key == ("returns", "none") and a.whiten:
        return "reinforce_plus_plus", EXACT, "returns-to-go whitened over the batch"
    if key == ("returns", "group_mean") and a.whiten:
        return "reinforce_plus_plus_baseline", EXACT, "group mean, then whitened over the batch"
    if key == ("gae", "value"):
        return "gae", EXACT if a.whiten else APPROX, "" if a.whiten else "verl always whitens GAE advantages"
    if key == ("outcome", "value"):
        return "gae", APPROX, ("verl's GAE gives every token R - V(s_t) (lam 1) where the lab's one-step "
                               "actor-critic gives r - V(prompt)")
    return None, BLOCKED, (f"verl has no estimator for estimator '{a.estimator}' + baseline '{a.baseline}' + scale "
                           f"'{a.scale}' + whiten {a.whiten}")


def plan(cfg: Config, model: str, targets: list[str]) -> tuple[dict[str, Any], dict[str, Row]]:
    """({Hydra key: value}, {lab setting: Row}). Keys starting with '+' are new to verl's yaml."""
    a, r, o, m = cfg.algorithm, cfg.rollout, cfg.optim, cfg.model
    rows: dict[str, Row] = {}
    row = row_adder(cfg, rows)

    adv, status, note = estimator(cfg)
    row("algorithm.recipe", f"algorithm.adv_estimator={adv}" if adv else "", status, note)
    if adv is None:
        row("algorithm.update" if a.update == "trpo" else "algorithm.estimator", "", BLOCKED, note)
        return {}, rows
    P, K, mb = r.prompts_per_step, r.samples_per_prompt, a.minibatches
    A, R = "actor_rollout_ref.actor", "actor_rollout_ref.rollout"
    keys: dict[str, Any] = {
        "algorithm.adv_estimator": adv, "algorithm.norm_adv_by_std_in_grpo": a.scale == "group_std",
        "algorithm.gamma": a.gamma, "algorithm.lam": a.lam if a.estimator == "gae" else 1.0,
        "data.train_batch_size": P, "data.max_prompt_length": 256, "data.max_response_length": r.max_new_tokens,
        "data.shuffle": False, "data.seed": cfg.run.seed, "data.filter_overlong_prompts": True,
        "actor_rollout_ref.model.path": model, "actor_rollout_ref.model.custom_chat_template": RAW_TEMPLATE,
        "actor_rollout_ref.model.lora_rank": m.lora_rank,
        "actor_rollout_ref.model.lora_alpha": int(m.lora_alpha) if float(m.lora_alpha).is_integer() else m.lora_alpha,
        "actor_rollout_ref.model.target_modules": targets,
        f"{A}.optim.lr": o.lr, f"{A}.optim.weight_decay": o.weight_decay, f"{A}.optim.betas": [0.9, 0.999],
        f"{A}.optim.lr_warmup_steps_ratio": 0.0, f"{A}.optim.lr_scheduler_type": "constant",
        f"{A}.grad_clip": o.grad_clip if o.grad_clip else 1e9,
        f"{A}.ppo_mini_batch_size": max(1, P // mb), f"{A}.ppo_micro_batch_size_per_gpu": max(1, P * K // mb),
        f"{A}.ppo_epochs": a.epochs, f"{A}.shuffle": False,
        f"{A}.policy_loss.loss_mode": LOSS_MODES.get(a.policy_loss, "vanilla"), f"{A}.clip_ratio_low": a.clip_low,
        f"{A}.clip_ratio_high": a.clip_high, f"{A}.clip_ratio_c": a.dual_clip or 1e9,
        f"{A}.loss_agg_mode": AGG[a.aggregation], f"{A}.entropy_coeff": a.entropy_coef,
        f"{R}.n": K, f"{R}.temperature": r.temperature, f"{R}.top_p": r.top_p, f"{R}.top_k": -1,
        "trainer.total_training_steps": cfg.run.steps, "trainer.total_epochs": 1000,
        "trainer.logger": ["console"], "trainer.save_freq": -1, "trainer.test_freq": -1,
        "trainer.val_before_train": False, "trainer.critic_warmup": 0,
    }
    if a.aggregation == "seq_mean_token_sum_norm":
        keys[f"{A}.loss_scale_factor"] = r.max_new_tokens
    if r.task in EOS_READERS:
        row("rollout.task", "data.train_files + reward.custom_reward_function", APPROX,
            "verl decodes completions without EOS: compute_score cannot tell a finished answer from a cut one "
            f"({EOS_READERS[r.task]} counts every one as finished)")
    else:
        row("rollout.task", "data.train_files + reward.custom_reward_function")
    row("rollout.prompts_per_step", "data.train_batch_size")
    reward_model_row(row, r.task)
    row("rollout.samples_per_prompt", "actor_rollout_ref.rollout.n")
    row("rollout.max_new_tokens", "data.max_response_length")
    row("rollout.temperature", f"{R}.temperature")
    row("rollout.top_p", f"{R}.top_p")
    row("model.policy", "actor_rollout_ref.model.path")
    row("model.lora_rank", "actor_rollout_ref.model.lora_rank")
    row("model.lora_alpha", "actor_rollout_ref.model.lora_alpha")
    row("model.lora_targets", "actor_rollout_ref.model.target_modules")
    row("model.lora_dropout", "", EXACT if not m.lora_dropout else APPROX,
        "0 in both (verl's FSDP LoRA has no dropout key)" if not m.lora_dropout else "verl's FSDP LoRA has no dropout")
    row("optim.lr", f"{A}.optim.lr")
    row("optim.weight_decay", f"{A}.optim.weight_decay", note="verl's default is 0.01")
    row("optim.grad_clip", f"{A}.grad_clip")
    row("run.steps", "trainer.total_training_steps")
    row("run.seed", "data.seed", note="the same prompts; other random streams")
    row("algorithm.estimator", "algorithm.adv_estimator", status, note)
    row("algorithm.baseline", "algorithm.adv_estimator", status, note)
    row("algorithm.scale", "algorithm.norm_adv_by_std_in_grpo" if adv == "grpo" else "-")
    row("algorithm.whiten", "(built into the estimator)", status, note)
    row("algorithm.update", "-", note="gradient steps")
    if a.policy_loss not in LOSS_MODES:
        row("algorithm.policy_loss", "", BLOCKED, f"verl has no '{a.policy_loss}' loss mode")
    else:
        row("algorithm.policy_loss", f"{A}.policy_loss.loss_mode",
            EXACT if a.policy_loss != "pg" or (a.epochs == 1 and mb == 1) else APPROX,
            "one step per batch: the clip never binds" if a.policy_loss == "pg" else
            "verl's geo_mean clips each token's log-ratio sign-aware, as GMPO and the lab" if a.policy_loss == "gmpo"
            else "")
    if a.policy_loss != "pg":
        row("algorithm.clip_low", f"{A}.clip_ratio_low")
        row("algorithm.clip_high", f"{A}.clip_ratio_high")
    row("algorithm.dual_clip", f"{A}.clip_ratio_c", note="" if a.dual_clip else
        "verl applies a dual clip of 3 by default; PPO's paper has none, so 1e9 turns it off")
    row("algorithm.aggregation", f"{A}.loss_agg_mode")
    row("algorithm.epochs", f"{A}.ppo_epochs")
    row("algorithm.minibatches", f"{A}.ppo_mini_batch_size (prompts)", EXACT if P % mb == 0 else APPROX,
        "" if P % mb == 0 else f"verl splits by prompts: {P} prompts do not divide into {mb} minibatches")
    row("algorithm.entropy_coef", f"{A}.entropy_coeff")
    if a.estimator in ("returns", "gae"):
        row("algorithm.gamma", "algorithm.gamma")
    if a.estimator == "gae":
        row("algorithm.lam", "algorithm.lam")
    if a.baseline == "value":
        keys.update({"critic.model.path": model, "critic.optim.lr": a.value_lr, "critic.cliprange_value":
                     a.value_clip or 1e9, "critic.ppo_epochs": a.epochs, "critic.ppo_mini_batch_size": max(1, P // mb),
                     "critic.ppo_micro_batch_size_per_gpu": max(1, P * K // mb), "critic.model.lora_rank": m.lora_rank,
                     "critic.model.lora_alpha": m.lora_alpha})
        row("algorithm.value_lr", "critic.optim.lr", APPROX, "verl's critic is a separate LoRA model; the lab's a "
            "value head on the policy's hidden states")
        row("algorithm.value_clip", "critic.cliprange_value")
    _kl(cfg, keys, row)
    if a.dynamic_filter:
        keys.update({"algorithm.filter_groups.enable": True, "algorithm.filter_groups.metric": "acc",
                     "algorithm.filter_groups.max_num_gen_batches": a.resample_rounds + 1})
        row("algorithm.dynamic_filter", "algorithm.filter_groups.enable", APPROX, "verl's DAPO trainer drops groups "
            "whose accuracy does not vary (metric acc: the task score, as the lab) and samples more; check that your "
            "verl entry point honours filter_groups")
        row("algorithm.resample_rounds", "algorithm.filter_groups.max_num_gen_batches", APPROX,
            "verl counts generation batches, the first included (rounds + 1); it keeps sampling until the batch is "
            "full, the lab then fills with flat groups that the filter drops")
    else:
        row("algorithm.dynamic_filter", "-", note="off in both")
    if r.overlong_buffer:
        keys.update({"reward.reward_manager.name": "dapo", "+reward.reward_kwargs.max_resp_len": r.max_new_tokens,
                     "+reward.reward_kwargs.overlong_buffer_cfg.enable": True,
                     "+reward.reward_kwargs.overlong_buffer_cfg.len": r.overlong_buffer,
                     "+reward.reward_kwargs.overlong_buffer_cfg.penalty_factor": r.overlong_penalty})
        row("rollout.overlong_buffer", "reward.reward_kwargs.overlong_buffer_cfg.len (dapo reward manager)")
        row("rollout.overlong_penalty", "reward.reward_kwargs.overlong_buffer_cfg.penalty_factor")
    else:
        row("rollout.overlong_buffer", "-", note="off in both")
    for s, why in (("rollout.missing_eos_penalty", "compute_score does not see whether the completion ended with EOS"),
                   ("rollout.mask_truncated", "verl has no masking of truncated completions"),
                   ("rollout.reward_clip", "verl has no reward clipping before the advantage"),
                   ("rollout.reward_normalize", "verl has no batch reward normalisation")):
        on = bool(getattr(r, s.split(".")[1]))
        row(s, "" if on else "-", BLOCKED if on else EXACT, why if on else "off in both")
    return keys, rows


def _kl(cfg: Config, keys: dict[str, Any], row) -> None:
    k, a = cfg.kl, cfg.algorithm
    A = "actor_rollout_ref.actor"
    in_loss, in_reward = k.placement == "loss", k.placement in ("reward_token", "reward_seq")
    keys.update({f"{A}.use_kl_loss": in_loss, f"{A}.kl_loss_coef": k.coef if in_loss else 0.0,
                 f"{A}.kl_loss_type": KL_TYPES[k.estimator], "algorithm.use_kl_in_reward": in_reward,
                 "algorithm.kl_penalty": KL_TYPES[k.estimator], "algorithm.kl_ctrl.type": k.controller,
                 "algorithm.kl_ctrl.kl_coef": k.coef if in_reward else 0.0})
    if k.placement == "none":
        row("kl.placement", f"{A}.use_kl_loss=False, algorithm.use_kl_in_reward=False")
        return
    seq_sum = a.estimator == "outcome"  # verl's outcome estimators sum the token rewards: the KL becomes per sequence
    if in_loss:
        row("kl.placement", f"{A}.use_kl_loss=True")
        row("kl.coef", f"{A}.kl_loss_coef")
        row("kl.estimator", f"{A}.kl_loss_type", note="verl clamps low_var_kl (k3) to [-10, 10]" if k.estimator == "k3" else "")
    else:
        exact = (k.placement == "reward_seq") == seq_sum
        row("kl.placement", "algorithm.use_kl_in_reward=True", EXACT if exact else APPROX,
            "" if exact else "verl charges the KL per token; with this estimator the lab charges it "
            + ("per sequence" if k.placement == "reward_seq" else "per token but sums it into one reward"))
        row("kl.coef", "algorithm.kl_ctrl.kl_coef")
        row("kl.estimator", "algorithm.kl_penalty")
    if k.controller == "adaptive":
        if in_loss:
            row("kl.controller", "", BLOCKED, "verl's adaptive controller acts on the KL in the reward only")
            return
        keys.update({"algorithm.kl_ctrl.target_kl": k.target, "algorithm.kl_ctrl.horizon": k.horizon})
        row("kl.controller", "algorithm.kl_ctrl.type=adaptive", note="Ziegler et al.'s controller, as the lab")
        row("kl.target", "algorithm.kl_ctrl.target_kl")
        row("kl.horizon", "algorithm.kl_ctrl.horizon")
    else:
        row("kl.controller", "algorithm.kl_ctrl.type=fixed")


def hydra_value(v: Any) -> str:
    """A value as Hydra reads it on a command line."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, list):
        return "[" + ",".join(hydra_value(x) if not isinstance(x, str) else f"'{x}'" for x in v) + "]"
    if isinstance(v, str) and v.startswith("$"):
        return v
    if isinstance(v, str) and (set(v) & set(" {}[]%'\",=:")):
        return json.dumps(v)
    return str(v)


REWARD_PY = '''"""compute_score for verl: the lab task '{task}' scored by lab_rewards.py (copied from labcore/rewards.py).

verl calls compute_score(data_source, solution_str, ground_truth, extra_info) once per completion. The prompt's
columns travel in extra_info (prompt_text and the task's own columns, such as the answer).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab_rewards  # noqa: E402

FUNCS = [{funcs}]
WEIGHTS = {weights}


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    info = dict(extra_info or {{}})
    prompt = info.pop("prompt_text", "")
    columns = {{k: [v] for k, v in info.items() if k != "index"}}
    total = 0.0
    for fn, w in zip(FUNCS, WEIGHTS):
        value = fn([prompt], [solution_str.strip()], **columns)[0]
        total += 0.0 if value is None else w * float(value)
    return total
'''

RUN_SH = '''#!/usr/bin/env bash
# {title} exported from rlhf-lab to verl (recipe '{recipe}'). Fidelity: {verdict} (FIDELITY.md).
# Needs verl (pip install verl, with vLLM) and GPUs: GPUS=8 bash run.sh [more Hydra overrides]
{notes}
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
python3 -m verl.trainer.main_ppo \\
{overrides}
  trainer.n_gpus_per_node="${{GPUS:-8}}" trainer.nnodes=1 "$@"
'''


def export(cfg: Config, label: str, out: Path) -> Report:
    from labcore.algorithms import RECIPES

    model_for_rows = "model" if cfg.model.policy.strip() in world.BUILTIN else cfg.model.policy
    keys, mapped = plan(cfg, model_for_rows, [])
    report, funcs, weights = judged("verl", cfg, label, mapped)
    if not report.ok:
        return report
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise world.ExportError("the verl export writes Parquet: install pyarrow (`pip install pyarrow`).") from None
    data, data_source = world.prompt_rows(cfg)
    begin(out)
    model, model_abs = world.place_model(cfg, out)
    model_ref = "$HERE/model" if model == "model" else model
    keys, _ = plan(cfg, model_ref, world.lora_targets(cfg, model_abs))
    if "critic.model.path" in keys:
        keys["critic.model.path"] = model_ref
    parquet_rows = [{"data_source": f"rlhf-lab/{cfg.rollout.task}",
                     "prompt": [{"role": "user", "content": row["prompt"]}], "ability": cfg.rollout.task,
                     "reward_model": {"style": "rule", "ground_truth": json.dumps({c: v for c, v in row.items() if c != "prompt"})},
                     "extra_info": {"index": i, "prompt_text": row["prompt"], **{c: v for c, v in row.items() if c != "prompt"}}}
                    for i, row in enumerate(data)]
    pq.write_table(pa.Table.from_pylist(parquet_rows), out / "data" / "train.parquet")
    keys.update({"data.train_files": "$HERE/data/train.parquet", "data.val_files": "$HERE/data/train.parquet",
                 "reward.custom_reward_function.path": "$HERE/reward.py",
                 "reward.custom_reward_function.name": "compute_score"})
    world.copy_lab_rewards(out, world.place_reward_model(cfg, out))
    (out / "reward.py").write_text(REWARD_PY.format(task=cfg.rollout.task, weights=weights,
                                                    funcs=", ".join(f"lab_rewards.{f}" for f in funcs)))
    lines = []
    for key, value in keys.items():
        text = hydra_value(value)
        quoted = f'"{text}"' if text.startswith("$") else shlex.quote(text)
        lines.append(f"  {key}={quoted} \\")
    (out / "run.sh").write_text(RUN_SH.format(title=RECIPES[cfg.algorithm.recipe].title, recipe=cfg.algorithm.recipe,
                                              verdict=report.verdict, overrides="\n".join(lines),
                                              notes=fidelity.comment_lines(report.rows)))
    (out / "run.sh").chmod(0o755)
    (out / "overrides.json").write_text(json.dumps(keys, indent=1) + "\n")
    report.files = ["run.sh", "overrides.json", "reward.py", "lab_rewards.py", "data/train.parquet"] + \
        (["model/"] if model == "model" else [])
    return finish(report, out, f"verl.trainer.main_ppo; the overrides are in run.sh (and overrides.json). "
                               f"Prompts: {data_source}.")

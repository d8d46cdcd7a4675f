"""Lab config -> OpenRLHF (`python3 -m openrlhf.cli.train_ppo_ray` flags), flags as in OpenRLHF 3c3be623.

The flags are the dotted ones of openrlhf/cli/train_ppo_ray.py's argparse (tests/data holds the list), not the
README's older names. The reward is `reward_func.py` passed as `--reward.remote_url`: reward_func(queries,
prompts, labels) over the lab's functions. OpenRLHF decodes with special tokens, so EOS is visible there.
OpenRLHF has no CISPO, no ReMax and no TRPO; its loss is a token mean over the batch.
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


def estimator(cfg: Config) -> tuple[str | None, list[str], str, str]:
    """(--algo.advantage.estimator or None, extra switches, fidelity, note)."""
    a = cfg.algorithm
    key = (a.estimator, a.baseline)
    if a.update == "trpo":
        return None, [], BLOCKED, "TRPO's natural-gradient step exists in no library (OpenRLHF updates with Adam)"
    if key == ("outcome", "group_mean") and not a.whiten and a.scale in ("group_std", "none"):
        # group_norm always divides by the group std (--algo.advantage.no_std_norm acts on gae / reinforce
        # only); dr_grpo is the group mean alone, which is Dr. GRPO's advantage.
        return ("group_norm" if a.scale == "group_std" else "dr_grpo"), [], EXACT, ""
    if key == ("outcome", "leave_one_out") and a.scale == "none" and not a.whiten:
        return "rloo", [], EXACT, ""
    if key == ("returns", "none") and a.whiten:
        return "reinforce", [], EXACT, "REINFORCE++: returns-to-go whitened over the batch"
    if key == ("returns", "group_mean") and a.whiten:
        return "reinforce_baseline", [], EXACT, "REINFORCE++-baseline"
    if key == ("gae", "value"):
        return "gae", [], EXACT if a.whiten else APPROX, "" if a.whiten else "OpenRLHF whitens GAE advantages"
    if key == ("outcome", "greedy"):
        return None, [], BLOCKED, "OpenRLHF has no ReMax (greedy baseline); export to verl"
    return None, [], BLOCKED, (f"OpenRLHF has no estimator for estimator '{a.estimator}' + baseline "
                               f"'{a.baseline}' + scale '{a.scale}' + whiten {a.whiten}")


def plan(cfg: Config, model: str, targets: list[str]) -> tuple[list[str], dict[str, Row]]:
    """(argv after `-m openrlhf.cli.train_ppo_ray`, {lab setting: Row})."""
    a, r, o, m = cfg.algorithm, cfg.rollout, cfg.optim, cfg.model
    rows: dict[str, Row] = {}
    row = row_adder(cfg, rows)

    adv, switches, status, note = estimator(cfg)
    row("algorithm.recipe", f"--algo.advantage.estimator {adv}" if adv else "", status, note)
    if adv is None:
        row("algorithm.update" if a.update == "trpo" else "algorithm.baseline", "", BLOCKED, note)
        return [], rows
    if a.policy_loss not in ("pg", "clip", "gspo"):
        row("algorithm.policy_loss", "", BLOCKED, f"OpenRLHF has no '{a.policy_loss}' loss (ppo and gspo only); "
            "export to verl")
        return [], rows
    P, K, mb = r.prompts_per_step, r.samples_per_prompt, a.minibatches
    flags: dict[str, Any] = {
        "--actor.model_name_or_path": model, "--algo.advantage.estimator": adv,
        "--algo.advantage.gamma": a.gamma, "--algo.advantage.lambd": a.lam if a.estimator == "gae" else 1.0,
        "--rollout.batch_size": P, "--rollout.n_samples_per_prompt": K, "--train.batch_size": P * K // mb,
        "--train.max_epochs": a.epochs, "--train.num_episodes": 1, "--train.seed": cfg.run.seed,
        "--rollout.max_new_tokens": r.max_new_tokens, "--data.max_len": 256 + r.max_new_tokens,
        "--rollout.temperature": r.temperature, "--rollout.top_p": r.top_p,
        "--actor.policy_loss_type": "gspo" if a.policy_loss == "gspo" else "ppo",
        "--actor.eps_clip_low_high": [a.clip_low, a.clip_high],
        "--actor.adam.lr": o.lr, "--actor.adam.betas": [0.9, 0.999], "--actor.adam.weight_decay": o.weight_decay,
        "--actor.max_norm": o.grad_clip if o.grad_clip else 1e9, "--actor.lr_scheduler": "constant",
        "--actor.lr_warmup_ratio": 0.0, "--actor.entropy_coef": a.entropy_coef,
        "--ds.lora.rank": m.lora_rank, "--ds.lora.alpha": int(round(m.lora_alpha)), "--ds.lora.dropout": m.lora_dropout,
        "--ds.lora.target_modules": targets,
        "--reward.clip_range": [-r.reward_clip, r.reward_clip] if r.reward_clip else [-1e9, 1e9],
        "--data.input_key": "prompt", "--data.label_key": "label",
    }
    if a.dual_clip:
        flags["--actor.dual_clip"] = a.dual_clip
    row("rollout.task", "--data.prompt_dataset + --reward.remote_url reward_func.py")
    row("rollout.prompts_per_step", "--rollout.batch_size")
    reward_model_row(row, r.task)
    row("rollout.samples_per_prompt", "--rollout.n_samples_per_prompt")
    row("rollout.max_new_tokens", "--rollout.max_new_tokens")
    row("rollout.temperature", "--rollout.temperature")
    row("rollout.top_p", "--rollout.top_p")
    row("model.policy", "--actor.model_name_or_path")
    row("model.lora_rank", "--ds.lora.rank")
    row("model.lora_alpha", "--ds.lora.alpha", EXACT if float(m.lora_alpha).is_integer() else APPROX,
        "" if float(m.lora_alpha).is_integer() else "OpenRLHF takes a whole-number alpha")
    row("model.lora_dropout", "--ds.lora.dropout")
    row("model.lora_targets", "--ds.lora.target_modules")
    row("optim.lr", "--actor.adam.lr")
    row("optim.weight_decay", "--actor.adam.weight_decay")
    row("optim.grad_clip", "--actor.max_norm")
    row("run.steps", "the dataset holds P x steps prompts, --train.num_episodes 1")
    row("run.seed", "--train.seed", note="the same prompts; other random streams")
    for s in ("algorithm.estimator", "algorithm.baseline", "algorithm.whiten"):
        row(s, "--algo.advantage.estimator", status, note)
    row("algorithm.scale", " ".join(switches) or "-")
    row("algorithm.update", "-", note="gradient steps")
    single = a.epochs == 1 and mb == 1
    row("algorithm.policy_loss", "--actor.policy_loss_type", EXACT if a.policy_loss != "pg" or single else APPROX,
        "one step per batch: the clip never binds" if a.policy_loss == "pg" else "")
    if a.policy_loss != "pg":
        row("algorithm.clip_low", "--actor.eps_clip_low_high")
        row("algorithm.clip_high", "--actor.eps_clip_low_high")
    row("algorithm.dual_clip", "--actor.dual_clip" if a.dual_clip else "-", note="" if a.dual_clip else "off in both")
    if a.aggregation == "token_mean" or a.policy_loss == "gspo":
        row("algorithm.aggregation", "(token mean, built in)")
    else:
        row("algorithm.aggregation", "", APPROX, f"OpenRLHF averages the loss over every token of a micro-batch; the "
            f"lab's '{a.aggregation}' weights sequences differently")
    row("algorithm.epochs", "--train.max_epochs")
    row("algorithm.minibatches", "--train.batch_size (samples per optimiser step)")
    row("algorithm.entropy_coef", "--actor.entropy_coef")
    if a.estimator in ("returns", "gae"):
        row("algorithm.gamma", "--algo.advantage.gamma")
    if a.estimator == "gae":
        row("algorithm.lam", "--algo.advantage.lambd")
    if a.baseline == "value":
        flags.update({"--critic.model_name_or_path": model, "--critic.adam.lr": a.value_lr,
                      "--critic.value_clip": a.value_clip or 1e9})
        row("algorithm.value_lr", "--critic.adam.lr", APPROX, "OpenRLHF's critic is a separate model; the lab's a "
            "value head on the policy's hidden states")
        row("algorithm.value_clip", "--critic.value_clip")
    _kl(cfg, flags, row)
    if a.dynamic_filter:
        flags.update({"--algo.dynamic_filtering_enable": True, "--algo.dynamic_filtering_range": [0.0, 1.0]})
        row("algorithm.dynamic_filter", "--algo.dynamic_filtering_enable", APPROX, "reward_func scores a group 0.5 "
            "when its rewards vary, else 0, and OpenRLHF drops groups whose mean is outside (0, 1); this assumes "
            "one reward_func call sees a prompt's whole group")
        if a.resample_rounds:
            row("algorithm.resample_rounds", "", APPROX, "OpenRLHF drops the flat groups without sampling more: the "
                "batch shrinks where the lab refills it")
    else:
        row("algorithm.dynamic_filter", "-", note="off in both")
    if r.overlong_buffer:
        flags.update({"--reward.overlong_buffer_len": r.overlong_buffer,
                      "--reward.overlong_penalty_factor": r.overlong_penalty})
        row("rollout.overlong_buffer", "--reward.overlong_buffer_len", note="DAPO eq. 13 on token lengths, as the lab")
        row("rollout.overlong_penalty", "--reward.overlong_penalty_factor")
    else:
        row("rollout.overlong_buffer", "-", note="off in both")
    row("rollout.missing_eos_penalty", "reward_func (EOS read from the query text)" if r.missing_eos_penalty else "-")
    row("rollout.reward_clip", "--reward.clip_range", note="" if r.reward_clip else "off: OpenRLHF clips to "
        "[-10, 10] by default, so the range is opened to +-1e9")
    row("rollout.mask_truncated", "" if r.mask_truncated else "-", BLOCKED if r.mask_truncated else EXACT,
        "OpenRLHF scales or overrides truncated rewards; it has no loss mask" if r.mask_truncated else "off in both")
    row("rollout.reward_normalize", "--reward.normalize_enable" if r.reward_normalize else "-",
        APPROX if r.reward_normalize else EXACT,
        "OpenRLHF normalises with running statistics, the lab per batch" if r.reward_normalize else "off in both")
    if r.reward_normalize:
        flags["--reward.normalize_enable"] = True
    argv: list[str] = []
    for flag, value in flags.items():
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv, rows


def _kl(cfg: Config, flags: dict[str, Any], row) -> None:
    k, a = cfg.kl, cfg.algorithm
    flags["--algo.kl.estimator"] = k.estimator
    if k.placement == "none":
        flags["--algo.kl.init_coef"] = 0.0
        row("kl.placement", "--algo.kl.init_coef 0", note="no KL")
        return
    flags["--algo.kl.init_coef"] = k.coef
    row("kl.coef", "--algo.kl.init_coef")
    row("kl.estimator", "--algo.kl.estimator")
    if k.placement == "loss":
        flags["--algo.kl.use_loss"] = True
        row("kl.placement", "--algo.kl.use_loss")
    elif k.placement == "reward_token" or a.estimator != "outcome":
        row("kl.placement", "(KL in the token rewards, the default)", EXACT if k.placement == "reward_token" else APPROX,
            "" if k.placement == "reward_token" else "OpenRLHF charges the KL per token")
    else:
        row("kl.placement", "(KL in the token rewards, the default)", APPROX, "OpenRLHF charges the KL per token "
            "and sums returns-to-go; the lab subtracts the sequence's whole KL from its one reward")
    if k.controller == "adaptive":
        flags.update({"--algo.kl.target": k.target, "--algo.kl.horizon": k.horizon})
        row("kl.controller", "--algo.kl.target", note="Ziegler et al.'s controller, as the lab")
        row("kl.target", "--algo.kl.target")
        row("kl.horizon", "--algo.kl.horizon")
    else:
        row("kl.controller", "-", note="a fixed coefficient")


REWARD_PY = '''"""reward_func for OpenRLHF (--reward.remote_url reward_func.py): the lab task '{task}'.

Scoring is lab_rewards.py, copied from labcore/rewards.py. OpenRLHF passes queries (prompt + completion,
decoded with special tokens, so a finished completion ends with the EOS text), prompts and labels (the
dataset's `label` column: the task's own columns as JSON).
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab_rewards  # noqa: E402

FUNCS = [{funcs}]
WEIGHTS = {weights}
EOS_TEXT = {eos!r}
MISSING_EOS_PENALTY = {missing_eos}
TOTAL_WEIGHT = {total_weight}


def reward_func(queries, prompts, labels, **kwargs):
    completions, eos = [], []
    for query, prompt in zip(queries, prompts):
        text = query[len(prompt):] if query.startswith(prompt) else query
        text = text.rstrip()
        ended = bool(EOS_TEXT) and text.endswith(EOS_TEXT)
        completions.append((text[: -len(EOS_TEXT)] if ended else text).replace(EOS_TEXT, "").strip())
        eos.append(ended)
    columns = {{}}
    for label in labels:
        for key, value in json.loads(label or "{{}}").items():
            columns.setdefault(key, []).append(value)
    total = [0.0] * len(queries)
    for fn, w in zip(FUNCS, WEIGHTS):
        for i, value in enumerate(fn(list(prompts), completions, eos=eos, **columns)):
            total[i] += 0.0 if value is None else w * float(value)
    for i, pen in enumerate(lab_rewards.missing_eos(eos)):
        total[i] += MISSING_EOS_PENALTY * pen
    # Dynamic filtering keeps a group when its mean score is inside (0, 1): 0.5 for a group whose rewards vary.
    by_prompt = {{}}
    for p, t in zip(prompts, total):
        by_prompt.setdefault(p, set()).add(round(t, 9))
    scores = [0.5 if len(by_prompt[p]) > 1 else 0.0 for p in prompts]
    rewards = torch.tensor(total, dtype=torch.float32)
    return {{"rewards": rewards, "scores": torch.tensor(scores), "extra_logs": {{"task_reward": rewards}}}}
'''

RUN_SH = '''#!/usr/bin/env bash
# {title} exported from rlhf-lab to OpenRLHF (recipe '{recipe}'). Fidelity: {verdict} (FIDELITY.md).
# Needs OpenRLHF (pip install openrlhf[vllm]), Ray and GPUs: start Ray (ray start --head), then
#   GPUS=8 bash run.sh [more flags]
{notes}
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
ray job submit --address="${{RAY_ADDRESS:-http://127.0.0.1:8265}}" --runtime-env-json="{{\\"working_dir\\": \\"$HERE\\"}}" \\
  -- python3 -m openrlhf.cli.train_ppo_ray \\
{args}
  --actor.num_gpus_per_node "${{GPUS:-8}}" --vllm.num_engines "${{GPUS:-8}}" --train.colocate_all \\
  --ckpt.output_dir "$HERE/output" "$@"
'''


def export(cfg: Config, label: str, out: Path) -> Report:
    from labcore.algorithms import RECIPES

    argv, mapped = plan(cfg, "model", [])
    report, funcs, weights = judged("openrlhf", cfg, label, mapped)
    if not report.ok:
        return report
    data, data_source = world.prompt_rows(cfg)
    begin(out)
    model, model_abs = world.place_model(cfg, out)
    model_ref = "$HERE/model" if model == "model" else model
    argv, _ = plan(cfg, model_ref, world.lora_targets(cfg, model_abs))
    argv = [model_ref if a == "model" else a for a in argv]
    argv += ["--data.prompt_dataset", "$HERE/data/train.jsonl", "--reward.remote_url", "$HERE/reward_func.py"]
    world.write_jsonl([{"prompt": row["prompt"], "label": json.dumps({c: v for c, v in row.items() if c != "prompt"})}
                       for row in data], out / "data" / "train.jsonl")
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(model_abs).eos_token or ""
    world.copy_lab_rewards(out, world.place_reward_model(cfg, out))
    (out / "reward_func.py").write_text(REWARD_PY.format(
        task=cfg.rollout.task, funcs=", ".join(f"lab_rewards.{f}" for f in funcs), weights=weights, eos=eos,
        missing_eos=cfg.rollout.missing_eos_penalty, total_weight=sum(weights)))
    lines, i = [], 0
    while i < len(argv):  # one flag and its values per line
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--"):
            j += 1
        vals = " ".join(f'"{v}"' if v.startswith("$") else shlex.quote(v) for v in argv[i + 1:j])
        lines.append(f"  {argv[i]} {vals} \\".replace("  \\", " \\"))
        i = j
    (out / "run.sh").write_text(RUN_SH.format(title=RECIPES[cfg.algorithm.recipe].title, recipe=cfg.algorithm.recipe,
                                              verdict=report.verdict, args="\n".join(lines),
                                              notes=fidelity.comment_lines(report.rows)))
    (out / "run.sh").chmod(0o755)
    report.files = ["run.sh", "reward_func.py", "lab_rewards.py", "data/train.jsonl"] + \
        (["model/"] if model == "model" else [])
    return finish(report, out, f"openrlhf.cli.train_ppo_ray; the flags are in run.sh. Prompts: {data_source}.")

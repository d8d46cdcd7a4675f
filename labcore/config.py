"""Typed, documented and validated configuration for one run of the lab.

A `Config` is six frozen dataclasses (model, rollout, algorithm, kl, optim, run). Every field carries its help
text in `metadata["help"]`; the UI shows it as hover help and the CLI as `--set` documentation. `validate()`
returns every problem at once, each naming the field, the bad value, what is allowed and how to fix it.

Presets are small TOML files (read with `tomllib`, which keeps `5e-6` a float, unlike YAML) that name a recipe
and override only what differs from it. Loading order: dataclass defaults -> recipe defaults -> preset -> overrides.
Left out: inheritance between presets, and environment-variable interpolation.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _f(default: Any, help: str, **choices: Any) -> Any:
    return field(default=default, metadata={"help": help, **choices})


class ConfigError(ValueError):
    """One or more invalid settings. `problems` holds one readable line per setting."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Invalid settings:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True)
class ModelConfig:
    policy: str = _f("tiny", "Policy model: 'tiny' (built in, offline), a local directory, or a Hugging Face id.")
    reward_model: str = _f("tiny-rm", "Reward model for learned-reward tasks (sentiment): 'tiny-rm', a directory or hub id.")
    lora_rank: int = _f(8, "LoRA rank r: the size of the low-rank update. Larger learns more, costs more.")
    lora_alpha: float = _f(16.0, "LoRA alpha: the update is scaled by alpha / r.")
    lora_dropout: float = _f(0.0, "Dropout on the LoRA input, in [0, 1).")
    lora_targets: str = _f("", "Comma-separated module names to adapt; empty picks them per architecture.")
    fast_forward: bool = _f(True, "Run Llama / Mistral / Qwen2 models through labcore's own forward: the maths of "
                                  "transformers + peft in fewer operator calls (a step about a fifth faster on a CPU). "
                                  "Off: transformers' forward.")
    device: str = _f("auto", "Device: auto (CUDA, then MPS, then CPU), cpu, cuda or mps.", choices=("auto", "cpu", "cuda", "mps"))
    adapter: str = _f("", "Start from saved LoRA weights: a folder written by peft's save_pretrained (a run folder's "
                          "adapter/). The reference stays the base model. Empty: a fresh adapter. Local use only.")


@dataclass(frozen=True)
class RolloutConfig:
    task: str = _f("arithmetic", "Task: where prompts come from and how completions are scored.")
    prompts_per_step: int = _f(8, "P: prompts sampled per step.")
    samples_per_prompt: int = _f(4, "K: completions sampled per prompt (the group size for group baselines).")
    max_new_tokens: int = _f(6, "Longest completion in tokens; longer ones are cut and have no EOS.")
    temperature: float = _f(1.0, "Sampling temperature; log-probs use the same temperature. Live: can change mid-run.")
    top_p: float = _f(1.0, "Nucleus sampling: keep the smallest token set with this much probability. 1 = off.")
    missing_eos_penalty: float = _f(0.0, "Subtracted from the reward of completions that did not end with EOS.")
    mask_truncated: bool = _f(False, "Drop completions without EOS from the loss (TRL's mask_truncated_completions).")
    overlong_buffer: int = _f(0, "DAPO soft overlong penalty: tokens before max_new_tokens where the penalty ramps. 0 = off.")
    overlong_penalty: float = _f(1.0, "DAPO overlong penalty factor (the penalty at max_new_tokens).")
    reward_clip: float = _f(0.0, "Clip rewards to [-c, c] before advantages. 0 = off.")
    reward_normalize: bool = _f(False, "Standardise rewards over the batch before advantages.")
    dataset: str = _f("", "Your prompts: a local .jsonl, .json, .csv or .parquet file, or a folder saved with datasets' "
                          "save_to_disk, with a 'prompt' column (a text or chat messages); its other columns reach "
                          "the reward functions. Empty: the task's own prompts. Local use only.")
    reward_fns: str = _f("", "Your rewards, comma-separated: module.function, path/to/file.py:function, or a reward-model "
                             "folder; TRL's signature f(prompts, completions, **columns) -> list[float | None]. "
                             "Empty: the task's own. Local use only.")
    reward_weights: str = _f("", "Weights of the reward functions, comma-separated numbers in their order. Empty: 1 each.")
    chat_template: str = _f("auto", "Format prompts with the tokenizer's chat template: auto (when it has one), on, off.",
                            choices=("auto", "on", "off"))


@dataclass(frozen=True)
class AlgorithmConfig:
    recipe: str = _f("grpo", "Algorithm recipe; picking one fills in every part below.")
    update: str = _f("gradient", "How the loss moves the weights: gradient (Adam steps) or trpo (natural gradient, KL trust region).")
    estimator: str = _f("outcome", "How a reward becomes a per-token signal: outcome, returns, gae.")
    baseline: str = _f("group_mean", "Baseline subtracted from the reward.")
    scale: str = _f("group_std", "Advantage scaling after the baseline.")
    whiten: bool = _f(False, "Whiten token advantages over the batch (REINFORCE++, PPO).")
    policy_loss: str = _f("clip", "Per-token policy loss.")
    aggregation: str = _f("seq_mean_token_mean", "How per-token losses become one number.")
    clip_low: float = _f(0.2, "epsilon_low: the ratio is clipped below at 1 - epsilon_low.")
    clip_high: float = _f(0.2, "epsilon_high: the ratio is clipped above at 1 + epsilon_high (DAPO clip-higher: 0.28).")
    dual_clip: float = _f(0.0, "Dual-clip constant c > 1 caps the loss of negative-advantage tokens at -c*A. 0 = off.")
    epochs: int = _f(1, "Optimisation passes over each batch (PPO's mu). 1 keeps the ratio at 1 on the first pass.")
    minibatches: int = _f(1, "Minibatches per epoch; must divide P*K.")
    gamma: float = _f(1.0, "Discount gamma for returns and GAE.")
    lam: float = _f(0.95, "GAE lambda: 0 is one-step TD, 1 is Monte-Carlo.")
    vf_coef: float = _f(0.5, "Weight of the value loss (value recipes).")
    value_clip: float = _f(0.0, "Value clipping range around the old values. 0 = off.")
    value_lr: float = _f(1e-3, "Learning rate of the value head.")
    entropy_coef: float = _f(0.0, "Entropy bonus: the loss subtracts this times the mean entropy.")
    ema_decay: float = _f(0.9, "Decay of the moving-average baseline.")
    dynamic_filter: bool = _f(False, "DAPO dynamic sampling: drop groups whose rewards do not vary.")
    trpo_max_kl: float = _f(0.01, "TRPO trust region: largest mean KL(old || new) per step.")
    trpo_damping: float = _f(0.1, "TRPO damping added to the Fisher-vector product.")
    trpo_cg_iters: int = _f(10, "TRPO conjugate-gradient iterations.")


@dataclass(frozen=True)
class KLConfig:
    placement: str = _f("loss", "Where the KL to the reference goes: none, reward_token, reward_seq, loss.")
    estimator: str = _f("k3", "KL estimator: k1 (log ratio), k2 (half squared log ratio), k3 (Schulman's unbiased, >= 0).")
    controller: str = _f("fixed", "fixed coefficient, or adaptive towards a target KL (Ziegler et al. 2019).")
    coef: float = _f(0.04, "KL coefficient beta (the adaptive controller's starting value). Live: can change mid-run.")
    target: float = _f(0.1, "Adaptive controller: target KL per sequence.")
    horizon: int = _f(10000, "Adaptive controller: horizon in samples.")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = _f(3e-3, "Adam learning rate for the LoRA weights (3e-3 suits the built-in model; choosing another "
                         "model scales the recipe's rate by 1/60, e.g. to 5e-5, unless you set it). Live: can change "
                         "mid-run.")
    grad_clip: float = _f(1.0, "Clip the global gradient norm to this. 0 = off.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")


@dataclass(frozen=True)
class RunConfig:
    steps: int = _f(100, "Training steps.")
    seed: int = _f(0, "Seed for prompts, sampling and LoRA initialisation.")
    name: str = _f("", "A name for the run (shown in legends). Empty: recipe and time.")
    grad_variance: bool = _f(True, "Estimate the policy-gradient variance (costs about one extra forward and backward; "
                                   "off by default for models other than the built-in one).")
    grad_variance_every: int = _f(5, "Estimate the gradient variance every N steps (its cost is then spread out).")
    log_samples: int = _f(16, "Completions kept per step for the samples table.")
    save_every: int = _f(0, "Save a checkpoint (adapter and trainer state) in the run folder every N steps; one is "
                            "always saved at the end. 0 = only at the end.")
    resume: str = _f("", "Continue the run in this run folder from its checkpoint (its step, optimiser and random "
                         "state); steps count on to run.steps. Empty: a new run. Local use only.")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTIONS: dict[str, type] = {f.name: f.type if isinstance(f.type, type) else globals()[f.type] for f in fields(Config)}


def field_help(section: str, key: str) -> str:
    """The help text of `section.key`, for the UI and the CLI."""
    return next(f.metadata["help"] for f in fields(SECTIONS[section]) if f.name == key)


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def flat(cfg: Config) -> dict[str, Any]:
    """{'section.key': value} for every field."""
    return {f"{s}.{k}": v for s, sec in to_dict(cfg).items() for k, v in sec.items()}


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _coerce(section: str, key: str, value: Any) -> Any:
    """Convert a value (possibly a string from the CLI or the UI) to the field's type."""
    kind = type(getattr(SECTIONS[section](), key))
    where = f"{section}.{key}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError([f"{where} = {value!r}: expected true or false."])
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError([f"{where} = {value!r}: expected a whole number."])
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError([f"{where} = {value!r}: expected a whole number."]) from None
        if not as_float.is_integer():
            raise ConfigError([f"{where} = {value!r}: expected a whole number, not a fraction."])
        return int(as_float)
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError([f"{where} = {value!r}: expected a number."])
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError([f"{where} = {value!r}: expected a number such as 0.2 or 3e-3."]) from None
    if isinstance(value, (list, tuple)):  # TOML lists for the comma-separated settings (rollout.reward_fns)
        return ", ".join(str(v) for v in value)
    return str(value)


def apply(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return `cfg` with overrides applied. Keys are 'section.key' or nested {'section': {'key': v}}.

    Unknown sections or keys raise ConfigError with a "did you mean" suggestion; values are coerced to the
    field's type. Setting `algorithm.recipe` does not by itself load the recipe's defaults: use `build`.
    """
    flat_over: dict[str, Any] = {}
    for k, v in overrides.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                flat_over[f"{k}.{kk}"] = vv
        else:
            flat_over[k] = v
    problems: list[str] = []
    updates: dict[str, dict[str, Any]] = {}
    for dotted, value in flat_over.items():
        section, _, key = dotted.partition(".")
        if section not in SECTIONS:
            problems.append(f"unknown section '{section}' in '{dotted}'; sections are {', '.join(SECTIONS)}."
                            + _did_you_mean(section, list(SECTIONS)))
            continue
        names = [f.name for f in fields(SECTIONS[section])]
        if key not in names:
            problems.append(f"unknown setting '{dotted}'; {section} has {', '.join(names)}."
                            + _did_you_mean(key, names))
            continue
        try:
            updates.setdefault(section, {})[key] = _coerce(section, key, value)
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    new = replace(cfg, **{s: replace(getattr(cfg, s), **kv) for s, kv in updates.items()})
    return for_real_model(cfg, new, set(flat_over))


# The recipes' learning rates are tuned for the built-in 1 M-parameter model; LoRA RL on a real model (135 M and
# up) wants about 1e-5 to 1e-4. Switching to a real model scales them by this (3e-3 -> 5e-5), keeping the recipes'
# ratios (PPO's four passes: half).
REAL_MODEL_LR_FACTOR = 1 / 60


def for_real_model(old: Config, new: Config, given: set[str]) -> Config:
    """Defaults that follow the model: when `new` switches from the built-in policy to another one, the learning
    rate is scaled by REAL_MODEL_LR_FACTOR and the gradient-variance pass (an extra step's cost) is switched off,
    unless `given` (the dotted keys just set) sets them. Switching back leaves them alone."""
    if old.model.policy != "tiny" or new.model.policy == "tiny":
        return new
    optim, run = new.optim, new.run
    if "optim.lr" not in given:
        optim = replace(optim, lr=optim.lr * REAL_MODEL_LR_FACTOR)
    if "run.grad_variance" not in given:
        run = replace(run, grad_variance=False)
    return replace(new, optim=optim, run=run)


def build(recipe: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults -> the recipe's defaults -> overrides. The recipe may also be named in the overrides."""
    from labcore.algorithms import RECIPES  # local import: algorithms imports this module

    overrides = dict(overrides or {})
    named = overrides.pop("recipe", None) or overrides.get("algorithm.recipe")
    if isinstance(overrides.get("algorithm"), dict) and "recipe" in overrides["algorithm"]:
        named = overrides["algorithm"]["recipe"]
    recipe = recipe or named or "grpo"
    if recipe not in RECIPES:
        raise ConfigError([f"algorithm.recipe = {recipe!r} is not a recipe; choose one of {', '.join(RECIPES)}."
                           + _did_you_mean(str(recipe), list(RECIPES))])
    cfg = apply(Config(), {"algorithm.recipe": recipe, **RECIPES[recipe].defaults})
    return apply(cfg, overrides)


def recipe_diff(cfg: Config) -> dict[str, tuple[Any, Any]]:
    """Settings that differ from the recipe's own defaults: {'section.key': (recipe_value, value)}."""
    base = flat(build(cfg.algorithm.recipe))
    return {k: (base[k], v) for k, v in flat(cfg).items() if base[k] != v}


# --------------------------------------------------------------------------------------------------- validation


def validate(cfg: Config, *, context_length: int | None = None) -> list[str]:
    """Every problem with `cfg`, one readable line each (empty when valid).

    `context_length` (the model's maximum positions), when known, bounds prompt plus completion length.
    """
    from labcore import advantages, kl, losses
    from labcore.algorithms import AGGREGATIONS, ESTIMATORS, KL_PLACEMENTS, RECIPES, UPDATES
    from labcore.tasks import TASKS

    p: list[str] = []
    m, r, a, k, o, run = cfg.model, cfg.rollout, cfg.algorithm, cfg.kl, cfg.optim, cfg.run

    def choice(where: str, value: str, allowed: dict | tuple | list) -> None:
        if value not in allowed:
            p.append(f"{where} = {value!r} is not allowed; choose one of {', '.join(allowed)}."
                     + _did_you_mean(str(value), list(allowed)))

    def positive(where: str, value: float, integer: bool = False) -> None:
        if not (value > 0) or (not integer and not math.isfinite(value)):
            kind = "a whole number >= 1" if integer else "a number > 0"
            p.append(f"{where} = {value!r} must be {kind}.")

    def in_range(where: str, value: float, lo: float, hi: float, hint: str = "") -> None:
        if not (lo <= value <= hi):
            p.append(f"{where} = {value!r} is out of range; use a value in [{lo}, {hi}].{hint}")

    choice("algorithm.recipe", a.recipe, RECIPES)
    choice("rollout.task", r.task, TASKS)
    choice("model.device", m.device, ("auto", "cpu", "cuda", "mps"))
    if not m.policy.strip():
        p.append("model.policy is empty; use 'tiny' for the built-in model, a directory, or a Hugging Face id.")
    positive("model.lora_rank", m.lora_rank, integer=True)
    positive("model.lora_alpha", m.lora_alpha)
    in_range("model.lora_dropout", m.lora_dropout, 0.0, 0.99)

    positive("rollout.prompts_per_step", r.prompts_per_step, integer=True)
    positive("rollout.samples_per_prompt", r.samples_per_prompt, integer=True)
    positive("rollout.max_new_tokens", r.max_new_tokens, integer=True)
    if not (0 < r.temperature <= 10):
        p.append(f"rollout.temperature = {r.temperature!r} must be in (0, 10]; 1.0 samples from the model as it is.")
    if not (0 < r.top_p <= 1):
        p.append(f"rollout.top_p = {r.top_p!r} must be in (0, 1]; 1.0 turns nucleus sampling off.")
    if r.missing_eos_penalty < 0:
        p.append(f"rollout.missing_eos_penalty = {r.missing_eos_penalty!r} must be >= 0 (it is subtracted).")
    if r.overlong_buffer < 0 or (r.overlong_buffer and r.overlong_buffer >= r.max_new_tokens):
        p.append(f"rollout.overlong_buffer = {r.overlong_buffer} must be 0 (off) or between 1 and "
                 f"max_new_tokens - 1 = {r.max_new_tokens - 1}.")
    if r.reward_clip < 0:
        p.append(f"rollout.reward_clip = {r.reward_clip!r} must be >= 0 (0 turns clipping off).")
    choice("rollout.chat_template", r.chat_template, ("auto", "on", "off"))
    weights = [w.strip() for w in r.reward_weights.split(",") if w.strip()]
    if not all(_is_number(w) for w in weights):
        p.append(f"rollout.reward_weights = {r.reward_weights!r}: give comma-separated numbers, e.g. '1.0, 0.2'.")
    if context_length is not None and r.max_new_tokens >= context_length:
        p.append(f"rollout.max_new_tokens = {r.max_new_tokens} does not fit the model's context of "
                 f"{context_length} tokens together with the prompt; use at most {context_length // 2}.")

    choice("algorithm.estimator", a.estimator, ESTIMATORS)
    choice("algorithm.update", a.update, UPDATES)
    choice("algorithm.baseline", a.baseline, {**advantages.BASELINES, **EXTRA_BASELINES})
    choice("algorithm.scale", a.scale, advantages.SCALES)
    choice("algorithm.policy_loss", a.policy_loss, losses.POLICY_LOSSES)
    choice("algorithm.aggregation", a.aggregation, AGGREGATIONS)
    K = r.samples_per_prompt
    if a.baseline in ("group_mean", "leave_one_out") and K < 2:
        p.append(f"algorithm.baseline = {a.baseline!r} compares samples of the same prompt, but "
                 f"rollout.samples_per_prompt = {K}; set samples_per_prompt >= 2 or use baseline 'batch_mean'.")
    if a.scale == "group_std" and K < 2:
        p.append(f"algorithm.scale = 'group_std' needs rollout.samples_per_prompt >= 2 (it is {K}); "
                 "use scale 'batch_std' or 'none'.")
    if a.baseline == "value" and a.estimator == "returns":
        p.append("algorithm.baseline = 'value' works with estimator 'outcome' (r - V(prompt)) or 'gae', "
                 "not 'returns'; pick one of those.")
    if a.estimator == "gae" and a.baseline != "value":
        p.append(f"algorithm.estimator = 'gae' needs algorithm.baseline = 'value' (it is {a.baseline!r}).")
    if a.dynamic_filter and K < 2:
        p.append("algorithm.dynamic_filter needs rollout.samples_per_prompt >= 2: a group of one never varies.")
    if not (0 < a.clip_low < 1):
        p.append(f"algorithm.clip_low = {a.clip_low!r} must be in (0, 1), e.g. 0.2; the ratio is clipped at 1 - clip_low.")
    if not (0 < a.clip_high <= 10):
        p.append(f"algorithm.clip_high = {a.clip_high!r} must be in (0, 10], e.g. 0.2 (DAPO uses 0.28, CISPO up to 5).")
    if a.dual_clip and a.dual_clip <= 1:
        p.append(f"algorithm.dual_clip = {a.dual_clip!r} must be > 1 (Ye et al. use 3), or 0 to turn it off.")
    positive("algorithm.epochs", a.epochs, integer=True)
    positive("algorithm.minibatches", a.minibatches, integer=True)
    B = r.prompts_per_step * K
    if a.minibatches >= 1 and B > 0 and B % a.minibatches:
        p.append(f"algorithm.minibatches = {a.minibatches} does not divide the batch of prompts_per_step x "
                 f"samples_per_prompt = {B} sequences; pick a divisor of {B}.")
    in_range("algorithm.gamma", a.gamma, 0.0, 1.0)
    in_range("algorithm.lam", a.lam, 0.0, 1.0)
    if a.vf_coef < 0:
        p.append(f"algorithm.vf_coef = {a.vf_coef!r} must be >= 0.")
    if a.value_clip < 0:
        p.append(f"algorithm.value_clip = {a.value_clip!r} must be >= 0 (0 turns it off).")
    positive("algorithm.value_lr", a.value_lr)
    if a.entropy_coef < 0:
        p.append(f"algorithm.entropy_coef = {a.entropy_coef!r} must be >= 0 (it is a bonus).")
    if not (0 <= a.ema_decay < 1):
        p.append(f"algorithm.ema_decay = {a.ema_decay!r} must be in [0, 1).")
    positive("algorithm.trpo_max_kl", a.trpo_max_kl)
    if a.trpo_damping < 0:
        p.append(f"algorithm.trpo_damping = {a.trpo_damping!r} must be >= 0.")
    positive("algorithm.trpo_cg_iters", a.trpo_cg_iters, integer=True)

    choice("kl.placement", k.placement, KL_PLACEMENTS)
    choice("kl.estimator", k.estimator, kl.ESTIMATORS)
    choice("kl.controller", k.controller, kl.CONTROLLERS)
    if k.coef < 0 or not math.isfinite(k.coef):
        p.append(f"kl.coef = {k.coef!r} must be >= 0 (0 turns the penalty off).")
    if k.controller == "adaptive":
        positive("kl.target", k.target)
        positive("kl.horizon", k.horizon, integer=True)
        if k.placement == "none":
            p.append("kl.controller = 'adaptive' has nothing to adapt with kl.placement = 'none'; pick a placement.")

    positive("optim.lr", o.lr)
    if o.lr > 1:
        p.append(f"optim.lr = {o.lr!r} is far too large for Adam; try 1e-4 to 1e-2.")
    if o.grad_clip < 0:
        p.append(f"optim.grad_clip = {o.grad_clip!r} must be >= 0 (0 turns it off).")
    if o.weight_decay < 0:
        p.append(f"optim.weight_decay = {o.weight_decay!r} must be >= 0.")

    positive("run.steps", run.steps, integer=True)
    if run.seed < 0:
        p.append(f"run.seed = {run.seed!r} must be >= 0.")
    positive("run.grad_variance_every", run.grad_variance_every, integer=True)
    if run.log_samples < 0:
        p.append(f"run.log_samples = {run.log_samples!r} must be >= 0.")
    if run.save_every < 0:
        p.append(f"run.save_every = {run.save_every!r} must be >= 0 (0 saves only at the end).")
    return p


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check(cfg: Config, *, context_length: int | None = None) -> Config:
    """Return `cfg` if valid, else raise ConfigError with every problem."""
    problems = validate(cfg, context_length=context_length)
    if problems:
        raise ConfigError(problems)
    return cfg


# Baselines beyond the four closed-form group ones of `advantages.group_advantages`; the trainer implements them.
EXTRA_BASELINES = {
    "moving_average": "an exponential moving average of past batch mean rewards (classic REINFORCE with baseline)",
    "value": "a learned value head V(s_t) on the policy's hidden states (actor-critic, PPO)",
    "greedy": "the reward of the greedy completion of the same prompt (ReMax, Li et al. 2023)",
}


# ------------------------------------------------------------------------------------------------- TOML + presets


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(cfg: Config) -> str:
    """The whole config as TOML (what a run folder stores)."""
    lines = []
    for section, values in to_dict(cfg).items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def from_toml_text(text: str) -> Config:
    """A config from TOML text: a full config, or a preset (recipe = ..., plus section overrides)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"the TOML could not be read: {e}. Check quotes, brackets and '=' signs."]) from None
    data.pop("description", None)
    data.pop("title", None)
    return build(overrides=data)


def presets_dir() -> Path:
    env = os.environ.get("RLHF_LAB_PRESETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "presets"


def list_presets() -> dict[str, str]:
    """{preset name: description} for every TOML file in the presets folder."""
    out = {}
    for path in sorted(presets_dir().glob("*.toml")):
        with open(path, "rb") as fh:
            out[path.stem] = tomllib.load(fh).get("description", "")
    return out


def load_preset(name_or_path: str) -> Config:
    """A preset by name (a file in presets/) or a path to any TOML config."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.exists()):
        path = presets_dir() / f"{name_or_path}.toml"
    if not path.exists():
        names = list(list_presets())
        raise ConfigError([f"no preset or TOML file named {name_or_path!r}; presets are {', '.join(names)}."
                           + _did_you_mean(str(name_or_path), names)])
    return from_toml_text(path.read_text())

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

from labcore import kl, losses, parts
from labcore.recipes import ESTIMATORS, RECIPES, UPDATES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Range:
    """The values a number may take: lo..hi, each end open or closed; `hint` follows the message."""
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    hint: str = ""

    def holds(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        return (v > self.lo if self.lo_open else v >= self.lo) and (v < self.hi if self.hi_open else v <= self.hi)

    def problem(self, where: str, v: Any, integer: bool) -> str:
        kind = "a whole number" if integer else "a number"
        if self.lo == -math.inf and self.hi == math.inf:
            bound = f"a finite {kind[2:]}"
        elif self.hi == math.inf:
            bound = f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        else:
            bound = f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        return f"{where} = {v!r} must be {bound}{'; ' + self.hint if self.hint else ''}."


POSITIVE, AT_LEAST_1, NON_NEGATIVE = Range(0, lo_open=True), Range(1), Range(0)


def _f(default: Any, help: str, *, choices: Any = None, within: Range | None = None) -> Any:
    """A documented field. `choices`: the dict (or a function returning it) whose keys are the allowed values;
    `within`: the Range a number must fall in. `validate` reads both, so each rule is declared once, here."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if within is not None:
        meta["within"] = within
    return field(default=default, metadata=meta)


def _tasks() -> dict:
    from labcore.tasks import TASKS  # local: the task list grows with register_task

    return TASKS


class ConfigError(ValueError):
    """One or more invalid settings. `problems` holds one readable line per setting."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Invalid settings:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True)
class ModelConfig:
    policy: str = _f("tiny", "Policy model: 'tiny' (built in, offline), a local directory, or a Hugging Face id.")
    reward_model: str = _f("tiny-rm", "Reward model for learned-reward tasks (sentiment): 'tiny-rm', a directory or hub id.")
    lora_rank: int = _f(8, "LoRA rank r: the size of the low-rank update. Larger learns more, costs more.", within=AT_LEAST_1)
    lora_alpha: float = _f(16.0, "LoRA alpha: the update is scaled by alpha / r.", within=POSITIVE)
    lora_dropout: float = _f(0.0, "Dropout on the LoRA input, in [0, 1, within=Range(0, 0.99)).")
    lora_targets: str = _f("", "Comma-separated module names to adapt; empty picks them per architecture.")
    fast_forward: bool = _f(True, "Run Llama / Mistral / Qwen2 models through labcore's own forward: the maths of "
                                  "transformers + peft in fewer operator calls (a step about a fifth faster on a CPU). "
                                  "Off: transformers' forward.")
    device: str = _f("auto", "Device: auto (CUDA, then MPS, then CPU), cpu, cuda or mps.", choices={"auto": "", "cpu": "", "cuda": "", "mps": ""})
    adapter: str = _f("", "Start from saved LoRA weights: a folder written by peft's save_pretrained (a run folder's "
                          "adapter/). The reference stays the base model. Empty: a fresh adapter. Local use only.")


@dataclass(frozen=True)
class RolloutConfig:
    task: str = _f("arithmetic", "Task: where prompts come from and how completions are scored.", choices=_tasks)
    prompts_per_step: int = _f(8, "P: prompts sampled per step.", within=AT_LEAST_1)
    samples_per_prompt: int = _f(4, "K: completions sampled per prompt (the group size for group baselines).", within=AT_LEAST_1)
    max_new_tokens: int = _f(6, "Longest completion in tokens; longer ones are cut and have no EOS.", within=AT_LEAST_1)
    temperature: float = _f(1.0, "Sampling temperature; log-probs use the same temperature. Live: can change mid-run.", within=Range(0, 10, lo_open=True, hint="1.0 samples from the model as it is"))
    top_p: float = _f(1.0, "Nucleus sampling: keep the smallest token set with this much probability. 1 = off.", within=Range(0, 1, lo_open=True, hint="1.0 turns nucleus sampling off"))
    missing_eos_penalty: float = _f(0.0, "Subtracted from the reward of completions that did not end with EOS.", within=Range(0, hint="it is subtracted"))
    mask_truncated: bool = _f(False, "Drop completions without EOS from the loss (TRL's mask_truncated_completions).")
    overlong_buffer: int = _f(0, "DAPO soft overlong penalty: tokens before max_new_tokens where the penalty ramps. 0 = off.")
    overlong_penalty: float = _f(1.0, "DAPO overlong penalty factor (the penalty at max_new_tokens).", within=NON_NEGATIVE)
    reward_clip: float = _f(0.0, "Clip rewards to [-c, c] before advantages. 0 = off.", within=Range(0, hint="0 turns clipping off"))
    reward_normalize: bool = _f(False, "Standardise rewards over the batch before advantages.")
    dataset: str = _f("", "Your prompts: a local .jsonl, .json, .csv or .parquet file, or a folder saved with datasets' "
                          "save_to_disk, with a 'prompt' column (a text or chat messages); its other columns reach "
                          "the reward functions. Empty: the task's own prompts. Local use only.")
    reward_fns: str = _f("", "Your rewards, comma-separated: module.function, path/to/file.py:function, or a reward-model "
                             "folder; TRL's signature f(prompts, completions, **columns) -> list[float | None]. "
                             "Empty: the task's own. Local use only.")
    reward_weights: str = _f("", "Weights of the reward functions, comma-separated numbers in their order. Empty: 1 each.")
    chat_template: str = _f("auto", "Format prompts with the tokenizer's chat template: auto (when it has one), on, off.",
                            choices={"auto": "", "on": "", "off": ""})


@dataclass(frozen=True)
class AlgorithmConfig:
    recipe: str = _f("grpo", "Algorithm recipe; picking one fills in every part below.", choices=RECIPES)
    update: str = _f("gradient", "How the loss moves the weights: gradient (Adam steps) or trpo (natural gradient, KL trust region).", choices=UPDATES)
    estimator: str = _f("outcome", "How a reward becomes a per-token signal: outcome, returns, gae, positives.", choices=ESTIMATORS)
    positive_threshold: float = _f(1.0, "Estimator positives (RAFT): a completion whose reward reaches this is pushed "
                                        "up with advantage 1, the rest are ignored.", within=Range())
    baseline: str = _f("group_mean", "Baseline subtracted from the reward.", choices=parts.BASELINES)
    scale: str = _f("group_std", "Advantage scaling after the baseline.", choices=parts.SCALES)
    whiten: bool = _f(False, "Whiten token advantages over the batch (REINFORCE++, PPO).")
    policy_loss: str = _f("clip", "Per-token policy loss.", choices=losses.POLICY_LOSSES)
    aggregation: str = _f("seq_mean_token_mean", "How per-token losses become one number.", choices=losses.AGGREGATIONS)
    clip_low: float = _f(0.2, "epsilon_low: the ratio is clipped below at 1 - epsilon_low.", within=Range(0, 1, lo_open=True, hi_open=True, hint="e.g. 0.2; the ratio is clipped at 1 - clip_low"))
    clip_high: float = _f(0.2, "epsilon_high: the ratio is clipped above at 1 + epsilon_high (DAPO clip-higher: 0.28).", within=Range(0, 10, lo_open=True, hint="e.g. 0.2 (DAPO uses 0.28, CISPO up to 5)"))
    dual_clip: float = _f(0.0, "Dual-clip constant c > 1 caps the loss of negative-advantage tokens at -c*A. 0 = off.")
    epochs: int = _f(1, "Optimisation passes over each batch (PPO's mu). 1 keeps the ratio at 1 on the first pass.", within=AT_LEAST_1)
    minibatches: int = _f(1, "Minibatches per epoch; must divide P*K.", within=AT_LEAST_1)
    micro_batch_size: int = _f(0, "Sequences per forward and backward pass (gradient accumulation): a minibatch's "
                                  "gradients are summed over its micro-batches, each loss normalised by the whole "
                                  "minibatch, then one optimiser step. The same step with less memory; each pass "
                                  "costs its own model call. 0 = each minibatch in one pass.",
                               within=Range(0, hint="0 runs each minibatch in one pass"))
    gamma: float = _f(1.0, "Discount gamma for returns and GAE.", within=Range(0, 1))
    lam: float = _f(0.95, "GAE lambda: 0 is one-step TD, 1 is Monte-Carlo.", within=Range(0, 1))
    value_clip: float = _f(0.0, "Value clipping range around the old values. 0 = off.", within=Range(0, hint="0 turns it off"))
    value_lr: float = _f(1e-3, "Learning rate of the value head (its own Adam group, on detached states).", within=POSITIVE)
    critic_iters: int = _f(1, "TRPO: Adam steps of the critic on each batch (Schulman et al. 2016 fit V by several).", within=AT_LEAST_1)
    entropy_coef: float = _f(0.0, "Entropy bonus: the loss subtracts this times the mean entropy.", within=Range(0, hint="it is a bonus"))
    ema_decay: float = _f(0.9, "Decay of the moving-average baseline.", within=Range(0, 1, hi_open=True))
    dynamic_filter: bool = _f(False, "DAPO dynamic filtering: drop groups whose task rewards do not vary.")
    resample_rounds: int = _f(0, "DAPO dynamic sampling: up to this many extra rounds of P prompts to fill the batch "
                                 "with groups whose task rewards vary. 0 = none (filtering alone shrinks the batch).", within=Range(0, hint="0 samples one round only"))
    top_entropy_frac: float = _f(0.0, "Train only on this share of the batch's highest-entropy tokens (0.2: Wang et al. "
                                      "2025's 80/20 rule). 0 = every token.", within=Range(0, 1, hi_open=True, hint="0.2 trains on the top 20 % highest-entropy tokens, 0 on all"))
    is_correction: str = _f("none", "Sampler/learner mismatch correction: importance weights pi_learner/pi_sampler, "
                                    "truncated (tis) or masked (mis), per token or per sequence.", choices=parts.IS_CORRECTIONS)
    is_cap: float = _f(2.0, "Cap C of the importance weights (tis clips at C, mis drops above C).", within=Range(1, hint="2 is common"))
    trpo_max_kl: float = _f(0.01, "TRPO trust region: largest mean KL(old || new) per step.", within=POSITIVE)
    trpo_damping: float = _f(0.1, "TRPO damping added to the Fisher-vector product.", within=NON_NEGATIVE)
    trpo_cg_iters: int = _f(10, "TRPO conjugate-gradient iterations.", within=AT_LEAST_1)


@dataclass(frozen=True)
class KLConfig:
    placement: str = _f("loss", "Where the KL to the reference goes: none, reward_token, reward_seq, loss.", choices=parts.KL_PLACEMENTS)
    estimator: str = _f("k3", "KL estimator: k1 (log ratio), k2 (half squared log ratio), k3 (Schulman's unbiased, >= 0), "
                              "k3_is (k3 times the ratio: the KL(pi || ref) gradient in the loss).", choices=kl.ESTIMATORS)
    controller: str = _f("fixed", "fixed coefficient, or adaptive towards a target KL (Ziegler et al. 2019).", choices=kl.CONTROLLERS)
    coef: float = _f(0.04, "KL coefficient beta (the adaptive controller's starting value). Live: can change mid-run.", within=Range(0, hint="0 turns the penalty off"))
    target: float = _f(0.1, "Adaptive controller: target KL per sequence.")
    horizon: int = _f(10000, "Adaptive controller: horizon in samples.")
    reset_every: int = _f(0, "ProRL reference reset: every N steps the current policy becomes the reference. 0 = off.", within=Range(0, hint="0 turns the reference reset off"))


@dataclass(frozen=True)
class OptimConfig:
    lr: float = _f(3e-3, "Adam learning rate for the LoRA weights (3e-3 suits the built-in model; choosing another "
                         "model scales the recipe's rate by 1/60, e.g. to 5e-5, unless you set it). Live: can change "
                         "mid-run.", within=POSITIVE)
    grad_clip: float = _f(1.0, "Clip the global gradient norm to this. 0 = off.", within=Range(0, hint="0 turns it off"))
    weight_decay: float = _f(0.0, "AdamW weight decay.", within=NON_NEGATIVE)


@dataclass(frozen=True)
class RunConfig:
    steps: int = _f(100, "Training steps.", within=AT_LEAST_1)
    seed: int = _f(0, "Seed for prompts, sampling and LoRA initialisation.", within=NON_NEGATIVE)
    name: str = _f("", "A name for the run (shown in legends). Empty: recipe and time.")
    grad_variance: bool = _f(True, "Estimate the policy-gradient variance (costs about one extra forward and backward; "
                                   "off by default for models other than the built-in one).")
    grad_variance_every: int = _f(5, "Estimate the gradient variance every N steps (its cost is then spread out).", within=AT_LEAST_1)
    log_samples: int = _f(64, "Completions kept per step for the samples view (rounded up to whole groups).",
                          within=NON_NEGATIVE)
    save_every: int = _f(0, "Save a checkpoint (adapter and trainer state) in the run folder every N steps; one is "
                            "always saved at the end. 0 = only at the end.", within=Range(0, hint="0 saves only at the end"))
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


# Settings that no longer exist, with why; a saved run or preset that names one still loads (the key is ignored).
RETIRED = {
    "algorithm.vf_coef": "the critic trains on detached states in its own Adam group, where a constant weight on its "
                         "loss cancels out; it never changed a run",
}


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
        if dotted in RETIRED:
            continue
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
BUILTIN_POLICIES = ("tiny", "tiny-chain", "tiny-chain-loops")  # labcore.model.BUILTIN's policies (no torch here)
CHAIN_POLICIES = ("tiny-chain", "tiny-chain-loops")  # the built-in models that speak the chain task's words


def for_real_model(old: Config, new: Config, given: set[str]) -> Config:
    """Defaults that follow the model: when `new` switches from the built-in policy to another one, the learning
    rate is scaled by REAL_MODEL_LR_FACTOR and the gradient-variance pass (an extra step's cost) is switched off,
    unless `given` (the dotted keys just set) sets them. Switching back leaves them alone."""
    if old.model.policy not in BUILTIN_POLICIES or new.model.policy in BUILTIN_POLICIES:
        return new
    optim, run = new.optim, new.run
    if "optim.lr" not in given:
        optim = replace(optim, lr=optim.lr * REAL_MODEL_LR_FACTOR)
    if "run.grad_variance" not in given:
        run = replace(run, grad_variance=False)
    return replace(new, optim=optim, run=run)


def build(recipe: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults -> the recipe's defaults -> overrides. The recipe may also be named in the overrides."""
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

    Each field's own rule (its choices, its range) comes from its metadata; what follows the loop are the rules
    that tie fields together. `context_length` (the model's maximum positions), when known, bounds prompt plus
    completion length.
    """
    p: list[str] = []
    for section, values in to_dict(cfg).items():
        for f in fields(SECTIONS[section]):
            where, v = f"{section}.{f.name}", values[f.name]
            choices = f.metadata.get("choices")
            if choices is not None:
                allowed = list(choices() if callable(choices) else choices)
                if v not in allowed:
                    p.append(f"{where} = {v!r} is not allowed; choose one of {', '.join(allowed)}."
                             + _did_you_mean(str(v), allowed))
            within = f.metadata.get("within")
            if within is not None and not within.holds(v):
                p.append(within.problem(where, v, integer=isinstance(f.default, int) and not isinstance(f.default, bool)))

    m, r, a, k, o = cfg.model, cfg.rollout, cfg.algorithm, cfg.kl, cfg.optim
    K, B = r.samples_per_prompt, r.prompts_per_step * r.samples_per_prompt
    if not m.policy.strip():
        p.append("model.policy is empty; use 'tiny' for the built-in model, a directory, or a Hugging Face id.")
    if m.policy in BUILTIN_POLICIES and not r.dataset and (r.task == "chain") != (m.policy in CHAIN_POLICIES):
        p.append(f"rollout.task = {r.task!r} with model.policy = {m.policy!r}: the chain task has its own words and "
                 "built-in model; pair task 'chain' with model.policy = 'tiny-chain' (or 'tiny-chain-loops'), and the other tasks "
                 "with 'tiny'.")
    if r.overlong_buffer < 0 or (r.overlong_buffer and r.overlong_buffer >= r.max_new_tokens):
        p.append(f"rollout.overlong_buffer = {r.overlong_buffer} must be 0 (off) or between 1 and "
                 f"max_new_tokens - 1 = {r.max_new_tokens - 1}.")
    weights = [w.strip() for w in r.reward_weights.split(",") if w.strip()]
    if not all(_is_number(w) for w in weights):
        p.append(f"rollout.reward_weights = {r.reward_weights!r}: give comma-separated numbers, e.g. '1.0, 0.2'.")
    if context_length is not None and r.max_new_tokens >= context_length:
        p.append(f"rollout.max_new_tokens = {r.max_new_tokens} does not fit the model's context of "
                 f"{context_length} tokens together with the prompt; use at most {context_length // 2}.")
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
    if (a.dynamic_filter or a.resample_rounds) and K < 2:
        p.append("algorithm.dynamic_filter and resample_rounds need rollout.samples_per_prompt >= 2: a group of one "
                 "never varies.")
    if a.dual_clip and a.dual_clip <= 1:
        p.append(f"algorithm.dual_clip = {a.dual_clip!r} must be > 1 (Ye et al. use 3), or 0 to turn it off.")
    if a.minibatches >= 1 and B > 0 and B % a.minibatches:
        p.append(f"algorithm.minibatches = {a.minibatches} does not divide the batch of prompts_per_step x "
                 f"samples_per_prompt = {B} sequences; pick a divisor of {B}.")
    if a.update == "trpo" and a.micro_batch_size:
        p.append(f"algorithm.micro_batch_size = {a.micro_batch_size}: TRPO's natural-gradient step runs the whole "
                 "batch at once; set micro_batch_size = 0 or use update 'gradient'.")
    loss = losses.POLICY_LOSSES.get(a.policy_loss)
    if a.update == "trpo" and loss is not None and loss.level == "sequence":
        p.append(f"algorithm.policy_loss = {a.policy_loss!r} is a sequence-level loss; TRPO's surrogate is per token: "
                 "use 'ratio' (its paper's objective) or 'clip'.")
    if k.controller == "adaptive":
        if not (k.target > 0 and math.isfinite(k.target)):
            p.append(f"kl.target = {k.target!r} must be a number > 0.")
        if not k.horizon >= 1:
            p.append(f"kl.horizon = {k.horizon!r} must be a whole number >= 1.")
        if k.placement == "none":
            p.append("kl.controller = 'adaptive' has nothing to adapt with kl.placement = 'none'; pick a placement.")
    if o.lr > 1:
        p.append(f"optim.lr = {o.lr!r} is far too large for Adam; try 1e-4 to 1e-2.")
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

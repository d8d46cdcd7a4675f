"""Control values <-> `Config`, share links and run labels: the pure half of the lab's controls.

Every field of `labcore.config.Config` is one control, named by its dotted key (`optim.lr`). The UI keeps a
flat {key: value} dict of control values; `controls_to_config` is the single function that turns it into a
Config (through `config.build`, so a bad value raises `ConfigError` with every problem). Share links carry
the recipe plus only the settings that differ from it (`config.recipe_diff`), so
`?preset=grpo&algorithm.clip_high=0.28` and `?recipe=dapo&optim.lr=0.001` both restore a full config.
Left out: anything gradio; `app/main.py` builds the components from `CONTROL_GROUPS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any
from urllib.parse import urlencode

from labcore import config as C
from labcore.algorithms import PARTS, RECIPES

# The controls shown open, by group; every other field goes in the collapsed "Advanced" accordion.
CONTROL_GROUPS: dict[str, list[str]] = {
    "Experiment": ["algorithm.recipe", "rollout.task", "model.policy"],
    "Algorithm parts": [key for key, _ in PARTS.values()],
    "Hyperparameters": ["optim.lr", "kl.coef", "kl.target", "algorithm.clip_low", "algorithm.clip_high",
                        "algorithm.dual_clip", "algorithm.epochs", "algorithm.minibatches",
                        "rollout.temperature"],
    "Batch and run": ["rollout.prompts_per_step", "rollout.samples_per_prompt", "rollout.max_new_tokens",
                      "run.steps", "run.seed", "model.lora_rank", "model.lora_alpha"],
}
SHOWN = [k for keys in CONTROL_GROUPS.values() for k in keys]
ADVANCED = [k for k in C.flat(C.Config()) if k not in SHOWN]
KEYS = SHOWN + ADVANCED

# Hot parameters: changing them while a run goes applies from its next step (RunManager.set_live).
LIVE = {"optim.lr": "lr", "kl.coef": "kl_coef", "rollout.temperature": "temperature"}

PART_LABELS = {key: part.replace("_", " ").replace("kl", "KL") for part, (key, _) in PARTS.items()}
PART_LABELS["algorithm.policy_loss"] = "policy loss"
LABELS = {
    "algorithm.recipe": "recipe", "rollout.task": "task", "model.policy": "model",
    "optim.lr": "learning rate", "kl.coef": "KL coefficient β", "kl.target": "KL target",
    "algorithm.clip_low": "clip ε low", "algorithm.clip_high": "clip ε high",
    "algorithm.dual_clip": "dual clip c",
    "rollout.temperature": "temperature", "rollout.prompts_per_step": "prompts per step (P)",
    "rollout.samples_per_prompt": "samples per prompt (K)", "rollout.max_new_tokens": "max new tokens",
    "model.lora_rank": "LoRA rank", "model.lora_alpha": "LoRA alpha",
    **PART_LABELS,
}


def label(key: str) -> str:
    """The control's label: a short name for shown controls, the dotted key for advanced ones."""
    return LABELS.get(key, key.split(".", 1)[1].replace("_", " ") if key in SHOWN else key)


def help_text(key: str) -> str:
    section, name = key.split(".", 1)
    return C.field_help(section, name)


def model_for_task(task: str, policy: str) -> str:
    """The built-in model a task runs on: picking the chain task moves a built-in policy to its own model
    (tiny-chain; tiny-chain-loops stays), and any other task moves it back to the tiny world's; a user's own model is left alone."""
    if policy not in C.BUILTIN_POLICIES:
        return policy
    if task == "chain":
        return policy if policy in C.CHAIN_POLICIES else "tiny-chain"
    return "tiny"


def param_name(key: str) -> str:
    """The control's keyword in the public API (`optim.lr` -> `optim_lr`)."""
    return key.replace(".", "_")


def task_choices() -> dict[str, str]:
    try:
        from labcore.tasks import TASKS
    except ImportError:  # the tasks module is optional for building the UI
        return {"arithmetic": "", "sentiment": "", "length": ""}
    return dict(TASKS)


def choices(key: str) -> list[tuple[str, str]] | None:
    """[(label, value)] for a field with a fixed set of values, else None."""
    if key == "algorithm.recipe":
        return [(f"{r.title}", name) for name, r in RECIPES.items()]
    if key == "rollout.task":
        return [(name, name) for name in task_choices()]
    for part_key, options in PARTS.values():
        if part_key == key:
            return [(name, name) for name in options]
    section, name = key.split(".", 1)
    field = next(f for f in fields(C.SECTIONS[section]) if f.name == name)
    if "choices" in field.metadata:
        return [(c, c) for c in field.metadata["choices"]]
    return None


def option_help(key: str) -> dict[str, str]:
    """value -> its one-line meaning, for a control whose options the lab documents (recipes, tasks and every
    algorithm part: the part functions' docstrings); {} for other controls."""
    if key == "algorithm.recipe":
        return {name: r.summary for name, r in RECIPES.items()}
    if key == "rollout.task":
        return task_choices()
    for part_key, options in PARTS.values():
        if part_key == key:
            return dict(options)
    return {}


EXPLAINED = [k for k in SHOWN if option_help(k)]  # dropdowns whose info line names the chosen option's meaning


def chosen_info(key: str, value: Any) -> str:
    """The info line under a documented dropdown: the field's help, then what the chosen option does."""
    meaning = option_help(key).get(value, "")
    return f"{help_text(key)} → {value}: {meaning}" if meaning else help_text(key)


def options_markdown() -> str:
    """Every documented dropdown's options with their one-line meanings (the "What every option means" panel)."""
    out = []
    for key in EXPLAINED:
        out.append(f"**{label(key)}** (`{key}`)\n")
        out += [f"- `{name}`: {meaning}" for name, meaning in option_help(key).items()]
        out.append("")
    return "\n".join(out)


def kind(key: str) -> type:
    section, name = key.split(".", 1)
    return type(getattr(C.SECTIONS[section](), name))


# ---------------------------------------------------------------------------------------- values <-> Config


def controls_to_config(values: Mapping[str, Any]) -> C.Config:
    """The Config the controls describe. Raises ConfigError naming every bad value (nothing is checked
    beyond types here: `config.validate` does the ranges)."""
    values = dict(values)
    recipe = values.pop("algorithm.recipe", None) or "grpo"
    missing = [k for k, v in values.items() if v is None or (v == "" and kind(k) is not str)]
    if missing:
        raise C.ConfigError([f"{k} is empty; enter a value ({help_text(k)})" for k in missing])
    return C.build(recipe, values)


def every_problem(values: Mapping[str, Any], limits: Any = None) -> list[str]:
    """Every problem of the controls at once: empty and mistyped values, then the range and consistency checks
    of the rest (`controls_to_config` stops at the first kind), plus a shared server's caps."""
    values = {k: v for k, v in values.items()}
    recipe = values.pop("algorithm.recipe", None) or "grpo"
    empty = [k for k, v in values.items() if v is None or (v == "" and kind(k) is not str)]
    found = [f"{k} is empty; enter a value ({help_text(k)})" for k in empty]
    rest = {k: v for k, v in values.items() if k not in empty}
    try:
        cfg = C.build(recipe, rest)
    except C.ConfigError as e:
        found += e.problems
        named = [k for k in rest if any(p.startswith((f"{k} ", f"{k}:")) for p in e.problems)]
        try:
            cfg = C.build(recipe, {k: v for k, v in rest.items() if k not in named})
        except C.ConfigError:
            return found
    return found + [p for p in problems(cfg, limits) if p not in found]


def config_to_controls(cfg: C.Config) -> dict[str, Any]:
    return C.flat(cfg)


def recipe_switch(values: Mapping[str, Any], recipe: str) -> C.Config:
    """Pick `recipe`: its defaults for every algorithm and KL setting; keep the rest (task, batch, steps)."""
    governed = set(RECIPES[recipe].defaults) if recipe in RECIPES else set()
    keep = {k: v for k, v in values.items()
            if not k.startswith(("algorithm.", "kl.")) and k not in governed and v is not None}
    return C.build(recipe, keep)


def problems(cfg: C.Config, limits: Any = None) -> list[str]:
    """Every problem with `cfg` (plus a shared server's caps), without starting anything."""
    p = C.validate(cfg)
    if limits is not None:
        p += limits.problems(cfg)
    return p


# ------------------------------------------------------------------------------------------------ links


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def share_query(cfg: C.Config) -> str:
    """`recipe=...&key=value` for the settings that differ from the recipe: enough to rebuild `cfg`."""
    pairs = [("recipe", cfg.algorithm.recipe)] + [(k, _text(v)) for k, (_, v) in C.recipe_diff(cfg).items()]
    return urlencode(pairs)


def config_from_query(params: Mapping[str, str]) -> C.Config | None:
    """The config a page's query parameters ask for, or None when they name none.

    `preset` (a preset name) or `recipe` sets the base; every other `section.key` parameter overrides it.
    Parameters without a dot (Gradio's own, like `__theme`) are ignored. Raises ConfigError.
    """
    overrides = {k: v for k, v in params.items() if "." in k}
    if "preset" not in params and "recipe" not in params and not overrides:
        return None
    if params.get("preset"):
        return C.apply(C.load_preset(params["preset"]), overrides)
    return C.build(params.get("recipe") or None, overrides)


# ------------------------------------------------------------------------------------------------ labels


def fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def diff_items(cfg: C.Config) -> list[tuple[str, str, str]]:
    """[(key, recipe value, value)] for the settings that differ from the recipe, formatted."""
    return [(k, fmt(a), fmt(b)) for k, (a, b) in C.recipe_diff(cfg).items()]


def run_label(cfg: C.Config, max_items: int = 3) -> str:
    """A legend name: the recipe's title and the settings that differ from it (`DAPO lr=0.001`)."""
    title = RECIPES[cfg.algorithm.recipe].title if cfg.algorithm.recipe in RECIPES else cfg.algorithm.recipe
    if cfg.run.name:
        title = f"{cfg.run.name} ({title})"
    items = [(k, b) for k, _, b in diff_items(cfg) if k != "run.name"]
    shown = " ".join(f"{k.split('.', 1)[1]}={b}" for k, b in items[:max_items])
    more = f" +{len(items) - max_items}" if len(items) > max_items else ""
    return f"{title} {shown}{more}".strip()

"""The fidelity table of an export: every lab setting, the key it became, and how faithfully.

Statuses:
- ``exact``: the target computes what the lab computes (up to random streams and float order);
- ``approximate``: exported, with a stated difference in the maths;
- ``dropped``: the target has no such thing and the run goes on without it (DAPO's dynamic sampling in TRL);
- ``not exportable``: the target cannot express it; the export is refused (exit code 2);
- ``n/a``: a lab-only setting (charts, device, fast forward) or one the recipe does not use.

A recipe goes to a target when none of its rows is ``not exportable``. Left out: numeric tolerance of "exact"
(no export is run against the lab here; `benchmarks/export_vs_lab.py` measures the TRL one).
"""

from __future__ import annotations

from dataclasses import dataclass

from labcore.config import Config, flat

EXACT, APPROX, DROPPED, BLOCKED, NA = "exact", "approximate", "dropped", "not exportable", "n/a"
STATUSES = (EXACT, APPROX, DROPPED, BLOCKED, NA)

# Settings that only change what the lab shows or where it runs, never the algorithm.
LAB_ONLY = {
    "model.fast_forward": "labcore's own forward pass: the same maths as transformers",
    "algorithm.micro_batch_size": "memory only: the same step in smaller passes (the target has its own setting)",
    "model.device": "the target picks its devices (accelerate / Ray)",
    "run.name": "a legend label",
    "run.grad_variance": "a lab chart (extra backward passes)",
    "run.grad_variance_every": "a lab chart",
    "run.log_samples": "the lab's samples table",
    "run.save_every": "the lab's checkpoints (the target saves its own)",
    "run.resume": "continues a lab run; the target starts from the exported settings",
}


@dataclass(frozen=True)
class Row:
    setting: str  # 'section.key' of the lab config
    value: object  # its value in the exported config
    key: str  # what it became in the target ('' when nothing)
    status: str  # one of STATUSES
    note: str = ""  # the reason, for every status but a plain exact


def row_adder(cfg: Config, rows: dict[str, Row]):
    """`row(setting, key, status=EXACT, note="")`: records in `rows` how one lab setting maps to a target's key."""
    def row(setting: str, key: str, status: str = EXACT, note: str = "") -> None:
        section, name = setting.split(".")
        rows[setting] = Row(setting, getattr(getattr(cfg, section), name), key, status, note)
    return row


def reward_model_row(row, task: str) -> None:
    """The sentiment task's reward model travels with every export and scores as the lab scores it."""
    if task == "sentiment":
        row("model.reward_model", "lab_rewards.reward_model (the model copied or named)",
            note="scored in the reward function as the lab scores it: prompt + ' ' + completion")


def unused(cfg: Config) -> dict[str, str]:
    """{setting: why it does not act} for settings the recipe's other choices switch off."""
    a, k, r = cfg.algorithm, cfg.kl, cfg.rollout
    out: dict[str, str] = {}
    if a.update != "trpo":
        out.update({s: "TRPO only" for s in ("algorithm.trpo_max_kl", "algorithm.trpo_damping", "algorithm.trpo_cg_iters")})
    if a.estimator not in ("returns", "gae"):
        out["algorithm.gamma"] = "used by returns and GAE only"
    if a.estimator != "gae":
        out["algorithm.lam"] = "GAE only"
    if a.baseline != "value":
        out.update({s: "critic recipes only" for s in ("algorithm.value_clip", "algorithm.value_lr")})
    if a.update != "trpo":
        out["algorithm.critic_iters"] = "TRPO only"
    if a.estimator != "positives":
        out["algorithm.positive_threshold"] = "the positives estimator (RAFT) only"
    if not a.top_entropy_frac:
        out["algorithm.top_entropy_frac"] = "off (every token trains)"
    if a.is_correction == "none":
        out.update({"algorithm.is_correction": "off", "algorithm.is_cap": "no importance correction"})
    if not a.resample_rounds:
        out["algorithm.resample_rounds"] = "off (no dynamic sampling)"
    if not k.reset_every:
        out["kl.reset_every"] = "off (the reference stays the base model)"
    if not cfg.model.adapter:
        out["model.adapter"] = "a fresh adapter"
    if not r.reward_fns:
        out.update({"rollout.reward_fns": "the task's own rewards", "rollout.reward_weights": "the task's own weights"})
    if not r.dataset:
        out["rollout.dataset"] = "the task's own prompts (written to the data file)"
    if r.chat_template != "on":
        out["rollout.chat_template"] = "the built-in world's tokenizer has no chat template; a chat model's template " \
                                       "is applied by the target to message prompts"
    if a.baseline != "moving_average":
        out["algorithm.ema_decay"] = "moving-average baseline only"
    if a.policy_loss == "pg" or a.update == "trpo":
        out.update({s: "no ratio clipping in this loss" for s in ("algorithm.clip_low", "algorithm.clip_high")})
    if k.placement == "none":
        out.update({s: "kl.placement is none" for s in ("kl.estimator", "kl.coef", "kl.controller")})
    if k.controller != "adaptive":
        out.update({s: "adaptive controller only" for s in ("kl.target", "kl.horizon")})
    if not r.overlong_buffer:
        out["rollout.overlong_penalty"] = "rollout.overlong_buffer is 0"
    if r.task != "sentiment":
        out["model.reward_model"] = "the task is scored by functions, not a reward model"
    return out


def base_rows(cfg: Config, mapped: dict[str, Row]) -> list[Row]:
    """One row per lab setting, in config order: the target's row, else n/a, else not exportable.

    When a mapped row already refuses the recipe, settings the plan never reached are n/a ("not reached").
    """
    idle = unused(cfg)
    refused = any(r.status == BLOCKED for r in mapped.values())
    rows = []
    for setting, value in flat(cfg).items():
        if setting in mapped:
            rows.append(mapped[setting])
        elif setting in LAB_ONLY:
            rows.append(Row(setting, value, "", NA, LAB_ONLY[setting]))
        elif setting in idle:
            rows.append(Row(setting, value, "", NA, f"not used: {idle[setting]}"))
        elif refused:
            rows.append(Row(setting, value, "", NA, "not reached: the recipe does not go to this target"))
        else:
            rows.append(Row(setting, value, "", BLOCKED, "this target has no equivalent"))
    return rows


def verdict(rows: list[Row]) -> str:
    """exact, approximate (something approximate or dropped) or not exportable."""
    statuses = {r.status for r in rows}
    if BLOCKED in statuses:
        return BLOCKED
    return APPROX if statuses & {APPROX, DROPPED} else EXACT


def markdown(rows: list[Row], title: str, intro: str = "") -> str:
    """The table as Markdown (FIDELITY.md), blocking rows first so a refusal reads at once."""
    order = {s: i for i, s in enumerate((BLOCKED, DROPPED, APPROX, EXACT, NA))}
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += ["| lab setting | value | became | fidelity | why |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: order[r.status]):
        key = f"`{r.key}`" if r.key else "-"
        note = r.note.replace("|", "\\|")
        lines.append(f"| `{r.setting}` | `{r.value!r}` | {key} | {r.status} | {note} |")
    return "\n".join(lines) + "\n"


def text(rows: list[Row]) -> str:
    """The table for a terminal: the rows that are not n/a, one per line."""
    shown = [r for r in rows if r.status != NA]
    w1 = max((len(r.setting) for r in shown), default=0)
    w2 = max((len(r.key) for r in shown), default=0)
    w2 = min(w2, 48)
    out = []
    for r in shown:
        note = f"  ({r.note})" if r.note else ""
        out.append(f"  {r.setting:<{w1}}  ->  {r.key or '-':<{w2}}  {r.status}{note}")
    n_na = len(rows) - len(shown)
    if n_na:
        out.append(f"  ... and {n_na} lab-only, unused or unreached settings (n/a)")
    return "\n".join(out)


def comment_lines(rows: list[Row]) -> str:
    """Shell comments for a run.sh: each mapped setting that carries a note (differences, library defaults)."""
    lines = [f"#   {r.setting} -> {r.key or '-'}: {r.status}; {r.note}" for r in rows
             if r.note and r.status != NA and not r.note.startswith(("off in both", "0 in both"))]
    return "\n".join(["# Why some values are what they are (all rows: FIDELITY.md):", *lines]) if lines else ""

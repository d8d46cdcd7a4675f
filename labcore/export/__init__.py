"""Export a lab recipe to the engines of a big run: TRL, verl and OpenRLHF, with its fidelity stated.

    from labcore.export import export
    report = export("grpo", "trl", "out/grpo-trl")     # a preset, a TOML file, a run folder or a Config
    print(report.table())                              # every lab setting -> the key it became -> how faithfully

Each target writes a directory that runs as written (see the target's README.md) and FIDELITY.md. A recipe that a
target cannot express is refused: `report.ok` is False, nothing is written, and the CLI exits with 2.

Targets (keys read from trl 1.16, verl 1dda039b, OpenRLHF 3c3be623; tests/data holds the verl and OpenRLHF
key lists): `trl` (GRPOTrainer / RLOOTrainer, `labcore/export/trl.py`), `verl` (Hydra overrides of
`verl.trainer.main_ppo`, `labcore/export/verl.py`), `openrlhf` (`train_ppo_ray` flags, `labcore/export/openrlhf.py`).
Where the libraries disagree, the export follows the paper and says so in the file (CISPO's clip, the dual clip).
Left out: running the exported directory (the tests run the TRL one; benchmarks/export_vs_lab.py compares it).
"""

from __future__ import annotations

from pathlib import Path

from labcore.config import Config, ConfigError, check, load_preset
from labcore.export import fidelity
from labcore.export.report import Report, begin, finish
from labcore.export.world import ExportError

TARGETS = {
    "trl": "TRL GRPOTrainer / RLOOTrainer: train.py with every key, LoRA via peft, accelerate + DeepSpeed",
    "verl": "verl.trainer.main_ppo: Hydra overrides in run.sh, Parquet prompts, a compute_score module",
    "openrlhf": "OpenRLHF train_ppo_ray: the command line in run.sh, JSONL prompts, a reward_func module",
}


def load_source(source: str | Config) -> tuple[Config, str]:
    """(config, a label) from a Config, a run folder (with config.toml), a TOML file or a preset name."""
    if isinstance(source, Config):
        return source, source.run.name or source.algorithm.recipe
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.toml").is_file():
            raise ExportError(f"{source!r} is a folder without config.toml; give a run folder (runs/<id>), a "
                              "preset name (`rlhf-lab presets`) or a .toml file.")
        path = path / "config.toml"
    return load_preset(str(path) if path.suffix == ".toml" and path.exists() else str(source)), str(source)


def export(source: str | Config, target: str, out_dir: str | Path) -> Report:
    """Export `source` to `target` (trl, verl, openrlhf) in `out_dir`. Refused recipes write nothing.

    Raises ExportError for a bad source, target or directory, ConfigError for invalid settings.
    """
    if target not in TARGETS:
        raise ExportError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}.")
    cfg, label = load_source(source)
    check(cfg)
    from labcore.export import openrlhf, trl, verl  # noqa: F401  (the three plans)

    plans = {"trl": _trl, "verl": verl.export, "openrlhf": openrlhf.export}
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "FIDELITY.md").exists():
        raise ExportError(f"{out} exists and is not an earlier export (no FIDELITY.md); pick an empty or new folder.")
    return plans[target](cfg, label, out)


def _trl(cfg: Config, label: str, out: Path) -> Report:
    from labcore.algorithms import RECIPES
    from labcore.export import trl, trl_files, world

    trainer, keys, mapped = trl.plan(cfg)
    rows = fidelity.base_rows(cfg, mapped)
    report = Report("trl", label, cfg.algorithm.recipe, fidelity.verdict(rows), rows)
    if not report.ok:
        return report
    funcs, weights = world.reward_spec(cfg)
    data, data_source = world.prompt_rows(cfg)
    begin(out)
    world.write_jsonl(data, out / "data" / "train.jsonl")
    model, model_abs = world.place_model(cfg, out)
    world.copy_lab_rewards(out, world.place_reward_model(cfg, out))
    shaping = world.shaping(cfg)
    keys["reward_weights"] = list(weights) + [w for _, w in shaping]
    a = cfg.algorithm
    report.files = ["data/train.jsonl", "lab_rewards.py"] + (["model/"] if model == "model" else [])
    report.files += trl_files.write(
        out, title=RECIPES[a.recipe].title, recipe=a.recipe, trainer=trainer, keys=keys, notes=trl.comments(cfg, keys),
        lora=trl.lora_kwargs(cfg, world.lora_targets(cfg, model_abs)), model=model, task=cfg.rollout.task,
        funcs=funcs, weights=weights, shaping=shaping, max_new_tokens=cfg.rollout.max_new_tokens,
        overlong_buffer=cfg.rollout.overlong_buffer, per_step=a.epochs * a.minibatches, verdict=report.verdict,
        data_source=data_source)
    return finish(report, out, f"TRL {trainer}; the keys are in train.py's CONFIG.")


__all__ = ["TARGETS", "ConfigError", "ExportError", "Report", "export", "load_source"]

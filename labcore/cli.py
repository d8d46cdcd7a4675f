"""Headless commands: `run`, `presets`, `pretrain`. The `rlhf-lab` script (app/cli.py) adds `serve`.

    rlhf-lab run PRESET_OR_TOML [--set section.key=value ...] [--steps N] [--out DIR]
    rlhf-lab presets
    rlhf-lab pretrain [--out DIR] [--seed S] [--scale X]
    rlhf-lab lessons
    rlhf-lab lesson check [NAME ...] [--seeds N] [--first-seed S]
    rlhf-lab export RUN_OR_PRESET_OR_TOML --to trl|verl|openrlhf --out DIR

A run goes through the same RunManager as the UI's, so it is validated, stored and fails the same way.
Exit codes: 0 done, 1 the run failed, 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import sys
import time

from labcore.config import ConfigError, apply, field_help, list_presets, load_preset

SUMMARY_KEYS = ("reward/mean", "kl/mean", "entropy/mean", "len/mean", "eos/rate", "time/step_s")


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or "." not in key:
            raise ConfigError([f"--set {item!r} is not of the form section.key=value, e.g. --set optim.lr=1e-3"])
        out[key.strip()] = value.strip()
    return out


def cmd_presets(_: argparse.Namespace) -> int:
    presets = list_presets()
    width = max(map(len, presets), default=0)
    for name, desc in presets.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from labcore.runner import RunManager

    try:
        cfg = load_preset(args.preset)
        overrides = _parse_sets(args.set or [])
        if args.steps is not None:
            overrides["run.steps"] = args.steps
        cfg = apply(cfg, overrides)
        manager = RunManager(args.out)
        run_id = manager.submit(cfg, owner="cli")
    except ConfigError as e:
        print(f"rlhf-lab run: {e}", file=sys.stderr)
        return 2
    print(f"run {run_id} -> {manager.store.path(run_id)}")
    bar = tqdm(total=cfg.run.steps, unit="step", dynamic_ncols=True)
    try:
        while True:
            st = manager.status(run_id)
            rows = manager.store.metrics(run_id)
            if rows and rows[-1]["step"] > bar.n:
                bar.update(rows[-1]["step"] - bar.n)
                bar.set_postfix(reward=f"{rows[-1]['reward/mean']:.3f}", kl=f"{rows[-1]['kl/mean']:.3f}")
            if st["state"] in ("done", "stopped", "failed", "cancelled"):
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        manager.stop(run_id)
        st = manager.wait(run_id, timeout=60)
    finally:
        bar.close()
    manager.shutdown()
    rows = manager.store.metrics(run_id)
    print(f"state: {st['state']}  {st['message']}")
    if rows:
        first, last = rows[0], rows[-1]
        n = max(1, len(rows) // 10)
        start = sum(r["reward/mean"] for r in rows[:n]) / n
        end = sum(r["reward/mean"] for r in rows[-n:]) / n
        print(f"steps: {len(rows)}  reward (mean of first/last {n}): {start:.3f} -> {end:.3f}")
        for k in SUMMARY_KEYS:
            if k in last:
                print(f"  {k:<14} {first[k]:>10.4f} -> {last[k]:>10.4f}")
    return 1 if st["state"] == "failed" else 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from labcore.pretrain import pretrain_main

    return pretrain_main(args.rest)


def cmd_lessons(_: argparse.Namespace) -> int:
    from labcore.lessons_cli import list_main

    return list_main()


def cmd_lesson(args: argparse.Namespace) -> int:
    from labcore.lessons_cli import check_main

    return check_main(args.names, args.seeds, args.first_seed)


def cmd_export(args: argparse.Namespace) -> int:
    from labcore.export import ExportError, export

    try:
        report = export(args.source, args.to, args.out)
    except (ConfigError, ExportError) as e:
        print(f"rlhf-lab export: {e}", file=sys.stderr)
        return 2
    print(report.table())
    if not report.ok:
        print(f"rlhf-lab export: '{args.source}' does not go to {args.to}; nothing written.", file=sys.stderr)
        return 2
    print(f"wrote {report.out_dir}: {', '.join(report.files)} (how to run it: run.sh or README.md there)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train one preset or TOML config without the UI")
    p.add_argument("preset", help="a preset name (see `rlhf-lab presets`) or a path to a .toml config")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help=f"override one setting, e.g. --set optim.lr=1e-3 ({field_help('optim', 'lr')})")
    p.add_argument("--steps", type=int, help=field_help("run", "steps"))
    p.add_argument("--out", default="runs", help="folder for run folders (default: runs)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("presets", help="list the presets with their descriptions")
    p.set_defaults(func=cmd_presets)
    p = sub.add_parser("pretrain", help="rebuild the built-in tiny model, tokenizer and reward model",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_pretrain)
    p = sub.add_parser("lessons", help="list the lessons (presets/lessons/*.toml)")
    p.set_defaults(func=cmd_lessons)
    p = sub.add_parser("lesson", help="`lesson check [NAME ...]`: run lessons headless over seeds and test their claims")
    p.add_argument("action", choices=["check"], help="check: run and test every named lesson (all when none named)")
    p.add_argument("names", nargs="*", help="lesson names (see `rlhf-lab lessons`); none: every lesson")
    p.add_argument("--seeds", type=int, default=None, help="seeds per lesson (default: the lesson's own, 3)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="first seed (default 0); e.g. 3 confirms a claim on seeds it was not designed on")
    p.set_defaults(func=cmd_lesson)
    p = sub.add_parser("export", help="write a runnable TRL / verl / OpenRLHF recipe with its fidelity table")
    p.add_argument("source", help="a run folder (runs/<id>), a preset name or a .toml config")
    p.add_argument("--to", required=True, choices=("trl", "verl", "openrlhf"), help="the target library")
    p.add_argument("--out", required=True, help="the folder to write (new, or an earlier export)")
    p.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pretrain"]:  # its options go to pretrain_main whole: argparse's REMAINDER rejects a leading --option
        return cmd_pretrain(argparse.Namespace(rest=argv[1:]))
    parser = argparse.ArgumentParser(prog="rlhf-lab", description="rlhf-lab headless commands")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""The `rlhf-lab` console script: serve the lab, or run the headless commands of `labcore.cli`.

    rlhf-lab [serve] [--host H] [--port P] [--share] [--runs-dir DIR] [--shared] [--tick-budget N]
    rlhf-lab run PRESET_OR_TOML [--set section.key=value ...]
    rlhf-lab presets
    rlhf-lab pretrain [...]
    rlhf-lab replay RUN_DIR [--out FILE.html]
    rlhf-lab lessons
    rlhf-lab lesson check [NAME ...] [--seeds N]
    rlhf-lab export RUN_OR_PRESET_OR_TOML --to trl|verl|openrlhf --out DIR

Shared mode (`--shared`, or the environment variable RLHF_LAB_SHARED=1, as on a Space) caps runs with
`labcore.runner.SharedLimits` and lists only each session's own and published runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from labcore.cli import add_commands

COMMANDS = ("serve", "run", "presets", "pretrain", "replay", "lessons", "lesson", "export")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _tick_budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--tick-budget must be a number of ticks per second > 0, got {text!r} "
                                         "(default 12; RLHF_LAB_TICK_BUDGET sets it too)")
    return value


def add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                   help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--runs-dir", default=os.environ.get("RLHF_LAB_RUNS", "runs"),
                   help="folder for run folders (default: runs)")
    p.add_argument("--shared", action="store_true", default=_truthy(os.environ.get("RLHF_LAB_SHARED")),
                   help="workshop/Space mode: cap runs and list only each visitor's own and published runs "
                        "(also RLHF_LAB_SHARED=1)")
    p.add_argument("--tick-budget", type=_tick_budget, default=os.environ.get("RLHF_LAB_TICK_BUDGET", "12"),
                   help="chart refreshes per second the server serves in all (default 12: up to 12 open tabs "
                        "refresh every second; with more, each refreshes less often so training keeps its "
                        "speed; also RLHF_LAB_TICK_BUDGET)")


def cmd_serve(args: argparse.Namespace) -> int:
    from app.main import launch

    print(f"rlhf-lab: serving on http://{args.host}:{args.port} (runs in {args.runs_dir}"
          f"{', shared mode' if args.shared else ''})")
    launch(runs_dir=args.runs_dir, host=args.host, port=args.port, share=args.share, shared=args.shared,
           tick_budget=args.tick_budget)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from app.replay import ReplayError, write_replay

    try:
        path = write_replay(args.run_dir, args.out)
    except ReplayError as e:
        print(f"rlhf-lab replay: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser, no server needed")
    return 0


def add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="write a finished run as one self-contained HTML page (opens from disk)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. runs/20260101-120000-grpo-abc123")
    p.add_argument("--out", default=None, help="the HTML file to write (default: RUN_DIR/<run-id>.html)")
    p.set_defaults(func=cmd_replay)


def parser() -> argparse.ArgumentParser:
    serve_help = argparse.ArgumentParser(prog="rlhf-lab [serve]", add_help=False)
    add_serve_options(serve_help)
    options = serve_help.format_help().split("options:\n", 1)[-1]  # the options, without the usage line
    p = argparse.ArgumentParser(prog="rlhf-lab", description="rlhf-lab: an interactive visual lab for RLHF "
                                "policy-gradient algorithms. With no command, serves the lab.",
                                epilog="serve options (rlhf-lab [serve] [options]; also `rlhf-lab serve --help`):\n"
                                + options, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the lab in the browser (the default)")
    add_serve_options(serve)
    serve.set_defaults(func=cmd_serve)
    add_commands(sub)
    add_replay(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["serve", *argv]  # `rlhf-lab --port 8000` serves
    if argv[0] == "pretrain":  # its options go to pretrain_main whole: argparse's REMAINDER rejects a leading --option
        from labcore.cli import cmd_pretrain

        return cmd_pretrain(argparse.Namespace(rest=argv[1:]))
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

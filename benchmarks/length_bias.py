"""The length-bias lesson's run figures per seed and arm, beside its verdicts (what the lesson's explanation quotes).

    PYTHONPATH=. python benchmarks/length_bias.py [--seeds 3] [--first-seed 0] [--lesson PATH]

For each seed and arm: the wrong answers' mean length over the first 10 steps and over the claims' window, the
right answers' over the window, the EOS rate (1 - the share cut off at the token budget) and the reward over
both, and the seconds the arm took; then each claim's per-seed effects and verdict. Timings depend on the machine
and its load: say which, next to the figures.
"""

from __future__ import annotations

import argparse
import os

from labcore.lessons import check, load_lesson, window_mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lesson", default="length_bias")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    args = ap.parse_args()
    lesson = load_lesson(args.lesson)
    late = lesson.claims[0].window
    early = (1, 10)
    seconds: dict[tuple[str, int], float] = {}

    def on_arm(arm: str, seed: int, s: float) -> None:
        seconds[arm, seed] = s

    res = check(lesson, args.seeds, first_seed=args.first_seed, on_arm=on_arm)
    print(f"# {os.cpu_count()} CPUs visible, torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"| seed | arm | wrong len {early} | wrong len {late} | right len {late} | EOS rate {early} -> {late} | "
          f"reward {early} -> {late} | s |")
    print("|---|---|---|---|---|---|---|---|")
    for seed, arms in res.records.items():
        for arm, rows in arms.items():
            def w(metric: str, window: tuple[int, int], rows: list[dict] = rows) -> float:
                return window_mean(rows, metric, window)
            print(f"| {seed} | {arm} | {w('len/wrong/mean', early):.1f} | {w('len/wrong/mean', late):.1f} | "
                  f"{w('len/right/mean', late):.1f} | {w('eos/rate', early):.2f} -> {w('eos/rate', late):.2f} | "
                  f"{w('reward/mean', early):.2f} -> {w('reward/mean', late):.2f} | {seconds[arm, seed]:.0f} |")
    for v in res.verdicts:
        effects = ", ".join(f"{e:+.2f}" for e in v.effects)
        print(f"{v.claim.text}: per seed {effects}; mean {v.mean:.2f} +- {v.se:.2f}; {v.agree}/{len(v.effects)} "
              f"seeds; {'holds' if v.holds else 'does not hold'}")
    print(f"{res.seconds:.0f} s in all")


if __name__ == "__main__":
    main()

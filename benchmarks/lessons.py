"""Check every lesson (or the named ones) over 3 seeds and print the README's lessons table in Markdown.

    python benchmarks/lessons.py [NAME ...] [--seeds N]

One row per claim: lesson, claim, measured effect (mean over seeds), its standard error, the seeds on the claimed
side, seconds for the whole check and per seed (what the app's one-seed run takes: the median over the seeds after
the first, which also pays the one-off imports and model load), the source figure, and the verdict. The aim is a
verdict in under 60 s per seed on a 2-core CPU; it is printed, never asserted. Timings depend on the machine and
its load: say which, next to the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections import defaultdict

from labcore.lessons import check, list_lessons, load_lesson


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--first-seed", type=int, default=0)
    args = ap.parse_args()
    print(f"# {os.cpu_count()} CPUs visible, torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print("| lesson | claim | effect | s.e. | seeds | s (all seeds) | s per seed | reproduces | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.names or list_lessons():
        lesson = load_lesson(name)
        seed_s: dict[int, float] = defaultdict(float)  # seed -> seconds of all its arms

        def on_arm(arm: str, seed: int, s: float, seed_s: dict[int, float] = seed_s) -> None:
            seed_s[seed] += s

        res = check(lesson, args.seeds, first_seed=args.first_seed, on_arm=on_arm)
        later = [t for seed, t in seed_s.items() if seed != res.seeds[0]] or list(seed_s.values())
        one_seed = statistics.median(later)
        for v in res.verdicts:
            per_seed = ", ".join(f"{e:.3g}" for e in v.effects)
            print(f"| {lesson.title} | {v.claim.text} (per seed: {per_seed}) | {v.mean:.3g} | {v.se:.2g} | "
                  f"{v.agree}/{len(v.effects)} | {res.seconds:.0f} | {one_seed:.0f} | "
                  f"{lesson.figure or lesson.source} | {'holds' if v.holds else 'does not hold'} |", flush=True)


if __name__ == "__main__":
    main()

"""`rlhf-lab lessons` and `rlhf-lab lesson check [NAME ...] [--seeds N]`.

The check runs each lesson headless over n seeds (default: the lesson's own, 3), tests each claim with the rule of
`labcore.lessons.judge`, and prints one row per claim: lesson, claim, effect (mean over seeds), its standard
error, how many seeds agree, and the seconds the lesson took. Exit codes: 0 every checked claim holds, 1 some claim
does not, 2 a lesson is malformed or unknown.
"""

from __future__ import annotations

import sys

from labcore.lessons import LessonError, check, list_lessons, load_lesson


def list_main() -> int:
    lessons = list_lessons()
    if not lessons:
        print("no lessons found (presets/lessons/*.toml)")
        return 0
    width = max(map(len, lessons))
    for name, title in lessons.items():
        print(f"{name:<{width}}  {title}")
    return 0


def _fmt(x: float) -> str:
    return "nan" if x != x else f"{x:.3g}"


def check_main(names: list[str], seeds: int | None, first_seed: int = 0) -> int:
    if first_seed < 0:
        print(f"rlhf-lab lesson check: --first-seed {first_seed} must be >= 0", file=sys.stderr)
        return 2
    if seeds is not None and seeds < 1:
        print(f"rlhf-lab lesson check: --seeds {seeds} must be >= 1 (3 or more for a real check)", file=sys.stderr)
        return 2
    try:
        lessons = [load_lesson(n) for n in (names or list_lessons())]
    except LessonError as e:
        print(f"rlhf-lab lesson check: {e}", file=sys.stderr)
        return 2
    rows, all_hold = [], True
    for lesson in lessons:
        print(f"checking {lesson.name} ({len(lesson.arms)} arm(s) x {seeds or lesson.seeds} seeds x "
              f"{lesson.steps} steps) ...", flush=True)
        try:
            res = check(lesson, seeds, on_arm=lambda arm, seed, s: print(f"  {arm} seed {seed}: {s:.1f} s",
                                                                          flush=True), first_seed=first_seed)
        except LessonError as e:
            print(f"rlhf-lab lesson check: {e}", file=sys.stderr)
            return 2
        for v in res.verdicts:
            all_hold &= v.holds
            print(f"  {v.claim.text}: per seed " + ", ".join(_fmt(e) for e in v.effects), flush=True)
            rows.append((lesson.name, v.claim.text, _fmt(v.mean), _fmt(v.se), f"{v.agree}/{len(v.effects)}",
                         f"{res.seconds:.1f}", "holds" if v.holds else "DOES NOT HOLD"))
    head = ("lesson", "claim", "effect", "s.e.", "seeds", "seconds", "verdict")  # seeds: how many agree
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print("every claim holds" if all_hold else "some claims do not hold")
    return 0 if all_hold else 1

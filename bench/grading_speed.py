"""How fast the grading engine grades. Prints figures; asserts nothing.

    .venv/bin/python bench/grading_speed.py            # full run (~30 s)
    .venv/bin/python bench/grading_speed.py --quick    # smaller counts

Results are reduced to rewards batch by batch, as the trainer does; the last deterministic
line shows the cost of keeping every result object alive instead (garbage collection).

Targets (issue 3): deterministic graders >= 50,000 grades/s on one core for short answers;
python graders through the warm sandbox pool >= 200 grades/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.grading import SandboxLimits, SandboxPool, get_compiled_grader, grade_batch, run_grader  # noqa: E402

STRING_CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}
NUMERIC = {
    "type": "numeric_match",
    "name": "number",
    "reference": "{{item.total}}",
    "abs_tol": 0.01,
}
MULTI = {
    "type": "multi",
    "name": "rubric",
    "graders": {"exact": STRING_CHECK, "number": NUMERIC},
    "calculate_output": "0.5 * exact + 0.5 * number",
}
MULTI_SIMPLE = {
    "type": "multi",
    "name": "rubric",
    "graders": {
        "exact": STRING_CHECK,
        "mentions": {**STRING_CHECK, "operation": "ilike", "reference": "total"},
    },
    "calculate_output": "0.7 * exact + 0.3 * mentions",
}
TRIVIAL_PYTHON = {
    "type": "python",
    "name": "trivial",
    "source": "def grade(sample, item):\n    return float(sample['output_text'] == item['answer'])\n",
}


def rate(label: str, count: int, work: Callable[[], object]) -> float:
    """Wall-clock rate; for single-threaded work also the rate per second of our own CPU
    time, which is the "one core" figure even when other processes share the machine."""
    start, cpu_start = time.perf_counter(), time.process_time()
    work()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    per_second = count / seconds
    print(
        f"  {label:<52} {per_second:>10,.0f} grades/s wall, {count / cpu:>10,.0f} per CPU-s  ({count:,} in {seconds:.2f}s)"
    )
    return per_second


def deterministic(n: int, batch: int = 256) -> None:
    print(
        f"Deterministic graders, one thread, {n:,} short answers each (load average {os.getloadavg()[0]:.1f})"
    )
    samples = [f"The total is {i % 97},{i % 1000:03d}.50" for i in range(n)]
    items = [
        {"answer": samples[i] if i % 2 else "no", "total": f"{i % 97},{i % 1000:03d}.5"}
        for i in range(n)
    ]
    pairs = list(zip(samples, items, strict=True))
    cases = (
        ("string_check", STRING_CHECK),
        ("numeric_match", NUMERIC),
        ("multi(string_check, numeric_match)", MULTI),
        ("multi(string_check, string_check)", MULTI_SIMPLE),
    )
    # Like the trainer, keep the rewards and drop the result objects batch by batch.
    for name, grader in cases:
        compiled = get_compiled_grader(grader)
        rate(
            f"{name}: run_grader(dict, ...)",
            n,
            lambda g=grader: sum(run_grader(g, s, i).reward for s, i in pairs),
        )
        rate(
            f"{name}: compiled.grade(...)",
            n,
            lambda c=compiled: sum(c.grade(s, i).reward for s, i in pairs),
        )
        rate(
            f"{name}: grade_batch(..) x{batch}",
            n,
            lambda g=grader: [
                sum(r.reward for r in grade_batch(g, samples[k : k + batch], items[k : k + batch]))
                for k in range(0, n, batch)
            ],
        )
    # Keeping every result alive makes Python's garbage collector scan them repeatedly.
    rate(
        "multi(string_check, numeric_match): keeping all results",
        n,
        lambda: grade_batch(MULTI, samples, items),
    )


def python_pool(n: int, fresh: int) -> None:
    cores = os.cpu_count() or 2
    print(
        f"Python grader (trivial grade function), {cores} cores (CPU per-s figures count only this process)"
    )
    samples = [str(i) for i in range(n)]
    items = [{"answer": str(i if i % 3 else -1)} for i in range(n)]
    with SandboxPool(cores) as pool:
        grade_batch(
            TRIVIAL_PYTHON, samples[: cores * 2], items[: cores * 2], sandbox=pool
        )  # warm up
        warm = rate(
            f"warm pool of {cores}, grade_batch",
            n,
            lambda: grade_batch(TRIVIAL_PYTHON, samples, items, sandbox=pool),
        )
        rate(
            "warm pool, one caller, run_grader in a loop",
            n // 2,
            lambda: [
                run_grader(TRIVIAL_PYTHON, s, i, sandbox=pool)
                for s, i in zip(samples[: n // 2], items[: n // 2], strict=True)
            ],
        )
    with SandboxPool(1, SandboxLimits(max_tasks_per_worker=1)) as pool:
        cold = rate(
            "fresh process per grade (same isolation)",
            fresh,
            lambda: [
                run_grader(TRIVIAL_PYTHON, s, i, sandbox=pool)
                for s, i in zip(samples[:fresh], items[:fresh], strict=True)
            ],
        )
        assert pool.spawned >= fresh
    print(f"  warm pool / fresh process: {warm / cold:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    deterministic(20_000 if args.quick else 200_000)
    python_pool(1_000 if args.quick else 5_000, 10 if args.quick else 40)


if __name__ == "__main__":
    main()

"""How the benchmarks turn samples into the figures they print (shared by every target)."""

from __future__ import annotations

import random
import statistics


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def median_with_interval(values: list[float]) -> tuple[float, float, float]:
    """The median and a 95 % bootstrap confidence interval around it."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(2000))
    return statistics.median(values), medians[50], medians[1949]


def paired_line(label: str, ours: list[float], theirs: list[float], limit: float) -> None:
    """The median of run-by-run ratios ours/theirs with its 95 % interval, against ``limit``."""
    ratio, low, high = median_with_interval([a / b for a, b in zip(ours, theirs, strict=True)])
    line(label, f"{ratio:.3f} [{low:.3f}, {high:.3f}]", f"≤ {limit:.2f}", ratio <= limit)


def line(label: str, value: str, target: str, ok: bool) -> None:
    print(f"  {label:<58} {value:>22}   target {target:<10} {'PASS' if ok else 'MISS'}")

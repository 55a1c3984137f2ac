"""Rate measurement shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(fn: Callable[[], object], seconds: float = 2.0, min_calls: int = 5) -> float:
    """Calls per second of ``fn``, measured for about ``seconds`` after one warm-up call."""
    fn()
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        calls += 1
        now = time.perf_counter()
        if now >= deadline and calls >= min_calls:
            return calls / (now - start)


def best_rate(fn: Callable[[], object], seconds: float = 2.0, rounds: int = 3) -> float:
    """The best of ``rounds`` measurements: the least disturbed by other load."""
    return max(rate(fn, seconds / rounds) for _ in range(rounds))

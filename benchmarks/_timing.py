"""Rate measurement shared by the benchmarks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar


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


_T = TypeVar("_T")


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` in a fresh thread and return its result.

    Tests call benchmarks in-process, and a pytest worker that ran a browser
    test keeps Playwright's event loop set in its main thread, where
    ``asyncio.run`` refuses to start.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

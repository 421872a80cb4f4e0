"""Median single-request latency, measured the same way for every exported artifact.

Example:

>>> ms = median_latency_ms(lambda: sum(range(100)), warmup=2, runs=5)
>>> ms >= 0.0
True
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

WARMUP = 20
RUNS = 200


def median_latency_ms(
    request: Callable[[], object], *, warmup: int = WARMUP, runs: int = RUNS
) -> float:
    """Calls `request` `warmup` times untimed, then `runs` times; returns the median in ms."""
    for _ in range(warmup):
        request()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        request()
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1000.0)

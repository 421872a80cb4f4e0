"""Shared settings of the fuzz tests: bounded hypothesis runs and a per-example time limit.

Every property test runs at most `MAX_EXAMPLES` examples (60), the same ones on every run,
without hypothesis's deadline (the first TensorFlow call of a test is slow); `time_limit` turns a
hang into a test failure. For a longer, random hunt: `FUZZ_EXAMPLES=3000 pytest tests/fuzz`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from hypothesis import HealthCheck, settings

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize="FUZZ_EXAMPLES" not in os.environ,  # CI: the same examples every time
    database=None,  # no .hypothesis/ folder in the repository
)


class Hang(Exception):
    """An example ran longer than its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises `Hang` in the main thread if the block runs longer than `seconds`."""

    def expire(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

"""What the peer scripts share: our split read with numpy only, a training clock, and validation
ranked by `attnrec_tf.metrics`.

The peer scripts (`peer_rectools.py`, `peer_recbole.py`) run in the peer's own virtual
environment (torch and the peer library, no TensorFlow), started by `benchmarks.peers` as
`<peer-venv>/bin/python -m attnrec_tf.peer_<name> JOB.json` with the repository on PYTHONPATH.
This module imports numpy and `attnrec_tf.metrics` (plain numpy) only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

EVAL_BATCH = 256

# scores (B, vocab_size) in our column order for a batch of histories
ScoreBatch = Callable[[list[np.ndarray]], np.ndarray]


class SplitArrays:
    """Our leave-one-out split as loaded from `split.npz` (see `run_dir.save_split`)."""

    def __init__(self, train: list[np.ndarray], valid: np.ndarray, test: np.ndarray) -> None:
        self.train, self.valid, self.test = train, valid, test

    def histories(self, stage: str) -> list[np.ndarray]:
        """The model input per user: "valid" -> s[:-2], "test" -> s[:-1]."""
        if stage == "valid":
            return self.train
        return [np.append(h, t) for h, t in zip(self.train, self.valid, strict=True)]

    def targets(self, stage: str) -> np.ndarray:
        """The item to predict per user: "valid" -> s[-2], "test" -> s[-1]."""
        return self.valid if stage == "valid" else self.test


def load_split(path: Path) -> SplitArrays:
    """Reads `split.npz` with numpy only."""
    with np.load(path, allow_pickle=False) as data:
        offsets, flat = data["train_offsets"], data["train_flat"]
        train = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return SplitArrays(train, data["valid_targets"], data["test_targets"])


def rank_metrics(
    score_batch: ScoreBatch, histories: Sequence[np.ndarray], targets: np.ndarray
) -> dict[str, float]:
    """HR@10, NDCG@10, MRR by `attnrec_tf.metrics`: full ranking, history excluded, ties
    pessimistic, the same call our own validation makes."""
    from attnrec_tf import metrics

    accumulator = metrics.RankingAccumulator()
    for start in range(0, len(histories), EVAL_BATCH):
        batch = list(histories[start : start + EVAL_BATCH])
        wanted = targets[start : start + EVAL_BATCH]
        ranks = metrics.rank_of_targets(score_batch(batch), wanted, batch)
        accumulator.update(ranks)
    result = accumulator.result(ks=(10,))
    return {key: float(result[key]) for key in ("hr@10", "ndcg@10", "mrr")}


class Clock:
    """Training seconds: wall clock since `start()`, less the spans spent in `pause()`."""

    def __init__(self) -> None:
        self.start_time = time.perf_counter()
        self.paused = 0.0

    def start(self) -> None:
        """Restarts the clock at 0."""
        self.start_time, self.paused = time.perf_counter(), 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.start_time - self.paused

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Stops the clock for the duration of the `with` block."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - began

"""Keras callbacks for training: full-ranking validation and an atomic best checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from attnrec_tf import atomic
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.evaluate import evaluate_split, keras_score_fn


class FullRankingValidation(keras.callbacks.Callback):
    """Adds `val_hr@10`, `val_ndcg@10`, `val_mrr` (full ranking) to the epoch logs.

    Put it before `EarlyStopping` / checkpoint callbacks that monitor `val_ndcg@10`.

    Args:
        split: The leave-one-out split; its `valid` stage is ranked.
        max_len: History window of the model.
        exclude_history: Exclude seen items from the ranking.
        max_users: Evaluate on at most this many users (None = all).
    """

    def __init__(
        self,
        split: LeaveOneOutSplit,
        max_len: int,
        *,
        exclude_history: bool = True,
        max_users: int | None = None,
    ) -> None:
        super().__init__()
        self.split = split
        self.max_len = max_len
        self.exclude_history = exclude_history
        self.max_users = max_users
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        start = time.perf_counter()
        result = evaluate_split(
            keras_score_fn(self.model, self.max_len),
            self.split,
            "valid",
            exclude_history=self.exclude_history,
            max_users=self.max_users,
        )
        self.seconds += time.perf_counter() - start
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in result.items()}}
        if logs is not None:
            row["loss"] = float(logs.get("loss", np.nan))
            for key in ("hr@10", "ndcg@10", "mrr"):
                logs[f"val_{key}"] = result[key]
        self.history.append(row)
        print(
            f" - val full-ranking: HR@10 {result['hr@10']:.4f}  NDCG@10 {result['ndcg@10']:.4f}"
            f"  MRR {result['mrr']:.4f}",
            flush=True,
        )


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the model to `path` (atomically) whenever `monitor` improves (mode max)."""

    def __init__(self, path: Path, monitor: str = "val_ndcg@10") -> None:
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = -np.inf
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or value <= self.best:
            return
        self.best = float(value)
        self.best_epoch = epoch + 1
        with atomic.staged_path(self.path) as tmp:
            self.model.save(tmp)

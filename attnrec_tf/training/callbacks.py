"""Keras callbacks for training: full-ranking validation, an atomic best checkpoint, and the
training state that lets a killed or interrupted run continue where it stopped.

Order in `fit(callbacks=[...])`: `FullRankingValidation` first (it adds `val_ndcg@10` to the epoch
logs), then the callbacks that read it (`AtomicBestCheckpoint`, `EarlyStopping`), and
`TrainingState` last, so that what it saves at an epoch end includes what the others did.

Example:

```python
state = TrainingState(path, fingerprint="...", epoch_variable=epoch,
                      tracked={"validation": validation, "early_stopping": early_stopping})
point = state.load()  # None on a fresh start
model.fit(dataset, epochs=10, initial_epoch=point.epoch if point else 0,
          callbacks=[validation, early_stopping, state])
```
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from attnrec_tf import atomic
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.errors import ConfigError
from attnrec_tf.evaluate import ScoreFn, evaluate_split, keras_score_fn

STATE_FORMAT = 1
# What `TrainingState` keeps of Keras's EarlyStopping (`best_weights` is not kept: training.py
# does not use `restore_best_weights`, it reloads the best checkpoint instead).
EARLY_STOPPING_STATE = ("wait", "best", "best_epoch", "stopped_epoch")


class FullRankingValidation(keras.callbacks.Callback):
    """Adds `val_hr@10`, `val_ndcg@10`, `val_mrr` (full ranking) to the epoch logs.

    Put it before `EarlyStopping` / checkpoint callbacks that monitor `val_ndcg@10`. Each
    `history` row also has `seconds`: wall-clock seconds since training started, validation
    included (a resumed run continues from its last row's value), and `validation_seconds`.

    Args:
        split: The leave-one-out split; its `valid` stage is ranked.
        max_len: History window of the model.
        exclude_history: Exclude seen items from the ranking.
    """

    state_attributes = ("history", "seconds")

    def __init__(
        self,
        split: LeaveOneOutSplit,
        max_len: int,
        *,
        exclude_history: bool = True,
    ) -> None:
        super().__init__()
        self.split = split
        self.max_len = max_len
        self.exclude_history = exclude_history
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0
        self._score_fn: ScoreFn | None = None
        self._clock: float | None = None  # perf_counter() minus the seconds already trained

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        done = self.history[-1].get("seconds", 0.0) if self.history else 0.0
        self._clock = time.perf_counter() - done

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        start = time.perf_counter()
        if self._score_fn is None:  # one tf.function for the whole run, traced once
            self._score_fn = keras_score_fn(self.model, self.max_len)
        result = evaluate_split(
            self._score_fn,
            self.split,
            "valid",
            exclude_history=self.exclude_history,
        )
        now = time.perf_counter()
        self.seconds += now - start
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in result.items()}}
        row["seconds"] = now - (self._clock if self._clock is not None else start)
        row["validation_seconds"] = now - start
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


class TimeBudget(keras.callbacks.Callback):
    """Stops training before an epoch that would end past `seconds` of training.

    Reads the wall-clock `seconds` of `validation`'s history rows (validation included, summed
    over the processes of a resumed run): after an epoch, training stops when another epoch as
    long as the last one would end past the budget. Put it after `validation`.

    Args:
        validation: The run's `FullRankingValidation`.
        seconds: The budget; 0 or less disables it.
    """

    def __init__(self, validation: FullRankingValidation, seconds: float) -> None:
        super().__init__()
        self.validation = validation
        self.budget = float(seconds)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        rows = self.validation.history
        if self.budget <= 0 or not rows:
            return
        done = rows[-1]["seconds"]
        last = done - (rows[-2]["seconds"] if len(rows) > 1 else 0.0)
        if done + last > self.budget:
            self.model.stop_training = True
            print(
                f" - time budget: {done:.0f}s of {self.budget:.0f}s used, the next epoch "
                f"(~{last:.0f}s) would not fit; stopping",
                flush=True,
            )


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the model to `path` (atomically) whenever `monitor` improves (mode max)."""

    state_attributes = ("best", "best_epoch")

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


class TrainingInterrupted(KeyboardInterrupt):
    """Raised out of `fit` after SIGINT, once the training state is saved; says how to resume."""


@dataclass(frozen=True)
class ResumePoint:
    """Where a saved training state stands.

    Attributes:
        epoch: Index of the epoch to run next (= epochs completed).
        batch: Batches of that epoch already trained (0 = start of the epoch).
        finished: Training is over (last epoch done, or early stopping fired).
        train_seconds: Training wall time of all earlier processes together.
        restarts: How many processes resumed this run before.
    """

    epoch: int
    batch: int
    finished: bool
    train_seconds: float
    restarts: int


class TrainingState(keras.callbacks.Callback):
    """Saves, and restores, everything a `fit` needs to continue as if it had never stopped.

    Keras's `BackupAndRestore` keeps the weights, the optimizer and the epoch. A resumed run only
    reaches the same metrics as an uninterrupted one if it also keeps the rest, so this callback
    writes one file (replaced atomically, so a kill never leaves half of it) with:

    * every model variable, including the Dropout `SeedGenerator` states (not in
      `save_weights`), every optimizer variable (step count, moments) and the metric variables
      (the running mean of the epoch's loss);
    * the epoch and the batches done in it, and whether training has finished;
    * the state of the `tracked` callbacks (their `state_attributes`, or
      `EARLY_STOPPING_STATE` for `keras.callbacks.EarlyStopping`);
    * a `fingerprint` of the configuration and data: a state written for other ones is refused.

    It saves at every epoch end, every `every_steps` batches, and when `interrupt` is set (then it
    raises `TrainingInterrupted`). The data order must not depend on the process either: it sets
    `epoch_variable` at each epoch start, from which `data.pipeline.training_dataset` derives
    the epoch's permutation. To resume at batch `b > 0`, fit the rest of that epoch on
    `training_dataset(..., start_batch=b)` first (see `training.fit_and_evaluate`).

    Args:
        path: The state file (`.npz`).
        fingerprint: Identifies the configuration and data; must match to restore.
        epoch_variable: Integer scalar `tf.Variable` read by the training dataset.
        epochs: The run's number of epochs (a state saved after the last one is finished).
        tracked: Callbacks whose state is saved and restored, by a stable name.
        every_steps: Also save every this many batches; 0 saves at epoch ends only.
        interrupt: When set (by a SIGINT handler), save at the end of the current batch and
            raise `TrainingInterrupted`.
        write: Write the file; False (the non-chief workers of a multi-worker run) only reads
            it. Defaults to `True`.
    """

    def __init__(
        self,
        path: Path,
        *,
        fingerprint: str,
        epoch_variable: Any,
        epochs: int,
        tracked: Mapping[str, keras.callbacks.Callback] | None = None,
        every_steps: int = 0,
        interrupt: threading.Event | None = None,
        write: bool = True,
    ) -> None:
        super().__init__()
        if every_steps < 0:
            raise ValueError(f"`every_steps` must be >= 0. Received: every_steps={every_steps}")
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.epoch_variable = epoch_variable
        self.epochs = epochs
        self.tracked = dict(tracked or {})
        self.every_steps = every_steps
        self.interrupt = interrupt
        self.write = write
        self.point: ResumePoint | None = None
        self.resumed_from: list[dict[str, int]] = []
        self._saved: dict[str, np.ndarray] | None = None  # the loaded file, until restored
        self._saved_metrics: dict[str, np.ndarray] | None = None
        self._callback_states: dict[str, dict[str, Any]] = {}
        self._epoch = 0
        self._batch_offset = 0  # batches done before this process in the current epoch
        self._batches_done = 0
        self._started: float | None = None

    # -- the file ------------------------------------------------------------------------------

    def load(self) -> ResumePoint | None:
        """Reads the state file, if any, and returns where it stands (None: start afresh).

        Raises:
            ConfigError: The file belongs to another configuration or data set, or is unreadable.
        """
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                saved = {key: data[key] for key in data.files}
            meta = json.loads(str(saved["meta"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ConfigError(
                f"{self.path}: unreadable training state ({error}); delete it, or pass "
                "--no-resume to start afresh"
            ) from None
        if meta.get("format") != STATE_FORMAT or meta.get("fingerprint") != self.fingerprint:
            raise ConfigError(
                f"{self.path}: this training state was written with other settings or data; "
                "rerun with the same command, or pass --no-resume (or another --output-dir) to "
                "start afresh"
            )
        self._saved = saved
        self._callback_states = meta["callbacks"]
        here = {"epoch": int(meta["epoch"]) + 1, "batch": int(meta["batch"])}  # 1-based epoch
        self.resumed_from = [*meta["resumed_from"], here]
        self.point = ResumePoint(
            epoch=int(meta["epoch"]),
            batch=int(meta["batch"]),
            finished=bool(meta["finished"]),
            train_seconds=float(meta["train_seconds"]),
            restarts=len(meta["resumed_from"]) + 1,
        )
        self._epoch, self._batch_offset = self.point.epoch, self.point.batch
        return self.point

    def restore(self) -> None:
        """Puts the loaded variables and callback states back (once); `fit` calls it itself."""
        if self._saved is None:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self._assign("model", self.model.variables)
        if optimizer is not None:
            self._assign("optimizer", optimizer.variables)
        self._saved_metrics = {k: v for k, v in self._saved.items() if k.startswith("metrics_")}
        self._saved = None
        self._apply_callback_states()

    def train_seconds(self) -> float:
        """Training wall time so far, earlier processes included."""
        before = self.point.train_seconds if self.point else 0.0
        return before + (time.perf_counter() - self._started if self._started else 0.0)

    def _assign(self, group: str, variables: list[Any]) -> None:
        # Matched by position and shape, not by path: Keras numbers auto-named layers per process
        # ("dense_1"), so the paths of a second model in the same process differ.
        assert self._saved is not None
        saved = sum(key.startswith(f"{group}_") for key in self._saved)
        if saved != len(variables):
            raise ConfigError(
                f"{self.path}: {saved} saved {group} variables, this model has "
                f"{len(variables)}; pass --no-resume to start afresh"
            )
        for i, variable in enumerate(variables):
            value = self._saved[f"{group}_{i}"]
            if tuple(variable.shape) != value.shape:
                raise ConfigError(
                    f"{self.path}: {variable.path} has shape {tuple(variable.shape)}, the saved "
                    f"one {value.shape}; pass --no-resume to start afresh"
                )
            variable.assign(value)

    def _save(self, *, finished: bool = False) -> None:
        # Every worker reads the variables (reading a metric variable under tf.distribute is a
        # collective operation that all workers must join); only the writer writes the file.
        meta = {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": self._epoch,
            "batch": self._batches_done,
            "finished": finished,
            "train_seconds": self.train_seconds(),
            "resumed_from": self.resumed_from,
            "callbacks": self._callback_states,
        }
        arrays: dict[str, np.ndarray] = {}
        optimizer = self.model.optimizer
        groups = {
            "model": self.model.variables,
            "optimizer": optimizer.variables if optimizer is not None else [],
            "metrics": self.model.metrics_variables,
        }
        for group, variables in groups.items():
            meta[f"{group}_paths"] = [v.path for v in variables]
            for i, variable in enumerate(variables):
                arrays[f"{group}_{i}"] = np.asarray(variable.numpy())
        arrays["meta"] = np.array(json.dumps(meta, default=_json_value))
        if not self.write:
            return
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        atomic.write_bytes(self.path, buffer.getvalue())

    # -- callback states -----------------------------------------------------------------------

    def _collect_callback_states(self) -> None:
        states = {
            name: {attr: getattr(callback, attr) for attr in _state_attributes(callback)}
            for name, callback in self.tracked.items()
        }
        self._callback_states = json.loads(json.dumps(states, default=_json_value))  # a copy

    def _apply_callback_states(self) -> None:
        for name, callback in self.tracked.items():
            for attr, value in self._callback_states.get(name, {}).items():
                setattr(callback, attr, value)

    # -- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._started is None:
            self._started = time.perf_counter()
        if self._saved is not None:
            self.restore()
            print(
                f"resuming from {self.path} at epoch {self._epoch + 1}, batch {self._batch_offset}",
                flush=True,
            )
        else:  # a second `fit` of the same run: callbacks such as EarlyStopping reset themselves
            self._apply_callback_states()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._batches_done = self._batch_offset
        self.epoch_variable.assign(epoch)
        strategy = getattr(self.model, "distribute_strategy", None)
        replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        # Continue the epoch's running mean loss. Under several replicas the saved value is
        # their sum and cannot be put back per replica: the resumed epoch's logged loss then
        # averages its remaining batches only (the weights are exact either way).
        if self._batch_offset and self._saved_metrics and replicas == 1:
            for i, variable in enumerate(self.model.metrics_variables):
                variable.assign(self._saved_metrics[f"metrics_{i}"])
        self._saved_metrics = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches_done = self._batch_offset + batch + 1
        if self.interrupt is not None and self.interrupt.is_set():
            self._save()
            raise TrainingInterrupted(
                f"training state saved at epoch {self._epoch + 1}, batch {self._batches_done} "
                f"in {self.path}; run the same command again to resume"
            )
        if self.every_steps and self._batches_done % self.every_steps == 0:
            self._save()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._collect_callback_states()
        self._epoch, self._batch_offset, self._batches_done = epoch + 1, 0, 0
        finished = bool(self.model.stop_training) or epoch + 1 >= self.epochs
        self._save(finished=finished)
        if self.interrupt is not None and self.interrupt.is_set() and not finished:
            raise TrainingInterrupted(
                f"training state saved after epoch {epoch + 1} in {self.path}; run the same "
                "command again to resume"
            )


def _state_attributes(callback: keras.callbacks.Callback) -> tuple[str, ...]:
    if isinstance(callback, keras.callbacks.EarlyStopping):
        return EARLY_STOPPING_STATE
    return tuple(getattr(callback, "state_attributes", ()))


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / tensor scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in a training state")

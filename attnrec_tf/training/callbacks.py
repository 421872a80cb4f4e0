"""Keras callbacks of a training run: full-ranking validation, a time budget (which also
ends a budgeted cosine where training will end), an atomic best checkpoint, resumable early
stopping, and the callback that saves the resume state.

Order in `fit(callbacks=[...])`: `FullRankingValidation` first (it adds `val_ndcg@10` to the
epoch logs), then the callbacks that read it (`TimeBudget`, `AtomicBestCheckpoint`,
`ResumableEarlyStopping`), and `SaveTrainingState` last, so that what it saves at an epoch end
includes what the others did. Each callback with progress of its own has `get_state()` /
`set_state(state)` (JSON values), which the resume state saves and puts back.

Example:

```python
saved = TrainingState.read(path, fingerprint)  # None on a fresh start
state = SaveTrainingState(path, fingerprint=fingerprint, epoch_variable=epoch, epochs=10,
                          tracked={"validation": validation, "early_stopping": stopping},
                          saved=saved)
fit.fit_from(saved, model, dataset, epochs=10, callbacks=[validation, stopping, state])
```
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from attnrec_tf import atomic
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.errors import ConfigError
from attnrec_tf.evaluate import ScoreFn, evaluate_split, keras_score_fn
from attnrec_tf.training.distribute import Distribution, chief_int
from attnrec_tf.training.optimizer import BudgetCosineDecay
from attnrec_tf.training.resume_state import TrainingState, json_value


class FullRankingValidation(keras.callbacks.Callback):
    """Adds `val_hr@10`, `val_ndcg@10`, `val_mrr` (full ranking) to the epoch logs.

    Put it before `EarlyStopping` / checkpoint callbacks that monitor `val_ndcg@10`. Each
    `history` row also has `seconds`: wall-clock seconds since training started, validation
    included (a resumed run continues from its last row's value), `validation_seconds`, and
    `batches`: the epoch's batches in this process (fewer when a time budget or an
    interruption cut it short, or a resumed run began inside it).

    Args:
        split: The leave-one-out split; its `valid` stage is ranked.
        max_len: History window of the model.
        exclude_history: Exclude seen items from the ranking.
        of_users: The users `split` was sampled from, when it is a sample (for the log line).
    """

    def __init__(
        self,
        split: LeaveOneOutSplit,
        max_len: int,
        *,
        exclude_history: bool = True,
        of_users: int | None = None,
    ) -> None:
        super().__init__()
        self.split = split
        sampled = of_users is not None and of_users > len(split.users)
        self.label = f" on {len(split.users):,} of {of_users:,} users" if sampled else ""
        self.max_len = max_len
        self.exclude_history = exclude_history
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0
        self._score_fn: ScoreFn | None = None
        self._mark: float | None = None  # perf_counter() at the last epoch end or fit start
        self._batches = 0  # of the epoch so far

    def get_state(self) -> dict[str, Any]:
        """The rows so far and the seconds spent validating."""
        return {"history": self.history, "seconds": self.seconds}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continues from a saved `get_state()`."""
        self.history = list(state["history"])
        self.seconds = float(state["seconds"])

    def seconds_so_far(self, now: float | None = None) -> float:
        """Wall-clock seconds of training until `now` (a `perf_counter()`; None: now): the
        last row's, plus the time since its epoch ended (or since this fit began)."""
        now = time.perf_counter() if now is None else now
        before = self.history[-1]["seconds"] if self.history else 0.0
        return before + (now - self._mark if self._mark is not None else 0.0)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._mark = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches = batch + 1  # Keras numbers an epoch's batches from 0

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
        row["seconds"] = self.seconds_so_far(now)
        row["validation_seconds"] = now - start
        row["batches"] = self._batches
        self._mark = now
        if logs is not None:
            row["loss"] = float(logs.get("loss", np.nan))
            for key in ("hr@10", "ndcg@10", "mrr"):
                logs[f"val_{key}"] = result[key]
        self.history.append(row)
        print(
            f" - val full-ranking{self.label}: HR@10 {result['hr@10']:.4f}  "
            f"NDCG@10 {result['ndcg@10']:.4f}  MRR {result['mrr']:.4f}",
            flush=True,
        )


RESERVE = 1.5
"""The time kept for the last validation, as a multiple of the longest recent one (the rest
covers the epoch-end save and validation's own spread)."""


@dataclasses.dataclass(frozen=True)
class Pace:
    """How fast a run trains, from the epochs timed so far: the one estimate that both the
    time budget's stop and the end of the budget's cosine are planned from.

    Attributes:
        used: Seconds of training so far, validation included.
        step: Seconds per batch: the mean over the last (up to) three epochs of their length
            less their validation over their batches, the first epoch left out once there are
            others (its time includes tracing).
        validation: Seconds of one validation: the longest of those epochs'.
    """

    used: float
    step: float
    validation: float

    @classmethod
    def of(cls, rows: list[dict[str, float]], steps_per_epoch: int) -> Pace | None:
        """The pace of `FullRankingValidation` history rows; None before the first.

        Rows from before `batches` was recorded count `steps_per_epoch` batches.
        """
        if not rows:
            return None
        ends = [row["seconds"] for row in rows]
        lengths = np.diff([0.0, *ends])
        recent = list(range(len(rows)))[1:][-3:] or [0]
        validations = [float(rows[i].get("validation_seconds", 0.0)) for i in recent]
        steps = [
            (lengths[i] - v) / max(1, int(rows[i].get("batches", steps_per_epoch)))
            for i, v in zip(recent, validations, strict=True)
        ]
        return cls(ends[-1], max(float(np.mean(steps)), 1e-9), max(validations))

    def steps_that_fit(self, budget: float, steps_per_epoch: int) -> int:
        """Batches that can still run within `budget` seconds, as whole epochs then part of
        one, each followed by its validation, with `RESERVE` times a validation kept for the
        last one."""
        epoch = steps_per_epoch * self.step + self.validation
        room = budget - self.used - (RESERVE - 1.0) * self.validation
        whole = max(0, int(room // epoch))
        part = int((room - whole * epoch - self.validation) // self.step)
        return whole * steps_per_epoch + min(max(0, part), steps_per_epoch - 1)


class TimeBudget(keras.callbacks.Callback):
    """Ends training within `seconds` of wall clock, validation included, and with a
    `BudgetCosineDecay` ends its cosine where training will end.

    After each epoch, the chief plans from the `Pace` of `validation`'s rows (summed over the
    processes of a resumed run) the step at which training stops: the batches that still fit,
    the last epoch possibly cut short, each epoch's validation reserved. Every worker takes the
    chief's plan, so all stop at the same batch, and the schedule's cosine is set to end at
    that step, or at the end of epoch `epochs` if that comes first. On one process the clock
    is also read after every batch: training stops early when one more batch and the last
    validation would not fit (an epoch slower than planned; before any epoch is timed, with
    the epoch's own pace so far and no validation reserved). Several workers follow the plan
    only: reading the chief's clock every batch would cost a collective each.

    Put it after `validation`; a stop ends the epoch at that batch and `validation` still
    ranks the model, so the last history row may be of part of an epoch.

    Args:
        validation: The run's `FullRankingValidation`.
        seconds: The budget; 0 or less disables it.
        steps_per_epoch: Batches per epoch.
        epochs: The run's maximum number of epochs (where the cosine ends at the latest).
        schedule: The optimizer's `BudgetCosineDecay`, when it has one.
        distribution: With several workers, every worker takes the chief's plan (their
            clocks differ, and all must stop at one batch).
    """

    def __init__(
        self,
        validation: FullRankingValidation,
        seconds: float,
        steps_per_epoch: int,
        *,
        epochs: int | None = None,
        schedule: BudgetCosineDecay | None = None,
        distribution: Distribution | None = None,
    ) -> None:
        super().__init__()
        self.validation = validation
        self.budget = float(seconds)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = epochs
        self.schedule = schedule
        self.distribution = distribution
        self.stop_step: int | None = None  # the planned optimizer step to stop after
        self._pace: Pace | None = None
        self._first_step = 0  # the optimizer's step when the epoch began
        self._epoch_start = 0.0

    @property
    def _one_process(self) -> bool:
        return self.distribution is None or self.distribution.num_workers <= 1

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.budget <= 0:
            return
        self._first_step = int(self.model.optimizer.iterations.numpy())
        self._epoch_start = time.perf_counter()
        if self.stop_step is None and self.validation.history:  # resumed: plan from its rows
            self._plan(self._first_step)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.budget <= 0:
            return
        if self.stop_step is not None and self._first_step + batch + 1 >= self.stop_step:
            self._stop("the planned last batch")
        elif self._one_process and self._next_batch_would_overrun(batch):
            self._stop("one more batch would not fit")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.budget <= 0 or self.model.stop_training:
            return
        step = int(self.model.optimizer.iterations.numpy())
        self._plan(step)
        if self.stop_step is not None and self.stop_step <= step:
            self._stop("the next epoch would not fit")

    def _plan(self, step: int) -> None:
        self._pace = Pace.of(self.validation.history, self.steps_per_epoch)
        if self._pace is None:
            return
        stop = step + self._pace.steps_that_fit(self.budget, self.steps_per_epoch)
        if not self._one_process:
            assert self.distribution is not None
            stop = chief_int(self.distribution, stop)
        self.stop_step = stop
        if self.schedule is not None:
            last = stop if self.epochs is None else min(stop, self.epochs * self.steps_per_epoch)
            self.schedule.set_decay_steps(last - self.schedule.warmup_steps)

    def _next_batch_would_overrun(self, batch: int) -> bool:
        now = time.perf_counter()
        if self._pace is None:  # nothing timed yet: this epoch's pace, tracing included
            step, reserve = (now - self._epoch_start) / (batch + 1), 0.0
        else:
            step, reserve = self._pace.step, RESERVE * self._pace.validation
        return self.validation.seconds_so_far(now) + step + reserve > self.budget

    def _stop(self, why: str) -> None:
        self.model.stop_training = True
        print(
            f" - time budget: {self.validation.seconds_so_far():.0f}s of {self.budget:.0f}s "
            f"used; stopping ({why})",
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

    def get_state(self) -> dict[str, Any]:
        """The best value so far and its epoch."""
        return {"best": self.best, "best_epoch": self.best_epoch}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continues from a saved `get_state()`."""
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or value <= self.best:
            return
        self.best = float(value)
        self.best_epoch = epoch + 1
        with atomic.staged_path(self.path) as tmp:
            self.model.save(tmp)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose progress survives a restart and a second `fit`.

    Resets itself at its first `fit` only (Keras's resets at every `fit`); its progress
    (`STATE`) is read and put back through `get_state` / `set_state`. Takes EarlyStopping's
    arguments; `restore_best_weights` is not supported (the run reloads its best checkpoint).
    """

    STATE = ("wait", "best", "best_epoch", "stopped_epoch")

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("restore_best_weights"):
            raise ValueError("ResumableEarlyStopping does not support restore_best_weights")
        super().__init__(**kwargs)
        self._started = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self._started:  # later fits of the same run continue the count
            super().on_train_begin(logs)
            self._started = True

    def get_state(self) -> dict[str, Any]:
        """The progress to save: `STATE`'s attributes."""
        return {name: getattr(self, name) for name in self.STATE}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continues from a saved `get_state()`."""
        super().on_train_begin()
        for name, value in state.items():
            setattr(self, name, value)
        self._started = True


class TrainingInterrupted(KeyboardInterrupt):
    """Raised out of `fit` after SIGINT, once the training state is saved; says how to resume."""


class SaveTrainingState(keras.callbacks.Callback):
    """Saves the run's `TrainingState` during `fit`, and puts a saved one back when `fit` starts.

    The state holds every model variable (the Dropout `SeedGenerator` states too), every
    optimizer and metric variable, the epoch and batch, and the `tracked` callbacks'
    `get_state()`. It is saved at every epoch end, every `every_steps` batches, and when
    `interrupt` is set (then `TrainingInterrupted` is raised). Sets `epoch_variable` at each
    epoch start (the epoch's data order derives from it). Put this callback last;
    `fit.fit_from` runs the resume protocol.

    Args:
        path: The state file (`.npz`).
        fingerprint: Identifies the configuration and data.
        epoch_variable: Integer scalar `tf.Variable` read by the training dataset.
        epochs: The run's number of epochs (a state saved after the last one is finished).
        tracked: Callbacks with `get_state()` / `set_state(state)`, by a stable name.
        saved: The state to continue from (`TrainingState.read`), or None for a fresh start;
            it is put back when `fit` starts.
        every_steps: Also save every this many batches; 0 saves at epoch ends only.
        interrupt: When set (by a SIGINT handler), save at the end of the current batch and
            raise `TrainingInterrupted`.
        write: Write the file; False (the non-chief workers of a multi-worker run) only reads
            the variables (a collective that every worker must join).
    """

    def __init__(
        self,
        path: Path,
        *,
        fingerprint: str,
        epoch_variable: Any,
        epochs: int,
        tracked: Mapping[str, Any] | None = None,
        saved: TrainingState | None = None,
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
        self.saved = saved  # until put back
        self.resumed_from = [*saved.resumed_from, saved.here] if saved else []
        self._earlier_seconds = saved.train_seconds if saved else 0.0
        self._callback_states = dict(saved.callbacks) if saved else {}
        self._saved_metrics: list[np.ndarray] | None = None
        self._epoch = saved.epoch if saved else 0
        self._batch_offset = saved.batch if saved else 0  # batches done before this process
        self._batches_done = 0
        self._started: float | None = None

    def train_seconds(self) -> float:
        """Training wall time so far, earlier processes included."""
        now = time.perf_counter() - self._started if self._started else 0.0
        return self._earlier_seconds + now

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._started is None:
            self._started = time.perf_counter()
        if self.saved is not None:
            restore_training_state(self.model, self.saved, self.tracked, self.path)
            self._saved_metrics = self.saved.variables.get("metrics")
            self.saved = None
            print(
                f"resuming from {self.path} at epoch {self._epoch + 1}, batch {self._batch_offset}",
                flush=True,
            )

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
            for variable, value in zip(
                self.model.metrics_variables, self._saved_metrics, strict=True
            ):
                variable.assign(value)
        self._saved_metrics = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches_done = self._batch_offset + batch + 1
        if self.interrupt is not None and self.interrupt.is_set():
            self._save()
            raise TrainingInterrupted(
                f"training state saved at epoch {self._epoch + 1}, batch {self._batches_done} "
                f"in {self.path}; run the same command again to resume"
            )
        last = batch + 1 == (self.params or {}).get("steps")  # the epoch-end save follows
        if self.every_steps and self._batches_done % self.every_steps == 0 and not last:
            self._save()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        states = {name: callback.get_state() for name, callback in self.tracked.items()}
        self._callback_states = json.loads(json.dumps(states, default=json_value))  # a copy
        self._epoch, self._batch_offset, self._batches_done = epoch + 1, 0, 0
        finished = bool(self.model.stop_training) or epoch + 1 >= self.epochs
        self._save(finished=finished)
        if self.interrupt is not None and self.interrupt.is_set() and not finished:
            raise TrainingInterrupted(
                f"training state saved after epoch {epoch + 1} in {self.path}; run the same "
                "command again to resume"
            )

    def _save(self, *, finished: bool = False) -> None:
        # Every worker reads the variables (reading a metric variable under tf.distribute is a
        # collective operation that all workers must join); only the writer writes the file.
        groups = model_variables(self.model)
        state = TrainingState(
            fingerprint=self.fingerprint,
            epoch=self._epoch,
            batch=self._batches_done,
            finished=finished,
            train_seconds=self.train_seconds(),
            resumed_from=self.resumed_from,
            callbacks=self._callback_states,
            variables={g: [np.asarray(v.numpy()) for v in vs] for g, vs in groups.items()},
            variable_paths={g: [v.path for v in vs] for g, vs in groups.items()},
        )
        if self.write:
            state.write(self.path)


def model_variables(model: keras.Model) -> dict[str, list[Any]]:
    """`model`'s variables by `resume_state.GROUPS`: its own, its optimizer's, its metrics'."""
    optimizer = model.optimizer
    return {
        "model": list(model.variables),
        "optimizer": list(optimizer.variables) if optimizer is not None else [],
        "metrics": list(model.metrics_variables),
    }


def restore_training_state(
    model: keras.Model, state: TrainingState, tracked: Mapping[str, Any], path: Path
) -> None:
    """Puts `state`'s model and optimizer variables and callback states back.

    Variables are matched by position in `model.variables` / `optimizer.variables` and checked
    by count and shape, not by path (Keras numbers auto-named layers per process). Metric
    variables are put back by `SaveTrainingState` at the start of the interrupted epoch.

    Raises:
        ConfigError: The state's variables do not fit this model (another architecture).
    """
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    groups = model_variables(model)
    for group in ("model", "optimizer"):
        _assign(groups[group], state.variables.get(group, []), group, path)
    for name, callback in tracked.items():
        if name in state.callbacks:
            callback.set_state(state.callbacks[name])


def _assign(variables: list[Any], values: list[np.ndarray], group: str, path: Path) -> None:
    if len(values) != len(variables):
        raise ConfigError(
            f"{path}: {len(values)} saved {group} variables, this model has "
            f"{len(variables)}; pass --no-resume to start afresh"
        )
    for variable, value in zip(variables, values, strict=True):
        if tuple(variable.shape) != value.shape:
            raise ConfigError(
                f"{path}: {variable.path} has shape {tuple(variable.shape)}, the saved "
                f"one {value.shape}; pass --no-resume to start afresh"
            )
        variable.assign(value)

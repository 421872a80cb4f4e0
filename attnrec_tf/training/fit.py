"""Split -> fitted model -> validation and test metrics (the part of a run that needs TensorFlow).

`fit_and_evaluate` reads top to bottom as the steps of a run: determinism, the `tf.data`
pipeline, the model and optimizer under the strategy (`distribute.py`), the callbacks, `fit`
from where a saved state stands, the best checkpoint reloaded and saved as the run's model, and
the test evaluation (`evaluate.evaluate_test`).

Started again with the same configuration, data and output folder, `fit_and_evaluate`
continues from the saved resume state (`fit_from`) and ends with the uninterrupted run's result
up to float rounding (docs/reliability.md).

Example:

```python
result = fit_and_evaluate(config, split, vocabulary.size, features, RunDir(Path("runs/x")))
result.test["metrics"]["keras"]["ndcg@10"]
```
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.config import Config
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.run_dir import RunDir
from attnrec_tf.training import distribute
from attnrec_tf.training.distribute import Distribution
from attnrec_tf.training.resume_state import STATE_FILE, TrainingState


@dataclass
class TrainingResult:
    """What a training run produced, for `training.run.run` to report.

    A non-chief worker of a multi-worker run has only `training` (it ranks its share of the
    test users for the chief, which evaluates and writes); `model` and `test` are None there.

    Attributes:
        training: Seed, op determinism, distribution and resume points.
        model: The model with the best validation NDCG@10 (saved as the run's `model.keras`).
        train_seconds: Wall time of training, validation included, over every process.
        validation_seconds: The part of it spent validating.
        examples_per_epoch: Real (non-padding) target positions of an epoch.
        history: One row per epoch (`callbacks.FullRankingValidation.history`).
        best_epoch: The epoch of the best validation NDCG@10 (0 = none).
        test: `evaluate.evaluate_test`'s result on the evaluation users.
    """

    training: dict[str, Any]
    model: Any = None
    train_seconds: float = 0.0
    validation_seconds: float = 0.0
    examples_per_epoch: int = 0
    steps_per_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    test: dict[str, Any] | None = None
    validation_users: dict[str, int] = field(default_factory=dict)
    full_validation: dict[str, float] | None = None

    @property
    def examples_per_second(self) -> float:
        """Training target positions per second of training, validation excluded."""
        seconds = max(self.train_seconds - self.validation_seconds, 1e-9)
        return self.examples_per_epoch * len(self.history) / seconds

    @property
    def best_validation(self) -> dict[str, float]:
        """The best model's validation metrics: over every evaluated user when training
        validated a sample (`full_validation`), else the history row with the best NDCG@10."""
        if self.full_validation is not None:
            return self.full_validation
        if not self.history:
            return {}
        best = max(self.history, key=lambda row: row["ndcg@10"])
        return {k: v for k, v in best.items() if k not in ("epoch", "loss")}


def training_state_path(output: RunDir) -> Path:
    """The resume state in `output` (written by the chief, read by every worker)."""
    return output.root / STATE_FILE


def run_fingerprint(
    config: Config, split: LeaveOneOutSplit, vocab_size: int, item_features: np.ndarray | None
) -> str:
    """sha256 of everything that decides the training: a saved state must match it to resume."""
    digest = hashlib.sha256()
    digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    digest.update(f"vocab={vocab_size}".encode())
    for sequence in split.train:
        digest.update(np.asarray(sequence, np.int32).tobytes())
        digest.update(b"|")
    for array in (split.valid_targets, split.test_targets):
        digest.update(np.asarray(array, np.int32).tobytes())
    if item_features is not None:
        digest.update(np.ascontiguousarray(item_features, np.float32).tobytes())
    return digest.hexdigest()


def fit_and_evaluate(
    config: Config,
    split: LeaveOneOutSplit,
    vocab_size: int,
    item_features: np.ndarray | None,
    output: RunDir,
    *,
    eval_split: LeaveOneOutSplit | None = None,
    sampled_negatives: int = 100,
    verbose: int = 2,
    resume: bool = True,
    backup_every_steps: int = 0,
    distribution: Distribution | None = None,
    catch_sigint: bool = False,
    deterministic: bool | None = None,
    validation_users: int | None = None,
    prepared: Path | None = None,
) -> TrainingResult:
    """Trains `config`'s model on `split.train` and evaluates the best one on the test stage.

    Args:
        config: Hyperparameters.
        split: The leave-one-out split.
        vocab_size: Items plus one.
        item_features: Multi-hot `(vocab_size, F)` item features, or None.
        output: The run folder (best checkpoint, TensorBoard logs, model, resume state).
        eval_split: The users to validate and test on (default: every user of `split`).
        sampled_negatives: Negatives of the sampled protocol (0 = skip it).
        verbose: Keras fit verbosity.
        resume: Continue from the resume state in `output` if there is one; False ignores it
            (and the chief deletes it).
        backup_every_steps: Also save the resume state every this many batches (0 = at epoch
            ends only).
        distribution: Strategy and worker role (`distribute.choose`); None = one device.
        catch_sigint: While fitting, turn SIGINT into a clean stop: the state is saved and
            `callbacks.TrainingInterrupted` (a KeyboardInterrupt) is raised. Not with several
            workers: there SIGINT stops at once, and the last saved state remains.
        deterministic: Turn on `tf.config.experimental.enable_op_determinism` (process-wide);
            None = on when no GPU is visible.
        validation_users: Users of `eval_split` validated after every epoch (a fixed random
            sample; 0 = all; None = `auto_validation_users`). With a sample, the best model is
            validated on every user once at the end (`TrainingResult.full_validation`).
        prepared: A prepared folder (`data/shards.py`) to stream the training windows from
            (`StreamedTrainingData`); `split` is then the evaluated users only, and the
            popularity baseline counts the folder's `item_counts.npy`. None = train on
            `split.train` in memory (`TrainingData`).

    Returns:
        The TrainingResult (only its `training` on a non-chief worker).

    Raises:
        ConfigError: The resume state belongs to other settings or data.
        TrainingInterrupted: SIGINT while fitting (with `catch_sigint`).
    """
    from attnrec_tf.evaluate import evaluate_test

    distribution = distribution or _one_device()
    config, _ = config.resolved(vocab_size - 1)
    deterministic = _set_op_determinism(deterministic)
    data, fingerprint = _training_data(
        config, split, vocab_size, item_features, prepared, distribution
    )
    model, schedule = _compiled_model(config, vocab_size, item_features, data, distribution)
    evaluation = eval_split or split
    validating = per_epoch_validation(evaluation, vocab_size, validation_users, config.seed)
    fingerprint += f":validation={len(validating.users)}"
    saved = _saved_state(output, fingerprint, resume, distribution)
    run = RunCallbacks(
        config,
        validating,
        output,
        fingerprint,
        data,
        saved,
        distribution,
        backup_every_steps,
        of_users=len(evaluation.users),
        schedule=schedule,
    )

    # One process only: a worker saving alone would wait forever for the others' collectives.
    with _sigint_sets(run.interrupt, catch_sigint and distribution.num_workers == 1):
        fit_from(saved, model, data.dataset, config.epochs, callbacks=run.all, verbose=verbose)

    result = TrainingResult(
        training={
            "seed": config.seed,
            "op_determinism": deterministic,
            "distribution": distribution.describe(),
            "resumed_from": run.state.resumed_from,
            "test_ranked_by_workers": distribution.num_workers,
            "context_crops_drawn": CROPS_DRAWN if config.context_crops else None,
            **_schedule_end(schedule, model),
        }
    )
    if distribution.is_chief:
        _save_best_model(model, output)  # and loads the best weights
    shared_ranks = _test_ranks_of_every_worker(model, evaluation, config, distribution)
    if not distribution.is_chief:
        return result
    result.model = model
    result.train_seconds = run.state.train_seconds()
    result.validation_seconds = run.validation.seconds
    result.examples_per_epoch = data.positions_per_epoch
    result.steps_per_epoch = data.steps_per_epoch
    result.history = run.validation.history
    result.best_epoch = run.checkpoint.best_epoch
    result.validation_users = {"per_epoch": len(validating.users), "of": len(evaluation.users)}
    if validating is not evaluation:  # the best model on every user, once
        result.full_validation = _validate_all(model, evaluation, config)
    result.test = evaluate_test(
        model,
        evaluation,
        exclude_history=config.exclude_history,
        counts_from=split,
        sampled_negatives=sampled_negatives,
        seed=config.seed,
        item_counts=data.popularity_counts if isinstance(data, StreamedTrainingData) else None,
        ranks=shared_ranks,
    )
    return result


def _test_ranks_of_every_worker(
    model: Any, evaluation: LeaveOneOutSplit, config: Config, distribution: Distribution
) -> np.ndarray | None:
    """With several workers, the test users' full-ranking ranks, each worker ranking every
    N-th user with the chief's best weights; None on one worker (the chief ranks them all).

    The ranks are in the users' order; only the model's full-ranking test metrics use them
    (the baselines, samples by history length and the sampled protocol stay the chief's).
    """
    if distribution.num_workers <= 1:
        return None
    from attnrec_tf.evaluate import keras_score_fn, split_ranks

    distribute.broadcast_from_chief(distribution, model.weights)
    count = len(evaluation.users)
    positions = np.arange(distribution.worker_index, count, distribution.num_workers)
    mine = evaluation.users_at(positions)
    ranks = split_ranks(  # in the stable order of history length
        keras_score_fn(model, model.max_len), mine, "test", exclude_history=config.exclude_history
    )
    order = np.argsort([len(h) for h in mine.histories("test")], kind="stable")
    gathered = distribute.gather_worker_values(distribution, ranks, positions[order], count)
    return np.asarray(gathered, np.int64)


def _training_data(
    config: Config,
    split: LeaveOneOutSplit,
    vocab_size: int,
    item_features: np.ndarray | None,
    prepared: Path | None,
    distribution: Distribution,
) -> tuple[TrainingData | StreamedTrainingData, str]:
    """The run's training data (in memory, or streamed from `prepared`) and its fingerprint."""
    if prepared is None:
        return TrainingData(split.train, config), run_fingerprint(
            config, split, vocab_size, item_features
        )
    data = StreamedTrainingData(prepared, config, distribution)
    return data, streamed_fingerprint(config, data, split, vocab_size, item_features)


def _schedule_end(schedule: Any, model: Any) -> dict[str, Any]:
    """report.json `training.cosine_end` and `training.final_learning_rate`.

    `cosine_end` is "epochs" when the cosine ends at `--epochs` (even where the time budget
    stops training first: no budget, or reports from before 2026-12-06, which have no such
    field), "epochs or time budget" when it ends where the budget is planned to stop
    training if that comes first, None with a constant rate. `final_learning_rate` is the rate of
    the last training step, so a cosine cut short shows.
    """
    from attnrec_tf.training.optimizer import BudgetCosineDecay

    end = None  # a constant rate (a float)
    if isinstance(schedule, BudgetCosineDecay):
        end = "epochs or time budget"
    elif not isinstance(schedule, float):
        end = "epochs"
    rate = model.optimizer.learning_rate
    return {"cosine_end": end, "final_learning_rate": float(np.asarray(rate))}


CROPS_DRAWN = "every epoch"
"""report.json `training.context_crops_drawn`: when `--context-crops` are drawn (before
2026-12-05 they were drawn once per run; reports of then have no such field)."""


class TrainingData:
    """The training windows of `train` sequences and their `tf.data` pipeline, per epoch.

    Attributes:
        inputs: `(N, max_len)` left-padded histories.
        targets: `(N, max_len)` next-item targets (0 = padding).
        crops: The sequences `--context-crops` draws each epoch's crops from, or `None`.
        positions_per_epoch: Real target positions of an epoch (the expected share of them
            when `--steps-per-epoch` cuts the epoch short).
        epoch: The integer `tf.Variable` that decides each epoch's order (set by
            `callbacks.SaveTrainingState`).
        steps_per_epoch: Batches of an epoch: all of them, or at most `--steps-per-epoch`.
    """

    def __init__(self, train: list[np.ndarray], config: Config) -> None:
        import tensorflow as tf

        from attnrec_tf.data.crops import ContextCrops, epoch_crops
        from attnrec_tf.data.pipeline import training_arrays

        self.config = config
        self.inputs, self.targets = training_arrays(
            train,
            config.max_len,
            all_windows=config.all_windows,
            skip_first_picks=config.skip_first_picks,
        )
        self.crops = None
        positions = int((self.targets > 0).sum())
        rows = len(self.inputs)
        crops = ContextCrops.of(train, config.context_crops) if config.context_crops else None
        if crops is not None and crops.rows:  # no sequence of 3 items: nothing to crop
            self.crops = crops
            _, first_targets = epoch_crops(self.crops, config.max_len, [config.seed, 0])
            positions += int((first_targets.numpy() > 0).sum())  # about the same every epoch
            rows += self.crops.rows
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
        every = -(-rows // config.batch_size)
        self.steps_per_epoch = min(config.steps_per_epoch or every, every)
        self.positions_per_epoch = positions * self.steps_per_epoch // max(every, 1)

    def dataset(self, start_batch: int = 0) -> Any:
        """The epoch's batches (`data.pipeline.training_dataset`) from `start_batch` on, the
        first `steps_per_epoch` of them."""
        import tensorflow as tf

        from attnrec_tf.data.pipeline import training_dataset

        dataset = training_dataset(
            self.inputs,
            self.targets,
            batch_size=self.config.batch_size,
            seed=self.config.seed,
            epoch=self.epoch,
            start_batch=start_batch,
            bucket=self.config.length_buckets,
            crops=self.crops,
        )
        count = max(self.steps_per_epoch - start_batch, 0)
        if int(dataset.cardinality()) == count:
            return dataset
        return dataset.take(count).apply(tf.data.experimental.assert_cardinality(count))

    def item_counts(self, vocab_size: int) -> np.ndarray:
        """Each item's count among the windows' targets (the sampled softmax's proposal)."""
        return np.bincount(self.targets[self.targets > 0], minlength=vocab_size)


class StreamedTrainingData:
    """`TrainingData`'s interface over a prepared folder: the windows are streamed, never held.

    The batches come from `data.stream.streamed_dataset` (each worker of `distribution` its own
    shard files); the epoch's windows and real target positions
    are counted from the manifest's users by training-part length (`stream.windows_from_lengths`;
    a folder without them: one pass over the shards, `stream.count_windows`).

    Attributes:
        folder: The prepared folder.
        manifest: Its manifest.
        files: Its shard files, in shard order.
        positions_per_epoch: Real target positions of an epoch (expected, with
            `--steps-per-epoch`).
        steps_per_epoch: Batches of an epoch (`ceil(windows / batch_size)`, or
            `--steps-per-epoch`; every worker runs this many).
        epoch: The integer `tf.Variable` that decides each epoch's order.
        popularity_counts: int64 `(V,)` counts of each item in the training parts
            (`item_counts.npy`).

    Raises:
        ConfigError: An option the stream cannot do (`stream.check_streamable`).
        DataError: An incomplete folder, or one without a training window.
    """

    def __init__(
        self, folder: Path, config: Config, distribution: Distribution | None = None
    ) -> None:
        import tensorflow as tf

        from attnrec_tf.data import shards, stream
        from attnrec_tf.errors import DataError

        stream.check_streamable(config.context_crops)
        self.config, self.folder = config, Path(folder)
        self.manifest = shards.read_manifest(folder)
        self.files = shards.shard_files(folder, self.manifest)
        lengths = shards.train_lengths(self.manifest)  # None: a folder of an older prepare
        if lengths is not None:
            counts = stream.windows_from_lengths(lengths, config.max_len, config.all_windows)
        else:
            counts = stream.count_windows(self.files, config.max_len, config.all_windows)
        if counts.windows == 0:
            raise DataError(f"{folder}: no user has 2 training items (nothing to train on)")
        every = -(-counts.windows // config.batch_size)
        self.steps_per_epoch = config.steps_per_epoch or every
        # Expected positions of an epoch cut short or going round again (exact when neither).
        self.positions_per_epoch = counts.positions * self.steps_per_epoch // every
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
        self.popularity_counts = shards.read_item_counts(folder)
        self.num_workers = distribution.num_workers if distribution else 1
        self.worker_index = distribution.worker_index if distribution else 0

    def dataset(self, start_batch: int = 0) -> Any:
        """The epoch's batches (`data.stream.streamed_dataset`) from `start_batch` on, this
        worker's files only."""
        from attnrec_tf.data.stream import streamed_dataset

        return streamed_dataset(
            self.files,
            max_len=self.config.max_len,
            batch_size=self.config.batch_size,
            seed=self.config.seed,
            steps_per_epoch=self.steps_per_epoch,
            epoch=self.epoch,
            start_batch=start_batch,
            bucket=self.config.length_buckets,
            all_windows=self.config.all_windows,
            skip_first_picks=self.config.skip_first_picks,
            num_workers=self.num_workers,
            worker_index=self.worker_index,
        )

    def item_counts(self, vocab_size: int) -> np.ndarray:
        """Each item's count in the training parts (the sampled softmax's proposal)."""
        counts = self.popularity_counts
        if len(counts) != vocab_size:
            raise ValueError(f"item_counts.npy has {len(counts)} entries for {vocab_size} items")
        return counts


def streamed_fingerprint(
    config: Config,
    data: StreamedTrainingData,
    evaluation: LeaveOneOutSplit,
    vocab_size: int,
    item_features: np.ndarray | None,
) -> str:
    """`run_fingerprint` of a streamed run: from the manifest's counts, the item counts, the
    vocabulary file and the evaluated users' targets, not from every sequence."""
    from attnrec_tf.data import shards

    digest = hashlib.sha256()
    digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    digest.update(f"vocab={vocab_size}".encode())
    kept = ("num_users", "num_evaluated", "num_items", "train_items", "shards", "protocol")
    manifest = {key: data.manifest.get(key) for key in kept}
    digest.update(json.dumps(manifest, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(data.popularity_counts, np.int64).tobytes())
    digest.update((data.folder / shards.VOCABULARY).read_bytes())
    for array in (evaluation.valid_targets, evaluation.test_targets):
        digest.update(np.asarray(array, np.int32).tobytes())
    if item_features is not None:
        digest.update(np.ascontiguousarray(item_features, np.float32).tobytes())
    return digest.hexdigest()


class RunCallbacks:
    """The callbacks of a run, in the order `fit` needs them (see `callbacks.py`).

    Attributes:
        validation: Full-ranking validation (its history is the report's).
        checkpoint: The atomic best checkpoint (the chief's only).
        early_stopping: Resumable early stopping on validation NDCG@10.
        state: Saves the resume state (last).
        interrupt: Set by the SIGINT handler: save and stop after this batch.
        all: The list for `fit(callbacks=...)`; with a time budget its `TimeBudget` also
            moves the end of a `BudgetCosineDecay` `schedule`.
    """

    def __init__(
        self,
        config: Config,
        evaluation: LeaveOneOutSplit,
        output: RunDir,
        fingerprint: str,
        data: TrainingData | StreamedTrainingData,
        saved: TrainingState | None,
        distribution: Distribution,
        backup_every_steps: int,
        of_users: int | None = None,
        schedule: Any = None,
    ) -> None:
        import keras

        from attnrec_tf.training import callbacks
        from attnrec_tf.training.optimizer import BudgetCosineDecay

        chief = distribution.is_chief
        self.validation = callbacks.FullRankingValidation(
            evaluation,
            config.max_len,
            exclude_history=config.exclude_history,
            of_users=of_users,
        )
        self.checkpoint = callbacks.AtomicBestCheckpoint(output.best_checkpoint)
        self.early_stopping = callbacks.ResumableEarlyStopping(
            monitor="val_ndcg@10", mode="max", patience=config.patience, verbose=0
        )
        tracked: dict[str, Any] = {
            "validation": self.validation,
            "early_stopping": self.early_stopping,
        }
        if chief:
            tracked["best_checkpoint"] = self.checkpoint
        self.interrupt = threading.Event()
        self.state = callbacks.SaveTrainingState(
            training_state_path(output),
            fingerprint=fingerprint,
            epoch_variable=data.epoch,
            epochs=config.epochs,
            tracked=tracked,
            saved=saved,
            every_steps=backup_every_steps,
            interrupt=self.interrupt,
            write=chief,
        )
        self.all: list[Any] = [self.validation]
        if config.time_budget > 0:
            self.all.append(
                callbacks.TimeBudget(
                    self.validation,
                    config.time_budget,
                    data.steps_per_epoch,
                    epochs=config.epochs,
                    schedule=schedule if isinstance(schedule, BudgetCosineDecay) else None,
                    distribution=distribution,
                )
            )
        if chief:
            self.all += [self.checkpoint, self.early_stopping]
            self.all.append(
                keras.callbacks.TensorBoard(log_dir=str(output.logs), write_graph=False)
            )
        else:
            self.all.append(self.early_stopping)
        self.all.append(self.state)  # last: saves what the others did at each epoch end


def fit_from(
    saved: TrainingState | None,
    model: Any,
    dataset: Callable[..., Any],
    epochs: int,
    *,
    callbacks: list[Any],
    **fit: Any,
) -> None:
    """Fits from a saved state: the rest of an interrupted epoch first, then the next epochs.

    Args:
        saved: The state to continue from (None: from the start). A finished one is put back
            without training (its `SaveTrainingState` must be among `callbacks`).
        model: The compiled model.
        dataset: `dataset(start_batch=0)` -> the epoch's batches from `start_batch` on.
        epochs: The run's number of epochs.
        callbacks: The run's callbacks, `SaveTrainingState` last.
        **fit: More `model.fit` keywords (e.g. `verbose`).
    """
    from attnrec_tf.training.callbacks import SaveTrainingState, restore_training_state

    if saved is not None and saved.finished:
        state = next(c for c in callbacks if isinstance(c, SaveTrainingState))
        restore_training_state(model, saved, state.tracked, state.path)
        state.saved = None
        return
    first = saved.epoch if saved else 0
    fit = {"shuffle": False, "callbacks": callbacks, **fit}
    if saved is not None and saved.batch:  # Keras counts an epoch's steps: a fit of its own
        model.fit(dataset(saved.batch), initial_epoch=first, epochs=first + 1, **fit)
        first += 1
    if not model.stop_training and first < epochs:
        model.fit(dataset(), initial_epoch=first, epochs=epochs, **fit)


def _one_device() -> Distribution:
    import tensorflow as tf

    return Distribution(tf.distribute.get_strategy(), "none")


def _set_op_determinism(deterministic: bool | None) -> bool:
    """Turns on op determinism (same seed and data -> same numbers) unless a GPU is visible.

    Some GPU kernels have no deterministic version and would raise; `deterministic` overrides.
    tests/reliability/test_determinism.py checks the promise.
    """
    import tensorflow as tf

    if deterministic is None:
        deterministic = not tf.config.list_physical_devices("GPU")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return deterministic


VALIDATION_SCORES = 250_000_000
"""Scores (users x items) that per-epoch validation may compute before it samples users."""
MIN_VALIDATION_USERS = 5_000
"""The smallest per-epoch validation sample `auto_validation_users` chooses."""


def auto_validation_users(num_users: int, vocab_size: int) -> int:
    """Every user while `users x items <= VALIDATION_SCORES`, else a sample of at least
    `MIN_VALIDATION_USERS` that keeps to that many scores.

    >>> auto_validation_users(6040, 3417), auto_validation_users(35000, 48341)
    (6040, 5171)
    """
    if num_users * vocab_size <= VALIDATION_SCORES:
        return num_users
    return min(num_users, max(MIN_VALIDATION_USERS, VALIDATION_SCORES // vocab_size))


def per_epoch_validation(
    evaluation: LeaveOneOutSplit, vocab_size: int, requested: int | None, seed: int
) -> LeaveOneOutSplit:
    """The users validated after every epoch: all of `evaluation`, or a fixed sample of it."""
    count = len(evaluation.users)
    wanted = auto_validation_users(count, vocab_size) if requested is None else requested
    if wanted == 0 or wanted >= count:
        return evaluation
    return evaluation.sample_users(wanted, seed=seed + 1)


def _validate_all(model: Any, evaluation: LeaveOneOutSplit, config: Config) -> dict[str, float]:
    """Full-ranking validation metrics of `model` on every user of `evaluation`, timed."""
    from attnrec_tf.evaluate import evaluate_split, keras_score_fn

    start = time.perf_counter()
    score_fn = keras_score_fn(model, config.max_len)
    result = evaluate_split(score_fn, evaluation, "valid", exclude_history=config.exclude_history)
    return {**result, "validation_seconds": time.perf_counter() - start}


def build_compiled_model(
    config: Config,
    vocab_size: int,
    item_features: np.ndarray | None,
    data: TrainingData | StreamedTrainingData,
    distribution: Distribution | None = None,
) -> Any:
    """The model and optimizer of a run, built and compiled as `fit_and_evaluate` builds them,
    for tools that time or inspect the training step without fitting. `distribution` defaults
    to the default strategy on one device."""
    model, _ = _compiled_model(
        config, vocab_size, item_features, data, distribution or _one_device()
    )
    return model


def _compiled_model(
    config: Config,
    vocab_size: int,
    item_features: np.ndarray | None,
    data: TrainingData | StreamedTrainingData,
    distribution: Distribution,
) -> tuple[Any, Any]:
    """The model and optimizer built and compiled under the strategy, workarounds applied,
    and the optimizer's rate or schedule (a `BudgetCosineDecay` needs its callback)."""
    from attnrec_tf.model import build_model
    from attnrec_tf.training import keras_compat
    from attnrec_tf.training.distribute import build_optimizer
    from attnrec_tf.training.optimizer import learning_rate, make_optimizer

    with distribution.strategy.scope():
        model = build_model(
            config, vocab_size, item_features, item_counts=data.item_counts(vocab_size)
        )
        if config.length_buckets:  # each replica's part of a batch: its share of the mean
            model.loss_denominator = (
                data.positions_per_epoch / data.steps_per_epoch / distribution.num_replicas
            )
        schedule = learning_rate(config, data.steps_per_epoch)
        optimizer = make_optimizer(config, data.steps_per_epoch, rate=schedule)
        if distribution.num_replicas > 1:  # the all-reduce repeats every sparse row per replica
            keras_compat.sum_duplicate_sparse_gradients(optimizer)
        model.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    build_optimizer(model, distribution)
    if distribution.mode == "multi-worker":
        keras_compat.reduce_scalar_logs_across_workers()
        keras_compat.skip_symbolic_build(model)
    return model, schedule


def _saved_state(
    output: RunDir, fingerprint: str, resume: bool, distribution: Distribution
) -> TrainingState | None:
    """The resume state to continue from (None = start afresh), the same on every worker."""
    from attnrec_tf.training.distribute import check_same_state

    path = training_state_path(output)
    if not resume and distribution.is_chief:
        path.unlink(missing_ok=True)
    saved = TrainingState.read(path, fingerprint) if resume else None
    check_same_state(
        distribution,
        (1, saved.epoch, saved.batch, int(saved.finished)) if saved else (0, 0, 0, 0),
    )
    return saved


def _save_best_model(model: Any, output: RunDir) -> None:
    """Loads the best checkpoint into `model` (EarlyStopping does not) and saves it atomically."""
    from attnrec_tf import atomic

    if output.best_checkpoint.exists():
        model.load_weights(output.best_checkpoint)
    with atomic.staged_path(output.model) as tmp:
        model.save(tmp)


@contextlib.contextmanager
def _sigint_sets(event: threading.Event, enabled: bool) -> Iterator[None]:
    """While fitting, a first Ctrl-C asks for a clean stop (state saved), a second one stops now."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        print(
            "\ninterrupt: saving the training state after this step (Ctrl-C again to stop now)",
            file=sys.stderr,
            flush=True,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

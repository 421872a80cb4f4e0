"""Split -> fitted model -> validation and test metrics (the part of a run that needs TensorFlow).

`train.py` owns the command line and the files; this module owns `model.fit`: the `tf.data`
pipeline, the optimizer, early stopping on validation NDCG@10, the atomic best checkpoint, the
training state that lets a killed run resume (`callbacks.TrainingState`), the distribution
strategy (`distribute.py`), and the final evaluation of the best model on the test stage next to
the popularity baseline.

Resuming: the state is saved at every epoch end (and every `backup_every_steps` batches, and on
SIGINT). Started again with the same configuration, data and output folder, `fit_and_evaluate`
continues from it: mid-epoch, it first fits the rest of the interrupted epoch, then the following
epochs. Each epoch's data order is a function of (seed, epoch) and every variable (weights,
optimizer, dropout RNG, running loss) and callback state is restored, so the result equals the
uninterrupted run's up to float rounding (measured: identical on CPU, see
tests/reliability/test_resume.py).

Example:

```python
result = fit_and_evaluate(config, split, vocabulary.size, features, RunDir(Path("runs/x")))
result["metrics"]["keras"]["ndcg@10"]
```
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnrec_tf.config import Config
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.run_dir import RunDir
from attnrec_tf.training import keras_compat
from attnrec_tf.training.distribute import Distribution, build_optimizer, check_same_state

if TYPE_CHECKING:  # keras is imported only when training starts
    from attnrec_tf.training.callbacks import ResumePoint, TrainingState

STATE_FILE = "checkpoints/training_state.npz"


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


def _fit_from(
    point: ResumePoint | None,
    model: Any,
    dataset: Callable[..., Any],
    state: TrainingState,
    epochs: int,
    **fit: Any,
) -> None:
    """Fits from a resume point: the rest of an interrupted epoch first, then the next epochs."""
    if point is not None and point.finished:
        state.restore()
        return
    first = point.epoch if point else 0
    if point is not None and point.batch:  # Keras counts an epoch's steps: a fit of its own
        model.fit(dataset(point.batch), initial_epoch=first, epochs=first + 1, shuffle=False, **fit)
        first += 1
    if not model.stop_training and first < epochs:
        model.fit(dataset(), initial_epoch=first, epochs=epochs, shuffle=False, **fit)


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
) -> dict[str, Any]:
    """Trains `config`'s model on `split.train` and evaluates it.

    Args:
        config: Hyperparameters.
        split: The leave-one-out split.
        eval_split: The users to validate and test on (default: every user of `split`).
        vocab_size: Items plus one.
        item_features: Multi-hot `(vocab_size, F)` item features, or None.
        output: The run folder (best checkpoint, TensorBoard logs, model, resume state).
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

    Returns:
        The report fields `train_seconds`, `examples_per_second`, `epochs_run`, `best_epoch`,
        `history`, `metrics` (`keras`, `popularity`), `validation`, `sampled_protocol` and
        `training` (resume points, distribution, determinism). A non-chief worker returns only
        `training` after fitting: the chief evaluates and writes.

    Raises:
        ConfigError: The resume state belongs to other settings or data.
        TrainingInterrupted: SIGINT while fitting (with `catch_sigint`).
    """
    import keras
    import tensorflow as tf

    from attnrec_tf import atomic
    from attnrec_tf.data.pipeline import training_arrays, training_dataset
    from attnrec_tf.evaluate import (
        evaluate_popularity_split,
        evaluate_split,
        evaluate_split_sampled,
        keras_score_fn,
    )
    from attnrec_tf.model import build_model
    from attnrec_tf.training.callbacks import (
        AtomicBestCheckpoint,
        FullRankingValidation,
        TimeBudget,
        TrainingState,
    )
    from attnrec_tf.training.optimizer import make_optimizer

    if distribution is None:
        distribution = Distribution(tf.distribute.get_strategy(), "none")
    if deterministic is None:  # some GPU kernels have no deterministic version and would raise
        deterministic = not tf.config.list_physical_devices("GPU")
    if deterministic:  # same seed and data -> same numbers (tests/reliability/test_determinism.py)
        tf.config.experimental.enable_op_determinism()

    inputs, targets = training_arrays(split.train, config.max_len, all_windows=config.all_windows)
    positions_per_epoch = int((targets > 0).sum())
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

    def dataset(start_batch: int = 0) -> Any:
        return training_dataset(
            inputs,
            targets,
            batch_size=config.batch_size,
            seed=config.seed,
            epoch=epoch,
            start_batch=start_batch,
            bucket=config.length_buckets,
        )

    with distribution.strategy.scope():
        counts = np.bincount(targets[targets > 0], minlength=vocab_size)  # sampled loss's Q
        model = build_model(config, vocab_size, item_features, item_counts=counts)
        steps_per_epoch = -(-len(inputs) // config.batch_size)
        if config.length_buckets:  # each replica's part of a batch: its share of the mean
            model.loss_denominator = (
                positions_per_epoch / steps_per_epoch / distribution.num_replicas
            )
        optimizer = make_optimizer(config, steps_per_epoch)
        if distribution.num_replicas > 1:  # the all-reduce repeats every sparse row per replica
            keras_compat.sum_duplicate_sparse_gradients(optimizer)
        model.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    build_optimizer(model, distribution)
    if distribution.mode == "multi-worker":
        keras_compat.reduce_scalar_logs_across_workers()
        keras_compat.skip_symbolic_build(model)

    evaluation = eval_split or split
    validation = FullRankingValidation(
        evaluation, config.max_len, exclude_history=config.exclude_history
    )
    checkpoint = AtomicBestCheckpoint(output.best_checkpoint)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_ndcg@10", mode="max", patience=config.patience, verbose=0
    )
    tracked: dict[str, keras.callbacks.Callback] = {
        "validation": validation,
        "early_stopping": early_stopping,
    }
    if distribution.is_chief:
        tracked["best_checkpoint"] = checkpoint
    state_path = training_state_path(output)
    if not resume and distribution.is_chief:
        state_path.unlink(missing_ok=True)
    interrupt = threading.Event()
    state = TrainingState(
        state_path,
        fingerprint=run_fingerprint(config, split, vocab_size, item_features),
        epoch_variable=epoch,
        epochs=config.epochs,
        tracked=tracked,
        every_steps=backup_every_steps,
        interrupt=interrupt,
        write=distribution.is_chief,
    )
    state.set_model(model)
    point = state.load() if resume else None
    check_same_state(
        distribution,
        (1, point.epoch, point.batch, int(point.finished)) if point else (0, 0, 0, 0),
    )
    callbacks: list[keras.callbacks.Callback] = [validation]
    if config.time_budget > 0:
        callbacks.append(TimeBudget(validation, config.time_budget))
    if distribution.is_chief:
        callbacks += [
            checkpoint,
            early_stopping,
            keras.callbacks.TensorBoard(log_dir=str(output.logs), write_graph=False),
        ]
    else:
        callbacks.append(early_stopping)
    callbacks.append(state)  # last: saves what the others did at each epoch end

    # One process only: a worker saving alone would wait forever for the others' collectives.
    with _sigint_sets(interrupt, catch_sigint and distribution.num_workers == 1):
        _fit_from(point, model, dataset, state, config.epochs, callbacks=callbacks, verbose=verbose)
    train_seconds = state.train_seconds()
    epochs_run = len(validation.history)
    training_info: dict[str, Any] = {
        "seed": config.seed,
        "op_determinism": deterministic,
        "distribution": distribution.describe(),
        "resumed_from": state.resumed_from,
    }
    if not distribution.is_chief:
        return {"training": training_info}

    # The final model is the one chosen by validation NDCG@10 (EarlyStopping does not restore it).
    if output.best_checkpoint.exists():
        model.load_weights(output.best_checkpoint)
    with atomic.staged_path(output.model) as tmp:
        model.save(tmp)

    score_fn = keras_score_fn(model, config.max_len)
    exclude = config.exclude_history
    metrics = {
        "keras": evaluate_split(score_fn, evaluation, "test", exclude_history=exclude),
        "popularity": evaluate_popularity_split(
            evaluation, vocab_size, "test", exclude_history=exclude, counts_from=split
        ),
    }
    best = max(validation.history, key=lambda row: row["ndcg@10"]) if validation.history else {}
    result: dict[str, Any] = {
        "train_seconds": train_seconds,
        "validation_seconds": validation.seconds,
        "examples_per_second": positions_per_epoch
        * epochs_run
        / max(train_seconds - validation.seconds, 1e-9),
        "examples_per_epoch": positions_per_epoch,
        "epochs_run": epochs_run,
        "best_epoch": checkpoint.best_epoch,
        "history": validation.history,
        "validation": {"keras": {k: v for k, v in best.items() if k not in ("epoch", "loss")}},
        "metrics": metrics,
        "training": training_info,
    }
    test_histories = evaluation.histories("test")
    longest = max((len(set(h.tolist())) for h in test_histories), default=0)
    if sampled_negatives and vocab_size - 2 - longest < sampled_negatives:
        result["sampled_protocol"] = {
            "num_negatives": sampled_negatives,
            "skipped": f"catalog of {vocab_size - 1} items is too small for "
            f"{sampled_negatives} unseen negatives next to the longest history ({longest})",
        }
    elif sampled_negatives:
        result["sampled_protocol"] = {
            "num_negatives": sampled_negatives,
            "note": "target ranked among sampled unseen items; not comparable with full ranking",
            "keras": evaluate_split_sampled(
                score_fn, evaluation, "test", num_negatives=sampled_negatives, seed=config.seed
            ),
        }
    return result

"""Split -> fitted model -> validation and test metrics (the part of a run that needs TensorFlow).

`train.py` owns the command line and the files; this module owns `model.fit`: the `tf.data`
pipeline, the optimizer, early stopping on validation NDCG@10, the atomic best checkpoint, and the
final evaluation of the best model on the test stage next to the popularity baseline.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from attnrec_tf.config import Config
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.run_dir import RunDir


def fit_and_evaluate(
    config: Config,
    split: LeaveOneOutSplit,
    vocab_size: int,
    item_features: np.ndarray | None,
    output: RunDir,
    *,
    sampled_negatives: int = 100,
    verbose: int = 2,
) -> dict[str, Any]:
    """Trains `config`'s model on `split.train` and evaluates it.

    Returns:
        The report fields `train_seconds`, `examples_per_second`, `epochs_run`, `best_epoch`,
        `history`, `metrics` (`keras`, `popularity`), `validation` and `sampled_protocol`.
    """
    import keras

    from attnrec_tf import atomic
    from attnrec_tf.callbacks import AtomicBestCheckpoint, FullRankingValidation
    from attnrec_tf.data.pipeline import training_arrays, training_dataset
    from attnrec_tf.evaluate import (
        evaluate_popularity_split,
        evaluate_split,
        evaluate_split_sampled,
        keras_score_fn,
    )
    from attnrec_tf.model import build_model

    inputs, targets = training_arrays(
        split.train, config.max_len, all_windows=config.all_windows
    )
    positions_per_epoch = int((targets > 0).sum())
    dataset = training_dataset(inputs, targets, batch_size=config.batch_size, seed=config.seed)

    counts = np.bincount(targets[targets > 0], minlength=vocab_size)
    model = build_model(config, vocab_size, item_features, item_counts=counts)
    optimizer: keras.optimizers.Optimizer
    if config.weight_decay > 0:
        optimizer = keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(config.learning_rate)
    model.compile(optimizer=optimizer, jit_compile=config.jit_compile)

    validation = FullRankingValidation(
        split, config.max_len, exclude_history=config.exclude_history
    )
    checkpoint = AtomicBestCheckpoint(output.best_checkpoint)
    callbacks = [
        validation,
        checkpoint,
        keras.callbacks.EarlyStopping(
            monitor="val_ndcg@10",
            mode="max",
            patience=config.patience,
            restore_best_weights=True,
            verbose=0,
        ),
        keras.callbacks.TensorBoard(log_dir=str(output.logs), write_graph=False),
    ]
    start = time.perf_counter()
    model.fit(dataset, epochs=config.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    train_seconds = time.perf_counter() - start
    epochs_run = len(validation.history)

    # EarlyStopping restores the best weights only when it stops early; load the best checkpoint
    # so the final model is the one chosen by validation NDCG@10 in every case.
    if output.best_checkpoint.exists():
        model.load_weights(output.best_checkpoint)
    with atomic.staged_path(output.model) as tmp:
        model.save(tmp)

    score_fn = keras_score_fn(model, config.max_len)
    exclude = config.exclude_history
    metrics = {
        "keras": evaluate_split(score_fn, split, "test", exclude_history=exclude),
        "popularity": evaluate_popularity_split(split, vocab_size, "test", exclude_history=exclude),
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
    }
    test_histories = split.histories("test")
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
                score_fn, split, "test", num_negatives=sampled_negatives, seed=config.seed
            ),
        }
    return result

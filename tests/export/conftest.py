"""Shared fixtures of the export tests: one small trained run, exported once per session.

`trained_run` trains the default-config model (2 epochs, no XLA) on a small synthetic data set
(300 users, 150 items) and writes the run folder the way `python -m attnrec_tf.train --no-export`
does; `exported_run` runs `export_all` on it once. Conversions are the slow part, so every test
that only reads artifacts shares these two.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnrec_tf.cli import quiet_tensorflow

quiet_tensorflow()

TOP_K = 10
MODEL_NAME = "attnrec"


@dataclass
class TrainedRun:
    root: Path
    model: Any
    vocabulary: Any
    split: Any

    def copy_inputs(self, target: Path) -> Path:
        """A fresh run folder with only the training outputs (no exports)."""
        target.mkdir(parents=True)
        for name in ("model.keras", "vocabulary.json", "items.json", "split.npz", "report.json"):
            shutil.copy2(self.root / name, target / name)
        return target


def keras_top_k(
    model: Any, histories: list[np.ndarray], k: int = TOP_K, *, exclude: str | int = "all"
) -> tuple[np.ndarray, np.ndarray]:
    """Reference `(item indices, scores)` top-K in numpy from `model.score`.

    The model sees the last max_len items; `exclude` is "all" (the whole history, as the
    SavedModel does), "none", or `H`: only the last `H` items, what a TFLite file with a
    `history` input of width `H` can see.
    """
    from attnrec_tf.data.pipeline import pad_left

    scores = np.array(model.score(pad_left(histories, model.max_len)), dtype=np.float64)
    scores[:, 0] = -np.inf
    for row, history in enumerate(histories):
        if isinstance(exclude, int):
            seen = np.asarray(history[-exclude:], np.int64)
        else:
            seen = np.asarray({"all": history, "none": []}[exclude], np.int64)
        scores[row, seen] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(scores, top, axis=1)


def long_histories(histories: list[np.ndarray]) -> list[np.ndarray]:
    """Test histories of every length regime: short ones as they are, then 20 pairs and 10
    quadruples of consecutive users joined (lengths of about 30 to 150)."""
    joined = [np.concatenate(histories[i : i + 2]) for i in range(10, 50, 2)]
    joined += [np.concatenate(histories[i : i + 4]) for i in range(50, 90, 4)]
    return [*histories[:10], *joined]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    import keras

    from attnrec_tf import atomic
    from attnrec_tf.config import preset
    from attnrec_tf.data.item_features import item_feature_matrix
    from attnrec_tf.data.pipeline import training_arrays, training_dataset
    from attnrec_tf.data.sequences import build_sequences, leave_one_out
    from attnrec_tf.data.synthetic import generate
    from attnrec_tf.evaluate import evaluate_split, keras_score_fn
    from attnrec_tf.model import build_model
    from attnrec_tf.report import save as save_report
    from attnrec_tf.run_dir import RunDir, item_table, save_items, save_split

    root = tmp_path_factory.mktemp("run")
    output = RunDir(root)
    data = generate(num_users=300, num_items=150, mean_length=30, seed=3)
    vocabulary, sequences, _ = build_sequences(data.interactions)
    split = leave_one_out(sequences)
    features, _ = item_feature_matrix(vocabulary, data.items)
    # The founding pooling model: these tests check its graph (TANH, the pooled DIV); the
    # default `sasrec` export is checked by make train in CI and the causal-block tests.
    config = preset("default").replace(variant="pooling", epochs=2, jit_compile=False)

    vocabulary.save(output.vocabulary)
    save_split(output.split, split)
    save_items(output.items, item_table(vocabulary, data.items, split.train))
    model = build_model(config, vocabulary.size, features)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    inputs, targets = training_arrays(split.train, config.max_len)
    model.fit(training_dataset(inputs, targets, batch_size=64, seed=0), epochs=2, verbose=0)
    with atomic.staged_path(output.model) as tmp:
        model.save(tmp)
    keras_metrics = evaluate_split(keras_score_fn(model, config.max_len), split, "test")
    save_report(
        output.report,
        {
            "config": config.to_dict(),
            "protocol": {"split": "leave-one-out", "ranking": "full", "exclude_history": True},
            "metrics": {"keras": keras_metrics},
            "artifacts": {"keras": {"path": str(output.model)}},
        },
    )
    return TrainedRun(root, model, vocabulary, split)


@pytest.fixture(scope="session")
def exported_run(trained_run: TrainedRun) -> dict[str, Any]:
    from attnrec_tf.export.export_all import export_all
    from attnrec_tf.run_dir import RunDir

    return export_all(RunDir(trained_run.root), model_name=MODEL_NAME, top_k=TOP_K, verbose=True)

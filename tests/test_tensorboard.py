"""TensorBoard logs of a run: test metrics beside the validation curves, items in the projector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

from attnrec_tf.run_dir import RunDir, load_items, load_model
from attnrec_tf.training import tensorboard
from tests.demo_run import demo_run as build_or_reuse_demo_run


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else 0.0
                found.setdefault(value.tag, []).append((int(event.step), number))
    return found


def test_test_metrics_sit_at_the_best_epoch_under_the_validation_tags(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = RunDir(build_or_reuse_demo_run(tmp_path_factory))
    report = json.loads(run.report.read_text())
    test = _scalars(run.logs / "test")
    validation = _scalars(run.logs / "validation")
    for name in tensorboard.TEST_METRICS:
        tag = f"epoch_{name}"
        assert tag in validation  # Keras's own curve, which the test point joins
        [(step, value)] = test[tag]
        assert step == report["best_epoch"] - 1
        assert value == pytest.approx(report["metrics"]["keras"][name], rel=1e-6)


def test_projector_holds_the_item_vectors_labelled_by_title(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = RunDir(build_or_reuse_demo_run(tmp_path_factory))
    folder = run.logs / tensorboard.PROJECTOR_FOLDER
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), ProjectorConfig())
    [embedding] = config.embeddings
    assert embedding.tensor_name == tensorboard.PROJECTOR_TENSOR
    items = load_items(run.items)
    rows = (folder / embedding.metadata_path).read_text(encoding="utf-8").splitlines()
    assert rows[0].split("\t") == list(tensorboard.METADATA_COLUMNS)
    assert [row.split("\t")[0] for row in rows[1:]] == [item["title"] for item in items]
    saved = tf.train.load_variable(tf.train.latest_checkpoint(str(folder)), embedding.tensor_name)
    expected = np.asarray(load_model(run.model).item_representations())[1:]
    np.testing.assert_allclose(saved, expected, rtol=1e-6)


def test_a_large_catalog_keeps_its_most_frequent_items(tmp_path: Path) -> None:
    class Model:
        def item_representations(self) -> np.ndarray:
            return np.arange(5 * 2, dtype=np.float32).reshape(5, 2)  # padding row + 4 items

    counts = [3, 9, 1, 9]
    items = [{"id": i, "title": f"t{i}", "count": c} for i, c in enumerate(counts, start=1)]
    folder = tensorboard.write_projector(tmp_path, Model(), items, max_items=2)
    rows = (folder / "metadata.tsv").read_text().splitlines()[1:]
    assert [row.split("\t")[0] for row in rows] == ["t2", "t4"]  # ties keep index order
    saved = tf.train.load_variable(
        tf.train.latest_checkpoint(str(folder)), tensorboard.PROJECTOR_TENSOR
    )
    np.testing.assert_array_equal(saved, [[4, 5], [8, 9]])

"""Serving a large catalog in two stages: `user_vector` + the item embeddings in an ANN index,
and the TF Serving warm-up requests of every SavedModel version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.export import saved_model
from attnrec_tf.export.retrieval import ITEM_EMBEDDINGS_FILE, read_item_embeddings
from attnrec_tf.export.warmup import WARMUP_FILE
from tests.export.conftest import MODEL_NAME, TOP_K


def _version(report) -> Path:
    return Path(report["artifacts"]["saved_model"]["path"])


def test_saved_model_cli_lists_the_user_vector_signature(exported_run):
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run(
        [str(cli), "show", "--dir", str(_version(exported_run)), "--tag_set", "serve",
         "--signature_def", "user_vector"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "inputs['history']" in shown and "outputs['user_vector']" in shown
    assert "DT_FLOAT" in shown.split("outputs['user_vector']")[1]


def test_user_vector_dot_item_embeddings_is_the_model_score(exported_run, trained_run):
    import tensorflow as tf

    from attnrec_tf.data.pipeline import pad_left

    loaded = tf.saved_model.load(str(_version(exported_run)))
    ids, embeddings = read_item_embeddings(_version(exported_run))
    vocabulary, model = trained_run.vocabulary, trained_run.model
    assert ids.tolist() == vocabulary.raw_ids.tolist()
    histories = trained_run.split.histories("test")[:16]
    raw = [vocabulary.decode(np.asarray(h, np.int64)).tolist() for h in histories]
    width = max(len(r) for r in raw)
    batch = tf.constant([[0] * (width - len(r)) + r for r in raw], tf.int64)
    users = loaded.signatures["user_vector"](history=batch)["user_vector"].numpy()
    expected = np.asarray(model.score(pad_left(histories, model.max_len)))[:, 1:]
    np.testing.assert_allclose(users @ embeddings.T, expected, rtol=1e-4, atol=1e-4)


def test_an_hnsw_index_over_the_embeddings_finds_the_brute_force_top_k(exported_run, trained_run):
    """Faiss's HNSW (approximate, inner product) on this small catalog: the same top-K as the
    SavedModel's own brute-force ranking (`recommend_including_history`)."""
    faiss = pytest.importorskip("faiss", reason="pip install faiss-cpu (the test extra has it)")
    import tensorflow as tf

    version = _version(exported_run)
    ids, embeddings = read_item_embeddings(version)
    index = faiss.IndexHNSWFlat(embeddings.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 256
    index.add(embeddings)
    loaded = tf.saved_model.load(str(version))
    vocabulary = trained_run.vocabulary
    for history in trained_run.split.histories("test")[:20]:
        raw = tf.constant([vocabulary.decode(np.asarray(history, np.int64)).tolist()], tf.int64)
        user = loaded.signatures["user_vector"](history=raw)["user_vector"].numpy()
        _, rows = index.search(user, TOP_K)
        brute = loaded.signatures["recommend_including_history"](history=raw)["item_ids"]
        assert ids[rows[0]].tolist() == brute.numpy()[0].tolist()


def test_warmup_file_is_prediction_logs_for_every_signature(exported_run, trained_run):
    """Parsed with TF Serving's own protos (`tensorflow-serving-api`)."""
    prediction_log_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.prediction_log_pb2",
        reason="pip install --no-deps tensorflow-serving-api (make test installs it)",
    )
    import tensorflow as tf

    path = _version(exported_run) / WARMUP_FILE
    signatures = []
    loaded = tf.saved_model.load(str(_version(exported_run)))
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == MODEL_NAME
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        signature = request.model_spec.signature_name
        signatures.append(signature)
        assert inputs["history"].shape == (1, trained_run.model.max_len)
        assert set(trained_run.vocabulary.raw_ids.tolist()) >= set(inputs["history"].ravel())
        loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})  # serves
    assert sorted(signatures) == sorted(saved_model.SIGNATURES)


def test_every_version_carries_its_extras(exported_run):
    version = _version(exported_run)
    assert (version / WARMUP_FILE).stat().st_size > 0
    assert (version / ITEM_EMBEDDINGS_FILE).stat().st_size > 0

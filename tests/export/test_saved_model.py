"""The TF Serving SavedModel: signatures, standalone loading, raw ids, padding and versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.errors import ExportError
from attnrec_tf.export import saved_model
from tests.export.conftest import MODEL_NAME, TOP_K, keras_top_k

# Loads the SavedModel with TensorFlow only: importing attnrec_tf raises.
STANDALONE = r"""
import importlib.abc, json, sys

class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "attnrec_tf" or name.startswith("attnrec_tf."):
            raise ImportError(name + " must not be needed to serve the SavedModel")
        return None

sys.meta_path.insert(0, _Block())
import tensorflow as tf

request = json.load(sys.stdin)
serve = tf.saved_model.load(request["path"]).signatures["serving_default"]
dtype = tf.string if request["dtype"] == "string" else tf.int64
results = []
for batch in request["batches"]:
    out = serve(history=tf.constant(batch, dtype))
    results.append({k: v.numpy().astype(str if v.dtype == tf.string else v.numpy().dtype).tolist()
                    for k, v in out.items()})
imported = [m for m in sys.modules if m == "attnrec_tf" or m.startswith("attnrec_tf.")]
json.dump({"results": results, "modules": imported}, sys.stdout)
"""


def _version_path(report):
    return Path(report["artifacts"]["saved_model"]["path"])


def _raw(vocabulary, history, pad_left=0, pad_right=0, padding=0):
    ids = vocabulary.decode(np.asarray(history, np.int64)).tolist()
    return [padding] * pad_left + ids + [padding] * pad_right


def test_saved_model_cli_lists_named_signatures(exported_run):
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run(
        [str(cli), "show", "--all", "--dir", str(_version_path(exported_run))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for signature in saved_model.SIGNATURES:
        assert f"signature_def['{signature}']" in shown
    default = shown.split("signature_def['serving_default']")[1]
    for name in (
        "inputs['history']",
        "outputs['item_ids']",
        "outputs['scores']",
        "outputs['attention']",
        "DT_INT64",
    ):
        assert name in default
    assert "inputs['candidates']" in shown.split("signature_def['rerank']")[1]


def test_fresh_process_without_attnrec_tf_gives_keras_top_k(exported_run, trained_run, tmp_path):
    vocab, model = trained_run.vocabulary, trained_run.model
    histories = trained_run.split.histories("test")
    longest = max(range(len(histories)), key=lambda i: len(histories[i]))
    assert len(histories[longest]) > model.max_len  # the window is exercised
    one = [histories[longest]]
    three = [histories[0], histories[1], histories[longest]]
    width = max(len(h) for h in three) + 2
    batch3 = [
        _raw(vocab, three[0], pad_left=width - len(three[0])),  # left-padded
        _raw(vocab, three[1], pad_right=width - len(three[1])),  # right-padded
        _raw(vocab, three[2], pad_left=1, pad_right=1),  # both sides
    ]
    request = {
        "path": str(_version_path(exported_run)),
        "dtype": "int64",
        "batches": [[_raw(vocab, one[0])], batch3],
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", STANDALONE],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["modules"] == []
    for histories_, result in zip((one, three), answer["results"], strict=True):
        top, scores = keras_top_k(model, histories_, exclude="all")
        assert result["item_ids"] == vocab.decode(top).tolist()
        np.testing.assert_allclose(result["scores"], scores, rtol=1e-4, atol=1e-5)
        assert np.array(result["attention"]).shape == (len(histories_), model.max_len)
        np.testing.assert_allclose(np.sum(result["attention"], axis=1), 1.0, rtol=1e-5)


def test_unknown_ids_and_padding_anywhere_are_padding(exported_run, trained_run):
    client = saved_model.SavedModelClient(_version_path(exported_run), trained_run.vocabulary)
    history = trained_run.split.histories("test")[5]
    clean = client.recommend([_raw(trained_run.vocabulary, history)])
    unknown = 10**12
    noisy = [
        unknown,
        0,
        *_raw(trained_run.vocabulary, history[:2]),
        -3,
        0,
        *_raw(trained_run.vocabulary, history[2:]),
        unknown,
        0,
        0,
    ]
    dirty = client.recommend([noisy])
    np.testing.assert_array_equal(dirty["item_ids"], clean["item_ids"])
    np.testing.assert_allclose(dirty["scores"], clean["scores"], rtol=1e-5)
    np.testing.assert_allclose(dirty["attention"], clean["attention"], atol=1e-6)
    nothing = client.recommend([[unknown, 0, -1]])  # no known item at all: still K items
    assert nothing["item_ids"].shape == (1, TOP_K) and np.isfinite(nothing["scores"]).all()


def test_history_exclusion_and_including_signature(exported_run, trained_run):
    client = saved_model.SavedModelClient(_version_path(exported_run), trained_run.vocabulary)
    histories = trained_run.split.histories("test")[:4]
    batch = client.raw_batch(histories)
    excluded = client.recommend(batch)["item_ids"]
    included = client.recommend(batch, "recommend_including_history")["item_ids"]
    for row, history in enumerate(histories):
        assert not set(excluded[row]) & set(trained_run.vocabulary.decode(history).tolist())
    top, _ = keras_top_k(trained_run.model, histories, exclude="none")
    np.testing.assert_array_equal(included, trained_run.vocabulary.decode(top))


def test_rerank_scores_candidates_and_unknown_sorts_last(exported_run, trained_run):
    client = saved_model.SavedModelClient(_version_path(exported_run), trained_run.vocabulary)
    history = _raw(trained_run.vocabulary, trained_run.split.histories("test")[7])
    top = client.recommend([history])
    candidates = [[*top["item_ids"][0][::-1].tolist(), 10**12]]
    scores = client.loaded.signatures["rerank"](
        history=client._tf.constant([history], client._tf.int64),
        candidates=client._tf.constant(candidates, client._tf.int64),
    )["scores"].numpy()
    np.testing.assert_allclose(scores[0, :TOP_K], top["scores"][0][::-1], rtol=1e-5)
    assert scores[0, -1] == saved_model.LOWEST_SCORE


def test_saved_model_metrics_equal_keras(exported_run):
    keras, exported = exported_run["metrics"]["keras"], exported_run["metrics"]["saved_model"]
    for key in ("hr@10", "ndcg@10", "mrr", "num_users"):
        assert exported[key] == pytest.approx(keras[key], abs=1e-6)


def test_example_request_and_response(exported_run, trained_run):
    folder = trained_run.root / "saved_model"
    request = json.loads((folder / "example_request.json").read_text())
    response = json.loads((folder / "example_response.json").read_text())
    assert request["signature_name"] == "serving_default"
    assert sorted(response["outputs"]) == ["attention", "item_ids", "scores"]
    client = saved_model.SavedModelClient(_version_path(exported_run), trained_run.vocabulary)
    again = client.recommend(request["inputs"]["history"])
    assert response["outputs"]["item_ids"] == again["item_ids"].tolist()


def test_versions_count_up_and_never_overwrite(trained_run, tmp_path):
    base = tmp_path / MODEL_NAME
    first, v1 = saved_model.write_saved_model(
        trained_run.model, trained_run.vocabulary, base, top_k=TOP_K
    )
    stamp = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    second, v2 = saved_model.write_saved_model(
        trained_run.model, trained_run.vocabulary, base, top_k=TOP_K
    )
    assert (v1, v2) == (1, 2) and second == base / "2"
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == stamp
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


def test_failed_export_leaves_no_visible_version(trained_run, tmp_path, monkeypatch):
    base = tmp_path / MODEL_NAME
    saved_model.write_saved_model(trained_run.model, trained_run.vocabulary, base, top_k=TOP_K)

    class HalfWritten:
        def write_out(self, path, verbose=False):
            Path(path).mkdir()
            (Path(path) / "saved_model.pb").write_bytes(b"partial")
            raise OSError("disk full")

    monkeypatch.setattr(saved_model, "build_archive", lambda *a, **k: HalfWritten())
    with pytest.raises(ExportError, match="disk full"):
        saved_model.write_saved_model(trained_run.model, trained_run.vocabulary, base, top_k=TOP_K)
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # no "2", no hidden leftovers


def test_string_ids_vocabulary(tmp_path):
    import tensorflow as tf

    from attnrec_tf.config import Config
    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.model import build_model

    vocabulary = Vocabulary([f"sku-{i}" for i in range(30)])
    model = build_model(
        Config(max_len=6, embedding_dim=8, attention_units=4, jit_compile=False),
        vocabulary.size,
        None,
    )
    path, _ = saved_model.write_saved_model(model, vocabulary, tmp_path / "m", top_k=5)
    assert saved_model.padding_value(vocabulary) == ""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    history = np.array([3, 9, 4, 1, 2, 7, 8, 5])
    raw = ["", "nope", *vocabulary.decode(history).tolist()]
    out = serve(history=tf.constant([raw]))
    top, _ = keras_top_k(model, [history], k=5, exclude="all")
    assert out["item_ids"].numpy().astype(str).tolist() == vocabulary.decode(top).tolist()


def test_padding_value_avoids_a_real_zero_id():
    from attnrec_tf.data.vocabulary import Vocabulary

    assert saved_model.padding_value(Vocabulary([5, 7])) == 0
    assert saved_model.padding_value(Vocabulary([0, 5, 7])) == -1


def test_top_k_larger_than_catalog_is_a_user_error(trained_run):
    with pytest.raises(ExportError, match="--top-k"):
        saved_model.build_archive(
            trained_run.model, trained_run.vocabulary, top_k=trained_run.vocabulary.size
        )

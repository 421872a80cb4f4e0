"""The explain `.tflite` of an export: its record, and its reasons equal the Keras path's."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.counterfactual import counterfactuals
from attnrec_tf.evaluate import keras_score_fn
from attnrec_tf.export import explain_tflite, serving, tflite
from tests.export.conftest import MODEL_NAME, TOP_K, long_histories


def test_the_export_records_the_explain_file(exported_run, trained_run):
    on_disk = json.loads((trained_run.root / "report.json").read_text())
    artifact = on_disk["artifacts"][explain_tflite.ARTIFACT]
    assert list(on_disk["artifacts"])[-1] == explain_tflite.ARTIFACT
    assert explain_tflite.ARTIFACT not in on_disk["metrics"]  # no test metrics, no table row
    file = Path(artifact["path"])
    assert file == trained_run.root / "tflite" / f"{MODEL_NAME}_explain_float32.tflite"
    assert file.stat().st_size == artifact["bytes"] > 0
    assert not tflite.op_problems(artifact["ops"]) and artifact["ops"] == tflite.list_ops(file)
    assert artifact["latency_ms_p50"] > 0 and artifact["num_threads"] == 1
    assert artifact["latency_history_length"] == explain_tflite.LATENCY_HISTORY
    assert artifact["inputs"] == {"history": [1, 512], "candidates": [1, TOP_K]}
    max_len = trained_run.model.max_len
    assert artifact["outputs"] == {
        "removed": [1, max_len],
        "score_drops": [1, max_len, TOP_K],
        "ranks_without": [1, max_len, TOP_K],
        "scores": [1, TOP_K],
        "ranks": [1, TOP_K],
        "verified": [1, max_len],
    }
    agreed = artifact["agreement"]
    assert agreed["users"] == explain_tflite.AGREEMENT_USERS
    assert agreed["pairs"] == explain_tflite.AGREEMENT_USERS * TOP_K
    assert agreed["ranks_equal"] == 1.0 and agreed["first_reason_scored_equal"] == 1.0
    assert agreed["first_reason_equal"] >= 0.9  # the likely reasons hold the best removal
    assert 0 < agreed["verified"] < 1  # test histories longer than 16 items: some not removed
    assert agreed["max_score_drop_error"] < 1e-4


def test_long_and_repeating_histories_explain_as_the_keras_path(exported_run, trained_run):
    model = trained_run.model
    explainer = explain_tflite.LiteRTExplainer(
        Path(exported_run["artifacts"]["tflite_explain"]["path"])
    )
    score_fn = keras_score_fn(model, model.max_len)
    histories = long_histories(trained_run.split.histories("test"))[8:14]  # 2 short, 4 > max_len
    histories.append(np.array([5, 9, 5, 5, 12, 9, 7]))  # repeats: one removal per distinct item
    for history in histories:
        candidates = explain_tflite.top_candidates(score_fn, history, TOP_K)
        expected = counterfactuals(score_fn, history, candidates, max_len=model.max_len)
        found = explainer.counterfactuals(history, candidates)
        assert found.items.tolist() == expected.items.tolist()
        scored = found.verified
        assert scored is not None and scored.sum() == min(len(found.items), serving.VERIFY)
        np.testing.assert_array_equal(found.ranks, expected.ranks)
        np.testing.assert_allclose(found.drops[scored], expected.drops[scored], atol=1e-4)
        assert not found.drops[~scored].any()
        given = found.ranks_without > 0
        assert (given.sum(axis=0) == min(scored.sum(), serving.REASONS)).all()
        np.testing.assert_array_equal(found.ranks_without[given], expected.ranks_without[given])
        # the shown reasons are the exhaustive ones among the items removed
        cut = replace(expected, drops=np.where(scored[:, None], expected.drops, 0.0))
        for column in range(TOP_K):
            shown = [(r.item, r.rank_without) for r in found.reasons(column)]
            assert shown == [(r.item, r.rank_without) for r in cut.reasons(column)]
            if scored.all():
                assert shown == [(r.item, r.rank_without) for r in expected.reasons(column)]


@pytest.mark.parametrize(
    "variant, extra",
    [
        ("pooling", {}),
        ("self-attention", {}),
        ("sasrec", {}),
        ("sasrec", {"absolute_positions": True, "embedding_scale": True}),
        ("mean", {}),
        ("last", {}),
    ],
)
def test_every_variant_converts_and_explains_as_keras_at_every_length(variant, extra):
    """The window is cut at run time to the history's length: exact at every length."""
    from attnrec_tf.config import Config
    from attnrec_tf.model import build_model

    rng = np.random.default_rng(0)
    features = (rng.random((21, 4)) > 0.5).astype("float32")
    features[0] = 0
    config = Config(
        max_len=6, variant=variant, embedding_dim=8, attention_units=4, num_heads=2, **extra
    )
    model = build_model(config.replace(jit_compile=False), 21, features)
    blob = explain_tflite.convert(model, top_k=4, history_length=12)
    assert not tflite.op_problems(tflite.list_ops(blob))
    explainer = explain_tflite.LiteRTExplainer(blob)
    histories = [[3], [3, 5, 3], [1, 2, 3, 4, 5, 6], [7, 8, 7, 9, 10, 11, 12, 13, 8, 14]]
    agreed = explain_tflite.agreement(explainer, model, histories)
    assert agreed["ranks_equal"] == 1.0 and agreed["first_reason_equal"] == 1.0, agreed
    assert agreed["max_score_drop_error"] < 1e-5
    out = explainer(np.array([3, 5]), np.array([1, 2]))
    assert out["removed"].tolist() == [0, 0, 0, 0, 3, 5]  # the max_len window, left-padded
    assert not out["score_drops"][:4].any() and not out["ranks_without"][:4].any()
    assert out["verified"].tolist() == [0, 0, 0, 0, 1, 1]

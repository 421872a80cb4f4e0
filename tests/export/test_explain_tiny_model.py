"""One history item alone drives a recommendation: it is the shown reason, everywhere.

A hand-built `mean` model (no positions, no `h_L` concatenation, identity projection, zero
bias) scores `s_j = mean_i(E[x_i]) . E[j]`, so the scores can be computed by hand. With

    E[A] = (3, 0, 0, 0)   E[B] = (1, 0, 0, 0)   E[C] = (0, 1, 0, 0)   E[D] = (0, 0, 1, 0)
    E[k] = (0, w_k, 0, 0) for the other items k, 0 < w_k < 1, all different

and the history [A, C, D], the user vector is (1, 1/3, 1/3, 0): B scores 1 and every other
unseen item w_k / 3 < 1/3, so B is the top recommendation. Without A, the user vector is
(0, 1/2, 1/2, 0): B scores 0 (a drop of 1) and falls below every other unseen item, to the last
rank, #(num_items - 3); without C or D, B's score rises to 1.5 (a drop of -0.5). So A is B's
only reason, "#1 -> #8" in a catalog of 11 items. The test checks that through the Keras path
(`counterfactual.counterfactuals` with `evaluate.keras_score_fn`), the SavedModel's `explain`
signature and the explain `.tflite` in LiteRT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.counterfactual import counterfactuals
from attnrec_tf.evaluate import keras_score_fn

NUM_ITEMS = 11
A, B, C, D = 1, 2, 3, 4
HISTORY = np.array([A, C, D])
MAX_LEN = 5
TOP_K = 3
DIM = 4
RANK_WITHOUT_A = NUM_ITEMS - len(HISTORY)  # B falls below every other unseen item: 8


def tiny_model():
    """The `mean` model of the module docstring, weights set by hand."""
    from attnrec_tf.model import AttentionRecommender

    model = AttentionRecommender(
        vocab_size=NUM_ITEMS + 1,
        max_len=MAX_LEN,
        embedding_dim=DIM,
        variant="mean",
        dropout=0.0,
        position_embedding=False,
        concat_last=False,
    )
    model.build((None, MAX_LEN))
    model(np.zeros((1, MAX_LEN), "int32"))
    table = np.zeros((NUM_ITEMS + 1, DIM), np.float32)
    table[A], table[B], table[C], table[D] = [3, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]
    for k in range(D + 1, NUM_ITEMS + 1):
        table[k] = [0, 0.1 * (k - D), 0, 0]  # 0.1 .. 0.7
    model.item_embedding.embeddings.assign(table)
    model.projection.kernel.assign(np.eye(DIM, dtype=np.float32))
    model.projection.bias.assign(np.zeros(DIM, np.float32))
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_keras_scores_are_the_hand_computed_ones(model):
    scores = np.asarray(model.score(np.array([[0, 0, A, C, D]])))[0]
    np.testing.assert_allclose(scores[B], 1.0, atol=1e-6)
    np.testing.assert_allclose(scores[D + 1 :], 0.1 * np.arange(1, 8) / 3, atol=1e-6)


def test_keras_counterfactual_reason_is_a(model):
    found = counterfactuals(keras_score_fn(model, MAX_LEN), HISTORY, np.array([B]), max_len=MAX_LEN)
    assert found.items.tolist() == [D, C, A]  # most recent first
    np.testing.assert_allclose(found.drops[:, 0], [-0.5, -0.5, 1.0], atol=1e-6)
    assert found.ranks.tolist() == [1]
    assert found.ranks_without[:, 0].tolist() == [1, 1, RANK_WITHOUT_A]
    [reason] = found.reasons(0)
    assert (reason.item, reason.rank_without) == (A, RANK_WITHOUT_A)
    assert reason.score_drop == pytest.approx(1.0, abs=1e-6)


def test_saved_model_explain_signature_shows_a(model, tmp_path: Path):
    import tensorflow as tf

    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.export.saved_model import write_saved_model

    vocabulary = Vocabulary(np.arange(101, 101 + NUM_ITEMS))  # raw id of index i: 100 + i
    path, _ = write_saved_model(model, vocabulary, tmp_path / "tiny", top_k=TOP_K)
    loaded = tf.saved_model.load(str(path))
    raw = lambda x: tf.constant([(np.asarray(x) + 100).tolist()], tf.int64)  # noqa: E731
    top = loaded.signatures["serving_default"](history=raw(HISTORY))["item_ids"].numpy()[0]
    assert top[0] == 100 + B
    out = loaded.signatures["explain"](history=raw(HISTORY), candidates=raw([B]))
    removed = out["removed"].numpy()[0].tolist()
    assert removed == [0, 0, 100 + A, 100 + C, 100 + D]  # the window, left-padded, raw ids
    np.testing.assert_allclose(
        out["score_drops"].numpy()[0, :, 0], [0, 0, 1.0, -0.5, -0.5], atol=1e-6
    )
    assert out["ranks_without"].numpy()[0, :, 0].tolist() == [1, 1, RANK_WITHOUT_A, 1, 1]
    assert out["ranks"].numpy()[0].tolist() == [1]
    best = int(np.argmax(out["score_drops"].numpy()[0, :, 0]))
    assert removed[best] == 100 + A


def test_explain_tflite_shows_a(model):
    pytest.importorskip("ai_edge_litert")
    from attnrec_tf.export import explain_tflite, tflite

    blob = explain_tflite.convert(model, top_k=TOP_K, history_length=8)
    assert not tflite.op_problems(tflite.list_ops(blob))
    explainer = explain_tflite.LiteRTExplainer(blob)
    assert (explainer.history_length, explainer.top_k, explainer.max_len) == (8, TOP_K, MAX_LEN)
    out = explainer(HISTORY, np.array([B]))
    assert out["removed"].tolist() == [0, 0, A, C, D]
    np.testing.assert_allclose(out["score_drops"][:, 0], [0, 0, 1.0, -0.5, -0.5], atol=1e-6)
    assert out["ranks_without"][:, 0].tolist() == [0, 0, RANK_WITHOUT_A, 1, 1]  # 0: padding
    assert out["verified"].tolist() == [0, 0, 1, 1, 1]  # 3 items <= 16: every one removed
    found = explainer.counterfactuals(HISTORY, np.array([B, D + 7]))
    assert found.ranks.tolist() == [1, 2]  # B, then the best other unseen item
    [reason] = found.reasons(0)
    assert (reason.item, reason.rank_without) == (A, RANK_WITHOUT_A)
    assert reason.score_drop == pytest.approx(1.0, abs=1e-6)
    # the item whose score only C raises (w_k on C's axis) is explained by C, not A
    assert [r.item for r in found.reasons(1)] == [C]

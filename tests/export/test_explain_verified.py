"""`serving.explain_verified`: the likely reasons, removed for real, equal the exhaustive answer.

`likely_reasons` is checked by hand; `explain_verified` against `explain_removals` (every window
item removed) where the likely reasons are every item (`verify >= W`) and where they are not;
the `.tflite` against the Keras graph through LiteRT with more window items than it removes.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from attnrec_tf.export import serving


def test_likely_reasons_are_the_recent_items_then_the_most_attended():
    # positions 0..6; item 5 at 1 and 3 (its most recent position is 3)
    window = tf.constant([[0, 5, 7, 5, 9, 8, 6]], tf.int32)
    attention = tf.constant([[0.0, 0.5, 0.2, 0.05, 0.1, 0.1, 0.05]], tf.float32)
    chosen, valid = serving.likely_reasons(window, attention, count=4, recent=2)
    # the 2 most recent (6 at 6, 8 at 5), then by attention: 7 (0.2) and 9 (0.1); position 1
    # (0.5) is item 5's older occurrence, and item 5 at 3 (0.05) comes after 9
    assert sorted(chosen.numpy()[0].tolist()) == [2, 4, 5, 6]
    assert valid.numpy().all()
    chosen, valid = serving.likely_reasons(window, attention, count=7, recent=2)
    picked = chosen.numpy()[0][valid.numpy()[0]]
    assert sorted(picked.tolist()) == [2, 3, 4, 5, 6]  # 5 distinct items: 2 slots invalid
    assert valid.numpy().sum() == 5


def small_model(max_len: int, variant: str = "sasrec"):
    from attnrec_tf.config import Config
    from attnrec_tf.model import build_model

    rng = np.random.default_rng(0)
    features = (rng.random((41, 4)) > 0.5).astype("float32")
    features[0] = 0
    config = Config(
        max_len=max_len, variant=variant, embedding_dim=8, attention_units=4, num_heads=2,
        absolute_positions=True, embedding_scale=True,
    )  # fmt: skip
    return build_model(config.replace(jit_compile=False), 41, features)


def both(model, history, candidates, **kwargs):
    x = tf.constant([history], tf.int32)
    c = tf.constant([candidates], tf.int32)
    exhaustive = {k: v.numpy()[0] for k, v in serving.explain_removals(model, x, c).items()}
    fast = {k: v.numpy()[0] for k, v in serving.explain_verified(model, x, c, **kwargs).items()}
    return exhaustive, fast


@pytest.mark.parametrize("variant", ["sasrec", "pooling"])
def test_every_item_removed_gives_the_exhaustive_answer(variant):
    model = small_model(8, variant)
    history = [0, 3, 9, 3, 12, 30, 7]  # 5 distinct items, one repeated, padding on the left
    exhaustive, fast = both(model, history, [1, 2, 40, 0], verify=8, recent=2)
    assert tuple(fast) == serving.VERIFIED_OUTPUTS
    window = fast["removed"]
    assert window.tolist() == exhaustive["removed"].tolist() == [0, 0, 3, 9, 3, 12, 30, 7]
    assert fast["verified"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]  # each item at its latest
    np.testing.assert_array_equal(fast["ranks"], exhaustive["ranks"])
    np.testing.assert_allclose(fast["scores"], exhaustive["scores"], atol=1e-6)
    latest = fast["verified"] > 0
    np.testing.assert_allclose(
        fast["score_drops"][latest], exhaustive["score_drops"][latest], atol=1e-5
    )
    assert not fast["score_drops"][~latest].any() and not fast["score_drops"][:, 3].any()
    given = fast["ranks_without"] > 0
    assert given[:, :3].sum(axis=0).tolist() == [3, 3, 3] and not given[:, 3].any()
    np.testing.assert_array_equal(fast["ranks_without"][given], exhaustive["ranks_without"][given])
    for column in range(3):  # the ranks given are those of the 3 largest drops
        drops = fast["score_drops"][latest, column]
        largest = np.sort(np.argsort(-drops, kind="stable")[:3])
        assert np.flatnonzero(given[latest, column]).tolist() == largest.tolist()


def test_fewer_removals_than_items_are_each_the_exhaustive_ones():
    model = small_model(24)
    history = list(range(1, 31))  # 30 distinct items: the window holds the last 24
    exhaustive, fast = both(model, history, [31, 35, 40], verify=5, recent=3)
    latest = fast["verified"] > 0
    assert latest.sum() == 5 and latest[-3:].all()  # the 3 most recent, then 2 by attention
    np.testing.assert_allclose(
        fast["score_drops"][latest], exhaustive["score_drops"][latest], atol=1e-5
    )
    assert not fast["score_drops"][~latest].any()
    given = fast["ranks_without"] > 0
    assert (given.sum(axis=0) == 3).all() and not given[~latest].any()
    np.testing.assert_array_equal(fast["ranks_without"][given], exhaustive["ranks_without"][given])


def test_the_tflite_explains_as_the_keras_graph_with_more_items_than_removals():
    pytest.importorskip("ai_edge_litert")
    from attnrec_tf.export import explain_tflite, tflite

    model = small_model(24)
    blob = explain_tflite.convert(model, top_k=4, history_length=32)
    assert not tflite.op_problems(tflite.list_ops(blob))
    explainer = explain_tflite.LiteRTExplainer(blob)
    for history in ([4, 9, 4], list(range(1, 21)), list(range(3, 33)), [7, 8] * 12):
        candidates = np.array([33, 2, 40, 36])
        x = tf.constant([history], tf.int32)
        keras = serving.explain_verified(model, x, tf.constant([candidates], tf.int32))
        found = explainer(np.array(history), candidates)
        for name in ("removed", "verified", "ranks", "ranks_without"):
            np.testing.assert_array_equal(found[name], keras[name].numpy()[0], err_msg=name)
        for name in ("score_drops", "scores"):
            np.testing.assert_allclose(found[name], keras[name].numpy()[0], atol=1e-5)
        assert found["verified"].sum() == min(len(set(history[-24:])), serving.VERIFY)


def test_a_batch_explains_each_row_as_alone():
    model = small_model(24)
    rows = [[0] * 26 + [4, 9, 4, 11], list(range(1, 31))]
    candidates = [[33, 2, 0], [31, 35, 40]]
    batch = serving.explain_verified(
        model, tf.constant(rows, tf.int32), tf.constant(candidates, tf.int32), verify=5, recent=3
    )
    for row in range(2):
        alone = serving.explain_verified(
            model,
            tf.constant(rows[row : row + 1], tf.int32),
            tf.constant(candidates[row : row + 1], tf.int32),
            verify=5,
            recent=3,
        )
        for name, values in alone.items():
            np.testing.assert_allclose(
                batch[name].numpy()[row], values.numpy()[0], atol=1e-5, err_msg=name
            )

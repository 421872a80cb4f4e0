"""The shared serving graph: padding compaction, history exclusion, score clipping."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from attnrec_tf.export import serving


class _FixedScores:
    """A stand-in model whose catalog scores are given (V = 6, max_len = 3)."""

    vocab_size = 6
    max_len = 3

    def __init__(self, scores: list[float]) -> None:
        self.scores = tf.constant([scores], tf.float32)

    def serve_outputs(self, window: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.shape(window)[0]
        attention = tf.zeros([batch, self.max_len])
        return tf.tile(self.scores, [batch, 1]), attention


def test_compact_right_packs_real_ids_in_order():
    got = serving.compact_right(tf.constant([[3, 0, 5, 0], [1, 2, 3, 4], [0, 0, 0, 0]]), 3)
    np.testing.assert_array_equal(got.numpy(), [[0, 3, 5], [2, 3, 4], [0, 0, 0]])


def test_excluded_items_marks_padding_and_each_rows_history():
    got = serving.excluded_items(tf.constant([[0, 2, 2, 5], [1, 1, 1, 1]]), 6).numpy()
    np.testing.assert_array_equal(
        got,
        [[True, False, True, False, False, True], [True, True, False, False, False, False]],
    )


def test_history_is_excluded_and_scores_sorted():
    model = _FixedScores([9.0, 0.5, 3.0, -1.0, 2.0, 4.0])  # index 0 scores highest
    out = serving.recommend(model, tf.constant([[0, 5, 0]]), top_k=3)
    np.testing.assert_array_equal(out["item_ids"].numpy(), [[2, 4, 1]])
    np.testing.assert_allclose(out["scores"].numpy(), [[3.0, 2.0, 0.5]])


def test_clip_negative_ties_negative_items_at_zero_but_keeps_excluded_ones_below():
    model = _FixedScores([0.0, 0.5, -3.0, -1.0, -2.0, 4.0])
    plain = serving.recommend(model, tf.constant([[1, 0, 0]]), top_k=3)
    clipped = serving.recommend(model, tf.constant([[1, 0, 0]]), top_k=3, clip_negative=True)
    np.testing.assert_array_equal(plain["item_ids"].numpy(), [[5, 3, 4]])
    ids = clipped["item_ids"].numpy()[0]
    assert ids[0] == 5 and set(ids[1:]) <= {2, 3, 4}  # negatives tie at 0; 1 stays excluded
    np.testing.assert_allclose(clipped["scores"].numpy(), [[4.0, 0.0, 0.0]])

"""The shared serving graph: padding compaction, history exclusion, score clipping."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from attnrec_tf.export import serving


class _FixedScores:
    """A stand-in model whose catalog scores are given (V = len(scores), max_len = 3); it
    keeps the window it was called with in `seen`."""

    max_len = 3

    def __init__(self, scores: list[float]) -> None:
        self.scores = tf.constant([scores], tf.float32)
        self.vocab_size = len(scores)
        self.seen: tf.Tensor | None = None

    def serve_outputs(self, window: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        self.seen = window
        batch = tf.shape(window)[0]
        attention = tf.zeros([batch, self.max_len])
        return tf.tile(self.scores, [batch, 1]), attention


def test_compact_right_packs_real_ids_in_order():
    got = serving.compact_right(tf.constant([[3, 0, 5, 0], [1, 2, 3, 4], [0, 0, 0, 0]]), 3)
    np.testing.assert_array_equal(got.numpy(), [[0, 3, 5], [2, 3, 4], [0, 0, 0]])
    narrower = serving.compact_right(tf.constant([[3, 0, 5]]), 5)  # T < length: padded
    np.testing.assert_array_equal(narrower.numpy(), [[0, 0, 0, 3, 5]])


def test_compact_right_static_and_dynamic_widths_agree():
    """The TFLite graph (static width T >= length: a top-`length`) and the SavedModel graph
    (unknown width: sort all T, pad, slice) pack the same rows the same way."""
    dynamic = tf.function(
        lambda x: serving.compact_right(x, 4),
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
    )
    rows = np.random.default_rng(0).integers(0, 6, size=(50, 9)).astype(np.int32)
    rows[rows < 3] = 0  # about half padding, anywhere
    for width in (4, 6, 9):
        part = tf.constant(rows[:, -width:])
        static = serving.compact_right(part, 4).numpy()
        np.testing.assert_array_equal(static, dynamic(part).numpy())
        for row, packed in zip(rows[:, -width:], static, strict=True):
            real = row[row > 0][-4:]
            np.testing.assert_array_equal(packed, np.concatenate([np.zeros(4 - len(real)), real]))


def test_excluded_items_marks_padding_and_each_rows_history():
    got = serving.excluded_items(tf.constant([[0, 2, 2, 5], [1, 1, 1, 1]]), 6).numpy()
    np.testing.assert_array_equal(
        got,
        [[True, False, True, False, False, True], [True, True, False, False, False, False]],
    )


def test_model_sees_the_last_max_len_real_ids_and_every_real_id_is_excluded():
    model = _FixedScores([float(i) for i in range(10)])  # V = 10, item i scores i
    row = tf.constant([[9, 0, 8, 42, 7, -3, 1, 0, 2, 3]])  # real: 9 8 7 1 2 3; 42, -3 padding
    out = serving.recommend(model, row, top_k=3)
    assert model.seen is not None
    np.testing.assert_array_equal(model.seen.numpy(), [[1, 2, 3]])  # the last max_len = 3
    np.testing.assert_array_equal(out["item_ids"].numpy(), [[6, 5, 4]])  # 9, 8, 7 excluded too
    kept = serving.recommend(model, row, top_k=3, exclude_history=False)
    np.testing.assert_array_equal(kept["item_ids"].numpy(), [[9, 8, 7]])


def test_history_is_excluded_and_scores_sorted():
    model = _FixedScores([9.0, 0.5, 3.0, -1.0, 2.0, 4.0])  # index 0 scores highest
    out = serving.recommend(model, tf.constant([[0, 5, 0]]), top_k=3)
    np.testing.assert_array_equal(out["item_ids"].numpy(), [[2, 4, 1]])
    np.testing.assert_allclose(out["scores"].numpy(), [[3.0, 2.0, 0.5]])

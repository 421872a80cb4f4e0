"""`masked_softmax` and `causal_mask` against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from attnrec_tf.layers.masking import causal_mask, large_negative, masked_softmax

FILLS = ["minimum", "large_negative"]


def _softmax(values):
    exp = np.exp(np.asarray(values, "float64") - np.max(values))
    return exp / exp.sum()


@pytest.mark.parametrize("fill", FILLS)
def test_weights_of_a_row_with_real_entries(fill):
    scores = np.array([[3.0, -2.0, 0.5]], "float32")
    valid = np.array([[True, False, True]])
    weights = np.asarray(masked_softmax(scores, valid, fill=fill))
    # e^3 / (e^3 + e^0.5) = 1 / (1 + e^-2.5) = 0.924142..., e^0.5 / ... = 0.075858...
    np.testing.assert_allclose(weights, [[0.9241418, 0.0, 0.0758582]], rtol=1e-6)
    assert weights[0, 1] == 0.0


@pytest.mark.parametrize("fill", FILLS)
def test_a_row_without_a_real_entry_is_all_zeros(fill):
    scores = np.array([[1.0, 2.0], [0.0, 0.0]], "float32")
    valid = np.array([[False, False], [True, True]])
    weights = np.asarray(masked_softmax(scores, valid, fill=fill))
    np.testing.assert_array_equal(weights, [[0.0, 0.0], [0.5, 0.5]])


@pytest.mark.parametrize("fill", FILLS)
def test_float16_stays_finite(fill):
    scores = np.array([[[1.0, 2.0, -3.0]]], "float16")
    valid = np.array([[[False, False, False], [True, False, False], [True, True, False]]])
    weights = np.asarray(masked_softmax(scores, valid, fill=fill))  # (1, 3, 3)
    assert weights.dtype == np.float16 and np.isfinite(weights).all()
    np.testing.assert_allclose(weights[0], [[0, 0, 0], [1, 0, 0], [0.2689, 0.7311, 0]], atol=1e-3)
    assert large_negative("float16") == -65504.0 and large_negative("float32") == -1e9


def test_minimum_fill_never_leaves_the_scores_range():
    """The masked entries take the row minimum, not a large constant (an int8 graph's scale)."""
    scores = tf.constant([[4.0, -1.0, 2.0]])
    valid = tf.constant([[False, True, True]])
    graph = tf.function(lambda s, v: masked_softmax(s, v)).get_concrete_function(scores, valid)
    constants = [op.get_attr("value") for op in graph.graph.get_operations() if op.type == "Const"]
    values = [tf.make_ndarray(c) for c in constants]
    assert all(np.all(np.abs(v) < 1e3) for v in values if v.dtype.kind == "f")
    # and the normalisation is a division (the int8 export keeps DIV in float32)
    assert "RealDiv" in {op.type for op in graph.graph.get_operations()}
    np.testing.assert_allclose(masked_softmax(scores, valid), [[0.0, *_softmax([-1.0, 2.0])]])


def test_one_score_row_is_shared_by_every_query():
    """`(B, 1, L)` scores against a `(B, T, L)` mask: each query's softmax over its keys."""
    scores = np.array([[[0.0, 1.0, 2.0]]], "float32")
    weights = np.asarray(masked_softmax(scores, causal_mask(3)))  # (1, 3, 3)
    np.testing.assert_allclose(
        weights[0], [[1, 0, 0], [*_softmax([0.0, 1.0]), 0], _softmax([0.0, 1.0, 2.0])], rtol=1e-6
    )


def test_unknown_fill_is_an_error():
    with pytest.raises(ValueError, match="`fill` must be one of"):
        masked_softmax(np.zeros((1, 2), "float32"), np.ones((1, 2), bool), fill="zero")


def test_causal_mask_hand_computed():
    np.testing.assert_array_equal(
        np.asarray(causal_mask(3)),
        [[[True, False, False], [True, True, False], [True, True, True]]],
    )
    mask = np.array([[False, True, True], [True, True, True]])
    got = np.asarray(causal_mask(3, mask)).astype(int)
    np.testing.assert_array_equal(
        got,
        [[[0, 0, 0], [0, 1, 0], [0, 1, 1]], [[1, 0, 0], [1, 1, 0], [1, 1, 1]]],
    )

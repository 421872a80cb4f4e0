"""`AttentionRecommender.serve_outputs` on fuzzed histories: negative, huge and all-padding ids
give finite scores and attention, and an id outside 1..V-1 acts exactly as padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.fuzz.conftest import FUZZ, time_limit

VOCAB = 13
MAX_LEN = 6
INT32 = (-(2**31), 2**31 - 1)


@pytest.fixture(scope="module", params=["pooling", "self-attention", "mean", "last"])
def model(request):
    from attnrec_tf.config import preset
    from attnrec_tf.model import build_model

    config = preset("default").replace(
        variant=request.param, max_len=MAX_LEN, embedding_dim=8, attention_units=8, num_blocks=1
    )
    features = np.random.default_rng(0).integers(0, 2, size=(VOCAB, 3)).astype("float32")
    return build_model(config, VOCAB, features)


@pytest.fixture(scope="module")
def serve(model):
    """`model.serve_outputs` traced once for int32 `(None, MAX_LEN)` batches (fast examples)."""
    import tensorflow as tf

    return tf.function(
        model.serve_outputs, input_signature=[tf.TensorSpec([None, MAX_LEN], tf.int32)]
    )


ids32 = st.one_of(
    st.integers(0, VOCAB - 1),
    st.sampled_from([-1, VOCAB, VOCAB + 1, *INT32]),
    st.integers(*INT32),
)
histories = hnp.arrays(np.int32, st.tuples(st.integers(1, 4), st.just(MAX_LEN)), elements=ids32)


def outputs(serve, history):
    with time_limit(30):
        scores, attention = serve(history)
    return np.asarray(scores), np.asarray(attention)


@FUZZ
@given(history=histories)
def test_any_int32_history_gives_finite_outputs_and_unknown_ids_are_padding(serve, history):
    scores, attention = outputs(serve, history)
    assert scores.shape == (len(history), VOCAB) and attention.shape == history.shape
    assert np.isfinite(scores).all() and np.isfinite(attention).all()
    assert (attention >= 0).all() and (attention <= 1 + 1e-5).all()
    cleaned = np.where((history > 0) & (history < VOCAB), history, 0).astype(np.int32)
    clean_scores, clean_attention = outputs(serve, cleaned)
    np.testing.assert_allclose(scores, clean_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attention, clean_attention, rtol=1e-5, atol=1e-6)
    empty = ~(cleaned > 0).any(axis=1)  # all padding: zero attention, finite scores
    assert (attention[empty] == 0).all()


def test_int64_ids_beyond_int32_are_padding(model):
    history = np.array([[0, 0, 0, 0, 3, 2**32 + 5]], np.int64)
    padded = np.array([[0, 0, 0, 0, 3, 0]], np.int64)
    serve = model.serve_outputs
    np.testing.assert_allclose(outputs(serve, history)[0], outputs(serve, padded)[0], atol=1e-6)

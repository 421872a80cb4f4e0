"""The exported artifacts on fuzzed requests: the SavedModel signature (raw int64 ids, any
batch and length) and a float32 `.tflite` through the LiteRT interpreter (int32 windows).

* ids that are not in the catalog (negative, huge, 0) act as padding, wherever they are in the
  history; outputs are finite and the recommended ids are real, unseen catalog items;
* wrong dtypes or ranks raise an exception that says what was expected; the process goes on.

One tiny model (12 items, untrained weights with a non-zero projection bias, as after training)
is exported once per module: conversions are the slow part.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.fuzz.conftest import FUZZ, time_limit

pytest.importorskip("ai_edge_litert")

RAW_IDS = [10 * i for i in range(1, 13)]  # the catalog: 12 items, raw ids 10..120
TOP_K = 5
MAX_LEN = 6
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)


def _model():
    from attnrec_tf.config import preset
    from attnrec_tf.model import build_model

    config = preset("default").replace(
        variant="pooling", max_len=MAX_LEN, embedding_dim=8, attention_units=8
    )
    model = build_model(config, len(RAW_IDS) + 1, None)
    bias = np.random.default_rng(1).normal(size=model.projection.bias.shape).astype("float32")
    model.projection.bias.assign(bias)  # an empty history then has a non-zero user vector
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import tensorflow as tf

    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.export import saved_model, tflite

    model = _model()
    base = tmp_path_factory.mktemp("export") / "attnrec"
    path, _ = saved_model.write_saved_model(model, Vocabulary(RAW_IDS), base, top_k=TOP_K)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {"serve": serve, "tflite": tflite.convert(model, "float32", top_k=TOP_K)}


@pytest.fixture(scope="module")
def interpreter(exported):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=exported["tflite"], num_threads=1)
    interpreter.allocate_tensors()
    return interpreter.get_signature_runner("serving_default")


raw_ids = st.one_of(
    st.sampled_from(RAW_IDS),
    st.sampled_from([0, -10, 5, 125, *INT64]),
    st.integers(*INT64),
)
raw_histories = hnp.arrays(
    np.int64, st.tuples(st.integers(1, 3), st.integers(0, 7)), elements=raw_ids
)


def _saved_model(exported, history):
    import tensorflow as tf

    with time_limit(30):
        out = exported["serve"](history=tf.constant(history, tf.int64))
    return {name: value.numpy() for name, value in out.items()}


@FUZZ
@given(history=raw_histories)
def test_saved_model_unknown_ids_are_padding_and_outputs_are_real_unseen_items(exported, history):
    known = np.isin(history, RAW_IDS)
    out = _saved_model(exported, history)
    assert out["item_ids"].shape == (len(history), TOP_K)
    assert np.isfinite(out["scores"]).all() and np.isfinite(out["attention"]).all()
    for row, ids in enumerate(out["item_ids"]):
        assert set(ids.tolist()) <= set(RAW_IDS), ids
        assert len(set(ids.tolist())) == TOP_K
        assert not set(ids.tolist()) & set(history[row][known[row]].tolist())
    cleaned = _saved_model(exported, np.where(known, history, 0))
    np.testing.assert_array_equal(out["item_ids"], cleaned["item_ids"])
    np.testing.assert_allclose(out["scores"], cleaned["scores"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.array([[10.5, 20.0]], np.float32), "int64"),
        (np.array([[10, 20]], np.int32), "int64"),
        (np.array([["10", "20"]]), "int64"),
        (np.array([[True, False]]), "int64"),
        (np.array([10, 20], np.int64), ""),  # rank 1
        (np.array([[[10], [20]]], np.int64), ""),  # rank 3
    ],
    ids=["float32", "int32", "string", "bool", "rank-1", "rank-3"],
)
def test_saved_model_wrong_dtype_or_rank_is_a_clear_error(exported, value, expected):
    import tensorflow as tf

    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError)) as error:
        exported["serve"](history=tf.constant(value))
    assert expected in str(error.value)
    assert _saved_model(exported, np.array([[10, 20]]))["item_ids"].shape == (1, TOP_K)


def test_saved_model_empty_batch_and_empty_history(exported):
    assert _saved_model(exported, np.zeros((0, 4), np.int64))["item_ids"].shape == (0, TOP_K)
    out = _saved_model(exported, np.zeros((2, 0), np.int64))
    assert set(out["item_ids"].ravel().tolist()) <= set(RAW_IDS)
    assert np.isfinite(out["scores"]).all()


ids32 = st.one_of(st.integers(0, len(RAW_IDS)), st.sampled_from([-1, 13, *INT32]),
                  st.integers(*INT32))  # fmt: skip


@FUZZ
@given(
    values=hnp.arrays(np.int32, st.integers(1, 12), elements=ids32),
    where=st.floats(0, 1),
)
def test_tflite_any_int32_window_gives_finite_scores_and_valid_unseen_ids(
    interpreter, values, where
):
    width = int(interpreter.get_input_details()["history"]["shape"][-1])
    values = values[:width]
    window = np.zeros((1, width), np.int32)  # the values somewhere in a zero-padded window
    start = int(where * (width - len(values)))
    window[0, start : start + len(values)] = values
    valid = (window > 0) & (window <= len(RAW_IDS))
    assume(len(set(window[valid].tolist())) <= len(RAW_IDS) - TOP_K)
    with time_limit(30):
        out = interpreter(history=window)
        cleaned = interpreter(history=np.where(valid, window, 0).astype(np.int32))
    ids = out["item_ids"].ravel()
    assert np.isfinite(out["scores"]).all() and np.isfinite(out["attention"]).all()
    assert ((ids >= 1) & (ids <= len(RAW_IDS))).all() and len(set(ids.tolist())) == TOP_K
    assert not set(ids.tolist()) & set(window[valid].tolist())
    assert (np.diff(out["scores"].ravel()) <= 0).all()
    np.testing.assert_array_equal(ids, cleaned["item_ids"].ravel())
    np.testing.assert_allclose(out["scores"], cleaned["scores"], rtol=1e-6, atol=1e-6)


def test_padding_index_is_never_recommended_even_when_all_scores_tie():
    import tensorflow as tf

    from attnrec_tf.export import serving

    model = _model()
    model.projection.bias.assign(np.zeros(model.projection.bias.shape, np.float32))
    out = serving.recommend(model, tf.zeros([1, MAX_LEN], tf.int32), top_k=TOP_K)
    assert 0 not in out["item_ids"].numpy().ravel().tolist()

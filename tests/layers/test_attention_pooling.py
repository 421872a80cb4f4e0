"""Tests of AttentionPooling against numpy references computed by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from attnrec_tf.layers.attention_pooling import AttentionPooling
from tests.layers.contract import check_layer_contract

B, L, D, DQ, UNITS = 3, 5, 4, 3, 6

# Row 0: all real; row 1: left padding and a hole; row 2: all padding.
MASK = np.array(
    [[1, 1, 1, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 0, 0]],
    dtype=bool,
)


def _inputs(seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, L, D)).astype(dtype)


def _query(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, DQ)).astype("float32")


def _built_layer(query: bool = False, **kwargs) -> AttentionPooling:
    """A layer whose weights (bias included) are random, so every term of the math matters."""
    layer = AttentionPooling(units=UNITS, **kwargs)
    layer.build((None, L, D), (None, DQ) if query else None)
    rng = np.random.default_rng(42)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    return layer


def _reference(layer: AttentionPooling, h, mask, query=None):
    """e_i = v^T tanh(W h_i [+ U q] + b), softmax over real positions, sum_i a_i h_i."""
    h = np.asarray(h, dtype=np.float64)
    w = np.asarray(layer.kernel, dtype=np.float64)
    v = np.asarray(layer.score_kernel, dtype=np.float64)
    b = np.asarray(layer.bias, dtype=np.float64)
    outputs, weights = np.zeros((len(h), h.shape[2])), np.zeros(h.shape[:2])
    for row in range(len(h)):
        real = np.flatnonzero(mask[row])
        if real.size == 0:
            continue
        hidden = h[row] @ w + b
        if query is not None:
            hidden = hidden + np.asarray(query[row], np.float64) @ np.asarray(layer.query_kernel)
        e = np.tanh(hidden) @ v
        a = np.exp(e[real] - e[real].max())
        weights[row, real] = a / a.sum()
        outputs[row] = weights[row] @ h[row]
    return outputs, weights


def test_matches_hand_computed_reference():
    layer = _built_layer(return_attention_scores=True)
    x = _inputs()
    out, att = layer(x, mask=MASK)
    ref_out, ref_att = _reference(layer, x, MASK)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(att, ref_att, rtol=1e-5, atol=1e-6)


def test_no_mask_means_all_positions_real():
    layer = _built_layer()
    x = _inputs()
    ref_out, _ = _reference(layer, x, np.ones((B, L), bool))
    np.testing.assert_allclose(layer(x), ref_out, rtol=1e-5, atol=1e-6)


def test_padding_weights_exactly_zero_rows_sum_to_one_and_empty_row_is_zero():
    layer = _built_layer(return_attention_scores=True)
    out, att = (np.asarray(t) for t in layer(_inputs(), mask=MASK))
    assert np.all(att[~MASK] == 0.0)
    np.testing.assert_allclose(att[:2].sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(out)) and np.all(out[2] == 0.0) and np.all(att[2] == 0.0)


def test_embedding_mask_equals_explicit_mask():
    ids = np.array([[1, 2, 3, 4, 5], [0, 0, 6, 0, 7], [0, 0, 0, 0, 0]])
    embedding = keras.layers.Embedding(10, D, mask_zero=True)
    layer = AttentionPooling(units=UNITS)
    embedded = embedding(ids)
    np.testing.assert_array_equal(layer(embedded), layer(embedded, mask=ids != 0))
    # Also when a query is given (Keras then leaves `mask` unfilled; the layer reads it itself).
    qlayer = AttentionPooling(units=UNITS)
    q = _query()
    np.testing.assert_array_equal(
        qlayer(embedded, query=q), qlayer(embedded, mask=ids != 0, query=q)
    )
    # And inside a functional model.
    items = keras.Input((L,), dtype="int32")
    model = keras.Model(items, layer(embedding(items)))
    np.testing.assert_allclose(model(ids), layer(embedded, mask=ids != 0), rtol=1e-6)


def test_query_mode_matches_hand_computed_reference():
    layer = _built_layer(query=True, return_attention_scores=True)
    x, q = _inputs(), _query()
    out, att = layer(x, mask=MASK, query=q)
    ref_out, ref_att = _reference(layer, x, MASK, query=q)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(att, ref_att, rtol=1e-5, atol=1e-6)
    assert len(layer.trainable_weights) == 4


def test_causal_equals_non_causal_on_every_prefix():
    x = _inputs()
    causal = _built_layer(causal=True, return_attention_scores=True)
    plain = AttentionPooling(units=UNITS, return_attention_scores=True)
    plain.build((None, None, D))
    plain.set_weights(causal.get_weights())
    out, att = (np.asarray(t) for t in causal(x, mask=MASK))
    assert out.shape == (B, L, D) and att.shape == (B, L, L)
    for t in range(L):
        ref_out, ref_att = plain(x[:, : t + 1], mask=MASK[:, : t + 1])
        np.testing.assert_allclose(out[:, t], ref_out, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(att[:, t, : t + 1], ref_att, rtol=1e-5, atol=1e-6)
    assert np.all(att[:, np.triu_indices(L, k=1)[0], np.triu_indices(L, k=1)[1]] == 0.0)
    assert np.all(att[~np.broadcast_to(MASK[:, None, :], att.shape)] == 0.0)
    # Row 1 starts with two padding positions: its first two prefixes pool to exact zeros.
    assert np.all(out[1, :2] == 0.0) and np.all(out[2] == 0.0) and np.all(np.isfinite(out))


@pytest.mark.parametrize("causal", [False, True])
def test_float16_inputs_and_policies_stay_finite(causal):
    x = 30.0 * _inputs(dtype="float16")  # large inputs saturate tanh and push the scores apart
    results = [
        AttentionPooling(units=UNITS, causal=causal)(x, mask=MASK),
        AttentionPooling(units=UNITS, causal=causal, dtype="float16")(x, mask=MASK),
        AttentionPooling(units=UNITS, causal=causal, dtype="mixed_float16")(x, mask=MASK),
    ]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = AttentionPooling(units=UNITS, causal=causal, return_attention_scores=True)
        out, att = layer(x, mask=MASK)
        assert layer.compute_dtype == "float16" and layer.kernel.dtype == "float32"
        assert np.all(np.asarray(att)[2] == 0.0)
        results.append(out)
    finally:
        keras.config.set_dtype_policy(previous)
    for out in results:
        out = np.asarray(out, dtype=np.float32)
        assert np.all(np.isfinite(out))
        assert np.all(out[2] == 0.0)  # the all-padding row


def test_symbolic_shapes_and_compute_output_shape():
    x, q = keras.Input((L, D)), keras.Input((DQ,))
    assert AttentionPooling()(x).shape == (None, D)
    assert AttentionPooling()(x, query=q).shape == (None, D)
    out, att = AttentionPooling(causal=True, return_attention_scores=True)(x)
    assert out.shape == (None, L, D) and att.shape == (None, L, L)
    assert AttentionPooling().compute_output_shape((2, L, D)) == (2, D)
    assert AttentionPooling().compute_mask(_inputs(), MASK) is None


def test_query_errors():
    with pytest.raises(ValueError, match="causal=True.*does not support a `query`"):
        AttentionPooling(causal=True)(_inputs(), query=_query())
    layer = AttentionPooling()
    layer(_inputs())
    with pytest.raises(ValueError, match="called with a `query` if and only if"):
        layer(_inputs(), query=_query())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": 0}, r"`units` must be a positive integer. Received: units=0"),
        ({"units": -3}, r"`units` must be a positive integer. Received: units=-3"),
        ({"units": 2.5}, r"`units` must be a positive integer"),
        ({"dropout": 1.0}, r"`dropout` must be a float in \[0, 1\). Received: dropout=1.0"),
        ({"dropout": -0.1}, r"`dropout` must be a float in \[0, 1\)"),
        ({"dropout": "0.1"}, r"`dropout` must be a float in \[0, 1\)"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionPooling(**kwargs)


NON_DEFAULT = {
    "units": 7,
    "causal": True,
    "return_attention_scores": True,
    "dropout": 0.25,
    "use_bias": False,
    "kernel_initializer": keras.initializers.RandomNormal(stddev=0.1, seed=3),
    "bias_initializer": "ones",
    "kernel_regularizer": keras.regularizers.L2(1e-3),
}


def test_get_config_from_config_round_trip():
    layer = AttentionPooling(**NON_DEFAULT, name="pool")
    config = layer.get_config()
    restored = AttentionPooling.from_config(config)
    assert restored.get_config() == config
    assert config["units"] == 7 and config["causal"] and config["dropout"] == 0.25
    assert isinstance(restored.kernel_regularizer, keras.regularizers.L2)
    assert isinstance(restored.kernel_initializer, keras.initializers.RandomNormal)


def test_serialize_deserialize_round_trip():
    layer = AttentionPooling(**NON_DEFAULT)
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "attnrec_tf>AttentionPooling"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, AttentionPooling)
    assert restored.get_config() == layer.get_config()


def test_saved_keras_model_reproduces_outputs(tmp_path):
    items, target = keras.Input((L,), dtype="int32"), keras.Input((DQ,))
    embedded = keras.layers.Embedding(10, D, mask_zero=True)(items)
    pooled, att = AttentionPooling(units=UNITS, return_attention_scores=True)(
        embedded, query=target
    )
    prefixes = AttentionPooling(units=UNITS, causal=True, kernel_regularizer="l2")(embedded)
    model = keras.Model([items, target], [pooled, att, prefixes])
    ids, q = np.array([[1, 2, 3, 4, 5], [0, 0, 6, 0, 7], [0, 0, 0, 0, 0]]), _query()
    expected = model.predict([ids, q], verbose=0)

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    for got, want in zip(reloaded.predict([ids, q], verbose=0), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    again = reloaded.predict([ids[:2], q[:2]], verbose=0)  # another batch size
    np.testing.assert_allclose(again[0], expected[0][:2], rtol=1e-6, atol=1e-7)


def test_one_fit_step_changes_weights():
    items = keras.Input((L,), dtype="int32")
    embedded = keras.layers.Embedding(10, D, mask_zero=True)(items)
    layer = AttentionPooling(units=UNITS, dropout=0.1, kernel_regularizer="l2")
    model = keras.Model(items, keras.layers.Dense(1)(layer(embedded)))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [np.array(w) for w in layer.trainable_weights]
    ids = np.array([[1, 2, 3, 4, 5], [0, 0, 6, 0, 7], [0, 0, 0, 3, 2]] * 2)
    history = model.fit(ids, np.ones((6, 1)), batch_size=6, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert len(layer.losses) == 2  # the L2 penalty of W and v
    after = [np.array(w) for w in layer.trainable_weights]
    assert any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))


def test_dropout_only_in_training():
    x = _inputs()
    layer = _built_layer(dropout=0.5, return_attention_scores=True)
    reference = _built_layer(return_attention_scores=True)
    inference, att = layer(x, mask=MASK, training=False)
    np.testing.assert_allclose(inference, reference(x, mask=MASK)[0], rtol=1e-6)
    np.testing.assert_allclose(layer(x, mask=MASK)[0], inference, rtol=1e-6)  # default: inference
    trained, att_trained = layer(x, mask=MASK, training=True)
    assert not np.allclose(trained, inference)
    np.testing.assert_allclose(att_trained, att, rtol=1e-6)  # scores are returned before dropout


@pytest.mark.parametrize("causal", [False, True])
def test_layer_contract(causal, tmp_path):
    check_layer_contract(
        lambda: AttentionPooling(units=UNITS, causal=causal), _inputs(), MASK, tmp_path
    )

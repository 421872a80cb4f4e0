import keras
import numpy as np
import pytest

from attnrec_tf.layers.causal_self_attention import CausalSelfAttention, CausalSelfAttentionBlock
from tests.layers.contract import check_layer_contract


def _block():
    block = CausalSelfAttentionBlock(num_heads=2, dropout=0.0)
    block.build((None, 5, 8))
    return block


def test_future_positions_do_not_leak():
    block = _block()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 8)).astype("float32")
    changed = x.copy()
    changed[:, 3:] += 10.0  # change the future of position 2
    a = np.asarray(block(x))
    b = np.asarray(block(changed))
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[:, 3:], b[:, 3:])


def test_padding_is_zero_and_does_not_affect_real_positions():
    block = _block()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 5, 8)).astype("float32")
    mask = np.array([[False, False, True, True, True]])
    other = x.copy()
    other[:, :2] = 99.0  # garbage under the padding
    a = np.asarray(block(x, mask=mask))
    b = np.asarray(block(other, mask=mask))
    assert (a[:, :2] == 0).all()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_config_round_trip_and_save(tmp_path):
    inputs = keras.Input((5, 8))
    outputs = CausalSelfAttentionBlock(num_heads=2, dropout=0.1)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).normal(size=(2, 5, 8)).astype("float32")
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)
    layer = model.layers[-1]
    assert (
        CausalSelfAttentionBlock.from_config(layer.get_config()).get_config() == layer.get_config()
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="`num_heads` must be a positive integer"):
        CausalSelfAttentionBlock(num_heads=0)
    with pytest.raises(ValueError, match="`dropout` must be in"):
        CausalSelfAttentionBlock(dropout=1.5)


def test_attention_weights_by_hand():
    # One head, width 2; query/key kernels make q = k = x, values v = x, output = identity.
    layer = CausalSelfAttention(num_heads=1)
    layer.build((None, 3, 2))
    eye = np.eye(2, dtype="float32")
    layer.qkv.kernel.assign(np.concatenate([eye, eye, eye], axis=1))
    layer.out.kernel.assign(eye)
    x = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]], "float32")  # position 0 is padding
    mask = np.array([[False, True, True]])
    outputs, weights = layer(x, mask=mask)
    scale = 1 / np.sqrt(2)
    # query 2 sees keys 1 and 2: scores (0, 4) * scale
    p = np.exp(4 * scale) / (1 + np.exp(4 * scale))
    expected = np.array([[0, 0, 0], [0, 1, 0], [0, 1 - p, p]])
    np.testing.assert_allclose(np.asarray(weights)[0], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(outputs)[0, 2], [1 - p, 2 * p], rtol=1e-5)
    assert np.all(np.asarray(outputs)[0, 0] == 0)  # a query with no real key attends to nothing


def test_training_softmax_equals_inference_softmax_on_real_queries():
    layer = CausalSelfAttention(num_heads=2, dropout=0.0)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[False, False, True, True, True], [True] * 5])
    train, _ = layer(x, mask=mask, training=True)
    serve, _ = layer(x, mask=mask, training=False)
    np.testing.assert_allclose(np.asarray(train)[0, 2:], np.asarray(serve)[0, 2:], atol=1e-6)
    np.testing.assert_allclose(np.asarray(train)[1], np.asarray(serve)[1], atol=1e-6)


def test_attention_layer_round_trip(tmp_path):
    inputs = keras.Input((5, 8))
    outputs, _ = CausalSelfAttention(num_heads=2)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(5).normal(size=(2, 5, 8)).astype("float32")
    model.save(tmp_path / "a.keras")
    again = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", ["pre", "sasrec"])
def test_both_block_layouts_are_causal_mask_padding_and_round_trip(norm, tmp_path):
    block = CausalSelfAttentionBlock(num_heads=2, norm=norm)
    block.build((None, 5, 8))
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1, 5, 8)).astype("float32")
    changed = x.copy()
    changed[:, 3:] += 10.0
    mask = np.array([[False, True, True, True, True]])
    a, b = np.asarray(block(x, mask=mask)), np.asarray(block(changed, mask=mask))
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-5)
    assert (a[:, 0] == 0).all()
    again = CausalSelfAttentionBlock.from_config(block.get_config())
    assert again.get_config() == block.get_config()


def test_unknown_block_layout():
    with pytest.raises(ValueError, match="`norm` must be"):
        CausalSelfAttentionBlock(norm="post")


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: CausalSelfAttention(num_heads=2),
        lambda: CausalSelfAttentionBlock(num_heads=2, norm="pre"),
        lambda: CausalSelfAttentionBlock(num_heads=2, norm="sasrec"),
    ],
    ids=["attention", "pre-norm block", "sasrec block"],
)
def test_layer_contract(make_layer, tmp_path):
    x = np.random.default_rng(7).normal(size=(3, 5, 8)).astype("float32")
    mask = np.array([[True] * 5, [False, False, True, True, True], [False] * 5])
    check_layer_contract(make_layer, x, mask, tmp_path)

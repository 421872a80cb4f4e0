import keras
import numpy as np
import pytest

from attnrec_tf.layers.causal_self_attention import CausalSelfAttentionBlock


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

import keras
import numpy as np
import pytest

from attnrec_tf.layers.causal_self_attention import CausalSelfAttention, CausalSelfAttentionBlock
from attnrec_tf.layers.relative_position_bias import (
    RelativePositionBias,
    relative_position_buckets,
)
from tests.layers.contract import check_layer_contract


def test_buckets_by_hand():
    # 32 buckets up to 128: 0..15 exact, then 16 + floor(log(d / 16) / log(8) * 16)
    d = np.array([0, 1, 15, 16, 22, 23, 32, 64, 127, 128, 1000, -3])
    # d=22: log(1.375)/log(8)*16 = 2.45 -> 18; d=23: 2.80 -> 18; d=32: 5.33 -> 21;
    # d=64: 10.67 -> 26; d=127: 15.95 -> 31; 128 and beyond: the last bucket; negative: 0
    expected = [0, 1, 15, 16, 18, 18, 21, 26, 31, 31, 31, 0]
    assert relative_position_buckets(d).tolist() == expected
    # 4 buckets up to 8: 0, 1 exact; 2 + floor(log(d / 2) / log(4) * 2)
    small = relative_position_buckets(np.arange(10), num_buckets=4, max_distance=8)
    assert small.tolist() == [0, 1, 2, 2, 3, 3, 3, 3, 3, 3]


def test_bias_is_the_bucket_weight_of_the_distance():
    layer = RelativePositionBias(num_heads=2, num_buckets=4, max_distance=8)
    layer.build((None, 2, 5, 5))
    w = np.array([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0], [4.0, -4.0]], "float32")
    layer.bias.assign(w)
    out = np.asarray(layer(np.zeros((1, 2, 5, 5), "float32")))
    for i in range(5):
        for j in range(5):
            bucket = [0, 1, 2, 2, 3][max(i - j, 0)]
            np.testing.assert_allclose(out[0, :, i, j], w[bucket])
    one_head = RelativePositionBias(num_buckets=4, max_distance=8)
    one_head.build((None, 3, 3))
    one_head.bias.assign(w[:, :1])
    scores = np.ones((2, 3, 3), "float32")
    expected = 1 + np.array([[1, 1, 1], [2, 1, 1], [3, 2, 1]], "float32")
    np.testing.assert_allclose(np.asarray(one_head(scores)), np.broadcast_to(expected, (2, 3, 3)))


def test_a_new_bias_adds_nothing():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    keras.utils.set_random_seed(1)
    plain = CausalSelfAttention(num_heads=2)
    keras.utils.set_random_seed(1)
    biased = CausalSelfAttention(num_heads=2, relative_position_bias=True)
    plain.build(x.shape)
    biased.build(x.shape)
    biased.set_weights(plain.get_weights() + [np.zeros((32, 2), "float32")])
    np.testing.assert_allclose(np.asarray(biased(x)[0]), np.asarray(plain(x)[0]), atol=1e-6)


def test_attention_weights_with_a_recency_bias_by_hand():
    # q = k = 0: equal scores; the bias alone decides: distance 0 -> +log 3, others 0
    layer = CausalSelfAttention(num_heads=1, relative_position_bias=True)
    layer.build((None, 3, 2))
    layer.qkv.kernel.assign(np.zeros((2, 6), "float32"))
    bias = np.zeros((32, 1), "float32")
    bias[0, 0] = np.log(3.0)
    layer.position_bias.bias.assign(bias)
    _, weights = layer(np.ones((1, 3, 2), "float32"))
    expected = [[1, 0, 0], [0.25, 0.75, 0], [0.2, 0.2, 0.6]]
    np.testing.assert_allclose(np.asarray(weights)[0], expected, rtol=1e-5, atol=1e-7)


def test_causal_and_the_same_under_more_left_padding():
    block = CausalSelfAttentionBlock(num_heads=2, relative_position_bias=True)
    block.build((None, 6, 8))
    block.attention.position_bias.bias.assign(
        np.random.default_rng(1).normal(size=(32, 2)).astype("float32")
    )
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 6, 8)).astype("float32")
    changed = x.copy()
    changed[:, 4:] += 10.0  # the future of position 3
    a, b = np.asarray(block(x)), np.asarray(block(changed))
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[:, 4:], b[:, 4:])
    # the last 4 items alone, left-padded to 6: the same outputs as at width 4
    short = np.asarray(block(x[:, 2:]))
    padded = np.concatenate([np.zeros((1, 2, 8), "float32"), x[:, 2:]], axis=1)
    mask = np.array([[False, False, True, True, True, True]])
    np.testing.assert_allclose(np.asarray(block(padded, mask=mask))[:, 2:], short, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`num_buckets` must be"):
        RelativePositionBias(num_buckets=1)
    with pytest.raises(ValueError, match="`max_distance` must be"):
        RelativePositionBias(num_buckets=32, max_distance=16)
    with pytest.raises(ValueError, match="`num_heads` must be"):
        RelativePositionBias(num_heads=0)


def test_config_round_trip():
    layer = RelativePositionBias(num_heads=2, num_buckets=8, max_distance=20)
    config = layer.get_config()
    assert RelativePositionBias.from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "attnrec_tf>RelativePositionBias"


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: CausalSelfAttention(num_heads=2, relative_position_bias=True),
        lambda: CausalSelfAttentionBlock(num_heads=2, norm="sasrec", relative_position_bias=True),
    ],
    ids=["attention", "sasrec block"],
)
def test_layer_contract(make_layer, tmp_path):
    x = np.random.default_rng(7).normal(size=(3, 5, 8)).astype("float32")
    mask = np.array([[True] * 5, [False, False, True, True, True], [False] * 5])
    check_layer_contract(make_layer, x, mask, tmp_path)

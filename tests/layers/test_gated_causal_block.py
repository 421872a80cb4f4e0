import numpy as np
import pytest

from attnrec_tf.layers.gated_causal_block import GatedCausalBlock
from tests.layers.contract import check_layer_contract


def _layer_norm(x):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)


def _dense(layer, x):
    return x @ np.asarray(layer.kernel) + np.asarray(layer.bias)


def _reference(block, x, gate_bias):
    """The block's formula in numpy, one head, no mask, with gates sigmoid(gate_bias)."""
    q, k, v = np.split(_dense(block.attention.qkv, _layer_norm(x)), 3, axis=-1)
    scores = q @ k.T / np.sqrt(x.shape[-1])
    scores = np.where(np.tril(np.ones_like(scores)) > 0, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    gate = 1 / (1 + np.exp(-gate_bias))
    a = x + gate * _dense(block.attention.out, weights @ v)
    w1z, w3z = np.split(_dense(block.ffn_in, _layer_norm(a)), 2, axis=-1)
    swiglu = _dense(block.ffn_out, w1z / (1 + np.exp(-w1z)) * w3z)
    return a + gate * swiglu


@pytest.mark.parametrize("gate_bias", [0.0, 2.0])
def test_block_matches_a_numpy_reference_with_set_gates(gate_bias):
    # zero gate kernels: every gate is sigmoid(gate_bias) (0.5 for bias 0)
    block = GatedCausalBlock(num_heads=1, ffn_multiplier=2)
    block.build((None, 4, 6))
    for gate in (block.attention_gate, block.ffn_gate):
        gate.kernel.assign(np.zeros((6, 6), "float32"))
        gate.bias.assign(np.full((6,), gate_bias, "float32"))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    out = np.asarray(block(x[None]))[0]
    np.testing.assert_allclose(out, _reference(block, x.astype("float64"), gate_bias), atol=1e-4)


def test_closed_gates_give_the_input():
    block = GatedCausalBlock(num_heads=2)
    block.build((None, 5, 8))
    for gate in (block.attention_gate, block.ffn_gate):
        gate.kernel.assign(np.zeros((8, 8), "float32"))
        gate.bias.assign(np.full((8,), -40.0, "float32"))  # sigmoid(-40) ~ 4e-18
    x = np.random.default_rng(1).normal(size=(2, 5, 8)).astype("float32")
    np.testing.assert_allclose(np.asarray(block(x)), x, atol=1e-6)


@pytest.mark.parametrize("relative_position_bias", [False, True])
def test_causal_and_padding_zeroed(relative_position_bias):
    block = GatedCausalBlock(num_heads=2, relative_position_bias=relative_position_bias)
    block.build((None, 5, 8))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 5, 8)).astype("float32")
    changed = x.copy()
    changed[:, 3:] += 10.0  # the future of position 2
    mask = np.array([[False, True, True, True, True]])
    a, b = np.asarray(block(x, mask=mask)), np.asarray(block(changed, mask=mask))
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[:, 3:], b[:, 3:])
    assert (a[:, 0] == 0).all()
    out, weights = block(x, mask=mask, return_attention_scores=True)
    assert tuple(out.shape) == (1, 5, 8) and tuple(weights.shape) == (1, 5, 5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`num_heads` must be a positive integer"):
        GatedCausalBlock(num_heads=0)
    with pytest.raises(ValueError, match="`ffn_multiplier` must be a positive integer"):
        GatedCausalBlock(ffn_multiplier=0)


@pytest.mark.parametrize("relative_position_bias", [False, True])
def test_layer_contract(relative_position_bias, tmp_path):
    x = np.random.default_rng(7).normal(size=(3, 5, 8)).astype("float32")
    mask = np.array([[True] * 5, [False, False, True, True, True], [False] * 5])
    check_layer_contract(
        lambda: GatedCausalBlock(num_heads=2, relative_position_bias=relative_position_bias),
        x,
        mask,
        tmp_path,
    )

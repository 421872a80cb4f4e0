"""The `--block` and `--relative-position-bias` options of the model (issues 22 and 24)."""

import keras
import numpy as np
import pytest

from attnrec_tf.config import Config, preset
from attnrec_tf.errors import ConfigError
from attnrec_tf.layers.causal_self_attention import CausalSelfAttentionBlock
from attnrec_tf.layers.gated_causal_block import GatedCausalBlock
from attnrec_tf.model import AttentionRecommender, build_model

HISTORY = np.array([[0, 0, 0, 3, 4, 5, 6, 7], [0, 0, 0, 0, 0, 0, 0, 11]], "int32")

# Scores of items 1..5 of the seed-0 models of `main` before these options existed (commit
# 8866742, max_len 8, 11 items): with both options off, the weights are created in the same
# order from the same seeded initialisers, so the numbers must not move. ("pooling": the
# default preset's model then, before the default variant became `sasrec`.)
BEFORE = {
    "pooling": [
        [0.017912, 0.014099, -0.014368, 0.009199, -0.022254],
        [-0.027288, -0.024137, 0.008192, 0.019105, -0.024956],
    ],
    "ml-1m": [
        [-0.174683, -0.041668, 0.0492, -0.158715, -0.297783],
        [0.311445, -0.025741, 0.09068, 0.073056, 0.402217],
    ],
}
WEIGHTS_BEFORE = {"pooling": 10, "ml-1m": 31}


@pytest.mark.parametrize("name", ["pooling", "ml-1m"])
def test_options_off_leave_the_models_unchanged(name):
    config = preset("default").replace(variant="pooling") if name == "pooling" else preset(name)
    model = build_model(config.replace(max_len=8, relative_position_bias=False), 12, None)
    assert len(model.weights) == WEIGHTS_BEFORE[name]
    scores = np.asarray(model.score(HISTORY))[:, 1:6]
    np.testing.assert_allclose(scores, BEFORE[name], atol=2e-6)


def _model(**options):
    options = {"relative_position_bias": False, **options}  # the preset's blocks, options off
    config = preset("ml-1m").replace(max_len=8, embedding_dim=8, num_heads=2, **options)
    return build_model(config, 12, None)


def test_the_options_choose_the_blocks():
    plain, ligr = _model(), _model(block="ligr", relative_position_bias=True)
    assert all(type(b) is CausalSelfAttentionBlock for b in plain.blocks)
    assert all(type(b) is GatedCausalBlock for b in ligr.blocks)
    assert all(b.attention.position_bias is None for b in plain.blocks)
    assert all(b.attention.position_bias is not None for b in ligr.blocks)
    # per block: 32 buckets x 2 heads of bias; the gated block's two gates and SwiGLU's W3
    biased = _model(relative_position_bias=True)
    assert biased.count_params() - plain.count_params() == 2 * 32 * 2
    assert ligr.count_params() - biased.count_params() == 2 * (2 * (8 * 8 + 8) + (8 * 8 + 8))


@pytest.mark.parametrize(
    "options",
    [
        {"block": "ligr"},
        {"relative_position_bias": True},
        {"block": "ligr", "relative_position_bias": True, "position_embedding": False},
    ],
)
def test_user_vectors_are_causal_and_models_round_trip(options, tmp_path):
    model = _model(**options)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    rng = np.random.default_rng(1)
    x = rng.integers(1, 12, (16, 8)).astype("int32")
    model.fit(x, np.roll(x, -1, axis=1), epochs=2, batch_size=8, verbose=0)
    changed = x.copy()
    changed[:, 5:] = (x[:, 5:] % 11) + 1  # other items after position 4
    a, b = np.asarray(model(x)), np.asarray(model(changed))
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[:, 5:], b[:, 5:])
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(
        np.asarray(again.score(x)), np.asarray(model.score(x)), rtol=1e-5, atol=1e-5
    )
    assert AttentionRecommender.from_config(model.get_config()).get_config() == model.get_config()


def test_without_positions_a_relative_bias_model_ignores_the_padding_width():
    # no position embedding: only distances matter, so a history reads the same at any width
    model = _model(block="ligr", relative_position_bias=True, position_embedding=False)
    for block in model.blocks:
        bias = np.random.default_rng(3).normal(size=(32, 2)).astype("float32")
        block.attention.position_bias.bias.assign(bias)
    short = np.array([[5, 6, 7]], "int32")
    padded = np.array([[0, 0, 0, 0, 0, 5, 6, 7]], "int32")
    np.testing.assert_allclose(
        np.asarray(model.score(short)), np.asarray(model.score(padded)), atol=1e-5
    )


def test_a_bad_block_names_the_flag():
    with pytest.raises(ConfigError, match="--block must be one of sasrec, ligr, got 'post'"):
        Config().replace(block="post")
    with pytest.raises(ValueError, match="`block` must be one of"):
        AttentionRecommender(vocab_size=5, max_len=3, block="post")


def test_the_explain_tflite_of_the_new_blocks_keeps_its_signature():
    pytest.importorskip("ai_edge_litert")
    from attnrec_tf.export import explain_tflite
    from attnrec_tf.export.litert import SIGNATURE, interpreter

    model = _model(block="ligr", relative_position_bias=True)
    signatures = interpreter(explain_tflite.convert(model, top_k=3)).get_signature_list()
    assert set(signatures) == {SIGNATURE}
    assert sorted(signatures[SIGNATURE]["inputs"]) == ["candidates", "history"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"relative_position_bias": True},
        {"block": "ligr", "relative_position_bias": True},
        {"block_norm": "pre", "relative_position_bias": True},
    ],
)
def test_last_position_only_equals_the_last_row_of_every_position(options):
    """`encode(last_only=True)` (serving, evaluation) runs the last block at the last query
    only; it equals the last row of the full encoding, empty and one-item histories included."""
    rng = np.random.default_rng(0)
    model = _model(**options)
    for weight in model.weights:  # a learned bias, so that the distances matter
        if "relative_position_bias" in weight.path:
            weight.assign(rng.normal(size=weight.shape).astype("float32"))
    history = np.array([[3, 4, 5, 6, 7, 8, 9, 10], [0, 0, 0, 4, 5, 6, 7, 8],
                        [0, 0, 0, 0, 0, 0, 0, 11], [0] * 8], "int32")  # fmt: skip
    user, attention = (np.asarray(t) for t in model.encode(history, training=False))
    last_user, last_attention = model.encode(history, training=False, last_only=True)
    assert tuple(last_user.shape) == (4, 1, 8) and tuple(last_attention.shape) == (4, 1, 8)
    np.testing.assert_allclose(np.asarray(last_user), user[:, -1:], atol=1e-6)
    np.testing.assert_allclose(np.asarray(last_attention), attention[:, -1:], atol=1e-6)
    assert np.abs(user[:, -1]).max() > 0.1  # not trivially zero

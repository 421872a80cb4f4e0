import keras
import numpy as np
import pytest

from attnrec_tf.config import Config
from attnrec_tf.model import AttentionRecommender, build_model

VARIANTS = ["pooling", "self-attention", "sasrec", "mean", "last"]


def _model(variant, features=True):
    rng = np.random.default_rng(0)
    matrix = (rng.random((21, 4)) > 0.5).astype("float32")
    matrix[0] = 0
    config = Config(
        max_len=6,
        variant=variant,
        embedding_dim=8,
        attention_units=4,
        num_heads=2,
        jit_compile=False,
    )
    return build_model(config, 21, matrix if features else None)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fit_save_reload_reproduces_scores(variant, tmp_path):
    model = _model(variant)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    rng = np.random.default_rng(1)
    x = rng.integers(0, 21, (32, 6)).astype("int32")
    before = np.asarray(model.score(x))
    history = model.fit(x, np.roll(x, -1, axis=1), epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = np.asarray(model.score(x))
    assert not np.allclose(before, after)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded.score(x)), after, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_attention_sums_to_one_over_real_positions(variant):
    model = _model(variant)
    x = np.array([[0, 0, 0, 3, 4, 5], [1, 2, 3, 4, 5, 6]], "int32")
    _, attention = model.serve_outputs(x)
    attention = np.asarray(attention)
    np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)
    assert (attention[0, :3] == 0).all()


def test_out_of_range_indices_are_padding():
    model = _model("pooling")
    clean = np.array([[0, 0, 0, 3, 4, 5]], "int32")
    dirty = np.array([[-7, 21, 10**9, 3, 4, 5]], "int32")
    np.testing.assert_allclose(np.asarray(model.score(dirty)), np.asarray(model.score(clean)))


def test_item_features_change_item_representations():
    with_features = _model("pooling", features=True)
    items = np.asarray(with_features.item_representations())
    embedding = np.asarray(with_features.item_embedding.embeddings)
    assert not np.allclose(items[1:], embedding[1:])
    without = _model("pooling", features=False)
    assert without.num_item_features == 0


def test_config_round_trip():
    model = _model("self-attention")
    clone = AttentionRecommender.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("variant", ["pooling", "self-attention", "sasrec"])
def test_a_narrower_batch_computes_what_the_full_width_one_does(variant):
    # Length bucketing cuts a batch to its longest history: positions count from the latest
    # item, so dropping columns that are padding in every row changes nothing.
    model = _model(variant)
    full = np.array([[0, 0, 0, 3, 4, 5], [0, 0, 7, 1, 2, 9]], "int32")
    user_full, _ = model.encode(full)
    user_cut, _ = model.encode(full[:, 2:])
    np.testing.assert_allclose(
        np.asarray(user_cut), np.asarray(user_full)[:, 2:], rtol=1e-5, atol=1e-6
    )


def test_sasrec_user_vector_is_the_last_block_output():
    model = _model("sasrec", features=False)
    assert model.projection is None and model.pooling is None and len(model.blocks) == 2
    x = np.array([[0, 0, 3, 4, 5, 6]], "int32")
    history = model._clean(x)
    mask = history > 0
    h, weights = model.contextualize(model.embed(history, mask), mask)
    scores, attention = model.serve_outputs(x)
    items = np.asarray(model.item_representations())
    np.testing.assert_allclose(
        np.asarray(scores), np.asarray(h)[:, -1] @ items.T, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(attention), np.asarray(weights)[:, -1], atol=1e-7)


def test_embedding_scale_multiplies_the_history_embeddings_by_sqrt_dim():
    config = Config(max_len=4, variant="sasrec", embedding_dim=16, num_blocks=0)
    plain = build_model(config, 11, None)
    scaled = build_model(config.replace(embedding_scale=True), 11, None)
    x = np.array([[0, 1, 2, 3]], "int32")
    mask = x > 0
    items = np.asarray(plain.item_representations(x))
    positions = np.asarray(plain.positions.embeddings)[None]
    np.testing.assert_allclose(
        np.asarray(plain.embed(x, mask)), (items + positions) * mask[..., None], atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(scaled.embed(x, mask)), (items * 4.0 + positions) * mask[..., None], atol=1e-6
    )


def _hand_set_pooling_model():
    """A tiny `pooling` model (5 items, L = 4, D = 2, 2 attention units) with hand-set weights."""
    model = AttentionRecommender(
        vocab_size=6, max_len=4, embedding_dim=2, attention_units=2, dropout=0.0
    )
    model.build()
    model.item_embedding.embeddings.assign(
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5], [0.5, -1.0]]
    )
    model.positions.embeddings.assign([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0], [0.0, -0.1]])
    pooling = model.pooling
    pooling.kernel.assign([[1.0, -0.5], [0.5, 2.0]])  # W, (D, units)
    pooling.bias.assign([0.1, -0.2])  # b
    pooling.score_kernel.assign([1.5, -1.0])  # v
    projection = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5], [0.25, 0.75]], "float32")
    model.projection.kernel.assign(projection)  # ([u ; h_L]) (2D) -> D
    model.projection.bias.assign([0.05, -0.05])
    return model


def test_pooling_scores_match_a_numpy_reference_of_the_readme_formula():
    model = _hand_set_pooling_model()
    history = np.array([[0, 3, 1, 4], [0, 0, 0, 2], [5, 2, 2, 1]], "int32")
    E = np.asarray(model.item_embedding.embeddings, "float64")
    P = np.asarray(model.positions.embeddings, "float64")
    W, b = np.asarray(model.pooling.kernel, "float64"), np.asarray(model.pooling.bias, "float64")
    v = np.asarray(model.pooling.score_kernel, "float64")
    K, c = np.asarray(model.projection.kernel), np.asarray(model.projection.bias)
    expected = []
    for row in history:
        real = row > 0
        h = E[row] + P  # embed h_1..h_L (L = max_len: positions 0..3)
        e = np.tanh(h @ W + b) @ v  # e_i = v^T tanh(W h_i + b)
        a = np.where(real, np.exp(e - e[real].max()), 0.0)
        a = a / a.sum()  # softmax over the real positions
        u = (a[:, None] * h).sum(axis=0)  # u = sum a_i h_i
        u = np.concatenate([u, h[-1]]) @ K + c  # the projection, with the latest state h_L
        expected.append(u @ E.T)  # scores = u . items^T
    scores, attention = model.serve_outputs(history)
    np.testing.assert_allclose(np.asarray(scores), np.array(expected), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(attention)[history == 0] == 0)


def test_loss_denominator_divides_the_summed_loss():
    """With `loss_denominator` d (length buckets), the loss is sum over real positions / d."""
    model = _hand_set_pooling_model()
    x = np.array([[0, 3, 1, 4], [0, 0, 0, 2]], "int32")
    y = np.array([[3, 1, 4, 5], [0, 0, 2, 3]], "int32")  # next items; 0 = no target
    user = np.asarray(model(x), "float64")  # (B, L, D)
    real_items = np.asarray(model.item_embedding.embeddings, "float64")[1:]  # padding left out
    logits = user[y > 0] @ real_items.T  # (N, V-1)
    labels = y[y > 0] - 1
    log_norm = np.log(np.exp(logits).sum(axis=1))
    per_position = log_norm - logits[np.arange(len(labels)), labels]  # (N,) = 5 positions
    mean = float(np.asarray(model.compute_loss(x, y, model(x))))
    np.testing.assert_allclose(mean, per_position.mean(), rtol=1e-6)
    model.loss_denominator = 8.0
    summed = float(np.asarray(model.compute_loss(x, y, model(x))))
    np.testing.assert_allclose(summed, per_position.sum() / 8.0, rtol=1e-6)

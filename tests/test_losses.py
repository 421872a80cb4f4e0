import math

import numpy as np
import tensorflow as tf

from attnrec_tf import losses
from attnrec_tf.config import Config
from attnrec_tf.model import build_model


def test_full_softmax_hand_computed():
    items = tf.constant([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    user = tf.constant([[2.0, 0.0]])
    # logits over items 1..3: 2, 0, 2 (item 0 is padding and ignored)
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(2)))
    got = float(losses.full_softmax_loss(user, tf.constant([1]), items))
    assert abs(got - expected) < 1e-5


def test_sampled_softmax_with_whole_catalog_equals_full_softmax():
    rng = np.random.default_rng(0)
    items = tf.constant(rng.normal(size=(6, 3)), tf.float32)
    user = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    labels = tf.constant([1, 2, 5, 3])
    log_q = tf.constant(np.log(np.full(6, 1 / 5)), tf.float32)  # uniform: the correction cancels
    negatives = tf.constant(
        [1, 2, 3, 4, 5]
    )  # every item; each row's own target is an accidental hit
    sampled = losses.sampled_softmax_loss(
        user, labels, lambda idx: tf.gather(items, idx), log_q, negatives
    )
    full = losses.full_softmax_loss(user, labels, items)
    np.testing.assert_allclose(float(sampled), float(full), rtol=1e-5)


def test_log_q_correction_is_applied():
    items = tf.constant([[0.0], [1.0], [1.0]])
    user = tf.constant([[1.0]])
    log_q = tf.math.log(tf.constant([1e-9, 0.9, 0.1]))
    loss = losses.sampled_softmax_loss(
        user, tf.constant([1]), lambda idx: tf.gather(items, idx), log_q, tf.constant([2])
    )
    # logits: target 1 - log(0.9), negative 1 - log(0.1)
    a, b = 1 - math.log(0.9), 1 - math.log(0.1)
    assert abs(float(loss) - (-a + math.log(math.exp(a) + math.exp(b)))) < 1e-5


def test_sample_negatives_follows_q():
    log_q = tf.math.log(tf.constant([0.0, 0.7, 0.2, 0.1]) + 1e-30)
    draws = losses.sample_negatives(log_q, 20000, tf.constant([1, 2])).numpy()
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert freq[0] == 0
    np.testing.assert_allclose(freq[1:], [0.7, 0.2, 0.1], atol=0.02)


def test_model_trains_with_sampled_loss():
    config = Config(max_len=5, embedding_dim=8, attention_units=4, loss="sampled", num_negatives=16)
    model = build_model(config, 50, None, item_counts=np.arange(50))
    model.compile(optimizer="adam")
    rng = np.random.default_rng(0)
    x = rng.integers(1, 50, (64, 5)).astype("int32")
    history = model.fit(x, np.roll(x, -1, 1), epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert float(model.item_log_q[0]) < -1e8


def test_weighted_losses_ignore_zero_weight_rows():
    rng = np.random.default_rng(3)
    items = tf.constant(rng.normal(size=(6, 3)), tf.float32)
    user = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    labels = tf.constant([1, 2, 0, 3])  # row 2 is padding
    weights = tf.constant([1.0, 1.0, 0.0, 1.0])
    keep = [0, 1, 3]
    dense = losses.full_softmax_loss(user, labels, items, weights=weights)
    packed = losses.full_softmax_loss(tf.gather(user, keep), tf.gather(labels, keep), items)
    np.testing.assert_allclose(float(dense), float(packed), rtol=1e-6)


def test_full_softmax_value_and_gradients_equal_the_plain_formula():
    rng = np.random.default_rng(3)
    user = tf.constant(rng.normal(size=(5, 3)), tf.float32)
    items = tf.constant(rng.normal(size=(7, 3)), tf.float32)
    labels = tf.constant([1, 6, 2, 0, 3])  # row 3 is padding (weight 0)
    weights = tf.constant([1.0, 1.0, 0.5, 0.0, 2.0])

    def plain(u, i):
        logits = tf.matmul(u, i[1:], transpose_b=True)  # padding column left out
        per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(labels - 1, 0), logits)
        return tf.reduce_sum(per_row * weights) / tf.reduce_sum(weights)

    results = []
    for loss in (plain, lambda u, i: losses.full_softmax_loss(u, labels, i, weights)):
        with tf.GradientTape() as tape:
            tape.watch([user, items])
            value = 3.0 * loss(user, items)
        results.append([value, *tape.gradient(value, [user, items])])
    for got, want in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(results[1][2])[0] == 0)  # the padding row gets no gradient

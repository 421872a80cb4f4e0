"""Next-item losses over the catalog: full softmax and sampled softmax with logQ correction.

Both take user vectors at the real positions `(N, D)`, their next items `(N,)` and a function that
returns item vectors for given indices, so neither needs the whole item table unless it ranks the
whole catalog.

Example:

>>> import tensorflow as tf
>>> items = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
>>> user = tf.constant([[5.0, 0.0]])
>>> round(float(full_softmax_loss(user, tf.constant([1]), items)), 4)  # log(1 + e^-5)
0.0067
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

ItemLookup = Callable[[tf.Tensor], tf.Tensor]


def weighted_mean(values: tf.Tensor, weights: tf.Tensor | None) -> tf.Tensor:
    """Mean of `values`, or their `weights`-weighted mean (0 when every weight is 0)."""
    if weights is None:
        return tf.reduce_mean(values)
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def full_softmax_loss(
    user: tf.Tensor, labels: tf.Tensor, items: tf.Tensor, weights: tf.Tensor | None = None
) -> tf.Tensor:
    """Mean softmax cross-entropy over every item of the catalog (index 0, padding, excluded).

    The value and gradients are those of `sparse_softmax_cross_entropy_with_logits` over
    `user @ items[1:]^T`, computed with one pass less over the `(N, V)` logits: the kernel's own
    backprop (`softmax - onehot`) is kept from the forward pass, and the scale of the mean (and
    the weights) is applied to the `(N, D)` and `(V, D)` factors instead of the `(N, V)` matrix.
    Padding is left out by slicing the table rather than by adding a large negative.

    Args:
        user: `(N, D)` float32 user vectors.
        labels: `(N,)` int32 next items in `1..V-1`.
        items: `(V, D)` float32 item representations.
        weights: optional `(N,)` weights (0 for padding rows).

    Returns:
        A scalar loss.
    """
    if weights is None:
        weights = tf.ones_like(user[:, 0])
    return _softmax_cross_entropy(user, tf.cast(labels, tf.int32), items, weights)


@tf.custom_gradient
def _softmax_cross_entropy(
    user: tf.Tensor, labels: tf.Tensor, items: tf.Tensor, weights: tf.Tensor
) -> tuple[tf.Tensor, Callable[[tf.Tensor], tuple[Any, ...]]]:
    real = items[1:]  # (V-1, D)
    logits = tf.matmul(user, real, transpose_b=True)  # (N, V-1)
    # Labels of padding rows (weight 0) may be 0; any in-range class does.
    classes = tf.maximum(labels - 1, 0)
    losses, backprop = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
        features=logits, labels=classes
    )  # (N,), (N, V-1) = softmax - onehot
    total = tf.maximum(tf.reduce_sum(weights), 1.0)
    loss = tf.reduce_sum(losses * weights) / total

    def grad(upstream: tf.Tensor) -> tuple[Any, ...]:
        scale = (upstream * weights / total)[:, None]  # (N, 1)
        d_user = tf.matmul(backprop, real) * scale  # (N, D)
        d_real = tf.matmul(backprop, user * scale, transpose_a=True)  # (V-1, D)
        d_items = tf.concat([tf.zeros_like(items[:1]), d_real], axis=0)
        return d_user, None, d_items, None

    return loss, grad


def sample_negatives(log_q: tf.Tensor, num_negatives: int, seed: tf.Tensor) -> tf.Tensor:
    """Draws `num_negatives` item indices from `exp(log_q)` by inverse CDF, O(V + K log V).

    Args:
        log_q: `(V,)` log sampling probabilities (index 0 should have probability 0).
        num_negatives: K.
        seed: `(2,)` int32 stateless seed.

    Returns:
        `(K,)` int32 indices.
    """
    cdf = tf.cumsum(tf.exp(log_q))
    uniform = tf.random.stateless_uniform([num_negatives], seed, maxval=cdf[-1])
    indices = tf.searchsorted(cdf, uniform, side="right")
    return tf.cast(tf.minimum(indices, tf.shape(log_q)[0] - 1), tf.int32)


def sampled_softmax_loss(
    user: tf.Tensor,
    labels: tf.Tensor,
    lookup: ItemLookup,
    log_q: tf.Tensor,
    negatives: tf.Tensor,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """Softmax cross-entropy over the target and K shared sampled negatives, logQ-corrected.

    Each logit is `u . e_j - log Q(j)` (Yi et al., RecSys 2019; Bengio & Senecal 2008), which
    makes the sampled softmax an unbiased-in-the-limit estimate of the full one when negatives
    are drawn from Q; a negative equal to the row's target ("accidental hit") is removed.

    Args:
        user: `(N, D)` float32 user vectors.
        labels: `(N,)` int32 targets.
        lookup: indices -> `(..., D)` float32 item vectors.
        log_q: `(V,)` log sampling probabilities.
        negatives: `(K,)` int32 sampled negatives shared by the batch.
        weights: optional `(N,)` weights (0 for padding rows).

    Returns:
        A scalar loss.
    """
    positive = tf.reduce_sum(user * lookup(labels), axis=-1) - tf.gather(log_q, labels)  # (N,)
    negative = tf.matmul(user, lookup(negatives), transpose_b=True)  # (N, K)
    negative = negative - tf.gather(log_q, negatives)[None, :]
    hit = tf.equal(labels[:, None], negatives[None, :])
    negative = tf.where(hit, tf.fill(tf.shape(negative), -1e9), negative)
    logits = tf.concat([positive[:, None], negative], axis=1)  # (N, 1 + K)
    zeros = tf.zeros_like(labels)
    return weighted_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(zeros, logits), weights)

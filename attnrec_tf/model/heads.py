"""The heads: history states `(B, L, D)` -> user vectors after every position `(B, L, D)`.

Each head returns `(user, attention)`: `user[:, t]` covers positions `<= t` only (training scores
every position at once), and `attention[:, t]` `(B, L, L)` says how much each position counted.
The model then concatenates `h_t` (`concat_last`) and applies its projection (see
`attention_recommender.py`).

- `attention_pooling_head` (variants `pooling` and `self-attention`), the founding head:
  `u_t = sum_{i <= t} a_{t,i} h_i` with `a_{t,.} = softmax over real i <= t of v^T tanh(W h_i + b)`.
- `sasrec_head`: the last block's output itself, `u_t = h_t` (SASRec); attention is the last
  block's self-attention.
- `last_head`: `u_t = h_t`, a function of the latest item only (a baseline).
- `mean_head`: `u_t = mean of the real h_i, i <= t` (a baseline).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from attnrec_tf.layers.attention_pooling import AttentionPooling
from attnrec_tf.layers.masking import causal_mask


def attention_pooling_head(
    pooling: AttentionPooling, h: Any, mask: Any, training: bool | None = None
) -> tuple[Any, Any]:
    """Causal additive attention pooling of every prefix: `(B, L, D)`, `(B, L, L)`."""
    return pooling(h, mask=mask, training=training)  # (B, L, D), (B, L, L)


def sasrec_head(h: Any, block_attention: Any) -> tuple[Any, Any]:
    """The block output at each position and the last block's attention (SASRec)."""
    return h, block_attention  # (B, L, D), (B, L, L)


def last_head(h: Any, mask: Any) -> tuple[Any, Any]:
    """`u_t = h_t`; attention is the identity on real positions."""
    float_mask = ops.expand_dims(ops.cast(mask, h.dtype), -1)  # (B, L, 1)
    eye = ops.eye(ops.shape(h)[1], dtype=h.dtype)  # (L, L)
    return h, ops.expand_dims(eye, 0) * ops.transpose(float_mask, (0, 2, 1))  # (B, L, L)


def mean_head(h: Any, mask: Any) -> tuple[Any, Any]:
    """`u_t` = the mean of the real `h_i`, `i <= t` (padding rows of `h` are zero)."""
    float_mask = ops.expand_dims(ops.cast(mask, h.dtype), -1)  # (B, L, 1)
    counts = ops.maximum(ops.cumsum(float_mask, axis=1), 1.0)  # (B, L, 1)
    user = ops.cumsum(h, axis=1) / counts  # (B, L, D)
    weights = ops.cast(causal_mask(ops.shape(h)[1], mask), h.dtype)  # (B, L, L)
    return user, weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)

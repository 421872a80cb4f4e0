"""The masked softmax and the causal mask that every attention of attnrec_tf uses.

`masked_softmax(scores, valid)` is the softmax of `scores` over the last axis, restricted to the
entries where `valid` is True: those weights sum to 1, every other weight is exactly 0, and a row
with no valid entry gives all-zero weights (finite, never NaN), as Keras's masked softmax does.

Two fills for the masked entries, with equal weights on every row that has a valid entry:

- `fill="minimum"` (default, every inference graph): masked entries take the row's smallest
  score, then the exponentials are multiplied by the mask and divided by their sum. No value
  outside the scores' own range enters the graph, so a full-integer (int8) TFLite file keeps
  its resolution (a large negative constant would stretch the tensor's int8 range), and the
  normalisation stays a `DIV` op, which the int8 export keeps in float32 (LiteRT's int8 `DIV`
  is wrong for small quotients; docs/tflite-notes.md).
- `fill="large_negative"` (training): Keras's form, one fused softmax over the scores with the
  masked entries set to `-1e9` (`-65504` in float16), times the mask.

`causal_mask(length, mask)` is the `(B or 1, L, L)` mask of a causal attention: query `t` sees
key `i` when `i <= t` and key `i` is a real (non-padding) position.
"""

from __future__ import annotations

from typing import Any

from keras import backend, ops

FILLS = ("minimum", "large_negative")


def large_negative(dtype: Any) -> float:
    """The masked-score constant of `fill="large_negative"`: finite in float16 too."""
    return -65504.0 if backend.standardize_dtype(dtype) == "float16" else -1e9


def masked_softmax(scores: Any, valid: Any, *, fill: str = "minimum") -> Any:
    """Softmax of `scores` over the last axis where `valid`, exactly 0 elsewhere.

    Args:
        scores: `(..., T, L)` float tensor; a `(..., 1, L)` one (one score per key, shared by
            every query, as in `AttentionPooling`) is broadcast against `valid`.
        valid: bool tensor broadcastable with `scores`, True where a key may be attended to.
        fill: str. What the masked entries become before the exponential: `"minimum"`, the
            row's smallest score (int8-friendly; the row minimum is taken before broadcasting),
            or `"large_negative"`, `large_negative(dtype)` with one fused softmax (Keras's
            form, for training). Defaults to `"minimum"`.

    Returns:
        `(..., T, L)` weights (the broadcast shape of `scores` and `valid`). A row with no
        valid entry is all zeros.

    Example:

    >>> import numpy as np
    >>> w = masked_softmax(np.array([[0.0, 1.0, 5.0]]), np.array([[True, True, False]]))
    >>> np.round(np.asarray(w), 4).tolist()
    [[0.2689, 0.7311, 0.0]]
    """
    valid = ops.cast(valid, "bool")
    if fill == "large_negative":
        negative = ops.full_like(scores, large_negative(scores.dtype))
        weights = ops.softmax(ops.where(valid, scores, negative), axis=-1)  # (..., T, L)
        return weights * ops.cast(valid, weights.dtype)
    if fill != "minimum":
        raise ValueError(f"`fill` must be one of {FILLS}. Received: fill={fill!r}")
    floor = ops.min(scores, axis=-1, keepdims=True)  # (..., 1 or T, 1)
    masked = ops.where(valid, scores, floor)  # (..., T, L)
    # Written out (`ops.softmax` warns on the length-1 axis of a one-item history).
    exp = ops.exp(masked - ops.max(masked, axis=-1, keepdims=True)) * ops.cast(valid, scores.dtype)
    total = ops.sum(exp, axis=-1, keepdims=True)  # >= 1 when the row has a valid entry
    return exp / ops.where(total > 0, total, ops.ones_like(total))  # a DIV (see above)


def causal_mask(length: Any, mask: Any = None, queries: Any = None) -> Any:
    """`(B or 1, Q, L)` bool: query `t` may attend to key `i` when `i <= t` and key `i` is real.

    Args:
        length: int or scalar int tensor, `L` (the keys).
        mask: optional `(B, L)` bool tensor, True on real positions; None: every key is real.
        queries: int or scalar int tensor `Q <= L`: the queries are the last `Q` positions
            (a causal model's output at the last position needs the last query only); None:
            every position (`Q = L`).

    Returns:
        `(1, Q, L)` without `mask`, else `(B, Q, L)`.

    Example:

    >>> import numpy as np
    >>> np.asarray(causal_mask(3, np.array([[False, True, True]]))).astype(int).tolist()
    [[[0, 0, 0], [0, 1, 0], [0, 1, 1]]]
    """
    positions = ops.arange(length)
    rows = positions if queries is None else ops.arange(length - queries, length)  # (Q,)
    past = ops.expand_dims(rows[:, None] >= positions[None, :], 0)  # (1, Q, L)
    if mask is None:
        return past
    return ops.logical_and(past, ops.expand_dims(ops.cast(mask, "bool"), 1))  # (B, Q, L)

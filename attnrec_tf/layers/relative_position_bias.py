"""A learned attention bias by the distance between query and key, in log-spaced buckets.

For a causal attention over `L` positions, query `i` and key `j <= i` are `d = i - j` positions
apart. `relative_position_buckets` maps `d` to one of `num_buckets` buckets, T5's
unidirectional scheme (Raffel et al. 2020; HSTU uses the same): the first `num_buckets // 2`
distances have a bucket each, the larger ones share buckets whose width grows logarithmically up
to `max_distance`, and every distance from `max_distance` on falls in the last bucket.
`RelativePositionBias` learns one scalar per bucket and head and adds it to the attention
logits, before the causal mask (the mask then sets the weights of future keys to 0 anyway).

Histories are left-padded, so the distance between two real items is the difference of their
columns: the bias depends on how recent a key is relative to the query, never on where the
window starts or on how much padding it has.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops


def relative_position_buckets(
    distance: np.ndarray, num_buckets: int = 32, max_distance: int = 128
) -> np.ndarray:
    """The bucket of each non-negative distance (negative ones count as 0).

    Args:
        distance: int array of distances `i - j`.
        num_buckets: int. Buckets in all; the first `num_buckets // 2` are exact. Defaults to `32`.
        max_distance: int. The smallest distance of the last bucket, more than
            `num_buckets // 2`. Defaults to `128`.

    Returns:
        int32 array of `distance`'s shape, values in `[0, num_buckets)`: `d` itself for
        `d < num_buckets // 2`, else `exact + floor(log(d / exact) / log(max_distance / exact)
        * (num_buckets - exact))`, at most `num_buckets - 1`.

    Example:

    >>> relative_position_buckets(np.array([0, 15, 16, 32, 64, 127, 128, 500])).tolist()
    [0, 15, 16, 21, 26, 31, 31, 31]
    """
    exact = num_buckets // 2
    d = np.maximum(np.asarray(distance, dtype=np.int64), 0)
    ratio = np.log(np.maximum(d, 1) / exact) / math.log(max_distance / exact)
    with np.errstate(invalid="ignore"):
        large = exact + np.floor(ratio * (num_buckets - exact) + 1e-9).astype(np.int64)
    buckets = np.where(d < exact, d, np.minimum(large, num_buckets - 1))
    return buckets.astype(np.int32)


@keras.saving.register_keras_serializable(package="attnrec_tf")
class RelativePositionBias(keras.layers.Layer):
    """Adds a learned per-head bias by query-key distance bucket to attention scores.

    Args:
        num_heads: int. Heads of the scores; one scalar per bucket and head. Defaults to `1`.
        num_buckets: int. Distance buckets (`relative_position_buckets`). Defaults to `32`.
        max_distance: int. Distances from here on share the last bucket. Defaults to `128`.

    Call arguments:
        scores: `(batch, heads, queries, length)` attention logits, or `(batch, queries,
            length)` when `num_heads` is 1; key `j` is column `j`, and the queries are the
            last `queries` positions (row `r` is position `length - queries + r`; all of them
            when `queries == length`).

    Returns:
        `scores + bias`, same shape: `bias[h, i, j] = w[bucket(i - j), h]`. The weights start at
        zero, so a new layer adds nothing.

    Example:

    >>> layer = RelativePositionBias()
    >>> tuple(layer(np.zeros((2, 4, 4), "float32")).shape)
    (2, 4, 4)

    References:
        - Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
          Transformer", JMLR 2020 (T5's relative attention bias).
        - Zhai et al., "Actions Speak Louder than Words" (HSTU), ICML 2024.
    """

    def __init__(
        self, num_heads: int = 1, num_buckets: int = 32, max_distance: int = 128, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(
                f"`num_heads` must be a positive integer. Received: num_heads={num_heads}"
            )
        if not isinstance(num_buckets, int) or num_buckets < 2:
            raise ValueError(
                f"`num_buckets` must be an integer >= 2. Received: num_buckets={num_buckets}"
            )
        if not isinstance(max_distance, int) or max_distance <= num_buckets // 2:
            raise ValueError(
                "`max_distance` must be an integer > num_buckets // 2. "
                f"Received: max_distance={max_distance}"
            )
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        # bucket of every distance 0..max_distance (larger ones are clipped to max_distance)
        self._table = relative_position_buckets(
            np.arange(max_distance + 1), num_buckets, max_distance
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.bias = self.add_weight(
            shape=(self.num_buckets, self.num_heads), initializer="zeros", name="bias"
        )
        self.built = True

    def call(self, scores: Any) -> Any:
        length, queries = ops.shape(scores)[-1], ops.shape(scores)[-2]
        rows = ops.arange(length - queries, length)  # (Q,) the last Q positions
        distance = ops.clip(rows[:, None] - ops.arange(length)[None, :], 0, self.max_distance)
        buckets = ops.take(ops.convert_to_tensor(self._table), distance, axis=0)  # (Q, L)
        bias = ops.take(ops.cast(self.bias, scores.dtype), buckets, axis=0)  # (Q, L, H)
        bias = ops.transpose(bias, (2, 0, 1))  # (H, Q, L)
        if len(scores.shape) == 3:  # one head, no head axis
            bias = bias[0]  # (Q, L)
        return scores + bias

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, num_buckets=self.num_buckets, max_distance=self.max_distance
        )
        return config

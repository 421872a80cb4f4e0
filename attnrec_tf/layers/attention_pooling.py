"""Additive attention pooling over a sequence of item embeddings."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from attnrec_tf.layers.masking import causal_mask, masked_softmax


@keras.saving.register_keras_serializable(package="attnrec_tf")
class AttentionPooling(keras.layers.Layer):
    """Pools a sequence `(B, L, D)` into `(B, D)` with additive attention.

    Each position gets a score `e_i = v^T tanh(W h_i + b)`, or, given a target
    query `q` (DIN-style target attention), `e_i = v^T tanh(W h_i + U q + b)`.
    The weights `a = softmax(e)` run over the real (non-padding) positions only
    and the output is `sum_i a_i h_i`. Padding positions get a weight of exactly
    0 and a sequence without any real position pools to zeros (never NaN).

    With `causal=True` the layer pools every prefix in one pass, as needed to
    train on every position of a sequence at once: output `t` is
    `sum_{i <= t} a_{t,i} h_i` with `a_{t,.} = softmax over real i <= t of e_i`.
    The scores are computed once, `(B, L)`, and broadcast to `(B, L, L)`.

    Args:
        units: int. Width of the hidden layer of the scoring network (rows of
            `W`). Defaults to `64`.
        causal: bool. If `True`, pool every prefix: output `(B, L, D)` and
            attention `(B, L, L)`. Cannot be combined with a `query`.
            Defaults to `False`.
        return_attention_scores: bool. If `True`, `call` returns
            `(output, attention)`. Defaults to `False`.
        dropout: float in `[0, 1)`. Dropout rate on the attention weights,
            applied in training only. Defaults to `0.0`.
        use_bias: bool. Whether the scoring network has the bias `b`.
            Defaults to `True`.
        kernel_initializer: Initializer of `W`, `U` and `v`.
            Defaults to `"glorot_uniform"`.
        bias_initializer: Initializer of `b`. Defaults to `"zeros"`.
        kernel_regularizer: Regularizer of `W`, `U` and `v`. Defaults to `None`.
        **kwargs: Base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float tensor `(B, L, D)`.
        mask: optional bool tensor `(B, L)`, `True` at real positions. Filled
            in by Keras from an upstream `Embedding(mask_zero=True)`. Without a
            mask every position is real.
        query: optional float tensor `(B, Dq)`, the target of DIN-style target
            attention. A layer built with a query must be called with one.
        training: bool. Whether dropout is active.

    Returns:
        The pooled tensor, `(B, D)` (or `(B, L, D)` if `causal`). With
        `return_attention_scores=True`, a tuple `(output, attention)` where
        `attention` is `(B, L)` (or `(B, L, L)` if `causal`), taken before
        dropout.

    Example:

    ```python
    items = keras.Input((20,), dtype="int32")  # item indices, 0 = padding
    target = keras.Input((32,))
    x = keras.layers.Embedding(1000, 32, mask_zero=True)(items)  # (None, 20, 32)
    user = AttentionPooling(units=16)(x)  # (None, 32)
    din_user = AttentionPooling(units=16)(x, query=target)  # (None, 32)
    prefixes = AttentionPooling(units=16, causal=True)(x)  # (None, 20, 32)
    ```

    References:
        - [Bahdanau et al., 2015](https://arxiv.org/abs/1409.0473), additive attention.
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), DIN, target attention.
        - [Kang & McAuley, 2018](https://arxiv.org/abs/1808.09781), SASRec, causal training.
    """

    def __init__(
        self,
        units: int = 64,
        causal: bool = False,
        return_attention_scores: bool = False,
        dropout: float = 0.0,
        use_bias: bool = True,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout}")
        self.units = units
        self.causal = bool(causal)
        self.return_attention_scores = bool(return_attention_scores)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True
        self._dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, inputs_shape: tuple, query_shape: tuple | None = None) -> None:
        if self.causal and query_shape is not None:
            raise ValueError(_CAUSAL_QUERY_ERROR)
        dim = inputs_shape[-1]
        self.kernel = self._add_kernel("kernel", (dim, self.units))  # W
        self.query_kernel = None  # U
        if query_shape is not None:
            self.query_kernel = self._add_kernel("query_kernel", (query_shape[-1], self.units))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer
            )
        self.score_kernel = self._add_kernel("score_kernel", (self.units,))  # v

    def _add_kernel(self, name: str, shape: tuple) -> keras.Variable:
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )

    def call(self, inputs, mask=None, query=None, training=None):
        if self.causal and query is not None:
            raise ValueError(_CAUSAL_QUERY_ERROR)
        if (query is None) != (self.query_kernel is None):
            raise ValueError(
                "AttentionPooling must be called with a `query` if and only if it was built "
                f"with one. Built with a query: {self.query_kernel is not None}; "
                f"called with a query: {query is not None}."
            )
        if mask is None:
            # Keras fills `mask` in only when `inputs` is the sole tensor argument.
            mask = getattr(inputs, "_keras_mask", None)
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        mask = ops.cast(mask, "bool")  # (B, L)

        scores = self._calculate_scores(inputs, query)  # (B, L)
        if self.causal:
            valid = causal_mask(ops.shape(inputs)[1], mask)  # (B, L, L), row t: real i <= t
        else:
            valid = ops.expand_dims(mask, 1)  # (B, 1, L)
        outputs, weights = self._apply_scores(scores, valid, inputs, training)
        if not self.causal:
            outputs, weights = outputs[:, 0, :], weights[:, 0, :]  # (B, D), (B, L)
        if self.return_attention_scores:
            return outputs, weights
        return outputs

    def _calculate_scores(self, inputs, query):
        """Additive scores `e_i = v^T tanh(W h_i [+ U q] + b)`, shape `(B, L)`."""
        hidden = ops.matmul(inputs, self.kernel)  # (B, L, units)
        if query is not None:
            hidden = hidden + ops.matmul(query, self.query_kernel)[:, None, :]
        if self.bias is not None:
            hidden = hidden + self.bias
        return ops.matmul(ops.tanh(hidden), self.score_kernel)  # (B, L)

    def _apply_scores(self, scores, valid, inputs, training):
        """Masked softmax of `scores` (B, L) under `valid` (B, T, L), then `weights @ inputs`.

        The softmax is `masked_softmax` with the row-minimum fill: padding takes the row's
        smallest score instead of a large negative constant (exact in float16, and a quantised
        int8 graph keeps its scale); the mask then zeroes padding exactly.
        """
        weights = masked_softmax(ops.expand_dims(scores, 1), valid)  # (B, T, L)
        dropped = self._dropout_layer(weights, training=training)
        return ops.matmul(dropped, inputs), weights  # (B, T, D), (B, T, L)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, inputs_shape: tuple, query_shape: tuple | None = None):
        batch, seq_len, dim = inputs_shape
        output_shape: tuple[int | None, ...]
        attention_shape: tuple[int | None, ...]
        if self.causal:
            output_shape, attention_shape = (batch, seq_len, dim), (batch, seq_len, seq_len)
        else:
            output_shape, attention_shape = (batch, dim), (batch, seq_len)
        if self.return_attention_scores:
            return output_shape, attention_shape
        return output_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            causal=self.causal,
            return_attention_scores=self.return_attention_scores,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config


_CAUSAL_QUERY_ERROR = (
    "AttentionPooling with `causal=True` does not support a `query`: target attention pools "
    "the whole sequence once per target. Use `causal=False` with a query."
)

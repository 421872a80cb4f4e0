"""Causal self-attention written with `keras.ops`, and the pre-norm encoder block built on it.

`CausalSelfAttention` is scaled dot-product attention over the past and present positions of a
sequence: `softmax(Q K^T / sqrt(W))` masked by `masking.causal_mask`, then `@ V`. Its inference
softmax is `masking.masked_softmax` with the row-minimum fill (no large negative constant in an
int8 graph, unlike Keras's `MultiHeadAttention`); in training it is Keras's fused softmax over
scores masked with a large negative (`fill="large_negative"`), equal on every query with a real key.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from attnrec_tf.layers.masking import causal_mask, masked_softmax
from attnrec_tf.layers.relative_position_bias import RelativePositionBias


def _check_heads_and_dropout(num_heads: Any, dropout: Any) -> None:
    if not isinstance(num_heads, int) or num_heads <= 0:
        raise ValueError(f"`num_heads` must be a positive integer. Received: num_heads={num_heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")


@keras.saving.register_keras_serializable(package="attnrec_tf")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product self-attention over past and present positions.

    Args:
        num_heads: int. Attention heads; the input width must be divisible by it.
        dropout: float. Dropout on the attention weights. Defaults to `0.0`.
        kernel_initializer: Initializer of the output kernel. Defaults to `"glorot_uniform"`.
        qkv_initializer: Initializer of the fused query/key/value kernel. Defaults to
            `"glorot_uniform"` (as PyTorch's `MultiheadAttention`): a small-scale query/key
            start gives near-uniform attention whose gradients are small too.
        relative_position_bias: bool. Add a learned bias by query-key distance to the scores
            (`RelativePositionBias`, one scalar per log-spaced distance bucket and head).
            Defaults to `False`.

    Call arguments:
        inputs: `(batch, length, dim)` tensor.
        mask: optional `(batch, length)` bool tensor, True on real positions (keys that are
            padding are never attended to).
        training: Python bool.
        context: optional `(batch, length, dim)` tensor the keys and values are computed from
            (default: `inputs`). `inputs` may then be shorter, `(batch, queries, dim)`: the
            queries of the last `queries` positions of `context`'s sequence (a causal model's
            last output needs the last query only).

    Returns:
        `(outputs, weights)`: `(batch, length, dim)` and the head-averaged `(batch, length,
        length)` attention weights (row t over keys `<= t`; all zero for a query with no real
        key). In training, the softmax is Keras's fused one over scores masked with `-1e9`,
        which gives the same weights on every query with a real key (a query without one, a
        padding position, gets uniform weights; the block zeroes its output).
    """

    def __init__(
        self,
        num_heads: int = 1,
        dropout: float = 0.0,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        qkv_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        relative_position_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_heads_and_dropout(num_heads, dropout)
        self.num_heads = num_heads
        self.dropout = dropout
        self.relative_position_bias = bool(relative_position_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.qkv_initializer = keras.initializers.get(qkv_initializer)
        self._dropout_layer = keras.layers.Dropout(dropout)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = int(input_shape[-1])  # type: ignore[arg-type]
        if dim % self.num_heads:
            raise ValueError(f"Input width {dim} is not divisible by num_heads={self.num_heads}")
        self.qkv = keras.layers.Dense(3 * dim, kernel_initializer=self.qkv_initializer, name="qkv")
        self.out = keras.layers.Dense(
            dim, kernel_initializer=self.kernel_initializer, name="output"
        )
        self.qkv.build(input_shape)
        self.out.build(input_shape)
        self.position_bias = None
        if self.relative_position_bias:
            self.position_bias = RelativePositionBias(self.num_heads, name="relative_position_bias")
            self.position_bias.build((None, self.num_heads, None, None))
        self.built = True

    def call(
        self, inputs: Any, mask: Any = None, training: bool | None = None, context: Any = None
    ) -> Any:
        batch, queries, dim = ops.shape(inputs)[0], ops.shape(inputs)[1], ops.shape(inputs)[2]
        length = queries if context is None else ops.shape(context)[1]
        heads, width = self.num_heads, inputs.shape[-1] // self.num_heads
        if context is None:  # one fused projection
            query, key, value = ops.split(self.qkv(inputs), 3, axis=-1)  # (B, L, D) each
        else:  # queries from `inputs`, keys and values from `context`
            kernel, bias = self.qkv.kernel, self.qkv.bias
            d = inputs.shape[-1]
            query = ops.matmul(inputs, kernel[:, :d]) + bias[:d]
            key, value = ops.split(ops.matmul(context, kernel[:, d:]) + bias[d:], 2, axis=-1)
        if heads > 1:
            query, key, value = (
                ops.transpose(ops.reshape(t, (batch, size, heads, width)), (0, 2, 1, 3))
                for t, size in ((query, queries), (key, length), (value, length))
            )  # (B, H, Q or L, W)
        scores = ops.matmul(query, ops.swapaxes(key, -1, -2)) * (1.0 / float(width) ** 0.5)
        if self.position_bias is not None:
            scores = self.position_bias(scores)  # (B, [H,] Q, L)
        valid = causal_mask(length, mask, queries=None if context is None else queries)
        if heads > 1:
            valid = ops.expand_dims(valid, 1)  # (B, 1, Q, L)
        # training: one fused softmax kernel; inference: no large constant (int8 export)
        fill = "large_negative" if training else "minimum"
        weights = masked_softmax(scores, valid, fill=fill)  # (B, [H,] Q, L)
        attended = ops.matmul(self._dropout_layer(weights, training=training), value)
        if heads > 1:
            attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (batch, queries, dim))
            weights = ops.mean(weights, axis=1)
        return self.out(attended), weights

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        batch, length = input_shape[0], input_shape[1]
        return input_shape, (batch, length, length)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            qkv_initializer=keras.initializers.serialize(self.qkv_initializer),
            relative_position_bias=self.relative_position_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="attnrec_tf")
class CausalSelfAttentionBlock(keras.layers.Layer):
    """Pre-norm causal self-attention followed by a pointwise feed-forward network.

    `x + Dropout(Attention(LN(x)))`, then `x + Dropout(FFN(LN(x)))` with
    `FFN(z) = W2 Dropout(act(W1 z))`; padded positions are zeroed after the block, as in SASRec.

    Args:
        num_heads: int. Attention heads. Defaults to `1`.
        dropout: float. Dropout on attention weights, inside the FFN and on both residual
            branches. Defaults to `0.0`.
        ffn_multiplier: int. Hidden width of the feed-forward network in multiples of the input
            width. Defaults to `1` (SASRec).
        activation: str. FFN activation. Defaults to `"gelu"` (`"relu"` in SASRec).
        epsilon: float. LayerNormalization epsilon. Defaults to `1e-6`.
        kernel_initializer: Initializer of the block's dense kernels but the attention's
            query/key/value one (always `"glorot_uniform"`). Defaults to `"glorot_uniform"`.
        norm: str. `"pre"` (the pre-norm block above) or `"sasrec"`, the block of the SASRec
            reference code: `q = LN(x)`, `z = q + Attention(q, keys and values from x)`,
            `w = LN(z)`, output `w + FFN(w)` (the residuals start from the normalised states).
            Defaults to `"pre"`.
        relative_position_bias: bool. A learned attention bias by query-key distance
            (`CausalSelfAttention`). Defaults to `False`.

    Call arguments:
        inputs: `(batch, length, dim)` tensor.
        mask: optional `(batch, length)` bool tensor, True on real positions.
        training: Python bool.
        return_attention_scores: bool. Also return the `(batch, length, length)` weights.
        last_only: bool. Compute the last position only: `(batch, 1, dim)` and `(batch, 1,
            length)` weights, equal to the last rows of the full call (a causal block's last
            output needs every key but only the last query; serving uses it).

    Example:

    >>> import numpy as np
    >>> block = CausalSelfAttentionBlock(num_heads=2)
    >>> tuple(block(np.zeros((2, 5, 8), "float32")).shape)
    (2, 5, 8)

    References:
        - Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.
    """

    def __init__(
        self,
        num_heads: int = 1,
        dropout: float = 0.0,
        ffn_multiplier: int = 1,
        activation: str = "gelu",
        epsilon: float = 1e-6,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        norm: str = "pre",
        relative_position_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_heads_and_dropout(num_heads, dropout)
        self.relative_position_bias = bool(relative_position_bias)
        if norm not in ("pre", "sasrec"):
            raise ValueError(f"`norm` must be 'pre' or 'sasrec'. Received: norm={norm!r}")
        self.norm = norm
        self.num_heads = num_heads
        self.dropout = dropout
        self.ffn_multiplier = ffn_multiplier
        self.activation = activation
        self.epsilon = epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = int(input_shape[-1])  # type: ignore[arg-type]
        self.attention_norm = keras.layers.LayerNormalization(epsilon=self.epsilon)
        init = self.kernel_initializer
        self.attention = CausalSelfAttention(
            num_heads=self.num_heads,
            dropout=self.dropout,
            kernel_initializer=init,
            relative_position_bias=self.relative_position_bias,
            name="attention",
        )
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=self.epsilon)
        self.ffn_in = keras.layers.Dense(
            dim * self.ffn_multiplier, activation=self.activation, kernel_initializer=init
        )
        self.ffn_out = keras.layers.Dense(dim, kernel_initializer=init)
        self.ffn_dropout = keras.layers.Dropout(self.dropout)
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.ffn_norm.build(input_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], dim * self.ffn_multiplier))
        super().build(input_shape)

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        return_attention_scores: bool = False,
        last_only: bool = False,
    ) -> Any:
        x = inputs
        if self.norm == "sasrec":
            query = self.attention_norm(x[:, -1:] if last_only else x)
            attended, weights = self.attention(query, mask=mask, training=training, context=x)
            x = self.ffn_norm(query + self.residual_dropout(attended, training=training))
            hidden = self.ffn_dropout(self.ffn_in(x), training=training)
            x = x + self.residual_dropout(self.ffn_out(hidden), training=training)
        else:
            normed = self.attention_norm(x)
            if last_only:  # the last query over every key; the other rows are not needed
                attended, weights = self.attention(
                    normed[:, -1:], mask=mask, training=training, context=normed
                )
                x = x[:, -1:]
            else:
                attended, weights = self.attention(normed, mask=mask, training=training)
            x = x + self.residual_dropout(attended, training=training)
            hidden = self.ffn_dropout(self.ffn_in(self.ffn_norm(x)), training=training)
            x = x + self.residual_dropout(self.ffn_out(hidden), training=training)
        if mask is not None:
            x = x * ops.expand_dims(ops.cast(mask[:, -1:] if last_only else mask, x.dtype), -1)
        return (x, weights) if return_attention_scores else x

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            dropout=self.dropout,
            ffn_multiplier=self.ffn_multiplier,
            activation=self.activation,
            epsilon=self.epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            norm=self.norm,
            relative_position_bias=self.relative_position_bias,
        )
        return config

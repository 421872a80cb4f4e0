"""`GatedCausalBlock`: the LiGR-style causal block (pre-norm, sigmoid-gated residuals, SwiGLU).

    a = x + sigmoid(G1 x) * Dropout(Attention(LN(x)))      # (B, L, D) gated attention residual
    y = a + sigmoid(G2 a) * Dropout(SwiGLU(LN(a)))         # (B, L, D) gated feed-forward residual
    SwiGLU(z) = W2 Dropout(silu(W1 z) * (W3 z))            # hidden width D * ffn_multiplier

`G1`, `G2` are dense layers with biases: each gate decides per position and channel how much of
its branch enters the residual stream, from the stream itself. Padded positions are zeroed after
the block, as in `CausalSelfAttentionBlock`. The attention is the same `CausalSelfAttention`
(row-minimum softmax fill at inference, so the block exports to int8 TFLite alike).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from attnrec_tf.layers.causal_self_attention import CausalSelfAttention, _check_heads_and_dropout


@keras.saving.register_keras_serializable(package="attnrec_tf")
class GatedCausalBlock(keras.layers.Layer):
    """Pre-norm causal self-attention and SwiGLU feed-forward, each behind a sigmoid gate.

    Args:
        num_heads: int. Attention heads. Defaults to `1`.
        dropout: float. Dropout on attention weights, inside the feed-forward network and on both
            gated branches. Defaults to `0.0`.
        ffn_multiplier: int. Hidden width of the SwiGLU in multiples of the input width.
            Defaults to `1`.
        epsilon: float. LayerNormalization epsilon. Defaults to `1e-6`.
        kernel_initializer: Initializer of the dense kernels but the attention's query/key/value
            one (always `"glorot_uniform"`). Defaults to `"glorot_uniform"`.
        relative_position_bias: bool. A learned attention bias by query-key distance
            (`CausalSelfAttention`). Defaults to `False`.

    Call arguments:
        inputs: `(batch, length, dim)` tensor.
        mask: optional `(batch, length)` bool tensor, True on real positions.
        training: Python bool.
        return_attention_scores: bool. Also return the `(batch, length, length)` weights.
        last_only: bool. The last position only, `(batch, 1, dim)` (as
            `CausalSelfAttentionBlock`).

    Example:

    >>> import numpy as np
    >>> block = GatedCausalBlock(num_heads=2)
    >>> tuple(block(np.zeros((2, 5, 8), "float32")).shape)
    (2, 5, 8)

    References:
        - Borisyuk et al., "From Features to Transformers: Redefining Ranking for Scalable
          Impact" (LiGR), 2025.
        - Tikhonovich et al., "eSASRec: Enhancing Transformer-based Recommendations in a Modular
          Fashion", RecSys 2025.
        - Shazeer, "GLU Variants Improve Transformer", 2020 (SwiGLU).
    """

    def __init__(
        self,
        num_heads: int = 1,
        dropout: float = 0.0,
        ffn_multiplier: int = 1,
        epsilon: float = 1e-6,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        relative_position_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_heads_and_dropout(num_heads, dropout)
        if not isinstance(ffn_multiplier, int) or ffn_multiplier <= 0:
            raise ValueError(
                "`ffn_multiplier` must be a positive integer. "
                f"Received: ffn_multiplier={ffn_multiplier}"
            )
        self.num_heads = num_heads
        self.dropout = dropout
        self.ffn_multiplier = ffn_multiplier
        self.epsilon = epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.relative_position_bias = bool(relative_position_bias)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = int(input_shape[-1])  # type: ignore[arg-type]
        hidden = dim * self.ffn_multiplier
        init = self.kernel_initializer
        self.attention_norm = keras.layers.LayerNormalization(epsilon=self.epsilon)
        self.attention = CausalSelfAttention(
            num_heads=self.num_heads,
            dropout=self.dropout,
            kernel_initializer=init,
            relative_position_bias=self.relative_position_bias,
            name="attention",
        )
        self.attention_gate = keras.layers.Dense(
            dim, kernel_initializer=init, name="attention_gate"
        )
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=self.epsilon)
        self.ffn_in = keras.layers.Dense(2 * hidden, kernel_initializer=init, name="ffn_in")
        self.ffn_out = keras.layers.Dense(dim, kernel_initializer=init, name="ffn_out")
        self.ffn_gate = keras.layers.Dense(dim, kernel_initializer=init, name="ffn_gate")
        self.ffn_dropout = keras.layers.Dropout(self.dropout)
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        for layer in (self.attention_norm, self.attention, self.attention_gate, self.ffn_norm):
            layer.build(input_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], hidden))
        self.ffn_gate.build(input_shape)
        super().build(input_shape)

    def _swiglu(self, z: Any, training: bool | None) -> Any:
        """`W2 Dropout(silu(W1 z) * W3 z)`: `(B, L, D)` -> `(B, L, D)`."""
        gate, value = ops.split(self.ffn_in(z), 2, axis=-1)  # (B, L, hidden) each
        # silu written out: `ops.silu` is TF's custom-gradient swish, whose function wrapper
        # leaves the explain `.tflite` (converted from a frozen concrete function) without its
        # `serving_default` signature.
        hidden = gate * ops.sigmoid(gate) * value  # (B, L, hidden)
        return self.ffn_out(self.ffn_dropout(hidden, training=training))  # (B, L, D)

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        return_attention_scores: bool = False,
        last_only: bool = False,
    ) -> Any:
        x = inputs  # (B, L, D)
        normed = self.attention_norm(x)
        if last_only:  # the last query over every key (`CausalSelfAttentionBlock`)
            attended, weights = self.attention(
                normed[:, -1:], mask=mask, training=training, context=normed
            )
            x = x[:, -1:]  # (B, 1, D)
        else:
            attended, weights = self.attention(normed, mask=mask, training=training)
        gate = ops.sigmoid(self.attention_gate(x))  # (B, L, D)
        x = x + gate * self.residual_dropout(attended, training=training)
        gate = ops.sigmoid(self.ffn_gate(x))  # (B, L, D)
        ffn = self._swiglu(self.ffn_norm(x), training)
        x = x + gate * self.residual_dropout(ffn, training=training)
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
            epsilon=self.epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            relative_position_bias=self.relative_position_bias,
        )
        return config

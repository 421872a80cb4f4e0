"""A pre-norm causal self-attention block (SASRec's encoder block)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="attnrec_tf")
class CausalSelfAttentionBlock(keras.layers.Layer):
    """Pre-norm causal self-attention followed by a pointwise feed-forward network.

    `x + MHA(LN(x))` with a causal mask and the padding mask on the keys, then
    `x + FFN(LN(x))`; padded positions are zeroed after the block, as in SASRec.

    Args:
        num_heads: int. Attention heads. Defaults to `1`.
        dropout: float. Dropout on attention weights and both residual branches. Defaults to `0.0`.
        ffn_multiplier: int. Hidden width of the feed-forward network in multiples of the input
            width. Defaults to `1` (SASRec).

    Call arguments:
        inputs: `(batch, length, dim)` tensor.
        mask: optional `(batch, length)` bool tensor, True on real positions.
        training: Python bool.

    Example:

    >>> import numpy as np
    >>> block = CausalSelfAttentionBlock(num_heads=2)
    >>> block(np.zeros((2, 5, 8), "float32")).shape
    (2, 5, 8)

    References:
        - Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.
    """

    def __init__(
        self, num_heads: int = 1, dropout: float = 0.0, ffn_multiplier: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(
                f"`num_heads` must be a positive integer. Received: num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.ffn_multiplier = ffn_multiplier
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = int(input_shape[-1])  # type: ignore[arg-type]
        if dim % self.num_heads:
            raise ValueError(f"Input width {dim} is not divisible by num_heads={self.num_heads}")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=dim // self.num_heads, dropout=self.dropout
        )
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.ffn_in = keras.layers.Dense(dim * self.ffn_multiplier, activation="gelu")
        self.ffn_out = keras.layers.Dense(dim)
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.ffn_norm.build(input_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], dim * self.ffn_multiplier))
        super().build(input_shape)

    def call(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        length = ops.shape(inputs)[1]
        causal = ops.tril(ops.ones((length, length), dtype="bool"))  # (L, L)
        if mask is None:
            attention_mask = causal[None, :, :]
        else:
            attention_mask = ops.logical_and(causal[None, :, :], ops.cast(mask, "bool")[:, None, :])
        x = inputs
        normed = self.attention_norm(x)
        attended = self.attention(
            normed, normed, attention_mask=attention_mask, training=training
        )  # (B, L, D)
        x = x + self.residual_dropout(attended, training=training)
        hidden = self.ffn_out(self.ffn_in(self.ffn_norm(x)))
        x = x + self.residual_dropout(hidden, training=training)
        if mask is not None:
            x = x * ops.cast(mask, x.dtype)[:, :, None]
        return x

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, dropout=self.dropout, ffn_multiplier=self.ffn_multiplier
        )
        return config

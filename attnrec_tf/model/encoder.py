"""The encoder: item representations -> history embeddings + positions -> causal blocks.

For a batch of left-padded histories `x` `(B, L)` (0 = padding, out-of-range ids = padding):

    items = E + F mean(feature rows)              # (V, D) item representations, row 0 = padding
    h     = items[x] (* sqrt(D)) + P[position]    # (B, L, D) history embeddings, dropout,
                                                  #   padding rows zeroed
    h     = LN(blocks(h))                         # (B, L, D) causal blocks (none: identity)

The blocks are `CausalSelfAttentionBlock`s (`block="sasrec"`) or LiGR-style `GatedCausalBlock`s
(`block="ligr"`); with `relative_position_bias` each block's attention adds a learned bias by
query-key distance to its scores (`RelativePositionBias`).

Positions count from the latest item back (the latest takes `P[max_len - 1]`), so a batch
narrower than `max_len` (length bucketing) computes what the full-width batch would; with
`absolute_positions` they count from the oldest real item of the row (SASRec).

`SequenceEncoder` is a mixin of `AttentionRecommender`: its layers are attributes of the model
itself, because their attribute names are the weight paths of saved `.keras` files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from attnrec_tf.layers.causal_self_attention import CausalSelfAttentionBlock
from attnrec_tf.layers.gated_causal_block import GatedCausalBlock

Lookup = Callable[[Any], Any]
"""Item indices `(B, L)` -> their representations `(B, L, D)` (see `SequenceEncoder.embed`)."""


class SequenceEncoder:
    """Item table, feature projection, positions, dropout and causal blocks of the model."""

    vocab_size: int
    max_len: int
    embedding_dim: int
    num_item_features: int
    num_blocks: int
    num_heads: int
    dropout: float
    position_embedding: bool
    embedding_init_std: float
    embedding_scale: bool
    absolute_positions: bool
    dense_init_std: float
    block_norm: str
    block: str
    relative_position_bias: bool
    compute_dtype: Any
    item_features: Any

    def _make_encoder_layers(self) -> None:
        """Creates the encoder's layers (in this order: the seeded initialisers depend on it)."""
        init = keras.initializers.TruncatedNormal
        self.item_embedding = keras.layers.Embedding(
            self.vocab_size,
            self.embedding_dim,
            embeddings_initializer=init(stddev=self.embedding_init_std),
            name="item_embedding",
        )
        self.feature_projection = None
        if self.num_item_features:
            self.feature_projection = keras.layers.Dense(
                self.embedding_dim,
                use_bias=False,
                kernel_initializer=init(stddev=self.embedding_init_std),
                name="feature_projection",
            )
        self.positions = None
        if self.position_embedding:
            self.positions = keras.layers.Embedding(
                self.max_len,
                self.embedding_dim,
                embeddings_initializer=init(stddev=self.embedding_init_std),
                name="position_embedding",
            )
        self.input_dropout = keras.layers.Dropout(self.dropout)
        dense_init = (
            init(stddev=self.dense_init_std) if self.dense_init_std > 0 else "glorot_uniform"
        )
        self.blocks = [self._make_block(f"block_{i}", dense_init) for i in range(self.num_blocks)]
        self.final_norm = None
        if self.blocks:
            self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def _make_block(self, name: str, dense_init: Any) -> keras.layers.Layer:
        """One causal block of the kind `block` names."""
        if self.block == "ligr":
            return GatedCausalBlock(
                num_heads=self.num_heads,
                dropout=self.dropout,
                kernel_initializer=dense_init,
                relative_position_bias=self.relative_position_bias,
                name=name,
            )
        return CausalSelfAttentionBlock(
            num_heads=self.num_heads,
            dropout=self.dropout,
            kernel_initializer=dense_init,
            norm=self.block_norm,
            relative_position_bias=self.relative_position_bias,
            name=name,
        )

    def _build_encoder_layers(self) -> None:
        """Builds the encoder's layers (after the model's own `item_features` weight)."""
        self.item_embedding.build((None,))
        if self.feature_projection is not None:
            self.feature_projection.build((None, self.num_item_features))
        if self.positions is not None:
            self.positions.build((None,))
        for block in self.blocks:
            block.build((None, self.max_len, self.embedding_dim))
        if self.final_norm is not None:
            self.final_norm.build((None, self.max_len, self.embedding_dim))

    def item_representations(self, indices: Any = None) -> Any:
        """Item embedding plus the projected mean of its feature rows.

        Args:
            indices: optional int tensor of item indices; None means the whole catalog.

        Returns:
            `(vocab_size, D)`, or `indices.shape + (D,)`.
        """
        if indices is None:
            items = self.item_embedding.embeddings  # (V, D)
            features = self.item_features  # (V, F)
        else:
            items = ops.take(self.item_embedding.embeddings, indices, axis=0)  # (..., D)
            features = ops.take(self.item_features, indices, axis=0)  # (..., F)
        if self.feature_projection is not None:
            counts = ops.maximum(ops.sum(features, axis=-1, keepdims=True), 1.0)  # (..., 1)
            items = items + self.feature_projection(features / counts)  # (..., D)
        return items

    def _clean(self, history: Any) -> Any:
        """`(B, L)` int32: out-of-range indices (negative or >= vocab_size) become padding."""
        valid = ops.logical_and(history > 0, history < self.vocab_size)  # before any cast
        return ops.cast(ops.where(valid, history, ops.zeros_like(history)), "int32")

    def embed(
        self, history: Any, mask: Any, training: bool | None = None, lookup: Lookup | None = None
    ) -> Any:
        """`(B, L, D)` item representations plus positions, dropout, padding rows zeroed.

        Args:
            history: `(B, L)` clean item indices (`_clean`).
            mask: `(B, L)` bool, True on real positions.
            training: Python bool.
            lookup: indices -> `(B, L, D)` rows, for a caller that holds the item table
                (an export gathers from the one table it also scores with); None:
                `item_representations(history)`.
        """
        rows = self.item_representations(history) if lookup is None else lookup(history)
        h = ops.cast(rows, self.compute_dtype)  # (B, L, D)
        if self.embedding_scale:
            h = h * float(self.embedding_dim) ** 0.5
        if self.positions is not None:
            h = h + ops.cast(self.positions(self._position_indices(mask)), self.compute_dtype)
        float_mask = ops.expand_dims(ops.cast(mask, h.dtype), -1)  # (B, L, 1)
        return self.input_dropout(h, training=training) * float_mask  # (B, L, D)

    def _position_indices(self, mask: Any) -> Any:
        """`(1, L)` positions counted back from the latest item (`max_len - 1`), or with
        `absolute_positions` `(B, L)` counted from the oldest real item of the row (0)."""
        if self.absolute_positions:
            return ops.maximum(ops.cumsum(ops.cast(mask, "int32"), axis=1) - 1, 0)  # (B, L)
        length = ops.shape(mask)[1]
        return ops.arange(self.max_len - length, self.max_len)[None, :]  # (1, L)

    def contextualize(
        self, h: Any, mask: Any, training: bool | None = None, last_only: bool = False
    ) -> tuple[Any, Any]:
        """The causal blocks and final norm: `(h (B, L, D), last block's weights (B, L, L))`;
        the identity and None without blocks. `last_only`: the last block and the norm at the
        last position only, `(B, 1, D)` and `(B, 1, L)` (the earlier blocks still run on every
        position: the last one attends to them)."""
        weights = None
        for index, block in enumerate(self.blocks):
            last = last_only and index == len(self.blocks) - 1
            h, weights = block(
                h, mask=mask, training=training, return_attention_scores=True, last_only=last
            )
        if last_only:
            h, mask = h[:, -1:], mask[:, -1:]  # a no-op after a block's last-only call
        if self.final_norm is not None:
            h = self.final_norm(h) * ops.expand_dims(ops.cast(mask, h.dtype), -1)  # (B, L, D)
        return h, weights

"""`AttentionRecommender`: history -> user vector -> scores over the whole catalog.

For a batch of left-padded histories `x` `(B, L)` (0 = padding), with `items` the `(V, D)` item
representations and `h` the encoder's history states (`encoder.py`):

    h, A   = encoder(x)                           # (B, L, D) states, (B, L, L) block attention
    u_t    = head(h)[t]                           # (B, L, D) user vector after each position t
    u_t    = Dense([u_t ; h_t])                   # (B, L, D) projection, with the current state
    s_t    = u_t . items^T                        # (B, L, V) scores (tied with the input table)

The head (`heads.py`) of variant `pooling` (this class's default; `Config`'s is `sasrec`) is
the causal `AttentionPooling`: `u_t = sum_{i <= t} a_{t,i} h_i`, `a_{t,.} = softmax over real
i <= t of v^T tanh(W h_i + b)`.
Variant `self-attention` puts causal blocks before it; `sasrec` has no head (`u_t = h_t`, the
last block's output, no projection); `mean` and `last` are baselines.

Training uses every position at once (`compute_loss`): softmax cross-entropy of `s_t` against
the next item `x_{t+1}` over the whole catalog, or a sampled softmax with logQ correction;
padding positions are skipped. Serving reads the last position (`serve_outputs`), whose causal
head covers the whole history.

Example:

>>> import numpy as np
>>> model = AttentionRecommender(vocab_size=11, max_len=4, embedding_dim=8, attention_units=8)
>>> model.build()
>>> scores, attention = model.serve_outputs(np.array([[0, 0, 3, 5]], "int32"))
>>> tuple(scores.shape), tuple(attention.shape)
((1, 11), (1, 4))
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from attnrec_tf import losses
from attnrec_tf.config import BLOCKS, VARIANTS, Config
from attnrec_tf.layers.attention_pooling import AttentionPooling
from attnrec_tf.model import heads
from attnrec_tf.model.encoder import Lookup, SequenceEncoder


@keras.saving.register_keras_serializable(package="attnrec_tf")
class AttentionRecommender(SequenceEncoder, keras.Model):
    """Next-item recommender with an `AttentionPooling` head.

    Args:
        vocab_size: int. Number of items plus one (index 0 is padding).
        max_len: int. History window length.
        embedding_dim: int. Item embedding and user vector size. Defaults to `64`.
        attention_units: int. Hidden size of the pooling scorer. Defaults to `64`.
        variant: str. `pooling`, `self-attention`, `sasrec`, `mean` or `last`. Defaults to
            `"pooling"`.
        num_blocks: int. Causal self-attention blocks for `self-attention` and `sasrec`.
            Defaults to `2`.
        num_heads: int. Heads per block. Defaults to `1`.
        dropout: float. Embedding and block dropout. Defaults to `0.2`.
        attention_dropout: float. Dropout on the pooling weights. Defaults to `0.0`.
        position_embedding: bool. Learned position embedding. Defaults to `True`.
        num_item_features: int. Width of the multi-hot item feature matrix (0 = none); the matrix
            itself is a non-trainable weight set with `set_item_features`. Defaults to `0`.
        embedding_init_std: float. Std of the truncated-normal item embedding initialiser.
            Defaults to `0.05`.
        loss: str. `softmax` (full softmax over the catalog) or `sampled` (sampled softmax with
            logQ correction; set the sampling distribution with `set_sampling_counts`).
            Defaults to `"softmax"`.
        num_negatives: int. Shared negatives per batch for `sampled`. Defaults to `1024`.
        concat_last: bool. Feed the state at the current position `h_t` to the projection
            beside the pooled vector (short-term interest next to the attention-pooled long-term
            one, as in STAMP, Liu et al. 2018). Ignored by variants `last` and `sasrec`.
            Defaults to `True`.
        embedding_scale: bool. Multiply the history's item embeddings by `sqrt(embedding_dim)`
            before adding positions (SASRec). Defaults to `False`.
        absolute_positions: bool. Number positions from the oldest item of the window (SASRec)
            instead of from the latest. Defaults to `False`.
        dense_init_std: float. Std of a truncated-normal initializer for the blocks' dense
            kernels; 0 keeps Keras's `glorot_uniform`. Defaults to `0.0`.
        block_norm: str. `pre` or `sasrec`, see `CausalSelfAttentionBlock`. Defaults to `"pre"`.
        block: str. `sasrec` (`CausalSelfAttentionBlock`, laid out by `block_norm`) or `ligr`
            (`GatedCausalBlock`: pre-norm, sigmoid-gated residuals, SwiGLU; ignores
            `block_norm`). Defaults to `"sasrec"`.
        relative_position_bias: bool. A learned attention bias by query-key distance in every
            block (`RelativePositionBias`). Defaults to `False`.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        embedding_dim: int = 64,
        attention_units: int = 64,
        variant: str = "pooling",
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
        attention_dropout: float = 0.0,
        position_embedding: bool = True,
        num_item_features: int = 0,
        embedding_init_std: float = 0.05,
        concat_last: bool = True,
        loss: str = "softmax",
        num_negatives: int = 1024,
        embedding_scale: bool = False,
        absolute_positions: bool = False,
        dense_init_std: float = 0.0,
        block_norm: str = "pre",
        block: str = "sasrec",
        relative_position_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}. Received: variant={variant!r}")
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.embedding_dim = embedding_dim
        self.attention_units = attention_units
        self.variant = variant
        self.num_blocks = num_blocks if variant in ("self-attention", "sasrec") else 0
        self.num_heads = num_heads
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.position_embedding = position_embedding
        self.num_item_features = num_item_features
        self.embedding_init_std = embedding_init_std
        self.concat_last = concat_last and variant not in ("last", "sasrec")
        self.embedding_scale = bool(embedding_scale)
        self.absolute_positions = bool(absolute_positions)
        self.dense_init_std = float(dense_init_std)
        self.block_norm = block_norm
        if block not in BLOCKS:
            raise ValueError(f"`block` must be one of {BLOCKS}. Received: block={block!r}")
        self.block = block
        self.relative_position_bias = bool(relative_position_bias)
        if loss not in ("softmax", "sampled"):
            raise ValueError(f"`loss` must be 'softmax' or 'sampled'. Received: loss={loss!r}")
        self.loss_type = loss
        self.num_negatives = num_negatives
        self.loss_denominator: float | None = None  # see `compute_loss`; set by training
        self._make_encoder_layers()
        self._make_head_layers()

    def _make_head_layers(self) -> None:
        """The pooling head and the user projection (each only in the variants that have it)."""
        self.pooling = None
        if self.variant in ("pooling", "self-attention"):
            self.pooling = AttentionPooling(
                units=self.attention_units,
                causal=True,
                return_attention_scores=True,
                dropout=self.attention_dropout,
                name="attention_pooling",
            )
        self.projection = None
        if self.variant != "sasrec":
            self.projection = keras.layers.Dense(self.embedding_dim, name="user_projection")

    def build(self, input_shape: Any = None) -> None:
        # The weights in creation order (the seeded initialisers depend on it).
        self.item_features = self.add_weight(
            shape=(self.vocab_size, self.num_item_features),
            initializer="zeros",
            trainable=False,
            name="item_feature_matrix",
        )
        self.item_log_q = self.add_weight(
            shape=(self.vocab_size if self.loss_type == "sampled" else 0,),
            initializer="zeros",
            trainable=False,
            name="item_log_q",
        )
        self.loss_seed = self.add_weight(
            shape=(2,), initializer="zeros", dtype="int32", trainable=False, name="loss_seed"
        )
        self._build_encoder_layers()
        dim = self.embedding_dim
        if self.pooling is not None:
            self.pooling.build((None, self.max_len, dim))
        if self.projection is not None:
            self.projection.build((None, self.max_len, dim * (2 if self.concat_last else 1)))
        self.built = True

    def set_item_features(self, matrix: np.ndarray) -> None:
        """Sets the multi-hot item feature matrix, shape `(vocab_size, num_item_features)`."""
        if not self.built:
            self.build()
        self.item_features.assign(np.asarray(matrix, dtype="float32"))

    def set_sampling_counts(self, counts: np.ndarray, alpha: float = 0.75) -> None:
        """Sets Q for the sampled loss to `counts ** alpha` (normalised; padding never drawn)."""
        if not self.built:
            self.build()
        weights = np.asarray(counts, dtype="float64") ** alpha
        weights[0] = 0.0
        weights = np.maximum(weights, 1e-12 * weights.sum())  # every item can be drawn
        weights[0] = 0.0
        with np.errstate(divide="ignore"):
            log_q = np.log(weights / weights.sum())
        log_q[0] = -1e9
        self.item_log_q.assign(log_q.astype("float32"))

    # -- the forward pass ----------------------------------------------------------------------

    def encode(
        self,
        history: Any,
        training: bool | None = None,
        lookup: Lookup | None = None,
        last_only: bool = False,
    ) -> tuple[Any, Any]:
        """User vectors after every position, and the attention behind them.

        Args:
            history: `(B, L)` int item indices, left-padded with 0, `L <= max_len`; out-of-range
                indices are padding.
            training: Python bool.
            lookup: indices -> item rows, when the caller holds the item table (see `embed`).
            last_only: The last position only: `(B, 1, D)` and `(B, 1, L)`, the last rows of
                the full result. `sasrec` computes its last block there only (serving and
                evaluation need nothing else); the other heads pool every position, then the
                last row is taken.

        Returns:
            `(user, attention)`: `(B, L, D)` user vectors (row t covers positions <= t) and
            `(B, L, L)` attention weights (row t over positions <= t): the pooling's, or for
            `sasrec` the last block's self-attention (averaged over heads).
        """
        history = self._clean(history)  # (B, L)
        mask = history > 0  # (B, L)
        h = self.embed(history, mask, training=training, lookup=lookup)  # (B, L, D)
        fast = last_only and self.variant == "sasrec" and bool(self.blocks)
        h, block_attention = self.contextualize(h, mask, training=training, last_only=fast)
        user, attention = self.head(h, mask, block_attention, training=training)
        if last_only and not fast:
            return user[:, -1:], attention[:, -1:]  # (B, 1, D), (B, 1, L)
        return user, attention

    def head(
        self, h: Any, mask: Any, block_attention: Any, training: bool | None = None
    ) -> tuple[Any, Any]:
        """History states `(B, L, D)` -> `(user vectors (B, L, D), attention (B, L, L))`."""
        if self.variant == "sasrec" and block_attention is not None:
            return heads.sasrec_head(h, block_attention)
        if self.pooling is not None:
            user, attention = heads.attention_pooling_head(self.pooling, h, mask, training)
        elif self.variant == "mean":
            user, attention = heads.mean_head(h, mask)
        else:  # "last" (and "sasrec" without blocks): a function of the latest item only
            user, attention = heads.last_head(h, mask)
        if self.concat_last:
            user = ops.concatenate([user, h], axis=-1)  # (B, L, 2D)
        if self.projection is None:
            return user, attention
        return self.projection(user), attention  # (B, L, D), (B, L, L)

    def call(self, history: Any, training: bool | None = None) -> Any:
        """`(B, L, D)` user vectors after every position (see `encode`)."""
        user, _ = self.encode(history, training=training)
        return user

    def serve_outputs(self, history: Any) -> tuple[Any, Any]:
        """Scores over the catalog and attention over the history, at the last position.

        The history rows are gathered from the same `(V, D)` table the scores are computed
        with, so that an exported graph holds the item table once.

        Args:
            history: `(B, L)` int item indices, left-padded with 0 (out-of-range = padding).

        Returns:
            `(scores, attention)`: `(B, vocab_size)` float32 raw scores (column 0 is the
            padding index and must be ignored) and `(B, L)` attention weights.
        """
        items = self.item_representations()  # (V, D)
        user, attention = self.encode(
            history,
            training=False,
            lookup=lambda indices: ops.take(items, indices, axis=0),
            last_only=True,
        )
        last_user = ops.cast(user[:, -1, :], "float32")  # (B, D)
        scores = ops.matmul(last_user, ops.transpose(ops.cast(items, "float32")))  # (B, V)
        return scores, ops.cast(attention[:, -1, :], "float32")  # (B, V), (B, L)

    def score(self, history: Any) -> Any:
        """`(B, vocab_size)` scores at the last position (column 0 = padding)."""
        return self.serve_outputs(history)[0]

    # -- training ----------------------------------------------------------------------------

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """Softmax cross-entropy against the next item at every real position.

        Full softmax over the catalog, or sampled softmax with logQ correction (`loss`). The
        batch's mean over its real positions, or, when `loss_denominator` is set (training
        with length buckets), their sum divided by it: batches of short histories then weigh
        their positions as much as a random batch would, not more.
        """
        targets = tf.cast(y, tf.int32)
        if getattr(self, "jit_compile", False) is True:
            # XLA needs static shapes: score every position, weight padding with 0.
            user = tf.reshape(tf.cast(y_pred, tf.float32), [-1, self.embedding_dim])  # (B*L, D)
            labels = tf.reshape(targets, [-1])  # (B*L,)
            weights = tf.cast(labels > 0, tf.float32)
        else:
            real = targets > 0  # (B, L)
            user = tf.boolean_mask(tf.cast(y_pred, tf.float32), real)  # (N, D)
            labels = tf.boolean_mask(targets, real)  # (N,)
            weights = None
        if self.loss_type == "sampled":
            self.loss_seed.assign_add([0, 1])
            negatives = losses.sample_negatives(
                self.item_log_q, self.num_negatives, self.loss_seed.value
            )
            loss = losses.sampled_softmax_loss(
                user,
                labels,
                lambda idx: tf.cast(self.item_representations(idx), tf.float32),
                self.item_log_q,
                negatives,
                weights=weights,
            )
        else:
            items = tf.cast(self.item_representations(), tf.float32)
            loss = losses.full_softmax_loss(user, labels, items, weights=weights)
        if self.loss_denominator:
            count = tf.reduce_sum(tf.cast(targets > 0, tf.float32))
            loss = loss * count / self.loss_denominator
        if self.losses:
            loss = loss + tf.add_n(self.losses)
        return loss

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            max_len=self.max_len,
            embedding_dim=self.embedding_dim,
            attention_units=self.attention_units,
            variant=self.variant,
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            position_embedding=self.position_embedding,
            num_item_features=self.num_item_features,
            embedding_init_std=self.embedding_init_std,
            concat_last=self.concat_last,
            loss=self.loss_type,
            num_negatives=self.num_negatives,
            embedding_scale=self.embedding_scale,
            absolute_positions=self.absolute_positions,
            dense_init_std=self.dense_init_std,
            block_norm=self.block_norm,
            block=self.block,
            relative_position_bias=self.relative_position_bias,
        )
        return config


def build_model(
    config: Config,
    vocab_size: int,
    item_features: np.ndarray | None,
    item_counts: np.ndarray | None = None,
) -> AttentionRecommender:
    """Builds (and initialises) the recommender described by `config`.

    Args:
        config: Hyperparameters.
        vocab_size: Items plus one.
        item_features: Multi-hot `(vocab_size, F)` matrix, or None / F == 0 for no features.
        item_counts: `(vocab_size,)` training counts; the sampling distribution of
            `--loss sampled` (uniform when None).

    Returns:
        A built, uncompiled `AttentionRecommender`.
    """
    keras.utils.set_random_seed(config.seed)
    config, _ = config.resolved(vocab_size - 1)
    use_features = config.item_features and item_features is not None and item_features.shape[1]
    model = AttentionRecommender(
        vocab_size=vocab_size,
        max_len=config.max_len,
        embedding_dim=config.embedding_dim,
        attention_units=config.attention_units,
        variant=config.variant,
        num_blocks=config.num_blocks,
        num_heads=config.num_heads,
        dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        position_embedding=config.position_embedding,
        num_item_features=int(item_features.shape[1]) if use_features else 0,  # type: ignore[union-attr]
        embedding_init_std=config.embedding_init_std,
        concat_last=config.concat_last,
        loss=config.loss,
        num_negatives=config.num_negatives,
        embedding_scale=config.embedding_scale,
        absolute_positions=config.absolute_positions,
        dense_init_std=config.dense_init_std,
        block_norm=config.block_norm,
        block=config.block,
        relative_position_bias=config.relative_position_bias,
    )
    model.build((None, config.max_len))
    if use_features:
        model.set_item_features(item_features)  # type: ignore[arg-type]
    if config.loss == "sampled":
        model.set_sampling_counts(
            np.ones(vocab_size) if item_counts is None else np.asarray(item_counts)
        )
    model(np.zeros((1, config.max_len), "int32"))  # trace once so every sub-layer is built
    return model

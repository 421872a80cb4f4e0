"""Context crops: short runs of a user's sequence, drawn afresh every epoch, as extra windows.

A full training window's position `t` sees the window's first `t` items, so its short contexts
are nearly all the oldest items of a window (for most users their very first picks). A crop
ending anywhere in the sequence trains the model on what a client that sends only a few recent
picks asks: the next item from the `k` items before it. `--context-crops N` adds `N` crops of
every training sequence of at least 3 items to each epoch.

The crops are drawn inside the `tf.data` pipeline from `(seed, epoch)` (stateless random ops),
so every epoch sees new ones (a run of 50 epochs sees 50 times as many distinct short contexts
as a fixed set would give) while a resumed run still sees exactly the batches of an
uninterrupted one.

Example:

>>> import numpy as np
>>> crops = ContextCrops.of([np.array([5, 6, 7, 8])], per_sequence=2)
>>> x, y = epoch_crops(crops, max_len=4, key=[0, 0])
>>> x.shape.as_list(), bool(((y - x)[x > 0] == 1).numpy().all())
([2, 4], True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

CROP_MAX_LEN = 50
"""The longest context crop: clients send a few recent picks, not a whole history."""

_CROP_STREAM = 0x63726F70
"""Folded into the epoch's key so the crops' draws differ from the shuffle's ("crop")."""


@dataclasses.dataclass(frozen=True)
class ContextCrops:
    """The sequences crops are drawn from, flattened once.

    Attributes:
        items: int32 `(total,)`, the sequences of at least 3 items, one after the other.
        starts: int64 `(S,)` offset of each sequence in `items`.
        lengths: int64 `(S,)` length of each sequence.
        per_sequence: Crops drawn from each sequence every epoch.
    """

    items: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    per_sequence: int

    @classmethod
    def of(cls, train_sequences: Sequence[np.ndarray], per_sequence: int) -> ContextCrops:
        """Flattens the training sequences that are long enough to crop (3 items or more)."""
        kept = [np.asarray(s, dtype=np.int32) for s in train_sequences if len(s) >= 3]
        lengths = np.array([len(s) for s in kept], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        items = np.concatenate(kept) if kept else np.zeros(0, np.int32)
        return cls(items, starts[: len(kept)], lengths, per_sequence)

    @property
    def rows(self) -> int:
        """Crops of an epoch."""
        return len(self.lengths) * self.per_sequence


def epoch_crops(crops: ContextCrops, max_len: int, key: Any) -> tuple[Any, Any]:
    """One epoch's crops as left-padded `(inputs, targets)` windows.

    Each crop is `k + 1` consecutive items of its sequence: `k` log-uniform from 1 to
    `min(len - 1, max_len, CROP_MAX_LEN)` (as many crops per doubling of the length), its last
    item uniform among the sequence's items that have `k` items before them. Crops `i *
    per_sequence ... (i + 1) * per_sequence - 1` come from sequence `i`.

    Args:
        crops: The sequences (`ContextCrops.of`).
        max_len: Window width.
        key: int64 `(2,)` stateless seed, `(seed, epoch)`: the same key gives the same crops.

    Returns:
        int32 `(crops.rows, max_len)` inputs and next-item targets (0 = padding), as
        `pipeline.training_arrays` lays out a window.
    """
    import tensorflow as tf

    key = tf.random.experimental.stateless_fold_in(tf.cast(key, tf.int64), _CROP_STREAM)
    lengths = tf.repeat(tf.constant(crops.lengths), crops.per_sequence)
    starts = tf.repeat(tf.constant(crops.starts), crops.per_sequence)
    rows = tf.shape(lengths)[0]
    draws = tf.random.stateless_uniform([2, rows], seed=key, dtype=tf.float64)
    longest = tf.minimum(lengths - 1, min(max_len, CROP_MAX_LEN))
    k = tf.cast(tf.exp(draws[0] * tf.math.log(tf.cast(longest + 1, tf.float64))), tf.int64)
    k = tf.clip_by_value(k, 1, longest)
    # The crop is seq[end - k - 1 : end], end uniform in [k + 1, len].
    end = (
        k
        + 1
        + tf.minimum(
            tf.cast(draws[1] * tf.cast(lengths - k, tf.float64), tf.int64), lengths - k - 1
        )
    )
    first = starts + end - k - 1  # the crop's first item in `items`
    offset = tf.range(max_len, dtype=tf.int64)[None, :] - (max_len - k)[:, None]
    real = offset >= 0
    at = first[:, None] + tf.maximum(offset, 0)
    items = tf.constant(crops.items)
    inputs = tf.where(real, tf.gather(items, at), 0)
    targets = tf.where(real, tf.gather(items, at + 1), 0)
    return inputs, targets

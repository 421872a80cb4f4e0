"""Sequences -> padded arrays -> `tf.data` pipelines for training and evaluation.

Histories are left-padded with 0 so that the most recent item is always at the last position; the
model reads its user vector there. Training uses every position of a user's training sequence in one
pass: the input is `s[:-1]` and the target at each position is the next item `s[1:]`
(0 where padded).

Example:

>>> import numpy as np
>>> pad_left([np.array([3, 4, 5])], max_len=4).tolist()
[[0, 3, 4, 5]]
>>> x, y = training_arrays([np.array([1, 2, 3, 4])], max_len=2)
>>> x.tolist(), y.tolist()
([[2, 3]], [[3, 4]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnrec_tf.data.crops import ContextCrops, epoch_crops


def pad_left(sequences: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Keeps the last `max_len` items of each sequence and left-pads with 0.

    Args:
        sequences: Item index arrays.
        max_len: Output width.

    Returns:
        An int32 array of shape `(len(sequences), max_len)`.
    """
    out = np.zeros((len(sequences), max_len), dtype=np.int32)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq[-max_len:], dtype=np.int32)
        if len(tail):
            out[row, max_len - len(tail) :] = tail
    return out


def training_arrays(
    train_sequences: Sequence[np.ndarray],
    max_len: int,
    *,
    all_windows: bool = False,
    skip_first_picks: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Builds (inputs, next-item targets) for every position of every training sequence.

    Sequences shorter than 2 items give no training signal and are skipped.

    Args:
        train_sequences: Per-user training sequences (leave-one-out `train` part).
        max_len: Window width.
        all_windows: If False (SASRec), only the most recent `max_len + 1` items of a sequence
            are used. If True, a sequence longer than that is cut into windows that end at its
            last item and every `max_len` items before it, so no interaction is left out.
        skip_first_picks: In a window that starts at the sequence's first item, leave out (set
            to 0) the targets of the first `skip_first_picks` positions: the loss of predicting
            a user's 2nd ... `(skip_first_picks + 1)`-th item from their first picks.

    Returns:
        `(inputs, targets)`, both int32 of shape `(num_windows, max_len)`, where `targets[:, t]`
        is the item that followed `inputs[:, t]`, and 0 where the input is padding.
    """
    windows, opening = [], []
    for seq in train_sequences:
        if len(seq) < 2:
            continue
        end = len(seq)
        while True:
            windows.append(seq[max(0, end - max_len - 1) : end])
            opening.append(end - max_len - 1 <= 0)
            end -= max_len
            if not all_windows or end < 2:
                break
    inputs = pad_left([w[:-1] for w in windows], max_len)
    targets = pad_left([w[1:] for w in windows], max_len)
    if skip_first_picks:
        # The window's real targets start at column `max_len - (len(window) - 1)`.
        for row in np.flatnonzero(opening):
            first = max_len - (len(windows[row]) - 1)
            targets[row, first : first + skip_first_picks] = 0
    return inputs, targets


def training_dataset(
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    epoch: Any = 0,
    start_batch: int = 0,
    bucket: bool = False,
    crops: ContextCrops | None = None,
):  # -> tf.data.Dataset
    """Batches of `(history, targets)` in an order that is a pure function of `(seed, epoch)`.

    Every epoch visits each row once, in the pseudorandom permutation
    `tf.random.experimental.index_shuffle(seed=(seed, epoch))`. Nothing depends on how often the
    dataset was iterated before, so a run resumed at epoch `e` (or at batch `b` of epoch `e`, with
    `start_batch=b`) sees exactly the batches an uninterrupted run would have seen.

    Under `tf.distribute` the batches are global batches: Keras splits each one across the
    replicas, and each worker keeps its own part (auto-shard policy `DATA`), so the examples of a
    step are the same for any number of workers.

    Args:
        inputs: int32 `(N, L)` histories from `training_arrays`.
        targets: int32 `(N, L)` next-item targets.
        batch_size: Rows per (global) batch; the last batch may be smaller.
        seed: The run's seed.
        epoch: An int, or an integer scalar `tf.Variable` read each time a batch is made; training
            sets it at the start of every epoch (`callbacks.TrainingState`). Defaults to `0`.
        start_batch: Leave out the first `start_batch` batches of the epoch. Defaults to `0`.
        bucket: Length bucketing. The epoch's permutation is cut into chunks of
            `BUCKET_CHUNK_BATCHES` batches, each chunk is sorted by window length, cut into
            batches, and the batches are visited in a second permutation of `(seed, epoch)`.
            Each batch is then cut to its longest window (rounded up to a multiple of
            `WIDTH_MULTIPLE`, left padding kept), so no step computes columns that are padding in
            every row. Defaults to `False` (every batch `L` wide).
        crops: Context crops to add to every epoch after the windows, drawn afresh from
            `(seed, epoch)` (`data.crops.epoch_crops`). Defaults to `None` (none).

    Returns:
        A `tf.data.Dataset` of `(inputs, targets)` batches with a known number of batches.

    Example:

    >>> import numpy as np
    >>> x = np.arange(6, dtype="int32").reshape(6, 1)
    >>> batches = training_dataset(x, x, batch_size=4, seed=1)
    >>> sorted(int(v) for b, _ in batches for v in b.numpy().ravel())
    [0, 1, 2, 3, 4, 5]
    """
    import tensorflow as tf

    all_inputs, all_targets = tf.constant(inputs), tf.constant(targets)
    num_rows = len(inputs) + (crops.rows if crops is not None else 0)
    if num_rows == 0:  # nothing to shuffle (index_shuffle refuses an empty range)
        return _with_options(tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(1))

    def epoch_key() -> tf.Tensor:
        return tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])

    def epoch_batches(_: tf.Tensor) -> tf.data.Dataset:
        key = epoch_key()
        rows = _EpochRows(all_inputs, all_targets, crops, key)
        if bucket:
            return _bucketed_batches(rows, num_rows, batch_size, key, start_batch)
        shuffled = tf.random.experimental.index_shuffle(
            tf.range(num_rows, dtype=tf.int64), seed=key, max_index=max(num_rows - 1, 0)
        )
        starts = tf.data.Dataset.range(0, num_rows, batch_size).skip(start_batch)
        return starts.map(lambda start: rows.gather(shuffled[start : start + batch_size]))

    count = max(-(-num_rows // batch_size) - start_batch, 0)
    dataset = tf.data.Dataset.range(1).flat_map(epoch_batches)
    return _with_options(dataset.apply(tf.data.experimental.assert_cardinality(count)))


class _EpochRows:
    """The rows of one epoch: the fixed windows, then the epoch's context crops.

    The crops are drawn once per epoch (`crops.epoch_crops`) and kept apart from the windows, so
    no epoch copies the (possibly large) window arrays.
    """

    def __init__(self, inputs: Any, targets: Any, crops: ContextCrops | None, key: Any) -> None:
        self.inputs, self.targets = inputs, targets
        self.num_windows = int(inputs.shape[0])
        self.crop_inputs = self.crop_targets = None
        if crops is not None:
            width = int(inputs.shape[1])
            self.crop_inputs, self.crop_targets = epoch_crops(crops, width, key)

    def lengths(self) -> Any:
        """int64 `(rows,)`: the real items of each row's history, windows first.

        Counted on the inputs, not the targets: a target may be left out (`skip_first_picks`)
        while its item is still context for the positions after it.
        """
        import tensorflow as tf

        def real(rows: Any) -> Any:
            return tf.reduce_sum(tf.cast(rows > 0, tf.int64), axis=1)

        if self.crop_inputs is None:
            return real(self.inputs)
        return tf.concat([real(self.inputs), real(self.crop_inputs)], axis=0)

    def gather(self, picked: Any) -> tuple[Any, Any]:
        """The rows `picked` (int64 indices over windows then crops) as `(inputs, targets)`."""
        import tensorflow as tf

        if self.crop_inputs is None:
            return tf.gather(self.inputs, picked), tf.gather(self.targets, picked)
        is_window = (picked < self.num_windows)[:, None]
        window = tf.minimum(picked, max(self.num_windows - 1, 0))
        crop = tf.maximum(picked - self.num_windows, 0)
        x = tf.where(is_window, tf.gather(self.inputs, window), tf.gather(self.crop_inputs, crop))
        y = tf.where(is_window, tf.gather(self.targets, window), tf.gather(self.crop_targets, crop))
        return x, y


BUCKET_CHUNK_BATCHES = 16
"""Batches per chunk that is sorted by length (larger: less padding, less batch variety)."""
WIDTH_MULTIPLE = 8
"""A bucketed batch is cut to its longest window rounded up to this (fewer distinct shapes)."""


def _bucketed_batches(
    rows: _EpochRows, num_rows: int, batch_size: int, key: Any, start_batch: int
) -> Any:
    """One epoch's length-bucketed batches (see `training_dataset`).

    The epoch's order (the permutation, sorted by length within chunks, and the order of the
    batches) is computed once, when the epoch's first batch is asked for; each batch is then
    a slice of it.
    """
    import tensorflow as tf

    width = int(rows.inputs.shape[1])
    lengths = rows.lengths()
    num_batches = -(-num_rows // batch_size)
    chunk = tf.range(num_rows, dtype=tf.int64) // (batch_size * BUCKET_CHUNK_BATCHES)
    shuffled = tf.random.experimental.index_shuffle(
        tf.range(num_rows, dtype=tf.int64), seed=key, max_index=max(num_rows - 1, 0)
    )
    by_length = tf.argsort(chunk * (width + 1) + tf.gather(lengths, shuffled), stable=True)
    order = tf.gather(shuffled, by_length)  # chunks of the permutation, each sorted
    which = tf.random.experimental.index_shuffle(
        tf.range(num_batches, dtype=tf.int64),
        seed=key + tf.constant([0, 1 << 32], tf.int64),
        max_index=max(num_batches - 1, 0),
    )

    def batch(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        start = which[index] * batch_size
        picked = order[start : start + batch_size]
        x, y = rows.gather(picked)
        longest = tf.reduce_max(tf.gather(lengths, picked))
        cut = (longest + WIDTH_MULTIPLE - 1) // WIDTH_MULTIPLE * WIDTH_MULTIPLE
        cut = tf.minimum(cut, width)
        return x[:, width - cut :], y[:, width - cut :]

    return tf.data.Dataset.range(start_batch, num_batches).map(batch)


def _with_options(dataset: Any) -> Any:
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

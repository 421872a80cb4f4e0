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

import numpy as np


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
    train_sequences: Sequence[np.ndarray], max_len: int, *, all_windows: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Builds (inputs, next-item targets) for every position of every training sequence.

    Sequences shorter than 2 items give no training signal and are skipped.

    Args:
        train_sequences: Per-user training sequences (leave-one-out `train` part).
        max_len: Window width.
        all_windows: If False (SASRec), only the most recent `max_len + 1` items of a sequence
            are used. If True, a sequence longer than that is cut into windows that end at its
            last item and every `max_len` items before it, so no interaction is left out.

    Returns:
        `(inputs, targets)`, both int32 of shape `(num_windows, max_len)`, where `targets[:, t]`
        is the item that followed `inputs[:, t]`, and 0 where the input is padding.
    """
    windows = []
    for seq in train_sequences:
        if len(seq) < 2:
            continue
        end = len(seq)
        while True:
            windows.append(seq[max(0, end - max_len - 1) : end])
            end -= max_len
            if not all_windows or end < 2:
                break
    inputs = pad_left([w[:-1] for w in windows], max_len)
    targets = pad_left([w[1:] for w in windows], max_len)
    return inputs, targets


def training_dataset(
    inputs: np.ndarray, targets: np.ndarray, *, batch_size: int, seed: int
):  # -> tf.data.Dataset
    """A shuffled, batched, prefetched `tf.data.Dataset` of `(history, targets)`.

    The arrays are small (one row per user), so they are held in memory and reshuffled each
    epoch with a fixed seed, which makes runs repeatable.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets))
    dataset = dataset.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

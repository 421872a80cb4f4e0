"""Prepared shards -> training batches, streamed with `tf.data` (nothing holds every window).

The streamed counterpart of `pipeline.training_arrays` + `pipeline.training_dataset` for a
prepared folder (`data/shards.py`). One epoch of one worker, all in the tf.data graph:

    the worker's shard files (file i goes to worker i % num_workers)
    -> their order permuted by (seed, epoch)        `tf.random.experimental.index_shuffle`
    -> `interleave` of `TFRecordDataset`s (deterministic, a few files open at once)
    -> `parse_example` in batches of `PARSE_BATCH` records
    -> the training windows of each train part (as `pipeline.training_arrays` cuts them:
       the last `max_len + 1` items, or every window with `all_windows`; with
       `skip_first_picks`, the first targets of a window that opens the part left out),
       left-padded
    -> a bounded shuffle: blocks of `SHUFFLE_BUFFER` windows, each permuted by (seed, epoch,
       block) (`stateless_shuffle`)
    -> length buckets: chunks of `BUCKET_CHUNK_BATCHES` batches sorted by length, the chunk's
       batches in a permutation of (seed, epoch, chunk), each cut to its longest window rounded
       up to `WIDTH_MULTIPLE` (left padding kept); or plain `max_len`-wide batches
    -> exactly `steps_per_epoch` batches (the stream repeats if it runs short), less the first
       `start_batch`.

The order is a pure function of (seed, epoch) and the folder: the epoch is read from a
`tf.Variable` when the epoch's first batch is asked for, so a resumed run sees the batches an
uninterrupted run saw (`start_batch` skips the batches already trained on).

Workers. Each worker reads only its own files (`worker_files`), which is what the `FILE`
auto-shard policy does; the assignment is made here, from the `tf.distribute.InputContext`
or the worker index, because the epoch's file order is computed inside the graph where
auto-shard cannot reach, and the dataset says `AutoShardPolicy.OFF` so that `tf.distribute`
does not shard it again. Batches are global batches (`batch_size` windows): under
`MultiWorkerMirroredStrategy` Keras splits each step's batch across the replicas, so a worker
consumes `batch_size / num_workers` windows of its own stream per step. (The batches are made
inside a `flat_map`, so `tf.distribute` finds no static batch size and cuts every batch into
`num_replicas_in_sync` pieces that the worker's replicas take in turn; tests/training/
test_streamed_run.py runs two workers on 127.0.0.1.) Every worker runs the
same `steps_per_epoch` steps (the global count, `ceil(windows / batch_size)`): its stream repeats
the epoch's order if its files hold fewer windows than that, and the epoch ends after that many
steps even if some of its windows were not reached (shards hold nearly equal numbers of users).

Memory: one shuffled block, one bucket chunk and the prefetched batches; not the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attnrec_tf.data.pipeline import BUCKET_CHUNK_BATCHES, WIDTH_MULTIPLE
from attnrec_tf.errors import ConfigError

SHUFFLE_BUFFER = 16_384
"""Windows per shuffled block (with `max_len` 200: about 26 MB)."""
PARSE_BATCH = 256
"""Records parsed per `parse_example` call."""
CYCLE_LENGTH = 4
"""Shard files read at once by the interleave."""


@dataclass(frozen=True)
class WindowCounts:
    """What one pass over the shards counts (`count_windows`).

    Attributes:
        windows: Training windows of an epoch over every shard.
        positions: Real (non-padding) target positions of those windows.
    """

    windows: int
    positions: int


def worker_files(files: Sequence[str], num_workers: int = 1, worker_index: int = 0) -> list[str]:
    """The shard files a worker reads: file `i` goes to worker `i % num_workers`.

    >>> worker_files(["a", "b", "c"], num_workers=2, worker_index=0)
    ['a', 'c']
    """
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"`worker_index` must be in [0, {num_workers}). Received: {worker_index}")
    return list(files[worker_index::num_workers])


def check_streamable(context_crops: int) -> None:
    """Raises ConfigError when an option cannot be streamed from prepared shards.

    Raises:
        ConfigError: `--context-crops` above 0 (its crops are drawn in numpy, sequence by
            sequence, in an order a stream cannot reproduce).
    """
    if context_crops:
        raise ConfigError(
            "--context-crops is not available when a prepared folder is streamed "
            "(train from the log, read the folder with --no-stream, or set --context-crops 0)"
        )


def _windows(
    train: Any, max_len: int, all_windows: bool, skip_first_picks: int = 0
) -> tuple[Any, Any]:
    """Ragged train parts `(R, None)` -> left-padded `(inputs, targets)`, int32 `(W, max_len)`.

    The windows of `pipeline.training_arrays`: parts shorter than 2 items give none; a part
    gives the window that ends at its last item (`max_len + 1` items at most) and, with
    `all_windows`, the windows that end `max_len`, `2 max_len`, ... items earlier (while at
    least 2 items remain). In a window that starts at the part's first item, the first
    `skip_first_picks` targets are 0 (left out of the loss), as `training_arrays` sets them.
    """
    import tensorflow as tf

    lengths = tf.cast(train.row_lengths(), tf.int64)  # (R,)
    starts = tf.cast(train.row_starts(), tf.int64)  # (R,)
    step = tf.constant(max_len, tf.int64)
    one = tf.ones_like(lengths)
    per_part = tf.where(
        lengths >= 2, one + (lengths - 2) // step if all_windows else one, tf.zeros_like(lengths)
    )
    part = tf.repeat(tf.range(tf.size(lengths, tf.int64)), per_part)  # (W,)
    first = tf.repeat(tf.cumsum(per_part, exclusive=True), per_part)
    k = tf.range(tf.size(part, tf.int64)) - first  # the window's number within its part
    end = tf.gather(lengths, part) - k * step  # exclusive, within the part
    begin = tf.maximum(end - step - 1, 0)
    offset = tf.gather(starts, part)
    items = tf.cast(train.flat_values, tf.int32)
    window = tf.RaggedTensor.from_row_lengths(
        tf.gather(items, tf.ragged.range(begin + offset, end + offset).flat_values),
        end - begin,
    )
    targets = window[:, 1:]
    if skip_first_picks:
        row = targets.value_rowids()
        column = tf.range(tf.size(row, tf.int64)) - tf.gather(targets.row_starts(), row)
        opening = tf.gather(tf.equal(begin, 0), row)
        left_out = tf.logical_and(opening, column < skip_first_picks)
        targets = targets.with_flat_values(tf.where(left_out, 0, targets.flat_values))
    return _pad_left(window[:, :-1], max_len), _pad_left(targets, max_len)


def _pad_left(rows: Any, width: int) -> Any:
    """Ragged int32 `(W, None)` rows of at most `width` items -> `(W, width)`, 0 on the left."""
    import tensorflow as tf

    rows = rows.with_row_splits_dtype(tf.int64)
    lengths = rows.row_lengths()
    row = rows.value_rowids()
    column = tf.range(tf.size(row, tf.int64)) - tf.gather(rows.row_starts(), row)
    column += tf.gather(width - lengths, row)
    shape = tf.stack([rows.nrows(), tf.constant(width, tf.int64)])
    return tf.scatter_nd(tf.stack([row, column], axis=1), rows.flat_values, shape)


def _records(files: Sequence[str], key: Any) -> Any:
    """The records of `files` (file order permuted by `key`), in parsed batches."""
    import tensorflow as tf

    from attnrec_tf.data.shards import record_spec

    names = tf.constant(list(files), tf.string)
    count = len(files)
    order = tf.random.experimental.index_shuffle(
        tf.range(count, dtype=tf.int64), seed=key, max_index=count - 1
    )
    return (
        tf.data.Dataset.from_tensor_slices(tf.gather(names, order))
        .interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(CYCLE_LENGTH, count),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(PARSE_BATCH)
        .map(lambda serialized: tf.io.parse_example(serialized, record_spec()))
    )


def worker_records(files: Sequence[str], *, seed: int, epoch: int = 0) -> Any:
    """A worker's parsed records in the epoch's order (for tests and tools).

    Returns:
        A dataset of `tf.io.parse_example` dicts (`shards.record_spec`), `PARSE_BATCH` each.
    """
    import tensorflow as tf

    return _records(files, tf.constant([seed, epoch], tf.int64))


def _epoch_windows(
    files: Sequence[str], key: Any, max_len: int, all_windows: bool, skip_first_picks: int = 0
) -> Any:
    """One pass over `files`: shuffled windows `(inputs, targets)`, one element each.

    The shuffle: blocks of `SHUFFLE_BUFFER` consecutive windows, each permuted by
    `stateless_shuffle` seeded by (seed, epoch, block): a pure function of the key (a tf.data
    `shuffle` with a tensor seed would also depend on the global seed).
    """
    import tensorflow as tf

    salted = _salted(key, 0x73687566)  # "shuf"

    def shuffle_block(number: Any, block: tuple[Any, Any]) -> Any:
        inputs, targets = block
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(inputs)[0]), seed=_salted(salted, number)
        )
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(inputs, order), tf.gather(targets, order))
        )

    windows = (
        _records(files, key)
        .map(lambda record: _windows(record["train"], max_len, all_windows, skip_first_picks))
        .unbatch()
    )
    return windows.batch(SHUFFLE_BUFFER).enumerate().flat_map(shuffle_block)


def _salted(key: Any, salt: Any) -> Any:
    """A stateless seed `(2,)` int64 derived from `key` and an integer `salt`."""
    import tensorflow as tf

    folded = tf.random.experimental.stateless_fold_in(key, tf.cast(salt, tf.int64))
    return tf.cast(folded, tf.int64)


def _bucketed(windows: Any, batch_size: int, key: Any, width: int) -> Any:
    """Windows -> batches: chunks sorted by length, permuted, each cut to its longest window."""
    import tensorflow as tf

    bucket_key = _salted(key, 0x6275636B)  # "buck"

    def chunk_batches(number: Any, chunk: tuple[Any, Any]) -> Any:
        inputs, targets = chunk
        # Counted on the inputs: a target may be left out (`skip_first_picks`), its input not.
        lengths = tf.reduce_sum(tf.cast(inputs > 0, tf.int32), axis=1)
        order = tf.argsort(lengths, stable=True)
        inputs, targets, lengths = (tf.gather(t, order) for t in (inputs, targets, lengths))
        rows = tf.shape(inputs, out_type=tf.int64)[0]
        batches = (rows + batch_size - 1) // batch_size
        which = tf.random.experimental.stateless_shuffle(
            tf.range(batches), seed=_salted(bucket_key, number)
        )

        def batch(index: Any) -> tuple[Any, Any]:
            start = which[index] * batch_size
            x = inputs[start : start + batch_size]
            y = targets[start : start + batch_size]
            longest = tf.reduce_max(lengths[start : start + batch_size])
            cut = (longest + WIDTH_MULTIPLE - 1) // WIDTH_MULTIPLE * WIDTH_MULTIPLE
            cut = tf.minimum(cut, width)
            return x[:, width - cut :], y[:, width - cut :]

        return tf.data.Dataset.range(batches).map(batch)

    chunks = windows.batch(batch_size * BUCKET_CHUNK_BATCHES).enumerate()
    return chunks.flat_map(chunk_batches)


def streamed_dataset(
    files: Sequence[str],
    *,
    max_len: int,
    batch_size: int,
    seed: int,
    steps_per_epoch: int,
    epoch: Any = 0,
    start_batch: int = 0,
    bucket: bool = True,
    all_windows: bool = False,
    skip_first_picks: int = 0,
    num_workers: int = 1,
    worker_index: int = 0,
    input_context: Any = None,
) -> Any:
    """An epoch of training batches from prepared shards (see the module docstring).

    Args:
        files: Every shard file of the folder, in shard order (`shards.shard_files`).
        max_len: Window width.
        batch_size: Windows per (global) batch; the last batch of an epoch may be smaller.
        seed: The run's seed.
        steps_per_epoch: Batches of an epoch (`ceil(windows / batch_size)`, `count_windows`).
        epoch: An int, or an integer scalar `tf.Variable` read when an epoch starts.
        start_batch: Leave out the epoch's first `start_batch` batches. Defaults to `0`.
        bucket: Length bucketing (`pipeline.training_dataset`'s). Defaults to `True`.
        all_windows: Every `max_len` window of long parts, not only the latest.
        skip_first_picks: Targets left out at the start of each part (`--skip-first-picks`).
        num_workers: Input pipelines (workers); overridden by `input_context`.
        worker_index: This pipeline's index; overridden by `input_context`.
        input_context: A `tf.distribute.InputContext`, or None.

    Returns:
        A `tf.data.Dataset` of `(inputs, targets)` int32 batches with cardinality
        `steps_per_epoch - start_batch`.

    Raises:
        ValueError: A worker without files (more workers than shards).
    """
    import tensorflow as tf

    if input_context is not None:
        num_workers = input_context.num_input_pipelines
        worker_index = input_context.input_pipeline_id
    mine = worker_files(files, num_workers, worker_index)
    if not mine:
        raise ValueError(f"worker {worker_index} of {num_workers} has none of {len(files)} shards")

    def epoch_batches(_: Any) -> Any:
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        windows = _epoch_windows(mine, key, max_len, all_windows, skip_first_picks)
        if bucket:
            return _bucketed(windows, batch_size, key, max_len)
        return windows.batch(batch_size)

    count = max(steps_per_epoch - start_batch, 0)
    dataset = (
        tf.data.Dataset.range(1)
        .flat_map(epoch_batches)
        .repeat()
        .take(steps_per_epoch)
        .skip(start_batch)
        .apply(tf.data.experimental.assert_cardinality(count))
    )
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def windows_from_lengths(lengths: Any, max_len: int, all_windows: bool = False) -> WindowCounts:
    """`count_windows` from the manifest's users by training-part length: no pass over shards.

    `lengths[n]` users have `n` training items; the counts are those `count_windows` makes.

    Example:
        >>> windows_from_lengths([0, 3, 0, 2, 0, 0, 1], max_len=2)  # 3 x 1, 2 x 3, 1 x 6 items
        WindowCounts(windows=3, positions=6)
        >>> windows_from_lengths([0, 3, 0, 2, 0, 0, 1], max_len=2, all_windows=True)
        WindowCounts(windows=5, positions=9)
    """
    import numpy as np

    counts = np.asarray(lengths, np.int64)
    n = np.arange(len(counts), dtype=np.int64)
    trained = n >= 2
    if all_windows:
        windows = np.where(trained, 1 + (n - 2) // max_len, 0)
        positions = np.where(trained, n - 1, 0)
    else:
        windows = trained.astype(np.int64)
        positions = np.where(trained, np.minimum(n - 1, max_len), 0)
    return WindowCounts(int((windows * counts).sum()), int((positions * counts).sum()))


def count_windows(files: Sequence[str], max_len: int, all_windows: bool = False) -> WindowCounts:
    """Windows and real target positions of an epoch: one pass over the shards' train lengths.

    Memory: one parsed batch of records.
    """
    import tensorflow as tf

    def counts(record: dict[str, Any]) -> Any:
        lengths = tf.cast(record["train"].row_lengths(), tf.int64)
        step = tf.constant(max_len, tf.int64)
        if all_windows:  # every item but a part's first is a target once
            windows = tf.where(lengths >= 2, 1 + (lengths - 2) // step, tf.zeros_like(lengths))
            positions = tf.where(lengths >= 2, lengths - 1, tf.zeros_like(lengths))
        else:
            windows = tf.cast(lengths >= 2, tf.int64)
            longest = tf.minimum(lengths - 1, step)
            positions = tf.where(lengths >= 2, longest, tf.zeros_like(lengths))
        return tf.stack([tf.reduce_sum(windows), tf.reduce_sum(positions)])

    if not files:
        return WindowCounts(0, 0)
    total = (
        _records(files, tf.constant([0, 0], tf.int64))
        .map(counts)
        .reduce(tf.zeros(2, tf.int64), lambda a, b: a + b)
        .numpy()
    )
    return WindowCounts(int(total[0]), int(total[1]))

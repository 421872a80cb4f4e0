"""data/stream.py: training batches streamed from prepared shards.

The reference is `pipeline.training_arrays` on the same train parts: an epoch of the stream
holds exactly its windows (as a multiset), whatever the bucketing, workers or resume point.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from attnrec_tf.data import shards, stream
from attnrec_tf.data.pipeline import WIDTH_MULTIPLE, training_arrays
from attnrec_tf.data.sequences import build_sequences, leave_one_out
from attnrec_tf.data.synthetic import generate
from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import ConfigError


def write_folder(folder: Path, train: list[np.ndarray], num_shards: int) -> list[str]:
    """A prepared folder of `train` parts (every user evaluated, targets 1), its shard files."""
    n = len(train)
    top = max((int(t.max()) for t in train if len(t)), default=1)
    with shards.ShardWriter(folder, num_shards) as writer:
        writer.add(np.arange(n) + 100, np.arange(n), train, np.ones(n, int), np.ones(n, int))
        writer.finish({"protocol": {"name": "leave-one-out"}}, Vocabulary(list(range(1, top + 1))))
    return shards.shard_files(folder)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[np.ndarray], list[str]]:
    data = generate(num_users=300, num_items=80, mean_length=30, seed=4)
    _, sequences, _ = build_sequences(data.interactions)
    train = leave_one_out(sequences).train
    return train, write_folder(tmp_path_factory.mktemp("s") / "prepared", train, num_shards=4)


def pairs(batches) -> list[tuple[list[int], list[int]]]:
    """Every (inputs, targets) row of some batches, sorted."""
    return sorted(
        (x.tolist(), y.tolist())
        for inputs, targets in batches
        for x, y in zip(inputs.numpy(), targets.numpy(), strict=True)
    )


def rows(batches) -> Counter:
    """The windows of some batches, each re-padded to full width, as a multiset of bytes."""
    out: Counter = Counter()
    for x, y in batches:
        x, y = x.numpy(), y.numpy()
        for a, b in zip(x, y, strict=True):
            out[(a[a > 0].tobytes(), b[b > 0].tobytes(), int((b > 0).sum()))] += 1
    return out


def reference(
    train: list[np.ndarray], max_len: int, all_windows: bool = False, skip_first_picks: int = 0
) -> Counter:
    x, y = training_arrays(
        train, max_len, all_windows=all_windows, skip_first_picks=skip_first_picks
    )
    return rows([(tf.constant(x), tf.constant(y))])


def epoch(files, train, *, max_len=8, batch_size=16, seed=0, epoch=0, **kw):
    counts = stream.count_windows(files, max_len, kw.get("all_windows", False))
    steps = -(-counts.windows // batch_size)
    return list(
        stream.streamed_dataset(
            files, max_len=max_len, batch_size=batch_size, seed=seed, epoch=epoch,
            steps_per_epoch=steps, **kw,
        )
    )  # fmt: skip


def test_windows_of_hand_made_parts(tmp_path: Path) -> None:
    # parts: [1,2,3,4,5] (max_len 2: window [3,4,5] -> x [3,4], y [4,5]; all windows also
    # [1,2,3] -> x [1,2], y [2,3]), [6] (none), [7,8] (x [0,7], y [0,8]).
    train = [np.array([1, 2, 3, 4, 5]), np.array([6]), np.array([7, 8])]
    files = write_folder(tmp_path / "p", train, num_shards=2)
    batches = epoch(files, train, max_len=2, batch_size=8, bucket=False)
    assert pairs(batches) == [([0, 7], [0, 8]), ([3, 4], [4, 5])]
    batches = epoch(files, train, max_len=2, batch_size=8, bucket=False, all_windows=True)
    assert pairs(batches) == [([0, 7], [0, 8]), ([1, 2], [2, 3]), ([3, 4], [4, 5])]
    assert stream.count_windows(files, 2, all_windows=True) == stream.WindowCounts(3, 5)
    assert stream.count_windows(files, 2) == stream.WindowCounts(2, 3)


@pytest.mark.parametrize("bucket", [False, True])
@pytest.mark.parametrize("all_windows", [False, True])
def test_an_epoch_holds_exactly_the_in_memory_windows(synthetic, bucket, all_windows) -> None:
    train, files = synthetic
    batches = epoch(files, train, bucket=bucket, all_windows=all_windows)
    assert rows(batches) == reference(train, 8, all_windows)
    counts = stream.count_windows(files, 8, all_windows)
    assert len(batches) == -(-counts.windows // 16)
    x, y = training_arrays(train, 8, all_windows=all_windows)
    assert counts.positions == int((y > 0).sum())


@pytest.mark.parametrize("bucket", [False, True])
@pytest.mark.parametrize("all_windows", [False, True])
def test_first_picks_are_left_out_as_in_memory(synthetic, bucket, all_windows) -> None:
    train, files = synthetic
    batches = epoch(files, train, bucket=bucket, all_windows=all_windows, skip_first_picks=3)
    assert rows(batches) == reference(train, 8, all_windows, skip_first_picks=3)
    assert rows(batches) != reference(train, 8, all_windows)
    for x, y in batches:  # a bucket is cut to its longest input, not its longest target
        longest = int((x.numpy() > 0).sum(axis=1).max())
        width = min(-(-longest // WIDTH_MULTIPLE) * WIDTH_MULTIPLE, 8) if bucket else 8
        assert x.shape[1] == y.shape[1] == width


def test_first_picks_of_hand_made_parts(tmp_path: Path) -> None:
    # [1,2,3,4,5] at max_len 2: its latest window [3,4,5] does not open the part, so it keeps
    # its targets; every window [1,2,3] opens it: target 2 is left out. [7,8]: target 8 is.
    train = [np.array([1, 2, 3, 4, 5]), np.array([7, 8])]
    files = write_folder(tmp_path / "p", train, num_shards=1)
    batches = epoch(files, train, max_len=2, batch_size=8, bucket=False, all_windows=True,
                    skip_first_picks=1)  # fmt: skip
    assert pairs(batches) == [([0, 7], [0, 0]), ([1, 2], [0, 3]), ([3, 4], [4, 5])]


def test_buckets_cut_batches_to_their_longest_window(synthetic) -> None:
    train, files = synthetic
    batches = epoch(files, train, max_len=30, batch_size=8, bucket=True)
    widths = set()
    for x, y in batches:
        longest = int((y.numpy() > 0).sum(axis=1).max())
        width = min(-(-longest // WIDTH_MULTIPLE) * WIDTH_MULTIPLE, 30)
        assert x.shape[1] == y.shape[1] == width
        widths.add(width)
    assert len(widths) > 1


def test_order_is_a_function_of_seed_and_epoch(synthetic) -> None:
    train, files = synthetic

    def order(seed, ep):
        return [b[0].numpy().tobytes() for b in epoch(files, train, seed=seed, epoch=ep)]

    assert order(1, 2) == order(1, 2)
    assert order(1, 2) != order(1, 3)
    assert order(1, 2) != order(2, 2)


def test_start_batch_skips_the_first_batches_and_reads_the_epoch_variable(synthetic) -> None:
    train, files = synthetic
    full = epoch(files, train, seed=3, epoch=5)
    variable = tf.Variable(0, dtype=tf.int64)
    steps = len(full)
    dataset = stream.streamed_dataset(
        files, max_len=8, batch_size=16, seed=3, epoch=variable, start_batch=4,
        steps_per_epoch=steps,
    )  # fmt: skip
    assert int(dataset.cardinality()) == steps - 4
    variable.assign(5)  # read when the epoch starts, not when the dataset was made
    resumed = list(dataset)
    assert len(resumed) == steps - 4
    for (a, b), (c, d) in zip(full[4:], resumed, strict=True):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())


def test_two_workers_read_disjoint_files_and_users(synthetic) -> None:
    train, files = synthetic
    users = []
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index)
        mine = stream.worker_files(files, context.num_input_pipelines, context.input_pipeline_id)
        assert mine == files[index::2]
        seen = [r["index"].numpy() for r in stream.worker_records(mine, seed=0)]
        users.append(set(np.concatenate(seen).tolist()))
        assert all(u % 4 in (index, index + 2) for u in users[-1])  # its shards' users only
    assert users[0].isdisjoint(users[1])
    assert users[0] | users[1] == set(range(len(train)))


def test_every_worker_runs_the_global_number_of_steps(synthetic) -> None:
    train, files = synthetic
    steps = -(-stream.count_windows(files, 8).windows // 16)
    union: Counter = Counter()
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index)
        batches = list(
            stream.streamed_dataset(
                files, max_len=8, batch_size=16, seed=0, steps_per_epoch=steps,
                input_context=context,
            )
        )  # fmt: skip
        assert len(batches) == steps  # its stream repeats: the same steps on every worker
        union += rows(batches[: -(-len(batches) // 2) - 1])
    assert set(union) <= set(reference(train, 8))


def test_context_crops_are_refused_for_streams() -> None:
    with pytest.raises(ConfigError, match="--context-crops"):
        stream.check_streamable(context_crops=2)
    stream.check_streamable(context_crops=0)


@pytest.mark.parametrize("max_len", [3, 8, 50])
@pytest.mark.parametrize("all_windows", [False, True])
def test_the_manifests_lengths_count_what_a_pass_over_the_shards_counts(
    synthetic, max_len, all_windows
) -> None:
    train, files = synthetic
    manifest = shards.read_manifest(Path(files[0]).parents[1])
    lengths = shards.train_lengths(manifest)
    assert lengths is not None and lengths.sum() == len(train)
    assert stream.windows_from_lengths(lengths, max_len, all_windows) == stream.count_windows(
        files, max_len, all_windows
    )

"""The prepared folder's records: the hand-written encoder against protobuf's own."""

from __future__ import annotations

import numpy as np
import pytest

from attnrec_tf.data import shards


@pytest.mark.parametrize("seed", range(5))
def test_encode_records_equals_protobufs_messages(seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = 40
    users = np.array([f"user-{u}-é" if seed % 2 else u for u in rng.integers(0, 10**12, n)])
    index = rng.integers(0, 2**40, n)
    lengths = rng.integers(0, 30, n)
    train = [rng.integers(0, 2**34, k) if seed == 4 else rng.integers(1, 300, k) for k in lengths]
    valid, test = rng.integers(0, 5000, n), rng.integers(0, 5000, n)
    ours = shards.encode_records(users, index, train, valid, test)
    for row in range(n):
        expected = tf.train.Example.FromString(
            shards._example(
                str(users[row]), int(index[row]), train[row], int(valid[row]), int(test[row])
            )  # fmt: skip
        )
        assert tf.train.Example.FromString(ours[row]) == expected


def test_varints_by_hand():
    data, sizes = shards.varints(np.array([0, 127, 128, 16384, 2**35]))
    assert sizes.tolist() == [1, 1, 2, 3, 6]
    assert data[:6].tolist() == [0, 127, 0x80, 1, 0x80, 0x80]
    assert shards._varint(2**35) == data[7:].tobytes()

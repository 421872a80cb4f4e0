"""The training data order is a pure function of (seed, epoch): what makes resuming exact."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from attnrec_tf.data.pipeline import training_dataset

ROWS = np.arange(50, dtype=np.int32).reshape(25, 2)


def order(dataset) -> list[int]:
    return [int(v) for inputs, _ in dataset for v in inputs.numpy()[:, 0]]


def test_each_epoch_is_a_permutation_that_depends_only_on_seed_and_epoch():
    epoch = tf.Variable(0, dtype=tf.int64)
    dataset = training_dataset(ROWS, ROWS, batch_size=8, seed=7, epoch=epoch)
    first = order(dataset)
    assert sorted(first) == ROWS[:, 0].tolist()
    assert order(dataset) == first  # iterating again: no hidden iteration counter
    epoch.assign(1)
    second = order(dataset)
    assert second != first and sorted(second) == sorted(first)
    # A new dataset object in a new "process" reproduces any epoch directly.
    assert order(training_dataset(ROWS, ROWS, batch_size=8, seed=7, epoch=1)) == second
    assert order(training_dataset(ROWS, ROWS, batch_size=8, seed=8, epoch=1)) != second


def test_start_batch_is_the_rest_of_the_same_epoch():
    full = order(training_dataset(ROWS, ROWS, batch_size=8, seed=3, epoch=5))
    rest = training_dataset(ROWS, ROWS, batch_size=8, seed=3, epoch=5, start_batch=2)
    assert order(rest) == full[16:]
    assert int(rest.cardinality()) == 2  # known length: Keras counts the steps of the epoch


def test_inputs_and_targets_stay_paired():
    targets = ROWS + 100
    for inputs, shifted in training_dataset(ROWS, targets, batch_size=4, seed=0, epoch=2):
        np.testing.assert_array_equal(shifted.numpy(), inputs.numpy() + 100)


def test_empty_input_gives_an_empty_dataset():
    empty = np.zeros((0, 3), np.int32)
    assert order(training_dataset(empty, empty, batch_size=4, seed=0)) == []

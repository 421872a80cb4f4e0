import numpy as np

from attnrec_tf.data.pipeline import pad_left, training_arrays, training_dataset


def test_pad_left_truncates_to_most_recent():
    out = pad_left([np.array([1, 2, 3, 4, 5]), np.array([7]), np.array([], np.int32)], 3)
    assert out.tolist() == [[3, 4, 5], [0, 0, 7], [0, 0, 0]]
    assert out.dtype == np.int32


def test_training_arrays_shift_by_one_and_skip_short():
    x, y = training_arrays([np.array([1, 2, 3, 4]), np.array([9]), np.array([5, 6])], 4)
    assert x.tolist() == [[0, 1, 2, 3], [0, 0, 0, 5]]
    assert y.tolist() == [[0, 2, 3, 4], [0, 0, 0, 6]]
    # every target is the item that follows the input at the same position
    assert ((x > 0) == (y > 0)).all()


def test_training_dataset_is_deterministic_by_seed():
    x = np.arange(40, dtype=np.int32).reshape(20, 2)
    first = [b[0].numpy().tolist() for b in training_dataset(x, x, batch_size=8, seed=3)]
    second = [b[0].numpy().tolist() for b in training_dataset(x, x, batch_size=8, seed=3)]
    assert first == second
    assert sorted(sum(first, [])) == x.tolist()


def test_all_windows_cover_every_transition_once():
    seq = np.arange(1, 11, dtype=np.int32)  # 9 transitions
    x, y = training_arrays([seq], 4, all_windows=True)
    assert x.tolist() == [[6, 7, 8, 9], [2, 3, 4, 5], [0, 0, 0, 1]]
    assert y.tolist() == [[7, 8, 9, 10], [3, 4, 5, 6], [0, 0, 0, 2]]
    pairs = {(a, b) for xs, ys in zip(x, y, strict=True) for a, b in zip(xs, ys, strict=True) if a}
    assert pairs == {(i, i + 1) for i in range(1, 10)}

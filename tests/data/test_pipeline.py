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


def _ragged(num_rows=300, width=24, seed=0):
    lengths = np.random.default_rng(seed).integers(1, width + 1, num_rows)
    inputs = np.zeros((num_rows, width), np.int32)
    for row, length in enumerate(lengths):
        inputs[row, width - length :] = row + 1  # the row's id in every real column
    return inputs, lengths


def test_bucketed_batches_visit_every_row_once_cut_to_their_longest_window():
    inputs, lengths = _ragged()
    dataset = training_dataset(inputs, inputs, batch_size=16, seed=2, epoch=1, bucket=True)
    seen = []
    for x, y in dataset:
        x, y = x.numpy(), y.numpy()
        rows = x[:, -1] - 1
        seen += rows.tolist()
        longest = lengths[rows].max()
        assert x.shape[1] == min(-(-longest // 8) * 8, 24)  # rounded up to a multiple of 8
        np.testing.assert_array_equal(x, inputs[rows][:, 24 - x.shape[1] :])  # left padding kept
        np.testing.assert_array_equal(y, x)
    assert sorted(seen) == list(range(300))


def test_bucketing_cuts_padding_and_depends_only_on_seed_epoch_and_start():
    inputs, lengths = _ragged()

    def widths(**kwargs):
        dataset = training_dataset(inputs, inputs, batch_size=16, seed=2, bucket=True, **kwargs)
        return [x.shape[1] for x, _ in dataset]

    cells = sum(w * 16 for w in widths(epoch=0))
    assert lengths.sum() / cells > 0.65  # full width: 0.55 (widths round up to 8 of 24)
    assert widths(epoch=0) == widths(epoch=0)
    assert widths(epoch=0, start_batch=5) == widths(epoch=0)[5:]
    assert widths(epoch=0) != widths(epoch=1)


def test_random_crops_are_runs_of_the_sequence_with_log_uniform_lengths_fixed_by_the_seed():
    from attnrec_tf.data.pipeline import CROP_MAX_LEN, random_crops

    seq = np.arange(1, 202)
    crops = random_crops([seq, np.array([1, 2])], max_len=200, crops=3000, seed=3)
    assert len(crops) == 3000  # the 2-item sequence gives none
    lengths = np.array([len(c) - 1 for c in crops])
    assert all(np.array_equal(c, np.arange(c[0], c[0] + len(c))) for c in crops)  # consecutive
    assert lengths.min() == 1 and lengths.max() == CROP_MAX_LEN == 50
    # log-uniform over [1, 51): about as many crops of 1-6 items as of 7-50
    assert 0.4 < np.mean(lengths <= 6) < 0.6
    ends = np.array([c[-1] for c in crops])
    assert ends.min() < 20 and ends.max() == 201  # they end anywhere, the last item included
    again = random_crops([seq, np.array([1, 2])], max_len=200, crops=3000, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(crops, again, strict=True))


def test_training_arrays_append_the_crops_as_windows():
    x, y = training_arrays([np.array([1, 2, 3, 4])], max_len=3, context_crops=1, seed=0)
    assert x.shape == (2, 3)
    assert x[0].tolist() == [1, 2, 3] and y[0].tolist() == [2, 3, 4]
    k = int((x[1] > 0).sum())
    assert np.array_equal(y[1, -k:], x[1, -k:] + 1)  # each input's next item
    assert x[1, -k] >= 1 and y[1, -1] <= 4

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


def test_skip_first_picks_leaves_out_only_the_first_targets_of_windows_that_open_a_sequence():
    seq = np.arange(1, 11, dtype=np.int32)
    x, y = training_arrays([seq, np.array([20, 21, 22])], 4, all_windows=True, skip_first_picks=2)
    plain_x, plain_y = training_arrays([seq, np.array([20, 21, 22])], 4, all_windows=True)
    assert (x == plain_x).all()  # every item is still context
    # [6..9] and [2..5] start mid-sequence: kept; [1] opens it: its one target left out;
    # [20, 21] opens its sequence: both its targets (21 from 20, 22 from 20, 21) left out.
    assert y.tolist() == [[7, 8, 9, 10], [3, 4, 5, 6], [0, 0, 0, 0], [0, 0, 0, 0]]
    _, y1 = training_arrays([seq], 20, skip_first_picks=1)
    assert y1[0, -9:].tolist() == [0, 3, 4, 5, 6, 7, 8, 9, 10]


def test_bucketing_keeps_the_context_of_left_out_targets():
    x, y = training_arrays([np.arange(1, 12, dtype=np.int32)], 16, skip_first_picks=4)
    ((batch_x, batch_y),) = list(training_dataset(x, y, batch_size=1, seed=0, bucket=True))
    assert batch_x.numpy()[0, -10:].tolist() == list(range(1, 11))  # 10 items: cut to 16
    assert batch_y.numpy()[0].tolist() == y[0].tolist()


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


def test_epoch_crops_are_runs_of_the_sequence_with_log_uniform_lengths_fixed_by_the_key():
    from attnrec_tf.data.crops import CROP_MAX_LEN, ContextCrops, epoch_crops

    seq = np.arange(1, 202)
    crops = ContextCrops.of([np.array([7, 8]), seq], per_sequence=3000)
    assert crops.rows == 3000  # the 2-item sequence gives none
    x, y = (t.numpy() for t in epoch_crops(crops, max_len=200, key=[3, 0]))
    lengths = (y > 0).sum(axis=1)
    assert np.array_equal((x > 0).sum(axis=1), lengths)  # k inputs, k targets, left-padded
    for row, k in zip(x, lengths, strict=True):  # consecutive items of the sequence
        assert np.array_equal(row[-k:], np.arange(row[-k], row[-k] + k)) and not row[:-k].any()
    assert np.array_equal(y[x > 0], x[x > 0] + 1)  # each input's next item
    assert lengths.min() == 1 and lengths.max() == CROP_MAX_LEN == 50
    # log-uniform over [1, 51): about as many crops of 1-6 items as of 7-50
    assert 0.4 < np.mean(lengths <= 6) < 0.6
    assert x[x > 0].min() == 1 and y[:, -1].max() == 201  # they end anywhere, the ends included
    again, _ = epoch_crops(crops, max_len=200, key=[3, 0])
    other, _ = epoch_crops(crops, max_len=200, key=[3, 1])
    assert np.array_equal(again.numpy(), x) and not np.array_equal(other.numpy(), x)


def test_every_epoch_adds_fresh_crops_after_the_windows():
    from attnrec_tf.data.crops import ContextCrops

    seqs = [np.arange(1, 41), np.arange(101, 131)]
    windows, _ = training_arrays(seqs, max_len=8)
    crops = ContextCrops.of(seqs, per_sequence=5)

    def epoch_rows(epoch, bucket):
        dataset = training_dataset(
            windows, windows, batch_size=4, seed=1, epoch=epoch, bucket=bucket, crops=crops
        )
        rows = [tuple(r[r > 0]) for x, _ in dataset for r in x.numpy()]
        assert len(rows) == len(windows) + 10
        return rows

    for bucket in (False, True):
        first, second = epoch_rows(0, bucket), epoch_rows(1, bucket)
        window_rows = {tuple(r) for r in windows}
        assert window_rows <= set(first) and window_rows <= set(second)  # every window, once
        assert sorted(first) != sorted(second)  # other crops
        assert first == epoch_rows(0, bucket)  # a pure function of (seed, epoch)

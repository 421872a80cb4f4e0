from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.data.interactions import Interactions
from attnrec_tf.data.sequences import UserSequences, build_sequences, leave_one_out
from attnrec_tf.data.synthetic import generate
from attnrec_tf.errors import ConfigError, DataError

ML1M = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-1m"


def rows(triples, *, as_strings=False):
    users, items, times = (np.array(col) for col in zip(*triples, strict=True))
    if as_strings:
        users, items = users.astype(str).astype(object), items.astype(str).astype(object)
    return Interactions(users, items, times.astype(np.float64))


def decoded(vocab, seqs):
    pairs = zip(seqs.users.tolist(), seqs.sequences, strict=True)
    return {u: vocab.decode(s).tolist() for u, s in pairs}


def test_chronological_order_with_stable_ties():
    data = rows([(1, 10, 5), (1, 11, 3), (1, 12, 5), (1, 13, 3), (1, 14, 1)])
    vocab, seqs, _ = build_sequences(data, min_user_interactions=1, min_item_interactions=1)
    # t=1: 14; t=3: 11 then 13 (file order); t=5: 10 then 12 (file order)
    assert decoded(vocab, seqs) == {1: [14, 11, 13, 10, 12]}
    assert seqs.sequences[0].dtype == np.int32


def test_users_sorted_by_raw_id_and_sequences_read_only():
    data = rows([(9, 1, 0), (2, 1, 0), (9, 2, 1), (2, 2, 1), (9, 3, 2), (2, 3, 2)])
    vocab, seqs, _ = build_sequences(data, min_user_interactions=1, min_item_interactions=1)
    assert seqs.users.tolist() == [2, 9]
    with pytest.raises(ValueError):
        seqs.sequences[0][0] = 5


def test_filtering_counts_hand_checked():
    # raw counts: users a:4, b:3, c:2, d:3, e:3; items x:6, y:6, z:2, w:1 (15 rows)
    data = rows(
        [
            ("a", "x", 1),
            ("a", "y", 2),
            ("a", "z", 3),
            ("a", "w", 4),
            ("b", "x", 1),
            ("b", "y", 2),
            ("b", "z", 3),
            ("c", "x", 1),
            ("c", "y", 2),
            ("d", "x", 1),
            ("d", "y", 2),
            ("d", "x", 3),
            ("e", "y", 1),
            ("e", "x", 2),
            ("e", "y", 3),
        ]  # fmt: skip
    )
    vocab, seqs, stats = build_sequences(data, min_user_interactions=3, min_item_interactions=2)
    # c (2 rows) goes; w (1 row) goes; one pass, so a keeps 3 rows although a lost w.
    assert decoded(vocab, seqs) == {
        "a": ["x", "y", "z"],
        "b": ["x", "y", "z"],
        "d": ["x", "y", "x"],
        "e": ["y", "x", "y"],
    }
    assert stats.users_in == 5 and stats.users_kept == 4
    assert stats.items_in == 4 and stats.items_kept == 3
    assert stats.interactions_in == 15 and stats.interactions_kept == 12
    assert stats.users_dropped_too_few == 0
    assert vocab.raw_ids.tolist() == ["x", "y", "z"]  # x:5, y:5 (tie: x first in file), z:2


def test_filtering_is_one_pass_and_then_needs_three():
    data = rows(
        [(1, "rare", 1), (1, "a", 2), (1, "b", 3)]  # user 1 has 3 raw rows, keeps 2 -> dropped
        + [(u, i, t) for u in (2, 3) for t, i in enumerate(["a", "b", "a", "b"])]
    )
    vocab, seqs, stats = build_sequences(data, min_user_interactions=3, min_item_interactions=2)
    assert seqs.users.tolist() == [2, 3]
    assert stats.users_dropped_too_few == 1
    assert "rare" not in vocab.raw_ids.tolist()
    assert stats.interactions_kept == 8


def test_vocabulary_only_holds_kept_items():
    data = rows([(1, 5, 0), (1, 6, 1), (1, 7, 2), (2, 8, 0), (2, 9, 1)])  # user 2 too short
    vocab, _, stats = build_sequences(data, min_user_interactions=1, min_item_interactions=1)
    assert sorted(vocab.raw_ids.tolist()) == [5, 6, 7]
    assert stats.users_dropped_too_few == 1 and stats.items_kept == 3


def test_dedupe_consecutive():
    data = rows([(1, 5, 0), (1, 5, 1), (1, 6, 2), (1, 5, 3), (1, 6, 4), (1, 6, 5)])
    vocab, seqs, stats = build_sequences(
        data, min_user_interactions=1, min_item_interactions=1, dedupe_consecutive=True
    )
    assert decoded(vocab, seqs) == {1: [5, 6, 5, 6]}
    assert stats.consecutive_duplicates_dropped == 2


def test_string_and_integer_ids_give_the_same_sequences():
    triples = [(u, (u * 7 + t) % 5, t) for u in range(1, 7) for t in range(6)]
    v1, s1, st1 = build_sequences(rows(triples), min_user_interactions=1, min_item_interactions=1)
    v2, s2, st2 = build_sequences(
        rows(triples, as_strings=True), min_user_interactions=1, min_item_interactions=1
    )
    assert st1 == st2
    as_int = {int(u): [int(i) for i in seq] for u, seq in decoded(v2, s2).items()}
    assert as_int == decoded(v1, s1)


def test_bad_thresholds_and_nothing_left():
    data = rows([(1, 1, 0), (1, 2, 1), (1, 3, 2)])
    with pytest.raises(ConfigError, match="min_user_interactions"):
        build_sequences(data, min_user_interactions=0)
    with pytest.raises(DataError, match="no user has 3 or more interactions"):
        build_sequences(data, min_user_interactions=1, min_item_interactions=2)


def test_leave_one_out_on_synthetic_data():
    data = generate(num_users=200, num_items=120, seed=4)
    vocab, seqs, _ = build_sequences(data.interactions)
    split = leave_one_out(seqs)
    valid_histories, test_histories = split.histories("valid"), split.histories("test")
    assert split.targets("valid") is split.valid_targets
    assert split.valid_targets.dtype == np.int32 and split.test_targets.dtype == np.int32
    for s, train, valid, test, vh, th in zip(
        seqs.sequences,
        split.train,
        split.valid_targets,
        split.test_targets,
        valid_histories,
        test_histories,
        strict=True,
    ):
        assert np.array_equal(np.r_[train, valid, test], s)
        assert len(train) == len(s) - 2 >= 1
        assert test not in train and valid not in train  # synthetic users never repeat items
        assert np.array_equal(vh, train)
        assert len(vh) < len(th) and np.array_equal(th[: len(vh)], vh)  # strict prefix
        assert th[-1] == valid
    with pytest.raises(ValueError, match="`stage` must be one of"):
        split.histories("train")


def test_leave_one_out_needs_three():
    seqs = UserSequences(np.array([1]), [np.array([1, 2], dtype=np.int32)])
    with pytest.raises(ValueError, match="at least 3"):
        leave_one_out(seqs)


@pytest.mark.slow
def test_movielens_1m_matches_sasrec_counts():
    if not (ML1M / "ratings.dat").is_file():
        pytest.skip(f"MovieLens-1M not found at {ML1M}")
    from attnrec_tf.data.movielens import read_movielens

    data = read_movielens(ML1M)
    assert len(data.interactions) == 1_000_209
    vocab, seqs, stats = build_sequences(data.interactions)
    assert (len(seqs), vocab.num_items, stats.interactions_kept) == (6_040, 3_416, 999_611)
    assert stats.users_dropped_too_few == 0
    split = leave_one_out(seqs)
    assert sum(len(t) for t in split.train) == 987_531  # SASRec: 163.5 actions per user


def test_sample_users_keeps_rows_aligned():
    import numpy as np

    from attnrec_tf.data.sequences import LeaveOneOutSplit

    split = LeaveOneOutSplit(
        users=np.array([10, 11, 12, 13]),
        train=[np.array([1, 2]), np.array([3]), np.array([4, 5]), np.array([6])],
        valid_targets=np.array([7, 8, 9, 10], np.int32),
        test_targets=np.array([11, 12, 13, 14], np.int32),
    )
    sample = split.sample_users(2, seed=1)
    assert len(sample.users) == 2
    for user, train, valid, test in zip(
        sample.users, sample.train, sample.valid_targets, sample.test_targets, strict=True
    ):
        row = int(user) - 10
        assert train.tolist() == split.train[row].tolist()
        assert valid == split.valid_targets[row] and test == split.test_targets[row]
    assert split.sample_users(10) is split

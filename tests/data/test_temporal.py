"""The temporal split: a global cut-off, training only before it, targets after it."""

from __future__ import annotations

import numpy as np
import pytest

from attnrec_tf import metrics
from attnrec_tf.data.interactions import Interactions
from attnrec_tf.data.sequences import LeaveOneOutSplit, build_sequences, leave_one_out
from attnrec_tf.data.temporal import (
    check_split_options,
    cutoff_at_fraction,
    describe,
    make_split,
    parse_split_time,
    protocol_entry,
    sequence_timestamps,
    temporal_split,
)
from attnrec_tf.errors import ConfigError
from attnrec_tf.evaluate import evaluate_popularity_split, evaluate_split
from attnrec_tf.run_dir import load_split, save_split

CUTOFF = 100.0
# user -> timestamps; every row has its own item "<user>@<time>#<n>", so an item's time is known
TIMES = {
    "a": [10, 20, 30, 100, 110, 120],  # 3 before, 3 at/after: evaluated (valid @100, test @110)
    "b": [50, 60, 150],  # 2 before, 1 after: trained on, not evaluated
    "c": [200, 210, 220],  # nothing before: dropped
    "d": [5, 6, 7],  # nothing after: trained on, not evaluated
    "e": [100, 90, 100],  # a tie at the cut-off (file order kept): valid = first row at 100
    "f": [99.5, 300, 100.0],  # out of file order: sorted by time
}


def fixture() -> tuple[Interactions, dict]:
    """The rows of TIMES, users interleaved in the file (each user's rows in TIMES order), and
    item -> timestamp."""
    rows = [
        (n, user, f"{user}@{t}#{n}", float(t))
        for user, times in TIMES.items()
        for n, t in enumerate(times)
    ]
    rows.sort(key=lambda row: row[0])  # stable: round robin over the users
    _, users, items, times = zip(*rows, strict=True)
    interactions = Interactions(
        np.array(users, dtype=object), np.array(items, dtype=object), np.array(times)
    )
    return interactions, {item: t for _, _, item, t in rows}


def split_of(interactions: Interactions, **options) -> tuple[LeaveOneOutSplit, object]:
    vocab, seqs, _ = build_sequences(interactions, min_user_interactions=1, min_item_interactions=1)
    return make_split(interactions, vocab, seqs, split="temporal", **options), vocab


def test_no_training_input_at_or_after_the_cutoff():
    """The no-leak test: every item of split.train happened strictly before the cut-off."""
    interactions, time_of = fixture()
    split, vocab = split_of(interactions, split_time=CUTOFF)
    trained = [time_of[raw] for seq in split.train for raw in vocab.decode(seq).tolist()]
    assert trained and max(trained) < CUTOFF
    # and it is all of them: every interaction before the cut-off of a kept user is trained on
    expected = sum(1 for times in TIMES.values() for t in times if t < CUTOFF)
    assert len(trained) == expected == split.protocol["train_interactions"]


def test_targets_are_the_first_and_second_interactions_after_the_cutoff():
    interactions, time_of = fixture()
    split, vocab = split_of(interactions, split_time=CUTOFF)
    assert split.users.tolist() == ["a", "e", "f"]
    valid = vocab.decode(split.valid_targets).tolist()
    test = vocab.decode(split.test_targets).tolist()
    assert valid == ["a@100#3", "e@100#0", "f@100.0#2"]
    assert test == ["a@110#4", "e@100#2", "f@300#1"]
    assert all(time_of[v] >= CUTOFF for v in valid) and all(time_of[t] >= CUTOFF for t in test)
    # histories: before the cut-off; the test one also has the validation target
    valid_histories = [vocab.decode(h).tolist() for h in split.histories("valid")]
    assert valid_histories == [["a@10#0", "a@20#1", "a@30#2"], ["e@90#1"], ["f@99.5#0"]]
    test_histories = [vocab.decode(h).tolist() for h in split.histories("test")]
    assert test_histories == [h + [v] for h, v in zip(valid_histories, valid, strict=True)]
    # evaluated users first in train, then the ones trained on only (b, d), raw id order
    assert [vocab.decode(s).tolist() for s in split.train[3:]] == [
        ["b@50#0", "b@60#1"],
        ["d@5#0", "d@6#1", "d@7#2"],
    ]


def test_the_protocol_counts_every_user():
    interactions, _ = fixture()
    split, _ = split_of(interactions, split_time=CUTOFF)
    p = split.protocol
    assert p["name"] == "temporal" and p["cutoff"] == CUTOFF
    assert p["cutoff_from"] == "--split-time 100.0"
    assert p["users_evaluated"] == 3
    assert p["users_dropped_no_interaction_before_cutoff"] == 1  # c
    assert p["users_trained_not_evaluated_one_after_cutoff"] == 1  # b
    assert p["users_trained_not_evaluated_none_after_cutoff"] == 1  # d
    assert p["fraction_before_cutoff"] == pytest.approx(10 / 21)
    assert "cutoff_utc" not in p  # 100 is no plausible epoch time
    assert protocol_entry(split) == p
    line = describe(split)
    assert line is not None and "3 users evaluated" in line and "1 users dropped" in line


def test_fraction_cutoff_puts_at_most_that_share_before_it():
    interactions, _ = fixture()
    for fraction in (0.3, 0.5, 0.7):
        split, _ = split_of(interactions, split_fraction=fraction)
        times = np.sort(interactions.timestamps)
        cutoff = split.protocol["cutoff"]
        assert cutoff == times[int(fraction * len(times))]
        assert (times < cutoff).mean() <= fraction
        assert split.protocol["cutoff_from"] == f"--split-fraction {fraction:g}"


def test_default_fraction_is_named_in_the_protocol():
    rng = np.random.default_rng(0)
    n = 400
    interactions = Interactions(
        rng.integers(0, 20, n), rng.integers(0, 30, n), rng.permutation(n).astype(float)
    )
    split, _ = split_of(interactions)
    assert split.protocol["cutoff_from"] == "--split-fraction 0.9 (default)"
    assert split.protocol["cutoff"] == cutoff_at_fraction(interactions.timestamps, 0.9)


def test_iso_dates_and_epoch_cutoffs():
    day = 86_400.0
    epoch = 1_700_000_000.0
    rows = [(u, i, epoch + day * (u + i)) for u in range(4) for i in range(6)]
    users, items, times = (np.array(col) for col in zip(*rows, strict=True))
    interactions = Interactions(users, items * 10 + users, times)
    cutoff = "2023-11-20"  # 1700438400
    split, _ = split_of(interactions, split_time=cutoff)
    assert split.protocol["cutoff"] == parse_split_time(cutoff) == 1_700_438_400.0
    assert split.protocol["cutoff_utc"] == "2023-11-20T00:00:00Z"
    assert split.protocol["cutoff_from"] == "--split-time 2023-11-20"
    same, _ = split_of(interactions, split_time="1700438400")
    assert [s.tolist() for s in same.train] == [s.tolist() for s in split.train]


def test_cutoffs_that_leave_nobody_to_evaluate_name_the_flag_and_the_range():
    interactions, _ = fixture()
    with pytest.raises(ConfigError, match=r"--split-time 1: no user .* timestamps run from 5 "):
        split_of(interactions, split_time=1)
    with pytest.raises(ConfigError, match=r"--split-time 1000000.0: no user .*cut-off 1000000 "):
        split_of(interactions, split_time=1e6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("sideways", None, None), "--split must be one of leave-one-out, temporal"),
        (("leave-one-out", "2020-01-01", None), "--split-time needs --split temporal"),
        (("leave-one-out", None, 0.5), "--split-fraction needs --split temporal"),
        (("temporal", "2020-01-01", 0.5), "not both"),
        (("temporal", None, 1.0), "--split-fraction must be between 0 and 1"),
        (("temporal", None, 0.0), "--split-fraction must be between 0 and 1"),
        (("temporal", "yesterday", None), "--split-time 'yesterday' is neither"),
        (("temporal", "nan", None), "--split-time 'nan' is neither"),
        (("temporal", "", None), "--split-time '' is neither"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        check_split_options(*options)


def test_leave_one_out_is_unchanged():
    interactions, _ = fixture()
    vocab, seqs, _ = build_sequences(interactions, min_user_interactions=1, min_item_interactions=1)
    ours = make_split(interactions, vocab, seqs)
    theirs = leave_one_out(seqs)
    assert [s.tolist() for s in ours.train] == [s.tolist() for s in theirs.train]
    assert ours.valid_targets.tolist() == theirs.valid_targets.tolist()
    assert protocol_entry(ours) == "leave-one-out" and describe(ours) is None
    assert ours.histories("valid") is ours.train  # the same list, as before


def test_split_npz_keeps_the_extra_training_users_and_the_protocol(tmp_path):
    interactions, _ = fixture()
    split, _ = split_of(interactions, split_time=CUTOFF)
    save_split(tmp_path / "split.npz", split)
    loaded = load_split(tmp_path / "split.npz")
    assert loaded.users.tolist() == split.users.tolist()
    assert [s.tolist() for s in loaded.train] == [s.tolist() for s in split.train]
    assert loaded.protocol == split.protocol
    assert [h.tolist() for h in loaded.histories("test")] == [
        h.tolist() for h in split.histories("test")
    ]
    # a split.npz written before the protocol was saved reads as leave-one-out
    with np.load(tmp_path / "split.npz") as data:
        old = {k: data[k] for k in data.files if k != "protocol"}
    with open(tmp_path / "old.npz", "wb") as handle:
        np.savez(handle, **old)
    assert load_split(tmp_path / "old.npz").protocol == {"name": "leave-one-out"}


def test_the_same_evaluation_and_popularity_baseline_run_on_it():
    interactions, _ = fixture()
    split, vocab = split_of(interactions, split_time=CUTOFF)
    seen: list[int] = []

    def constant(histories):
        seen.append(len(histories))
        return np.zeros((len(histories), vocab.size), np.float32)

    result = evaluate_split(constant, split, "test")
    assert sum(seen) == len(split.users) and result["ndcg@10"] == 0.0  # ties count against it
    popularity = evaluate_popularity_split(split, vocab.size, "test")
    expected = metrics.evaluate_popularity(
        split.train, split.histories("test"), split.test_targets, vocab.size
    )
    assert popularity == expected  # counts from every training sequence, users trained on too


def test_sample_users_keeps_the_protocol():
    interactions, _ = fixture()
    split, _ = split_of(interactions, split_time=CUTOFF)
    sample = split.sample_users(2, seed=0)
    assert len(sample.users) == len(sample.train) == 2
    assert sample.protocol == split.protocol


def test_sequence_timestamps_line_up_with_integer_ids_too():
    rng = np.random.default_rng(1)
    n = 300
    users, items = rng.integers(0, 15, n), rng.integers(0, 40, n)
    times = rng.integers(0, 50, n).astype(float)  # many ties: file order decides
    interactions = Interactions(users, items, times)
    vocab, seqs, _ = build_sequences(interactions, min_user_interactions=3)
    got = sequence_timestamps(interactions, vocab, seqs)
    for user, seq, ts in zip(seqs.users, seqs.sequences, got, strict=True):
        rows = np.flatnonzero((users == user) & (vocab.encode(items) > 0))
        rows = rows[np.argsort(times[rows], kind="stable")]
        assert vocab.encode(items[rows]).tolist() == seq.tolist()
        assert ts.tolist() == times[rows].tolist()


def test_sequence_timestamps_refuse_sequences_of_other_rows():
    interactions = Interactions(
        np.array([1, 1, 1, 1]), np.array([5, 5, 6, 7]), np.array([1.0, 2.0, 3.0, 4.0])
    )
    vocab, seqs, _ = build_sequences(
        interactions, min_user_interactions=1, min_item_interactions=1, dedupe_consecutive=True
    )
    with pytest.raises(ValueError, match="not built from these interactions"):
        sequence_timestamps(interactions, vocab, seqs)


def test_temporal_split_checks_its_inputs():
    from attnrec_tf.data.sequences import UserSequences

    seqs = UserSequences(np.array([1]), [np.array([1, 2, 3], np.int32)])
    with pytest.raises(ValueError, match="one timestamp per item"):
        temporal_split(seqs, [np.array([1.0, 2.0])], 2.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        temporal_split(seqs, [np.array([3.0, 2.0, 1.0])], 2.0)


def test_the_split_form_checks_its_lengths():
    with pytest.raises(ValueError, match="one entry per evaluated user"):
        LeaveOneOutSplit(
            users=np.array([1, 2]),
            train=[np.array([1])],
            valid_targets=np.array([1, 2]),
            test_targets=np.array([1, 2]),
        )

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from attnrec_tf.data.sequences import build_sequences, leave_one_out
from attnrec_tf.data.synthetic import generate
from attnrec_tf.errors import ConfigError


@pytest.fixture(scope="module")
def default():
    started = time.perf_counter()
    data = generate()
    return data, time.perf_counter() - started


def test_default_is_fast(default):
    _, seconds = default
    assert seconds < 2.0


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (
        generate(seed=5, num_users=100),
        generate(seed=5, num_users=100),
        generate(seed=6, num_users=100),
    )
    for field in ("users", "items", "timestamps"):
        assert np.array_equal(getattr(a.interactions, field), getattr(b.interactions, field))
    assert a.items.titles == b.items.titles and a.items.features == b.items.features
    assert len(a.interactions) != len(c.interactions) or not np.array_equal(
        a.interactions.items, c.interactions.items
    )
    assert a.source == "synthetic(seed=5)"


def test_structure(default):
    data, _ = default
    rows = data.interactions
    assert data.name == "synthetic"
    assert rows.users.dtype == np.int64 and rows.items.dtype == np.int64
    assert set(np.unique(rows.users).tolist()) == set(range(1, 2001))
    assert rows.items.min() >= 1 and rows.items.max() <= 600
    assert len(np.unique(rows.items)) == 600  # every item is used
    assert abs(len(rows) / 2000 - 40) < 4  # mean_length
    # rows grouped by user, timestamps strictly increasing inside a user, no repeats
    assert np.all(np.diff(rows.users) >= 0)
    same_user = rows.users[1:] == rows.users[:-1]
    assert np.all(np.diff(rows.timestamps)[same_user] > 0)
    pairs = rows.users * 1000 + rows.items
    assert len(np.unique(pairs)) == len(pairs)
    assert np.bincount(rows.users)[1:].min() >= 5


def test_titles_and_genres(default):
    data, _ = default
    titles, genres = data.items.titles, data.items.features["genres"]
    assert sorted(titles) == list(range(1, 601)) and sorted(genres) == list(range(1, 601))
    for item in (1, 17, 600):
        match = re.fullmatch(rf"Item {item} \((.+)\)", titles[item])
        assert match is not None and genres[item][0] == match.group(1)
    assert len({g[0] for g in genres.values()}) == 12  # one cluster per interest
    assert any(len(g) == 2 for g in genres.values())


def _ndcg_at_10(scores: np.ndarray, targets: np.ndarray) -> float:
    """scores (U, V) with column 0 = padding; full ranking, ties counted against the target."""
    scores = scores.astype(np.float64).copy()
    scores[:, 0] = -np.inf
    target_scores = scores[np.arange(len(targets)), targets]
    rank = (scores > target_scores[:, None]).sum(axis=1)
    return float(np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0).mean())


def test_sequential_signal_beats_popularity(default):
    data, _ = default
    vocab, seqs, _ = build_sequences(data.interactions)
    split = leave_one_out(seqs)
    train = split.train
    popularity = np.bincount(np.concatenate(train), minlength=vocab.size).astype(np.float64)
    transitions = np.zeros((vocab.size, vocab.size))
    for s in train:
        np.add.at(transitions, (s[:-1], s[1:]), 1.0)
    last = np.array([h[-1] for h in split.histories("test")])
    targets = split.targets("test")
    pop = _ndcg_at_10(np.tile(popularity, (len(targets), 1)), targets)
    markov = _ndcg_at_10(transitions[last] + 1e-3 * popularity, targets)
    rng = np.random.default_rng(0)
    random = _ndcg_at_10(rng.random((len(targets), vocab.size)), targets)
    assert pop > 2 * random  # popularity is a real baseline
    assert markov > 3 * pop  # and "next after the last item" is far better


def test_scales_to_many_items():
    data = generate(num_users=300, num_items=100_000, num_interests=30, mean_length=20, seed=2)
    assert data.interactions.items.max() <= 100_000
    assert len(data.items.titles) == 100_000
    assert "Genre 30" in {g[0] for g in data.items.features["genres"].values()}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_users": 0},
        {"num_items": 10, "num_interests": 12},
        {"mean_length": 2},
        {"num_interests": 0},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        generate(**kwargs)

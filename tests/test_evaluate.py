"""`evaluate.evaluate_split_windowed` against ranks and lists worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.evaluate import evaluate_split_windowed
from attnrec_tf.metrics import truncated_mrr

# V = 6. Test histories (train + validation target) [1, 2, 3] and [4], test targets 5 and 2.
SPLIT = LeaveOneOutSplit(
    users=np.array([10, 11]),
    train=[np.array([1, 2], dtype=np.int32), np.array([], dtype=np.int32)],
    valid_targets=np.array([3, 4], dtype=np.int32),
    test_targets=np.array([5, 2], dtype=np.int32),
)
SCORES = {  # by the last history item; column 0 is padding
    3: np.array([9.0, 0.8, 0.9, 0.1, 0.5, 0.85]),  # user 0: only item 2 beats target 5
    4: np.array([9.0, 0.2, 0.6, 0.3, 0.9, 0.4]),  # user 1: only item 4 beats target 2
}


def score_fn(histories):
    return np.stack([SCORES[int(h[-1])] for h in histories])


def test_full_ranks_and_window_lists_by_hand():
    result = evaluate_split_windowed(score_fn, SPLIT, "test", top_k=1, history_length=1)
    # Full ranking with the histories left out: both targets are first.
    assert result.ranks.tolist() == [0, 0]
    # The top-1 lists leave out only the last history item: user 0 gets item 2 (seen before
    # the window) instead of the target; user 1 gets the target.
    assert result.window == pytest.approx(
        {"hr@1": 0.5, "ndcg@1": 0.5, "num_users": 2, "mrr@1": 0.5}
    )
    # Leaving out the last 3 items covers user 0's whole history: both lists hit.
    wide = evaluate_split_windowed(score_fn, SPLIT, "test", top_k=1, history_length=3)
    assert wide.window["hr@1"] == 1.0 and wide.window["mrr@1"] == 1.0


def test_history_kept_in_the_ranking_when_not_excluded():
    kept = evaluate_split_windowed(
        score_fn, SPLIT, "test", top_k=2, history_length=1, exclude_history=False, batch_size=1
    )
    assert kept.ranks.tolist() == [1, 1]  # items 2 and 4 count against the targets now
    assert truncated_mrr(kept.ranks, 2) == pytest.approx(0.5)
    # User 0's list [2, 5]: the target is second, item 2 counts -> rank 1; user 1's [2, 5]: 0.
    assert kept.window["hr@1"] == 0.5 and kept.window["mrr@2"] == pytest.approx(0.75)
    excluded = evaluate_split_windowed(score_fn, SPLIT, "test", top_k=2, history_length=1)
    assert excluded.window["hr@1"] == 1.0  # item 2 is user 0's history: left out of the rank


# --- by history length ----------------------------------------------------------------------

# V = 6. Training sequences (both baselines): items 1..4; item 5 is never trained on.
TOY = LeaveOneOutSplit(
    users=np.array([20, 21, 22]),
    train=[np.array(s, dtype=np.int32) for s in ([1, 2, 3], [2, 3], [3, 4, 4])],
    valid_targets=np.array([4, 1, 2], dtype=np.int32),
    test_targets=np.array([5, 4, 1], dtype=np.int32),
)
# Test histories: [1, 2, 3, 4] -> 5, [2, 3, 1] -> 4, [3, 4, 4, 2] -> 1 (scored shortest first).


def ramp_score_fn(histories):
    """Scores item j as j, plus 10 for the item after the last one seen (cyclic over 1..5)."""
    scores = np.tile(np.arange(6, dtype=np.float64), (len(histories), 1))
    for row, history in enumerate(histories):
        scores[row, int(history[-1]) % 5 + 1] += 10.0
    return scores


def test_by_history_length_entry_by_hand():
    from attnrec_tf.evaluate import evaluate_by_history_length

    entry = evaluate_by_history_length(ramp_score_fn, TOY, 6, lengths=[1, None])
    assert list(entry) == ["lengths", "num_users", "model", "popularity", "item_knn"]
    assert entry["lengths"] == [1, "all"] and entry["num_users"] == 3
    # Model: it reads only the last item, the same at every L. [1, 2, 3, 4] -> 5: the only
    # item outside the history, rank 0. [2, 3, 1] -> 4: the +10 goes to item 2 (history, left
    # out); item 5 scores 5 > 4, rank 1. [3, 4, 4, 2] -> 1: +10 to item 3 (history); 5 > 1,
    # rank 1.
    ndcg = (1 + 2 / np.log2(3)) / 3
    assert entry["model"]["hr@10"] == [1.0, 1.0]
    np.testing.assert_allclose(entry["model"]["ndcg@10"], [ndcg, ndcg])
    # Popularity (training counts 1:1 2:2 3:3 4:2 5:0): every target beats item 5.
    assert entry["popularity"] == {"hr@10": [1.0, 1.0], "ndcg@10": [1.0, 1.0]}
    # Item-kNN (cosine co-occurrence, tests/test_metrics.py): at L = 1 user [2,3,1] -> 4 sees
    # [1], sim(1, 4) = 0 ties item 5 -> rank 1; the others rank 0. With all: every rank is 0.
    np.testing.assert_allclose(entry["item_knn"]["ndcg@10"], [(2 + 1 / np.log2(3)) / 3, 1.0])


def test_by_history_length_samples_users_and_skips_item_knn_on_huge_catalogs(monkeypatch):
    from attnrec_tf import metrics
    from attnrec_tf.evaluate import evaluate_by_history_length

    monkeypatch.setattr(metrics, "SIMILARITY_MAX_BYTES", 4 * 6 * 6 - 1)
    entry = evaluate_by_history_length(ramp_score_fn, TOY, 6, max_users=2, seed=3)
    assert entry["lengths"] == [1, 3, 5, 10, 20, 50, "all"] and entry["num_users"] == 2
    assert entry["item_knn"]["skipped"].startswith("catalog of 5 items")
    assert len(entry["model"]["ndcg@10"]) == len(entry["popularity"]["hr@10"]) == 7
    again = evaluate_by_history_length(ramp_score_fn, TOY, 6, max_users=2, seed=3)
    assert again == entry  # a seeded sample


class RampModel:
    """A Keras-free stand-in for `AttentionRecommender` (`keras_score_fn` needs `score`)."""

    max_len = 4
    vocab_size = 6

    def score(self, batch):
        import tensorflow as tf

        last = tf.cast(batch[:, -1], tf.int32) % 5 + 1
        ramp = tf.range(6, dtype=tf.float32)[None, :]
        return ramp + 10.0 * tf.one_hot(last, 6)


def test_evaluate_test_adds_the_entry_beside_the_table_rows():
    from attnrec_tf.evaluate import evaluate_test

    result = evaluate_test(RampModel(), TOY, sampled_negatives=0)
    found = result["metrics"]
    assert list(found) == ["keras", "popularity", "standard_error", "by_history_length"]
    # Test ranks [0, 1, 1] (above): every user hits, so HR@10's standard error is 0; NDCG@10's
    # per-user values are 1, g, g (g = 1 / log2(3)), whose sd / sqrt(3) is (1 - g) / 3.
    assert found["standard_error"] == pytest.approx(
        {"hr@10": 0.0, "ndcg@10": (1 - 1 / np.log2(3)) / 3, "num_users": 3}
    )
    entry = found["by_history_length"]
    assert entry["lengths"] == [1, 3, 5, 10, 20, 50, "all"] and entry["num_users"] == 3
    assert set(entry) == {"lengths", "num_users", "model", "popularity", "item_knn"}
    for scorer in ("model", "popularity", "item_knn"):
        assert set(entry[scorer]) == {"hr@10", "ndcg@10"} and len(entry[scorer]["hr@10"]) == 7
    # Every user evaluated: "all" is the model's own full-ranking row.
    assert entry["model"]["ndcg@10"][-1] == found["keras"]["ndcg@10"]
    assert entry["model"]["hr@10"][-1] == found["keras"]["hr@10"]
    assert entry["popularity"]["ndcg@10"] == [found["popularity"]["ndcg@10"]] * 7
    without = evaluate_test(RampModel(), TOY, sampled_negatives=0, by_history_length=False)
    assert list(without["metrics"]) == ["keras", "popularity", "standard_error"]


def test_popularity_from_given_item_counts():
    from attnrec_tf.evaluate import evaluate_popularity_split

    # The counts of TOY's training parts give the numbers of counting the parts.
    counts = np.bincount(np.concatenate(TOY.train), minlength=6)
    assert evaluate_popularity_split(TOY, 6, "test", item_counts=counts) == (
        evaluate_popularity_split(TOY, 6, "test")
    )
    # Item 5 most popular, the others tied (histories left out): [1, 2, 3, 4] -> 5 rank 0;
    # [2, 3, 1] -> 4: item 5 above, rank 1; [3, 4, 4, 2] -> 1: item 5 above, rank 1.
    flipped = evaluate_popularity_split(TOY, 6, "test", item_counts=np.array([0, 1, 1, 1, 1, 9]))
    assert flipped["hr@1"] == pytest.approx(1 / 3) and flipped["hr@5"] == 1.0


def test_chunked_split_ranks_equal_the_dense_ones():
    from attnrec_tf.evaluate import split_ranks

    rng = np.random.default_rng(0)
    table = rng.normal(size=(40, 3)).astype(np.float32)
    table[7] = table[9]  # a tie
    users = {}

    def fn(histories):
        return fn.user_vectors(histories) @ table.T

    def user_vectors(histories):
        return np.stack(
            [users.setdefault(len(h) * 100 + int(h[-1]), rng.normal(size=3)) for h in histories]
        ).astype(np.float32)

    fn.user_vectors, fn.item_table, fn.vocab_size = user_vectors, lambda: table, 40
    split = LeaveOneOutSplit(
        users=np.arange(30),
        train=[rng.integers(1, 40, size=rng.integers(0, 6)).astype(np.int32) for _ in range(30)],
        valid_targets=rng.integers(1, 40, size=30).astype(np.int32),
        test_targets=np.r_[np.full(5, 7), np.full(5, 9), rng.integers(1, 40, size=20)].astype(
            np.int32
        ),
    )
    for exclude in (True, False):
        dense = split_ranks(fn, split, "test", exclude_history=exclude, batch_size=7)
        for chunk in (1, 6, 40, 64):
            chunked = split_ranks(fn, split, "test", exclude_history=exclude, item_chunk=chunk)
            np.testing.assert_array_equal(chunked, dense)


def test_chunked_ranks_of_a_keras_model_equal_its_dense_ranks():
    from attnrec_tf.config import Config
    from attnrec_tf.evaluate import keras_score_fn, split_ranks
    from attnrec_tf.model import build_model

    config = Config().replace(max_len=6, embedding_dim=8, attention_units=8, num_blocks=1)
    model = build_model(config, 30, None)
    rng = np.random.default_rng(2)
    split = LeaveOneOutSplit(
        users=np.arange(20),
        train=[rng.integers(1, 30, size=rng.integers(1, 9)).astype(np.int32) for _ in range(20)],
        valid_targets=rng.integers(1, 30, size=20).astype(np.int32),
        test_targets=rng.integers(1, 30, size=20).astype(np.int32),
    )
    score_fn = keras_score_fn(model, model.max_len)
    np.testing.assert_allclose(  # the user vectors against the table are the model's scores
        score_fn.user_vectors(split.histories("test")) @ score_fn.item_table().T,
        score_fn(split.histories("test")),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    dense = split_ranks(score_fn, split, "test")
    chunked = split_ranks(score_fn, split, "test", item_chunk=7)
    # The dense scores come from TensorFlow's matmul, the chunks from numpy's: equal here; in
    # general two items within float rounding of each other could swap.
    np.testing.assert_array_equal(chunked, dense)

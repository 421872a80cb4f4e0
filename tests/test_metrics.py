"""Tests of the ranking metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from attnrec_tf.metrics import (
    SCORES_PER_BATCH,
    SIMILARITY_MAX_BYTES,
    RankingAccumulator,
    batch_size_for_vocab,
    cooccurrence_similarity,
    evaluate_by_history_length,
    evaluate_popularity,
    evaluate_scores,
    evaluate_scores_sampled,
    hit_rate,
    item_knn_scores,
    last_items,
    list_metrics,
    mrr,
    ndcg,
    popularity_scores,
    rank_of_targets,
    sampled_rank_of_targets,
    similarity_skip_reason,
    top_k_metrics,
    top_k_result,
    top_k_stable,
    truncated_mrr,
    window_top_k,
)

# 3 users x 6 columns; column 0 is padding (its high score must never count).
SCORES = np.array(
    [
        [9.0, 0.1, 0.5, 0.3, 0.9, 0.2],  # target 3: items 2 and 4 score higher -> rank 2
        [9.0, 0.4, 0.4, 0.1, 0.4, 0.0],  # target 1: items 2 and 4 tie -> pessimistic rank 2
        [9.0, 0.2, 0.1, 0.0, 0.3, 0.8],  # target 5: best -> rank 0
    ]
)
TARGETS = np.array([3, 1, 5])


def test_ranks_by_hand_with_pessimistic_ties_and_padding_ignored():
    np.testing.assert_array_equal(rank_of_targets(SCORES, TARGETS), [2, 2, 0])


def test_metrics_by_hand():
    ranks = np.array([2, 2, 0])
    assert hit_rate(ranks, 1) == pytest.approx(1 / 3)
    assert hit_rate(ranks, 2) == pytest.approx(1 / 3)
    assert hit_rate(ranks, 3) == pytest.approx(1.0)
    # rank 2 -> 1/log2(4) = 0.5 ; rank 0 -> 1/log2(2) = 1.
    assert ndcg(ranks, 1) == pytest.approx(1 / 3)
    assert ndcg(ranks, 2) == pytest.approx(1 / 3)
    assert ndcg(ranks, 3) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert ndcg(np.array([1]), 10) == pytest.approx(1 / np.log2(3))
    assert mrr(ranks) == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)


def test_constant_scorer_gets_no_credit():
    ranks = rank_of_targets(np.zeros((3, 6)), TARGETS)
    np.testing.assert_array_equal(ranks, [4, 4, 4])  # every one of the 4 other items ties
    assert hit_rate(ranks, 1) == 0.0 and ndcg(ranks, 4) == 0.0


def test_exclusion_improves_rank_and_never_excludes_target():
    exclude = [np.array([4]), np.array([2]), np.array([], dtype=np.int64)]
    np.testing.assert_array_equal(rank_of_targets(SCORES, TARGETS, exclude), [1, 1, 0])
    # The target in the history stays ranked; item 2 (above it) is still removed.
    exclude = [np.array([3, 2]), np.array([1, 4, 2]), np.array([5])]
    np.testing.assert_array_equal(rank_of_targets(SCORES, TARGETS, exclude), [1, 0, 0])
    # Excluding the padding index changes nothing; excluded items never count, even at -inf.
    scores = np.full((1, 4), -np.inf)
    np.testing.assert_array_equal(rank_of_targets(scores, np.array([1]), [np.array([0, 2])]), [1])
    assert SCORES[0, 4] == 0.9  # the input is not modified


def test_vectorised_ranks_match_a_plain_loop():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(40, 30)).astype(np.float32)  # many ties
    targets = rng.integers(1, 30, size=40)
    exclude = [rng.choice(np.arange(30), size=rng.integers(0, 10), replace=False) for _ in targets]
    expected = []
    for row, target, history in zip(scores, targets, exclude, strict=True):
        others = [i for i in range(1, 30) if i != target and i not in set(history.tolist())]
        expected.append(sum(row[i] >= row[target] for i in others))
    np.testing.assert_array_equal(rank_of_targets(scores, targets, exclude), expected)


@pytest.mark.parametrize(
    ("scores", "targets", "message"),
    [
        (np.where(np.eye(3, 6, 2) == 1, np.nan, SCORES), TARGETS, "NaN in row 0"),
        (SCORES, np.array([0, 1, 2]), r"targets must lie in 1\.\.5"),
        (SCORES, np.array([1, 2, 6]), r"targets must lie in 1\.\.5"),
        (SCORES, np.array([1, 2]), "expected scores"),
        (SCORES, np.array([1.0, 2.0, 3.0]), "must be integers"),
    ],
)
def test_rank_of_targets_rejects_bad_input(scores, targets, message):
    with pytest.raises(ValueError, match=message):
        rank_of_targets(scores, targets)


def test_rank_of_targets_rejects_bad_exclusion():
    with pytest.raises(ValueError, match="exclude has 1 entries for 3 rows"):
        rank_of_targets(SCORES, TARGETS, [np.array([1])])
    with pytest.raises(ValueError, match="outside 0..5"):
        rank_of_targets(SCORES, TARGETS, [np.array([6]), np.array([]), np.array([])])


@pytest.mark.parametrize("bad_k", [0, -1, 2.5, True, "5"])
def test_k_must_be_a_positive_integer(bad_k):
    ranks = np.array([0, 1])
    message = r"`k` must be a positive integer. Received: k="
    for call in (
        lambda: hit_rate(ranks, bad_k),
        lambda: ndcg(ranks, bad_k),
        lambda: RankingAccumulator([ranks]).result(ks=(1, bad_k)),
        lambda: evaluate_scores(lambda h: SCORES, [np.array([1])] * 3, TARGETS, ks=(bad_k,)),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    assert hit_rate(ranks, np.int64(1)) == 0.5  # numpy integers are fine


def test_accumulator_over_batches():
    acc = RankingAccumulator()
    acc.update(np.array([2, 2]))
    acc.update(np.array([0]))
    result = acc.result(ks=(1, 3))
    assert list(result) == ["hr@1", "hr@3", "ndcg@1", "ndcg@3", "mrr", "num_users"]
    assert result["hr@1"] == pytest.approx(1 / 3) and result["hr@3"] == 1.0
    assert result["ndcg@3"] == pytest.approx(2 / 3) and result["mrr"] == pytest.approx(5 / 9)
    assert result["num_users"] == 3
    assert set(acc.result()) >= {"hr@20", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "mrr"}
    acc.reset()
    with pytest.raises(ValueError, match="before any ranks"):
        acc.result()
    with pytest.raises(ValueError, match="ranks is empty"):
        mrr(np.array([], dtype=np.int64))


def test_evaluate_scores_batches_and_excludes_history():
    histories = [np.array([4, 1]), np.array([2]), np.array([1, 2, 3])]
    calls = []

    def score_fn(batch):
        calls.append([h.tolist() for h in batch])
        rows = [next(i for i, h in enumerate(histories) if h is b) for b in batch]
        return SCORES[rows]

    result = evaluate_scores(score_fn, histories, TARGETS, batch_size=2, ks=(1, 2))
    assert calls == [[[4, 1], [2]], [[1, 2, 3]]]
    # ranks with exclusion: [1, 1, 0]
    assert result["hr@1"] == pytest.approx(1 / 3) and result["hr@2"] == 1.0
    assert result["ndcg@2"] == pytest.approx((2 / np.log2(3) + 1) / 3)
    assert result["mrr"] == pytest.approx((0.5 + 0.5 + 1) / 3) and result["num_users"] == 3
    plain = evaluate_scores(score_fn, histories, TARGETS, exclude_history=False, ks=(1,))
    assert plain["mrr"] == pytest.approx(5 / 9)  # ranks [2, 2, 0]


def test_popularity_by_hand():
    train = [np.array([1, 2, 2]), np.array([2, 3]), np.array([5, 0])]  # 0 (padding) ignored
    np.testing.assert_array_equal(popularity_scores(train, 6), [-np.inf, 1, 3, 1, 0, 1])
    histories = [np.array([1]), np.array([2]), np.array([3])]
    targets = np.array([2, 3, 4])
    # Excluding history: target 2 (count 3) is first; target 3 (count 1) ties with items 1 and
    # 5 -> rank 2; target 4 (count 0) is below items 1, 2 and 5 -> rank 3.
    result = evaluate_popularity(train, histories, targets, 6, ks=(1, 3))
    assert result["hr@1"] == pytest.approx(1 / 3) and result["hr@3"] == pytest.approx(2 / 3)
    assert result["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 4) / 3)
    # Without exclusion the ranks are 0, 3 and 4.
    result = evaluate_popularity(train, histories, targets, 6, exclude_history=False, ks=(1,))
    assert result["mrr"] == pytest.approx((1 + 1 / 4 + 1 / 5) / 3)
    with pytest.raises(ValueError, match="outside 0..5"):
        popularity_scores([np.array([6])], 6)


def _sampled_fixture(num_users=6, vocab_size=300, seed=0):
    rng = np.random.default_rng(seed)
    histories = [rng.choice(np.arange(1, vocab_size), size=30, replace=False) for _ in range(5)]
    histories = (histories * num_users)[:num_users]
    targets = np.array([h[-1] for h in histories])  # the target may sit in the history
    return rng, histories, targets


def test_sampled_ranks_lie_in_range_and_perfect_scorer_gets_zero():
    rng, histories, targets = _sampled_fixture()
    scores = rng.normal(size=(len(targets), 300))
    ranks = sampled_rank_of_targets(scores, targets, histories, 100, np.random.default_rng(1))
    assert ranks.min() >= 0 and ranks.max() <= 100
    np.testing.assert_array_equal(
        ranks, sampled_rank_of_targets(scores, targets, histories, 100, np.random.default_rng(1))
    )
    # Perfect scorer: history items and padding score higher still, but are never sampled.
    perfect = np.zeros_like(scores)
    perfect[:, 0] = 10.0
    for row, history in enumerate(histories):
        perfect[row, history] = 5.0
    perfect[np.arange(len(targets)), targets] = 1.0
    assert np.all(sampled_rank_of_targets(perfect, targets, histories, rng=3) == 0)
    constant = np.zeros_like(scores)  # ties are pessimistic: every negative counts
    assert np.all(sampled_rank_of_targets(constant, targets, histories, rng=3) == 100)


def test_sampled_negatives_are_distinct_and_too_few_candidates_raise():
    # Items 1, 2 are history and 3 is the target: exactly the 8 items 4..11 remain, so all of
    # them are drawn whatever the rng; 4 of them score above the target.
    scores = np.array([[0, 0, 0, 0.5, 1, 1, 1, 1, 0, 0, 0, 0]])
    history = [np.array([1, 2])]
    for seed in range(5):
        assert sampled_rank_of_targets(scores, np.array([3]), history, 8, seed)[0] == 4
    with pytest.raises(ValueError, match="user row 0 has only 8 items"):
        sampled_rank_of_targets(scores, np.array([3]), history, 9, 0)
    with pytest.raises(ValueError, match="`num_negatives` must be a positive integer"):
        sampled_rank_of_targets(scores, np.array([3]), history, 0, 0)


def test_evaluate_scores_sampled_is_seeded_and_batched():
    rng, histories, targets = _sampled_fixture(num_users=7)
    scores = rng.normal(size=(len(targets), 300))
    seen = iter(range(len(targets)))

    def score_fn(batch):
        return scores[[next(seen) for _ in batch]]

    first = evaluate_scores_sampled(score_fn, histories, targets, seed=5, batch_size=3)
    seen = iter(range(len(targets)))
    second = evaluate_scores_sampled(score_fn, histories, targets, seed=5, batch_size=3)
    assert first == second and first["num_users"] == 7
    assert set(first) == {
        *(f"{m}@{k}" for m in ("hr", "ndcg") for k in (1, 5, 10, 20)),
        "mrr",
        "num_users",
    }


def test_top_k_metrics_by_hand():
    # V = 6; user 0: target 3 listed second -> rank 1; user 1: target 5 not listed -> rank >= K.
    lists = {0: ([4, 3, 1], [0.9, 0.5, 0.1]), 1: ([2, 1, 4], [0.3, 0.2, 0.1])}
    histories = [np.array([2]), np.array([3])]

    def recommend(history):
        ids, scores = lists[int(history[0] == 3)]
        return {"item_ids": np.array(ids), "scores": np.array(scores)}

    result = top_k_metrics(recommend, histories, np.array([3, 5]), 6, top_k=3)
    assert result["hr@1"] == 0.0 and result["num_users"] == 2
    assert result["ndcg@1"] == 0.0 and "hr@5" not in result
    assert result["mrr@3"] == pytest.approx(0.25)  # (1/2 + 0) / 2


def test_top_k_result_and_truncated_mrr_by_hand():
    # K = 5: ranks 0 and 3 are in the list, 5 and 7 are not (both mean "not in the top 5").
    ranks = np.array([0, 3, 5, 7])
    assert truncated_mrr(ranks, 5) == pytest.approx((1 + 1 / 4) / 4)
    assert truncated_mrr(ranks, 1) == pytest.approx(1 / 4)
    result = top_k_result(ranks, 5)
    assert list(result) == ["hr@1", "hr@5", "ndcg@1", "ndcg@5", "num_users", "mrr@5"]
    assert result["hr@1"] == pytest.approx(1 / 4) and result["hr@5"] == pytest.approx(2 / 4)
    assert result["ndcg@5"] == pytest.approx((1 + 1 / np.log2(5)) / 4)
    assert result["mrr@5"] == truncated_mrr(ranks, 5) and result["num_users"] == 4
    assert top_k_result(ranks, 5) == top_k_result(np.array([0, 3, 5, 99]), 5)  # beyond K: same
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        truncated_mrr(ranks, 0)


def test_list_metrics_ranks_listed_targets_with_pessimistic_ties():
    # V = 6. User 0: target 2 ties with item 5 -> pessimistic rank 1.
    # User 1: target 4 first -> rank 0. User 2: target 3 not listed -> rank K = 2.
    ids = np.array([[5, 2], [4, 1], [1, 2]])
    scores = np.array([[0.7, 0.7], [0.9, 0.1], [0.5, 0.4]])
    histories = [np.array([1]), np.array([2]), np.array([5])]
    result = list_metrics(ids, scores, histories, np.array([2, 4, 3]), 6, top_k=2, batch_size=2)
    assert result == pytest.approx(
        {"hr@1": 1 / 3, "ndcg@1": 1 / 3, "num_users": 3, "mrr@2": (1 / 2 + 1) / 3}
    )


def test_list_metrics_leaves_the_history_out_only_when_asked():
    # Target 3 listed after item 2, which is in the history: rank 0 with it left out, else 1.
    ids, scores = np.array([[2, 3]]), np.array([[0.9, 0.5]])
    histories, targets = [np.array([2])], np.array([3])
    assert list_metrics(ids, scores, histories, targets, 5, top_k=2)["hr@1"] == 1.0
    kept = list_metrics(ids, scores, histories, targets, 5, top_k=2, exclude_history=False)
    assert kept["hr@1"] == 0.0 and kept["mrr@2"] == 0.5


def test_top_k_stable_equals_a_stable_argsort():
    scores = np.array([[0.1, 0.5, 0.5, 0.9, 0.2], [-np.inf, 1.0, 1.0, 1.0, 0.0]])
    assert top_k_stable(scores, 3).tolist() == [[3, 1, 2], [1, 2, 3]]
    assert top_k_stable(scores, 2).tolist() == [[3, 1], [1, 2]]
    assert top_k_stable(scores, 9).tolist() == [[3, 1, 2, 4, 0], [1, 2, 3, 4, 0]]
    rng = np.random.default_rng(0)
    ties = rng.integers(0, 4, size=(20, 30)).astype(np.float64)
    expected = np.argsort(-ties, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(top_k_stable(ties, 7), expected)


def test_window_top_k_leaves_out_padding_and_only_the_last_items():
    # V = 6, H = 2: of the history [5, 1, 3] only 1 and 3 are left out; 5 may be listed again.
    scores = np.array([[9.0, 0.8, 0.1, 0.7, 0.2, 0.6]])
    ids, top = window_top_k(scores, [np.array([5, 1, 3])], history_length=2, top_k=3)
    assert ids.tolist() == [[5, 4, 2]] and top.tolist() == [[0.6, 0.2, 0.1]]
    assert scores[0, 0] == 9.0 and scores[0, 1] == 0.8  # the input is not modified
    ids, _ = window_top_k(scores, [np.array([5, 1, 3])], history_length=3, top_k=2)
    assert ids.tolist() == [[4, 2]]


def test_list_metrics_do_not_depend_on_the_batch_size():
    # The dense (batch, V) matrices are sized by the catalog; the ranks must not change.
    rng = np.random.default_rng(0)
    vocab_size, users, k = 40, 37, 5
    ids = np.stack([rng.choice(np.arange(1, vocab_size), k, replace=False) for _ in range(users)])
    scores = np.round(rng.random((users, k)), 1)  # ties included
    histories = [rng.integers(1, vocab_size, size=rng.integers(1, 8)) for _ in range(users)]
    targets = np.where(rng.random(users) < 0.5, ids[:, 2], rng.integers(1, vocab_size, users))
    results = [
        list_metrics(ids, scores, histories, targets, vocab_size, top_k=k, batch_size=size)
        for size in (None, 1, 8, 256)
    ]
    assert all(result == results[0] for result in results)
    assert results[0]["hr@5"] > 0


def test_evaluation_batches_hold_about_the_same_number_of_scores_at_any_catalog_size():
    assert batch_size_for_vocab(3_417) == 256 and batch_size_for_vocab(779_232) == 10
    assert batch_size_for_vocab(10**8) == 8  # never fewer than 8 users
    assert batch_size_for_vocab(779_232) * 779_232 <= SCORES_PER_BATCH


# --- by history length: truncation, item-kNN -------------------------------------------------

# Three users' training sequences over items 1..4 (V = 6: item 5 is never trained on).
TOY_TRAIN = [np.array([1, 2, 3]), np.array([2, 3]), np.array([3, 4, 4])]
# Users per item: 1 {u0}, 2 {u0, u1}, 3 {u0, u1, u2}, 4 {u2}; so C11 = 1, C22 = 2, C33 = 3,
# C44 = 1, C12 = 1, C13 = 1, C23 = 2, C34 = 1, C14 = C24 = 0; cosine = Cij / sqrt(Cii Cjj).
R2, R3, R6 = 1 / np.sqrt(2), 1 / np.sqrt(3), 2 / np.sqrt(6)
TOY_SIMILARITY = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 1, R2, R3, 0, 0],
        [0, R2, 1, R6, 0, 0],
        [0, R3, R6, 1, R3, 0],
        [0, 0, 0, R3, 1, 0],
        [0, 0, 0, 0, 0, 0],
    ]
)


def test_cooccurrence_similarity_by_hand():
    similarity = cooccurrence_similarity(TOY_TRAIN, 6)
    assert similarity.dtype == np.float32
    np.testing.assert_allclose(similarity, TOY_SIMILARITY, rtol=1e-6)


def test_cooccurrence_similarity_does_not_depend_on_the_blocks(monkeypatch):
    import attnrec_tf.metrics as metrics

    monkeypatch.setattr(metrics, "SCORES_PER_BATCH", 6)  # one user and one item row per block
    np.testing.assert_allclose(cooccurrence_similarity(TOY_TRAIN, 6), TOY_SIMILARITY, rtol=1e-6)


def test_item_knn_scores_sum_the_similarity_of_the_history_items():
    scores = item_knn_scores(TOY_SIMILARITY.astype(np.float32), [np.array([1, 4]), np.array([])])
    # Item j: sim(1, j) + sim(4, j); item 3 = 1/sqrt(3) + 1/sqrt(3).
    np.testing.assert_allclose(scores[0], [0, 1, R2, 2 * R3, 1, 0], rtol=1e-6)
    assert scores[1].tolist() == [0.0] * 6  # an empty history scores nothing


def test_similarity_is_skipped_beyond_a_gigabyte():
    assert SIMILARITY_MAX_BYTES == 2**30
    assert similarity_skip_reason(16_384) is None  # 16,384**2 float32 = 1 GiB exactly
    reason = similarity_skip_reason(16_385)
    assert reason is not None and reason.startswith("catalog of 16,384 items")


def test_last_items_keeps_the_latest_and_passes_short_histories_whole():
    seen = []

    def record(histories):
        seen.append([h.tolist() for h in histories])
        return np.zeros((len(histories), 4))

    histories = [np.array([1, 2, 3]), np.array([2])]
    last_items(record, 2)(histories)
    last_items(record, None)(histories)
    assert seen == [[[2, 3], [2]], [[1, 2, 3], [2]]]
    with pytest.raises(ValueError, match="length"):
        last_items(record, 0)


def test_by_history_length_scores_the_last_items_and_excludes_the_whole_history():
    seen: list[list[int]] = []
    ranking = np.array([0.0, 5.0, 4.0, 3.0, 2.0, 1.0])  # item 1 best, then 2, 3, 4, 5

    def record(histories):
        seen.extend(h.tolist() for h in histories)
        return np.tile(ranking, (len(histories), 1))

    # Target 4 is beaten by items 1..3, all in the history: with the whole history left out it
    # ranks first at every L (had only the last L items been left out, it would not).
    result = evaluate_by_history_length(
        {"fixed": record}, [np.array([1, 2, 3])], np.array([4]), lengths=[1, 2, 5, None]
    )
    assert result == {"fixed": {"hr@10": [1.0] * 4, "ndcg@10": [1.0] * 4}}
    assert seen == [[3], [2, 3], [1, 2, 3], [1, 2, 3]]


def test_by_history_length_item_knn_by_hand():
    similarity = TOY_SIMILARITY.astype(np.float32)
    histories = [np.array([2, 3, 1]), np.array([3, 4, 4, 2])]
    # User 0, target 4 (candidates 4 and 5, the history left out): from [1] both score 0, a
    # pessimistic tie -> rank 1; from [2, 3, 1] item 4 scores 1/sqrt(3) > 0 -> rank 0.
    # User 1, target 1: from [2] item 1 scores 1/sqrt(2) > 0 (item 5) -> rank 0 at every L.
    result = evaluate_by_history_length(
        {"item_knn": lambda batch: item_knn_scores(similarity, batch)},
        histories,
        np.array([4, 1]),
        lengths=[1, None],
        batch_size=1,
    )
    expected_ndcg = [(1 / np.log2(3) + 1) / 2, 1.0]
    assert result["item_knn"]["hr@10"] == [1.0, 1.0]
    np.testing.assert_allclose(result["item_knn"]["ndcg@10"], expected_ndcg)
    at_one = evaluate_by_history_length(
        {"item_knn": lambda batch: item_knn_scores(similarity, batch)},
        histories,
        np.array([4, 1]),
        lengths=[1],
        k=1,
    )
    assert at_one["item_knn"] == {"hr@1": [0.5], "ndcg@1": [0.5]}


def test_chunked_ranks_equal_dense_ranks_with_ties_exclusions_and_padding():
    from attnrec_tf.metrics import rank_of_targets_chunked

    rng = np.random.default_rng(1)
    # Small integers: every score is exact, so ties are real ties whatever the product order.
    users = rng.integers(-2, 3, size=(9, 4)).astype(np.float32)
    items = rng.integers(-2, 3, size=(23, 4)).astype(np.float32)
    targets = rng.integers(1, 23, size=9)
    exclude = [rng.integers(0, 23, size=rng.integers(0, 5)) for _ in range(9)]
    for excluded in (None, exclude):
        dense = rank_of_targets(users @ items.T, targets, excluded)
        for chunk in (1, 2, 5, 22, 23, 100):
            chunked = rank_of_targets_chunked(users, items, targets, excluded, chunk=chunk)
            np.testing.assert_array_equal(chunked, dense)
    # Random floats too (the target's score comes from its own chunk's product).
    users, items = rng.normal(size=(9, 8)), rng.normal(size=(23, 8))
    np.testing.assert_array_equal(
        rank_of_targets_chunked(users, items, targets, exclude, chunk=4),
        rank_of_targets(users @ items.T, targets, exclude),
    )


def test_chunked_ranks_by_hand():
    from attnrec_tf.metrics import rank_of_targets_chunked

    # One user, scores [pad 0, 3, 1, 3, 2]; target 4 (score 2): items 1 and 3 above -> rank 2;
    # with item 1 excluded -> 1. Padding never counts, whatever it scores.
    users, items = np.array([[1.0]]), np.array([[9.0], [3.0], [1.0], [3.0], [2.0]])
    assert rank_of_targets_chunked(users, items, np.array([4]), chunk=2).tolist() == [2]
    excluded = [np.array([1])]
    assert rank_of_targets_chunked(users, items, np.array([4]), excluded, chunk=3).tolist() == [1]


def test_standard_errors_by_hand():
    from attnrec_tf.metrics import standard_errors

    # Ranks 0, 1, 30: hits 1, 1, 0 (mean 2/3, sample sd sqrt(1/3)); gains 1, 1/log2(3), 0.
    result = standard_errors(np.array([0, 1, 30]), k=10)
    assert result["num_users"] == 3
    assert result["hr@10"] == pytest.approx(np.sqrt(1 / 3) / np.sqrt(3))
    g = 1 / np.log2(3)
    mean = (1 + g) / 3
    sd = np.sqrt(((1 - mean) ** 2 + (g - mean) ** 2 + mean**2) / 2)
    assert result["ndcg@10"] == pytest.approx(sd / np.sqrt(3))
    assert standard_errors(np.array([4]))["hr@10"] == 0.0  # one user: no spread to measure


def test_popularity_scores_from_counts():
    from attnrec_tf.metrics import popularity_scores

    scores = popularity_scores([], 4, counts=np.array([5, 2, 0, 1]))
    assert scores.tolist() == [-np.inf, 2.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="shape"):
        popularity_scores([], 4, counts=np.array([1, 2]))

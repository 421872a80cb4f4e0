"""Model + split -> full-ranking metrics (and the sampled protocol), for any scorer.

`metrics.py` knows ranks; this module knows where histories come from (the split) and how a
Keras model turns a batch of histories into catalog scores. Exported artifacts plug their own
score function (the SavedModel) or top-K lists (the TFLite files, `metrics.top_k_metrics`) into
the same code (`export/export_all.py`), so every number in report.json is computed one way.
`evaluate_by_history_length` gives report.json's `metrics.by_history_length`, and
`evaluate_split_windowed` its `keras_window` (the Keras model's own top-K lists, made the way the
exported TFLite graph makes them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnrec_tf import metrics
from attnrec_tf.data.pipeline import pad_left
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.metrics import batch_size_for_vocab as batch_size_for_vocab  # re-exported
from attnrec_tf.report import BY_HISTORY_LENGTH, STANDARD_ERROR

ScoreFn = Callable[[Sequence[np.ndarray]], np.ndarray]


BY_LENGTH_USERS = 10_000
"""The most test users `evaluate_by_history_length` evaluates (a seeded sample beyond)."""

WIDTH_MULTIPLE = 8
"""A scoring batch is padded to its longest history rounded up to this (at most `max_len`)."""

CHUNKED_ABOVE_ITEMS = 1_000_000
"""`evaluate_split` scores catalogs larger than this in item chunks
(`metrics.rank_of_targets_chunked`) when the score function has a user-vector form
(`keras_score_fn`)."""
CHUNK_USERS = 256
"""Users per batch of the chunked scoring; a chunk is `SCORES_PER_BATCH // CHUNK_USERS` items."""


def keras_score_fn(model: Any, max_len: int) -> ScoreFn:
    """Wraps `model.score` as a numpy score function over raw (unpadded) histories.

    Each batch is left-padded to its longest history (rounded up to `WIDTH_MULTIPLE`, at most
    `max_len`): the model computes on a narrower window what it does at full width.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def score(batch: tf.Tensor) -> tf.Tensor:
        return model.score(batch)

    def fn(histories: Sequence[np.ndarray]) -> np.ndarray:
        longest = max((len(h) for h in histories), default=1)
        width = min(max_len, -(-max(longest, 1) // WIDTH_MULTIPLE) * WIDTH_MULTIPLE)
        return score(tf.constant(pad_left(histories, width))).numpy()

    @tf.function(reduce_retracing=True)
    def last_user(batch: tf.Tensor) -> tf.Tensor:
        items = model.item_representations()  # (V, D), as `serve_outputs` looks them up
        user, _ = model.encode(
            batch, training=False, lookup=lambda i: tf.gather(items, i), last_only=True
        )
        return tf.cast(user[:, -1, :], tf.float32)  # (B, D)

    def user_vectors(histories: Sequence[np.ndarray]) -> np.ndarray:
        longest = max((len(h) for h in histories), default=1)
        width = min(max_len, -(-max(longest, 1) // WIDTH_MULTIPLE) * WIDTH_MULTIPLE)
        return last_user(tf.constant(pad_left(histories, width))).numpy()

    def item_table() -> np.ndarray:
        return np.asarray(tf.cast(model.item_representations(), tf.float32))

    fn.vocab_size = model.vocab_size  # type: ignore[attr-defined]  # sizes evaluation batches
    fn.user_vectors = user_vectors  # type: ignore[attr-defined]  # the chunked form
    fn.item_table = item_table  # type: ignore[attr-defined]
    return fn


def batch_size_for(score_fn: ScoreFn, default: int = 256) -> int:
    """Users per evaluation batch for a score function (see `batch_size_for_vocab`)."""
    vocab_size = getattr(score_fn, "vocab_size", None)
    return batch_size_for_vocab(int(vocab_size), default) if vocab_size else default


def evaluate_split(
    score_fn: ScoreFn,
    split: LeaveOneOutSplit,
    stage: str,
    *,
    exclude_history: bool = True,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Full-ranking HR@K, NDCG@K, MRR of `score_fn` on the `valid` or `test` stage.

    Users are scored in order of history length (the metrics are means over users), so that a
    batch's histories are alike in length and little of a batch is padding (`split_ranks`).
    """
    ranks = split_ranks(
        score_fn, split, stage, exclude_history=exclude_history, batch_size=batch_size
    )
    return metrics.ranking_result(ranks)


def split_ranks(
    score_fn: ScoreFn,
    split: LeaveOneOutSplit,
    stage: str,
    *,
    exclude_history: bool = True,
    batch_size: int | None = None,
    item_chunk: int | None = None,
) -> np.ndarray:
    """The full-ranking rank of each user's `stage` target, users in order of history length.

    A catalog of more than `CHUNKED_ABOVE_ITEMS` items (or any, with `item_chunk`) is scored
    in item chunks when `score_fn` has the user-vector form of `keras_score_fn`: memory is the
    item table plus one `(CHUNK_USERS, chunk)` block, and the ranks are those of the dense
    scores (`metrics.rank_of_targets_chunked`). Otherwise `batch_size` users (default
    `batch_size_for(score_fn)`) are scored against the whole catalog at a time.

    Args:
        score_fn: The scorer.
        split: The users.
        stage: `"valid"` or `"test"`.
        exclude_history: Leave each history (never the target) out of the ranking.
        batch_size: Users per dense scoring call.
        item_chunk: Items per chunk; None = `SCORES_PER_BATCH // CHUNK_USERS` when the catalog
            is larger than `CHUNKED_ABOVE_ITEMS`, else dense scoring.

    Returns:
        int64 `(U,)` 0-based ranks, in the stable order of the users' history lengths.
    """
    histories = split.histories(stage)
    order = np.argsort([len(h) for h in histories], kind="stable")
    histories = [histories[i] for i in order]
    targets = np.asarray(split.targets(stage))[order]
    vocab_size = int(getattr(score_fn, "vocab_size", 0) or 0)
    if item_chunk is None and vocab_size > CHUNKED_ABOVE_ITEMS:
        item_chunk = metrics.SCORES_PER_BATCH // CHUNK_USERS
    if item_chunk is not None and hasattr(score_fn, "user_vectors"):
        return _chunked_ranks(score_fn, histories, targets, exclude_history, item_chunk)
    batch_size = batch_size or batch_size_for(score_fn)
    ranks = []
    for start in range(0, len(targets), batch_size):
        batch = histories[start : start + batch_size]
        scores = np.asarray(score_fn(batch))
        exclude = batch if exclude_history else None
        ranks.append(metrics.rank_of_targets(scores, targets[start : start + batch_size], exclude))
    return np.concatenate(ranks) if ranks else np.zeros(0, np.int64)


def _chunked_ranks(
    score_fn: Any, histories: list[np.ndarray], targets: np.ndarray, exclude: bool, chunk: int
) -> np.ndarray:
    """`split_ranks` in item chunks: user vectors against the item table, `chunk` items a time."""
    table = score_fn.item_table()  # (V, D)
    ranks = []
    for start in range(0, len(targets), CHUNK_USERS):
        batch = histories[start : start + CHUNK_USERS]
        ranks.append(
            metrics.rank_of_targets_chunked(
                score_fn.user_vectors(batch), table, targets[start : start + CHUNK_USERS],
                batch if exclude else None, chunk=chunk,
            )
        )  # fmt: skip
    return np.concatenate(ranks) if ranks else np.zeros(0, np.int64)


def evaluate_split_sampled(
    score_fn: ScoreFn,
    split: LeaveOneOutSplit,
    stage: str,
    *,
    num_negatives: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """The older protocol: the target ranked among `num_negatives` sampled unseen items."""
    return metrics.evaluate_scores_sampled(
        score_fn,
        split.histories(stage),
        split.targets(stage),
        num_negatives=num_negatives,
        seed=seed,
    )


def evaluate_popularity_split(
    split: LeaveOneOutSplit,
    vocab_size: int,
    stage: str,
    *,
    exclude_history: bool = True,
    counts_from: LeaveOneOutSplit | None = None,
    item_counts: np.ndarray | None = None,
) -> dict[str, float]:
    """The popularity baseline (training counts of `counts_from`, default `split`, or the
    `(V,)` `item_counts` when given) on `split`."""
    return metrics.evaluate_popularity(
        (counts_from or split).train,
        split.histories(stage),
        split.targets(stage),
        vocab_size,
        exclude_history=exclude_history,
        counts=item_counts,
    )


def evaluate_test(
    model: Any,
    split: LeaveOneOutSplit,
    *,
    exclude_history: bool = True,
    counts_from: LeaveOneOutSplit | None = None,
    sampled_negatives: int = 100,
    seed: int = 0,
    by_history_length: bool = True,
    item_counts: np.ndarray | None = None,
    ranks: np.ndarray | None = None,
) -> dict[str, Any]:
    """The test-stage evaluation of a trained model beside the popularity baseline.

    Args:
        model: An `AttentionRecommender` (its `max_len` and `vocab_size` are used).
        split: The users to test.
        exclude_history: Exclude seen items from the ranking.
        counts_from: The split whose training counts make the popularity baseline (default
            `split`; the whole data set when `split` is a sample of its users).
        sampled_negatives: Also rank the target among this many sampled unseen items (0 = no).
        seed: Seed of the sampled negatives, and of the users of `by_history_length`.
        by_history_length: Add `metrics.by_history_length` (`evaluate_by_history_length`).
        item_counts: `(V,)` training counts of every item for the popularity baselines (a
            prepared folder's `item_counts.npy`); None = counted from `counts_from`.
        ranks: The model's full-ranking test ranks of `split`'s users, computed elsewhere
            (several workers split the users: `training.fit`); None = ranked here.

    Returns:
        `{"metrics": {"keras": ..., "popularity": ..., "standard_error": ...,
        "by_history_length": ...}}` (full ranking, HR@K / NDCG@K / MRR; `standard_error` is
        `metrics.standard_errors` of the model's test ranks: HR@10 and NDCG@10 and the number
        of users; `by_history_length` is not one scorer's metrics: see
        `evaluate_by_history_length`), plus `sampled_protocol` when `sampled_negatives` > 0:
        its metrics, or why it was skipped (a catalog too small for that many unseen negatives).
    """
    score_fn = keras_score_fn(model, model.max_len)
    if ranks is None:
        ranks = split_ranks(score_fn, split, "test", exclude_history=exclude_history)
    result: dict[str, Any] = {
        "metrics": {
            "keras": metrics.ranking_result(ranks),
            "popularity": evaluate_popularity_split(
                split, model.vocab_size, "test", exclude_history=exclude_history,
                counts_from=counts_from, item_counts=item_counts,
            ),
            STANDARD_ERROR: metrics.standard_errors(ranks, k=10),
        }
    }  # fmt: skip
    if by_history_length:
        result["metrics"][BY_HISTORY_LENGTH] = evaluate_by_history_length(
            score_fn,
            split,
            model.vocab_size,
            exclude_history=exclude_history,
            counts_from=counts_from,
            seed=seed,
            item_counts=item_counts,
        )
    if sampled_negatives:
        result["sampled_protocol"] = _sampled_protocol(
            score_fn, split, model.vocab_size, sampled_negatives, seed
        )
    return result


def evaluate_by_history_length(
    score_fn: ScoreFn,
    split: LeaveOneOutSplit,
    vocab_size: int,
    *,
    exclude_history: bool = True,
    counts_from: LeaveOneOutSplit | None = None,
    max_users: int = BY_LENGTH_USERS,
    seed: int = 0,
    lengths: Sequence[int | None] = metrics.HISTORY_LENGTHS,
    item_counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """Test HR@10 / NDCG@10 when the scorers see only the last L items of each history.

    For each L of `lengths` (None = the whole history), three scorers are given the last L
    items of each test history (`metrics.last_items`; a user whose history is shorter than L
    is scored from the whole history) while the whole history (never the target) is still
    left out of the full ranking when `exclude_history`:

    - `model`: `score_fn` (e.g. `keras_score_fn`, which itself keeps at most `max_len` items);
    - `popularity`: the training counts of `counts_from` (default `split`): the same list at
      every L, evaluated the same way;
    - `item_knn`: item-to-item cosine similarity of co-occurrence in the training sequences of
      `counts_from` (`metrics.cooccurrence_similarity`), summed over the L items
      (`metrics.item_knn_scores`); `{"skipped": reason}` when its dense `(V, V)` float32
      matrix would exceed `metrics.SIMILARITY_MAX_BYTES`.

    At most `max_users` test users are evaluated: a seeded random sample when there are more.
    They are scored in order of history length, in batches of `batch_size_for(score_fn)`, as
    `evaluate_split` does: with every user evaluated, the model's `"all"` values equal its
    `evaluate_split` HR@10 and NDCG@10.

    Args:
        score_fn: The model's scorer, over raw histories.
        split: The leave-one-out (or temporal) split; its `test` stage is evaluated.
        vocab_size: V (padding included).
        exclude_history: Leave each whole history out of the ranking.
        counts_from: The split whose training sequences make both baselines (default `split`).
        max_users: The most test users evaluated.
        seed: Seed of the user sample.
        lengths: The history lengths L; None = the whole history (reported as `"all"`).
        item_counts: `(V,)` training counts for `popularity` (None = counted from
            `counts_from`); `item_knn` still uses `counts_from`'s sequences.

    Returns:
        report.json's `metrics.by_history_length`: `{"lengths": [1, 3, ..., "all"],
        "num_users": n, "model": {"hr@10": [...], "ndcg@10": [...]}, "popularity": {...},
        "item_knn": {...} or {"skipped": reason}}`, one value per length.
    """
    histories, targets = split.histories("test"), np.asarray(split.targets("test"))
    users = np.arange(len(targets))
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(len(users), max_users, replace=False))
    users = users[np.argsort([len(histories[u]) for u in users], kind="stable")]
    histories, targets = [histories[u] for u in users], targets[users]
    train = (counts_from or split).train
    popularity = metrics.popularity_scores(train, vocab_size, item_counts)

    def popular(batch: list[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(popularity, (len(batch), vocab_size))  # read-only view

    scorers: dict[str, metrics.ScoreFn] = {"model": score_fn, "popularity": popular}
    skipped = metrics.similarity_skip_reason(vocab_size)
    if skipped is None:
        similarity = metrics.cooccurrence_similarity(train, vocab_size)  # (V, V)
        scorers["item_knn"] = lambda batch: metrics.item_knn_scores(similarity, batch)
    entry: dict[str, Any] = {
        "lengths": ["all" if length is None else length for length in lengths],
        "num_users": len(targets),
        **metrics.evaluate_by_history_length(
            scorers, histories, targets, lengths=lengths, exclude_history=exclude_history,
            batch_size=batch_size_for(score_fn),
        ),
    }  # fmt: skip
    if skipped is not None:
        entry["item_knn"] = {"skipped": skipped}
    return entry


def _sampled_protocol(
    score_fn: ScoreFn, split: LeaveOneOutSplit, vocab_size: int, num_negatives: int, seed: int
) -> dict[str, Any]:
    """report.json's `sampled_protocol`: the test target among sampled unseen items."""
    longest = max((len(set(h.tolist())) for h in split.histories("test")), default=0)
    if vocab_size - 2 - longest < num_negatives:
        return {
            "num_negatives": num_negatives,
            "skipped": f"catalog of {vocab_size - 1} items is too small for "
            f"{num_negatives} unseen negatives next to the longest history ({longest})",
        }
    return {
        "num_negatives": num_negatives,
        "note": "target ranked among sampled unseen items; not comparable with full ranking",
        "keras": evaluate_split_sampled(
            score_fn, split, "test", num_negatives=num_negatives, seed=seed
        ),
    }


@dataclass(frozen=True)
class WindowedEvaluation:
    """What `evaluate_split_windowed` returns.

    Attributes:
        ranks: `(U,)` int64 full-ranking ranks of the targets, in split order (the rule of
            `evaluate_split`: every item but padding, the history left out when asked);
            `metrics.truncated_mrr(ranks, K)` is the scorer's `mrr@K`.
        window: The `metrics.list_metrics` dict (`hr@k`, `ndcg@k` for k <= K, `num_users`,
            `mrr@K`) of the windowed top-K lists (see `evaluate_split_windowed`).
    """

    ranks: np.ndarray
    window: dict[str, float | int]


def evaluate_split_windowed(
    score_fn: ScoreFn,
    split: LeaveOneOutSplit,
    stage: str,
    *,
    top_k: int,
    history_length: int,
    exclude_history: bool = True,
    batch_size: int | None = None,
) -> WindowedEvaluation:
    """Full-ranking ranks and the metrics of on-device-style top-K lists, in one scoring pass.

    The top-K lists are made the way the exported TFLite graph makes them
    (`metrics.window_top_k`: padding and only the last `history_length` items of each history
    left out) and scored like the TFLite files' lists (`metrics.list_metrics`). With
    `score_fn = keras_score_fn(model, model.max_len)` (the model sees the last `max_len`
    items, as the TFLite graph does) a float32 TFLite file of `history_length` gets the same
    `window` metrics; they equal `evaluate_split`'s HR@k and NDCG@k when no history is longer
    than `history_length`.

    Users are scored in split order, `batch_size` at a time.

    Args:
        score_fn: A batch of histories -> `(B, V)` scores (column 0 = padding).
        split: The leave-one-out split.
        stage: `"valid"` or `"test"`.
        top_k: K.
        history_length: `H`, the number of most recent history items a list leaves out.
        exclude_history: Leave the whole history out of the full ranking (`ranks`), and the
            history out of the ranking of the lists, as `evaluate_split` does.
        batch_size: Users per `score_fn` call; defaults to `batch_size_for(score_fn)`.

    Returns:
        A `WindowedEvaluation`.
    """
    batch_size = batch_size or batch_size_for(score_fn)
    histories, targets = split.histories(stage), np.asarray(split.targets(stage))
    ranks, ids, top_scores, vocab_size = [], [], [], 0
    for start in range(0, len(targets), batch_size):
        batch = histories[start : start + batch_size]
        batch_targets = targets[start : start + batch_size]
        scores = np.array(score_fn(batch), dtype=np.float64)  # (B, V)
        vocab_size = scores.shape[1]
        exclude = batch if exclude_history else None
        ranks.append(metrics.rank_of_targets(scores, batch_targets, exclude))
        batch_ids, batch_scores = metrics.window_top_k(
            scores, batch, history_length=history_length, top_k=top_k
        )
        ids.append(batch_ids)
        top_scores.append(batch_scores)
    window = metrics.list_metrics(
        np.concatenate(ids),
        np.concatenate(top_scores),
        histories,
        targets,
        vocab_size,
        top_k=top_k,
        exclude_history=exclude_history,
    )
    return WindowedEvaluation(ranks=np.concatenate(ranks), window=window)

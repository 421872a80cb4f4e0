"""Next-item ranking metrics: HR@K, NDCG@K and MRR, full ranking and the sampled protocol.

Every metric is computed from the 0-based rank of each user's held-out target item:

- full ranking (the default): the target is ranked against every item of the vocabulary except
  the padding index 0 and, optionally, the items already in the user's history;
- sampled (the older SASRec/NCF protocol): the target is ranked against `num_negatives` items
  drawn uniformly, without replacement, from the items the user has not interacted with.

Ties are counted pessimistically: an item scoring exactly as high as the target ranks above it, so
a constant scorer earns nothing. With rank `r`, HR@K = [r < K], NDCG@K = [r < K] / log2(r + 2) and
MRR = 1 / (r + 1), each averaged over users. Everything here is plain numpy, vectorised over a
batch of users, so it evaluates any model (Keras, TFLite, a baseline) through a scoring function.

Example:

```python
scores = np.array([[-np.inf, 0.1, 0.9, 0.5]])  # (B, V), column 0 is padding
ranks = rank_of_targets(scores, targets=np.array([3]))  # array([1]): only item 2 scores higher
ndcg(ranks, k=10)  # 1 / log2(3) = 0.6309...
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

ScoreFn = Callable[[list[np.ndarray]], np.ndarray]
"""Maps a batch of user histories (vocabulary indices) to scores `(B, V)`."""

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)
SCORES_PER_BATCH = 2**23
"""About how many scores one dense `(batch, V)` matrix of an evaluation holds (see
`batch_size_for_vocab`)."""


def batch_size_for_vocab(vocab_size: int, default: int = 256) -> int:
    """Users per dense `(batch, V)` score matrix: `default`, fewer for huge catalogs.

    A batch holds about `SCORES_PER_BATCH` scores (at least 8 users), so the memory of an
    evaluation step does not grow with the catalog.

    >>> batch_size_for_vocab(3_417), batch_size_for_vocab(1_000_001)
    (256, 8)
    """
    return max(8, min(default, SCORES_PER_BATCH // max(1, vocab_size)))


def rank_of_targets(
    scores: np.ndarray, targets: np.ndarray, exclude: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """Returns the pessimistic 0-based rank of each target among all items.

    Args:
        scores: float array `(B, V)`. Column 0 is the padding index and is never ranked.
        targets: int array `(B,)` with values in `1..V-1`.
        exclude: optional list of `B` int arrays; `exclude[b]` (the user's history) is left out
            of row `b`'s ranking, except the target itself, which is never excluded.

    Returns:
        int64 array `(B,)`: the number of other ranked items scoring strictly higher than the
        target plus the number of other ranked items scoring exactly as high.

    Raises:
        ValueError: on mismatched shapes, out-of-range indices or NaN scores.
    """
    scores, targets = _check_scores_targets(scores, targets)
    batch = np.arange(len(targets))
    target_scores = scores[batch, targets]  # (B,)
    above = scores >= target_scores[:, None]  # (B, V) bool: ranked above or tied
    above[:, 0] = False
    if exclude is not None:
        rows, cols = _flatten_index_lists(exclude, len(targets), scores.shape[1], "exclude")
        above[rows, cols] = False
    above[batch, targets] = False  # the target is never counted against itself
    return np.count_nonzero(above, axis=1).astype(np.int64)


def rank_of_targets_chunked(
    users: np.ndarray,
    items: np.ndarray,
    targets: np.ndarray,
    exclude: Sequence[np.ndarray] | None = None,
    *,
    chunk: int,
) -> np.ndarray:
    """`rank_of_targets(users @ items.T, targets, exclude)`, scored `chunk` items at a time.

    For catalogs too large for a dense `(B, V)` score matrix: memory is the item table and one
    `(B, chunk)` block. Each target's score is read from the block of its own chunk, then each
    chunk adds the items scoring at least as high (ties pessimistic; padding, the history and
    the target itself left out), so the ranks are those of the dense matrix. A block is the
    same product (`users @ items[start:stop].T`, every row) whenever it is computed, so an
    item that ties the target in value ties it here too, whichever chunks they lie in; the
    price is that the blocks holding a target are computed twice (at most 2x the products).

    Args:
        users: float `(B, D)` user vectors.
        items: float `(V, D)` item table (row 0 = padding, never ranked).
        targets: int `(B,)` in `1..V-1`.
        exclude: optional `B` int arrays, as in `rank_of_targets`.
        chunk: Items per block.

    Returns:
        int64 `(B,)` 0-based ranks, equal to `rank_of_targets` on the dense scores.

    >>> users = np.array([[1.0], [2.0]]); items = np.array([[0.0], [3.0], [1.0], [3.0]])
    >>> rank_of_targets_chunked(users, items, np.array([2, 1]), chunk=2).tolist()
    [2, 1]
    """
    _check_positive_int(chunk, "chunk")
    targets = np.asarray(targets)
    num_items = len(items)
    _check_scores_targets(np.zeros((len(targets), num_items), np.bool_), targets)
    target_scores = np.zeros(len(targets), dtype=np.result_type(users, items))
    for start in np.unique(targets // chunk) * chunk:  # the blocks that hold a target
        rows = np.flatnonzero((targets >= start) & (targets < start + chunk))
        block = users @ items[start : start + chunk].T  # (B, chunk)
        target_scores[rows] = block[rows, targets[rows] - start]
    if np.isnan(target_scores).any():
        raise ValueError("scores contain NaN.")
    excluded = None
    if exclude is not None:
        excluded = _flatten_index_lists(exclude, len(targets), num_items, "exclude")
    ranks = np.zeros(len(targets), np.int64)
    batch = np.arange(len(targets))
    for start in range(0, num_items, chunk):
        above = users @ items[start : start + chunk].T >= target_scores[:, None]  # (B, chunk)
        if start == 0:
            above[:, 0] = False
        if excluded is not None:
            inside = (excluded[1] >= start) & (excluded[1] < start + chunk)
            above[excluded[0][inside], excluded[1][inside] - start] = False
        own = (targets >= start) & (targets < start + chunk)
        above[batch[own], targets[own] - start] = False
        ranks += np.count_nonzero(above, axis=1)
    return ranks


def standard_errors(ranks: np.ndarray, k: int = 10) -> dict[str, float | int]:
    """The standard error of the mean HR@k and NDCG@k over the users of `ranks`.

    `sd / sqrt(n)` of the per-user values, with the sample standard deviation (`ddof=1`;
    0 for a single user): how far the means could move with another draw of as many users.

    >>> standard_errors(np.array([0, 20]), k=10)
    {'hr@10': 0.5, 'ndcg@10': 0.5, 'num_users': 2}
    """
    _check_positive_int(k, "k")
    ranks = _check_ranks(ranks)
    hits = (ranks < k).astype(np.float64)
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    n = len(ranks)

    def error(values: np.ndarray) -> float:
        return float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else 0.0

    return {f"hr@{k}": error(hits), f"ndcg@{k}": error(gains), "num_users": n}


def ranking_result(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """`RankingAccumulator.result` of one array of ranks (`hr@k`, `ndcg@k`, `mrr`, `num_users`)."""
    accumulator = RankingAccumulator()
    accumulator.update(ranks)
    return accumulator.result(ks)


def sampled_rank_of_targets(
    scores: np.ndarray,
    targets: np.ndarray,
    histories: Sequence[np.ndarray],
    num_negatives: int = 100,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Returns the pessimistic rank of each target among `num_negatives` sampled items.

    For each user, `num_negatives` distinct items are drawn uniformly from `1..V-1` minus the
    user's history and the target; the rank is the number of them scoring at least as high as
    the target (so it lies in `0..num_negatives`).

    Args:
        scores: float array `(B, V)`; column 0 is padding and never sampled.
        targets: int array `(B,)` with values in `1..V-1`.
        histories: list of `B` int arrays, the items each user has interacted with.
        num_negatives: int. Number of negatives per user. Defaults to `100`.
        rng: a `np.random.Generator`, or a seed for one. Defaults to `None` (fresh entropy).

    Returns:
        int64 array `(B,)` of ranks in `0..num_negatives`.

    Raises:
        ValueError: on bad arguments, or if a user has fewer than `num_negatives` candidates.
    """
    _check_positive_int(num_negatives, "num_negatives")
    scores, targets = _check_scores_targets(scores, targets)
    generator = np.random.default_rng(rng)
    num_users, vocab_size = scores.shape
    batch = np.arange(num_users)
    # Uniform sampling without replacement: random keys, forbidden items pushed to the end.
    keys = generator.random((num_users, vocab_size), dtype=np.float32)  # (B, V) in [0, 1)
    keys[:, 0] = 2.0
    rows, cols = _flatten_index_lists(histories, num_users, vocab_size, "histories")
    keys[rows, cols] = 2.0
    keys[batch, targets] = 2.0
    allowed = np.count_nonzero(keys < 2.0, axis=1)
    if np.any(allowed < num_negatives):
        user = int(np.argmax(allowed < num_negatives))
        raise ValueError(
            f"user row {user} has only {allowed[user]} items outside its history to sample "
            f"from; num_negatives={num_negatives} needs a larger vocabulary."
        )
    negatives = np.argpartition(keys, num_negatives - 1, axis=1)[:, :num_negatives]  # (B, N)
    target_scores = scores[batch, targets]
    return np.count_nonzero(
        np.take_along_axis(scores, negatives, axis=1) >= target_scores[:, None], axis=1
    ).astype(np.int64)


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """Fraction of users whose target ranks in the top `k` (`rank < k`)."""
    _check_positive_int(k, "k")
    return float(np.mean(_check_ranks(ranks) < k))


def ndcg(ranks: np.ndarray, k: int) -> float:
    """Mean of `1 / log2(rank + 2)` where `rank < k`, else 0 (one relevant item per user)."""
    _check_positive_int(k, "k")
    ranks = _check_ranks(ranks)
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank, `mean(1 / (rank + 1))`."""
    return float(np.mean(1.0 / (_check_ranks(ranks) + 1.0)))


@dataclass
class RankingAccumulator:
    """Collects target ranks over batches and reports every metric at the end.

    Example:

    ```python
    acc = RankingAccumulator()
    acc.update(np.array([0, 3]))
    acc.update(np.array([12]))
    acc.result(ks=(1, 10))  # {"hr@1": 0.333.., "hr@10": 0.666.., ..., "num_users": 3}
    ```
    """

    ranks: list[np.ndarray] = field(default_factory=list)

    def update(self, ranks: np.ndarray) -> None:
        """Adds the ranks `(B,)` of one batch of users."""
        self.ranks.append(_check_ranks(ranks, allow_empty=True))

    @property
    def num_users(self) -> int:
        return sum(len(r) for r in self.ranks)

    def result(self, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
        """Returns `hr@k` for each k, then `ndcg@k` for each k, `mrr` and `num_users`."""
        for k in ks:
            _check_positive_int(k, "k")
        if self.num_users == 0:
            raise ValueError("RankingAccumulator.result() called before any ranks were added.")
        ranks = np.concatenate(self.ranks)
        metrics: dict[str, float] = {f"hr@{k}": hit_rate(ranks, k) for k in ks}
        metrics.update({f"ndcg@{k}": ndcg(ranks, k) for k in ks})
        metrics["mrr"] = mrr(ranks)
        metrics["num_users"] = len(ranks)
        return metrics

    def reset(self) -> None:
        self.ranks.clear()


def evaluate_scores(
    score_fn: ScoreFn,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    *,
    exclude_history: bool = True,
    batch_size: int = 512,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Full-ranking evaluation of a scoring function over all users, batch by batch.

    Args:
        score_fn: maps a list of histories to scores `(B, V)` (column 0 = padding).
        histories: one int array per user, the full history (vocabulary indices, no padding).
        targets: int array `(U,)`, each user's held-out item.
        exclude_history: bool. Leave the history items (but never the target) out of the
            ranking. Defaults to `True`.
        batch_size: int. Users per `score_fn` call. Defaults to `512`.
        ks: cut-offs of HR@K and NDCG@K. Defaults to `(1, 5, 10, 20)`.

    Returns:
        The `RankingAccumulator.result` dict (`hr@k`, `ndcg@k`, `mrr`, `num_users`).
    """

    def ranks_of(batch_scores, batch_histories, batch_targets):
        exclude = batch_histories if exclude_history else None
        return rank_of_targets(batch_scores, batch_targets, exclude)

    return _evaluate(score_fn, histories, targets, batch_size, ks, ranks_of)


def evaluate_scores_sampled(
    score_fn: ScoreFn,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    *,
    num_negatives: int = 100,
    seed: int = 0,
    batch_size: int = 512,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Like `evaluate_scores`, with the sampled protocol (`num_negatives` per user, seeded)."""
    _check_positive_int(num_negatives, "num_negatives")
    rng = np.random.default_rng(seed)

    def ranks_of(batch_scores, batch_histories, batch_targets):
        return sampled_rank_of_targets(
            batch_scores, batch_targets, batch_histories, num_negatives, rng
        )

    return _evaluate(score_fn, histories, targets, batch_size, ks, ranks_of)


def popularity_scores(
    train_sequences: Sequence[np.ndarray], vocab_size: int, counts: np.ndarray | None = None
) -> np.ndarray:
    """Returns the training count of each item as a score `(V,)`; column 0 (padding) is -inf.

    Zeros in the sequences (padding) are ignored; other indices must lie in `1..V-1`.
    `counts` (`(V,)`, e.g. a prepared folder's `item_counts.npy`) gives the counts directly;
    the sequences are then not read.
    """
    _check_positive_int(vocab_size, "vocab_size")
    if counts is not None:
        if np.shape(counts) != (vocab_size,):
            raise ValueError(f"counts must have shape ({vocab_size},); got {np.shape(counts)}.")
        scores = np.asarray(counts, np.float64).copy()
        scores[0] = -np.inf
        return scores
    items = _concatenate(train_sequences)
    if items.size and (items.min() < 0 or items.max() >= vocab_size):
        raise ValueError(f"train_sequences hold item indices outside 0..{vocab_size - 1}.")
    scores = np.bincount(items, minlength=vocab_size).astype(np.float64)
    scores[0] = -np.inf
    return scores


def evaluate_popularity(
    train_sequences: Sequence[np.ndarray],
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    vocab_size: int,
    *,
    exclude_history: bool = True,
    ks: Sequence[int] = DEFAULT_KS,
    counts: np.ndarray | None = None,
) -> dict[str, float]:
    """Full-ranking evaluation of the most-popular baseline (the same list for every user);
    `counts` as in `popularity_scores`."""
    popularity = popularity_scores(train_sequences, vocab_size, counts)

    def score_fn(batch_histories: list[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(popularity, (len(batch_histories), vocab_size))  # read-only view

    return evaluate_scores(score_fn, histories, targets, exclude_history=exclude_history, ks=ks)


HISTORY_LENGTHS: tuple[int | None, ...] = (1, 3, 5, 10, 20, 50, None)
"""The history lengths of `evaluate_by_history_length`; None = the whole history."""

SIMILARITY_MAX_BYTES = 2**30
"""The largest dense `(V, V)` float32 item-item similarity `cooccurrence_similarity` is asked
to build (1 GiB: catalogs up to 16,384 indices, padding included)."""


def last_items(score_fn: ScoreFn, length: int | None) -> ScoreFn:
    """`score_fn` given only the last `length` items of each history (None = all of them).

    A history shorter than `length` is passed whole. The ranking code still sees the whole
    histories, so `evaluate_scores(last_items(f, L), ...)` scores from the last L items while
    leaving every history item out of the ranking.

    >>> echo = lambda histories: [h.tolist() for h in histories]
    >>> last_items(echo, 2)([np.array([1, 2, 3]), np.array([4])])
    [[2, 3], [4]]
    """
    if length is None:
        return score_fn
    _check_positive_int(length, "length")

    def truncated(histories: list[np.ndarray]) -> np.ndarray:
        return score_fn([np.asarray(h)[-length:] for h in histories])

    return truncated


def similarity_skip_reason(vocab_size: int) -> str | None:
    """Why `cooccurrence_similarity` is not built for `vocab_size`, or None when it fits.

    >>> similarity_skip_reason(3_417) is None
    True
    >>> print(similarity_skip_reason(20_001))  # doctest: +NORMALIZE_WHITESPACE
    catalog of 20,000 items: its dense 20,001 x 20,001 float32 item-item similarity matrix
    would take 1.60 GB (limit 1.07 GB)
    """
    size = 4 * vocab_size * vocab_size
    if size <= SIMILARITY_MAX_BYTES:
        return None
    return (
        f"catalog of {vocab_size - 1:,} items: its dense {vocab_size:,} x {vocab_size:,} float32 "
        f"item-item similarity matrix would take {size / 1e9:.2f} GB "
        f"(limit {SIMILARITY_MAX_BYTES / 1e9:.2f} GB)"
    )


def cooccurrence_similarity(train_sequences: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
    """Cosine similarity of item-item co-occurrence over users' training sequences.

    `C[i, j]` counts the users whose sequence holds both `i` and `j` (each user once, however
    often an item repeats), so `C[i, i]` is the number of users of `i`; the similarity is
    `C[i, j] / sqrt(C[i, i] * C[j, j])` (1 on the diagonal of every used item, 0 for items
    no user has, and for the padding index 0).

    `C` is accumulated in float32 (exact up to 2**24 users) from dense 0/1 blocks of users,
    one block of item rows at a time, so besides the `(V, V)` result the memory is about
    `SCORES_PER_BATCH` floats per temporary. The work is `users * V**2` multiply-adds.

    Args:
        train_sequences: One int array of vocabulary indices per user (0 = padding, ignored).
        vocab_size: V (padding included).

    Returns:
        `(V, V)` float32, symmetric.

    >>> cooccurrence_similarity([np.array([1, 2]), np.array([2, 3, 3])], 4).round(3)
    array([[0.   , 0.   , 0.   , 0.   ],
           [0.   , 1.   , 0.707, 0.   ],
           [0.   , 0.707, 1.   , 0.707],
           [0.   , 0.   , 0.707, 1.   ]], dtype=float32)
    """
    _check_positive_int(vocab_size, "vocab_size")
    counts = np.zeros((vocab_size, vocab_size), np.float32)  # (V, V)
    block = max(1, SCORES_PER_BATCH // vocab_size)  # users of a 0/1 block, item rows of a product
    product = np.empty((min(block, vocab_size), vocab_size), np.float32)
    for start in range(0, len(train_sequences), block):
        users = train_sequences[start : start + block]
        rows, cols = _flatten_index_lists(users, len(users), vocab_size, "train_sequences")
        present = np.zeros((len(users), vocab_size), np.float32)  # (b, V) 0/1
        present[rows, cols] = 1.0
        present[:, 0] = 0.0  # padding co-occurs with nothing
        for first in range(0, vocab_size, block):
            last = min(first + block, vocab_size)
            out = product[: last - first]
            np.matmul(present[:, first:last].T, present, out=out)  # (r, V)
            counts[first:last] += out
    norms = np.sqrt(np.diagonal(counts)).copy()  # (V,)
    norms[norms == 0] = 1.0  # unused items: their row and column stay 0
    counts /= norms[:, None]
    counts /= norms[None, :]
    return counts


def item_knn_scores(similarity: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
    """Item-to-item scores: `score[b, j] = sum over the items i of histories[b] of sim[i, j]`.

    A repeated item counts once per occurrence. An empty history scores 0 everywhere.

    Args:
        similarity: `(V, V)` item-item similarity (`cooccurrence_similarity`).
        histories: `B` int arrays of vocabulary indices.

    Returns:
        `(B, V)` float32 scores.

    >>> sim = np.array([[0, 0, 0], [0, 1, 0.5], [0, 0.5, 1]], np.float32)
    >>> item_knn_scores(sim, [np.array([1, 1]), np.array([2])]).tolist()
    [[0.0, 2.0, 1.0], [0.0, 0.5, 1.0]]
    """
    scores = np.zeros((len(histories), similarity.shape[1]), np.float32)  # (B, V)
    for row, history in enumerate(histories):
        if len(history):
            scores[row] = similarity[np.asarray(history, np.int64)].sum(axis=0)
    return scores


def evaluate_by_history_length(
    score_fns: dict[str, ScoreFn],
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    *,
    lengths: Sequence[int | None] = HISTORY_LENGTHS,
    exclude_history: bool = True,
    batch_size: int = 512,
    k: int = 10,
) -> dict[str, dict[str, list[float]]]:
    """HR@k and NDCG@k of each scorer given only the last L items of each history, for each L.

    Each scorer sees `last_items(score_fn, L)`: a user whose history is shorter than L is
    scored from the whole history. The ranking is the full one of `evaluate_scores`: the
    whole history (never the target) is left out when `exclude_history`, whatever L is.

    Args:
        score_fns: Scorers by name (see `evaluate_scores`).
        histories: One int array per user, the whole history.
        targets: `(U,)` each user's held-out item.
        lengths: The L to evaluate; None = the whole history. Defaults to `HISTORY_LENGTHS`.
        exclude_history: As in `evaluate_scores`.
        batch_size: Users per scorer call.
        k: The cut-off.

    Returns:
        `{name: {"hr@k": [...], "ndcg@k": [...]}}`, one value per L, in order.

    >>> last = lambda hs: np.stack([np.eye(4)[h[-1]] for h in hs])  # the last item's index
    >>> evaluate_by_history_length(
    ...     {"last": last}, [np.array([3, 1])], np.array([1]), lengths=[1], exclude_history=False
    ... )
    {'last': {'hr@10': [1.0], 'ndcg@10': [1.0]}}
    """
    result: dict[str, dict[str, list[float]]] = {}
    for name, score_fn in score_fns.items():
        values: dict[str, list[float]] = {f"hr@{k}": [], f"ndcg@{k}": []}
        for length in lengths:
            metrics = evaluate_scores(
                last_items(score_fn, length), histories, targets,
                exclude_history=exclude_history, batch_size=batch_size, ks=(k,),
            )  # fmt: skip
            for key, series in values.items():
                series.append(metrics[key])
        result[name] = values
    return result


def truncated_mrr(ranks: np.ndarray, k: int) -> float:
    """MRR truncated at `k` (`mrr@k`): `mean(1 / (rank + 1))` where `rank < k`, else 0.

    The MRR of a top-`k` list, which cannot tell a rank of `k` from a worse one.

    Args:
        ranks: `(U,)` non-negative 0-based ranks; any rank `>= k` means "not in the top k".
        k: The cut-off, a positive integer.

    Returns:
        The mean over users.

    >>> truncated_mrr(np.array([0, 1, 3, 9]), 3)  # (1 + 1/2 + 0 + 0) / 4
    0.375
    """
    _check_positive_int(k, "k")
    ranks = _check_ranks(ranks)
    return float(np.mean(np.where(ranks < k, 1.0 / (ranks + 1.0), 0.0)))


def top_k_result(ranks: np.ndarray, top_k: int) -> dict[str, float | int]:
    """The metric dict of ranks known only up to `top_k` (those of a top-K list).

    Args:
        ranks: `(U,)` 0-based ranks; a rank `>= top_k` means "not in the top K" (its value
            beyond that does not matter).
        top_k: K.

    Returns:
        `hr@k` for each k of `DEFAULT_KS` up to K, then `ndcg@k` for the same k, `num_users`
        and `mrr@K` (`truncated_mrr`), in that order: the `RankingAccumulator.result` dict
        with `mrr@K` instead of `mrr`.

    >>> result = top_k_result(np.array([0, 1, 5]), 5)  # MRR@5: (1 + 1/2 + 0) / 3
    >>> result["hr@1"], result["hr@5"], result["mrr@5"], list(result)[-2:]
    (0.3333333333333333, 0.6666666666666666, 0.5, ['num_users', 'mrr@5'])
    """
    accumulator = RankingAccumulator()
    accumulator.update(ranks)
    result: dict[str, float | int] = dict(accumulator.result([k for k in DEFAULT_KS if k <= top_k]))
    del result["mrr"]
    result[f"mrr@{top_k}"] = truncated_mrr(np.asarray(ranks), top_k)
    return result


def list_metrics(
    ids: np.ndarray,
    scores: np.ndarray,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    vocab_size: int,
    *,
    top_k: int,
    exclude_history: bool = True,
    batch_size: int | None = None,
) -> dict[str, float | int]:
    """The metrics of given top-K lists, ranked by the shared rule (`rank_of_targets`).

    The listed items get their scores and every other item `-inf`; `rank_of_targets` then ranks
    the target (pessimistic ties, the history left out when `exclude_history`), capped at K,
    and a target that is not listed gets rank K ("not in the top K"). So a list that a
    full-ranking scorer would make from the same scores gets that scorer's HR@k and NDCG@k for
    every k <= K, and `mrr@K`.

    Args:
        ids: `(U, K)` integer vocabulary indices of each user's list, in `1..V-1`.
        scores: `(U, K)` the scores of those items (no NaN).
        histories: `U` arrays of vocabulary indices, one per user.
        targets: `(U,)` each user's held-out item.
        vocab_size: V.
        top_k: K.
        exclude_history: Leave each history (never the target) out of the ranking.
        batch_size: Users per dense `(batch, V)` score matrix; defaults to
            `batch_size_for_vocab(vocab_size)`. The metrics do not depend on it.

    Returns:
        The `top_k_result` dict (`hr@k`, `ndcg@k` for k <= K, `num_users`, `mrr@K`).

    Raises:
        ValueError: On out-of-range indices or NaN scores (see `rank_of_targets`).

    >>> ids, scores = np.array([[4, 3], [1, 2]]), np.array([[0.9, 0.5], [0.3, 0.2]])
    >>> list_metrics(ids, scores, [np.array([1]), np.array([4])], np.array([3, 3]), 5, top_k=2)
    {'hr@1': 0.0, 'ndcg@1': 0.0, 'num_users': 2, 'mrr@2': 0.25}
    """
    targets = np.asarray(targets)
    batch_size = batch_size or batch_size_for_vocab(vocab_size)
    all_ranks = []
    for start in range(0, len(targets), batch_size):
        rows = slice(start, start + batch_size)
        batch_ids, batch_targets = ids[rows], targets[rows]
        dense = np.full((len(batch_ids), vocab_size), -np.inf)
        np.put_along_axis(dense, batch_ids, scores[rows], axis=1)
        listed = (batch_ids == batch_targets[:, None]).any(axis=1)
        exclude = list(histories[rows]) if exclude_history else None
        ranks = rank_of_targets(dense, batch_targets, exclude)
        all_ranks.append(np.where(listed, np.minimum(ranks, top_k), top_k))
    return top_k_result(np.concatenate(all_ranks), top_k)


def top_k_metrics(
    recommend: Callable[[np.ndarray], dict[str, np.ndarray]],
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    vocab_size: int,
    *,
    top_k: int,
    exclude_history: bool = True,
) -> dict[str, float | int]:
    """HR@k, NDCG@k (k of `DEFAULT_KS` up to K) and `mrr@K` of a one-user top-K recommender.

    Each user's list is scored with `list_metrics`; a recommender that returns the top K of
    full-ranking scores gets the `evaluate_scores` HR@k and NDCG@k for k <= K.

    Args:
        recommend: One history of indices -> `{"item_ids": (K,), "scores": (K,)}` (e.g. a
            `export.litert.LiteRTRecommender`), called once per user, in order.
        histories: Per-user histories (vocabulary indices).
        targets: `(U,)` held-out items.
        vocab_size: V.
        top_k: K.
        exclude_history: As in `evaluate_scores`.

    Returns:
        The `top_k_result` dict: as `evaluate_scores` but with `mrr@K` instead of `mrr`.

    >>> lists = {1: ([4, 3], [0.9, 0.5]), 4: ([1, 2], [0.3, 0.2])}
    >>> def recommend(history):
    ...     ids, scores = lists[int(history[-1])]
    ...     return {"item_ids": np.array(ids), "scores": np.array(scores)}
    >>> top_k_metrics(recommend, [np.array([1]), np.array([4])], np.array([3, 3]), 5, top_k=2)
    {'hr@1': 0.0, 'ndcg@1': 0.0, 'num_users': 2, 'mrr@2': 0.25}
    """
    outputs = [recommend(history) for history in histories]
    ids = np.stack([out["item_ids"] for out in outputs]).astype(np.int64)  # (U, K)
    scores = np.stack([out["scores"] for out in outputs]).astype(np.float64)
    return list_metrics(
        ids, scores, histories, targets, vocab_size, top_k=top_k, exclude_history=exclude_history
    )


def top_k_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """The `k` highest-scoring columns of each row, best first, ties by lower index.

    Equal to `argsort(-scores, kind="stable")[:, :k]`, without sorting whole rows.

    Args:
        scores: `(B, V)` float scores (`-inf` allowed, no NaN).
        k: Columns to keep, a positive integer (all `V` when `k >= V`).

    Returns:
        `(B, min(k, V))` int64 column indices.

    >>> top_k_stable(np.array([[0.1, 0.5, 0.5, 0.9, 0.2]]), 3).tolist()
    [[3, 1, 2]]
    """
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]  # (B, 1): the k-th best score
    top = np.empty((len(scores), k), dtype=np.int64)
    for row in range(len(scores)):
        candidates = np.flatnonzero(scores[row] >= kth[row])  # every item tied with the k-th
        order = np.argsort(-scores[row, candidates], kind="stable")[:k]
        top[row] = candidates[order]
    return top


def window_top_k(
    scores: np.ndarray, histories: Sequence[np.ndarray], *, history_length: int, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-K lists made the way the exported TFLite graph makes them, from full scores.

    The padding index 0 and the last `history_length` items of each history are left out
    (older items may be listed); the rest are ranked by `top_k_stable`.

    Args:
        scores: `(B, V)` float scores; not modified.
        histories: `B` arrays of vocabulary indices, oldest first.
        history_length: `H`, how many of the most recent history items are left out.
        top_k: K.

    Returns:
        `(ids, top_scores)`: `(B, K)` int64 indices, best first, and their float64 scores.

    >>> scores = np.array([[9.0, 0.4, 0.3, 0.2, 0.1]])
    >>> ids, top = window_top_k(scores, [np.array([1, 2])], history_length=1, top_k=2)
    >>> ids.tolist(), top.tolist()  # item 2 (the last one) is left out, item 1 is not
    ([[1, 3]], [[0.4, 0.2]])
    """
    masked = np.array(scores, dtype=np.float64)
    masked[:, 0] = -np.inf
    for row, history in enumerate(histories):
        masked[row, np.asarray(history[-history_length:], np.int64)] = -np.inf
    ids = top_k_stable(masked, top_k)
    return ids, np.take_along_axis(masked, ids, axis=1)


def _evaluate(score_fn, histories, targets, batch_size, ks, ranks_of) -> dict[str, float]:
    _check_positive_int(batch_size, "batch_size")
    for k in ks:
        _check_positive_int(k, "k")
    targets = np.asarray(targets)
    if len(histories) != len(targets):
        raise ValueError(f"{len(histories)} histories but {len(targets)} targets.")
    accumulator = RankingAccumulator()
    for start in range(0, len(targets), batch_size):
        batch_histories = list(histories[start : start + batch_size])
        batch_targets = targets[start : start + batch_size]
        batch_scores = np.asarray(score_fn(batch_histories))
        accumulator.update(ranks_of(batch_scores, batch_histories, batch_targets))
    return accumulator.result(ks)


def _check_scores_targets(scores, targets) -> tuple[np.ndarray, np.ndarray]:
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(
            f"expected scores (B, V) and targets (B,); got {scores.shape} and {targets.shape}."
        )
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integers; got dtype {targets.dtype}.")
    if targets.size and (targets.min() < 1 or targets.max() >= scores.shape[1]):
        raise ValueError(f"targets must lie in 1..{scores.shape[1] - 1} (0 is padding).")
    if np.isnan(scores).any():
        raise ValueError(f"scores contain NaN in row {int(np.argmax(np.isnan(scores).any(1)))}.")
    return scores, targets


def _flatten_index_lists(index_lists, num_rows: int, vocab_size: int, name: str):
    """Row and column indices of the per-row lists, for one fancy-indexing assignment."""
    if len(index_lists) != num_rows:
        raise ValueError(f"{name} has {len(index_lists)} entries for {num_rows} rows.")
    cols = _concatenate(index_lists)
    if cols.size and (cols.min() < 0 or cols.max() >= vocab_size):
        raise ValueError(f"{name} holds item indices outside 0..{vocab_size - 1}.")
    rows = np.repeat(np.arange(num_rows), [len(np.ravel(x)) for x in index_lists])
    return rows, cols


def _concatenate(arrays: Sequence[np.ndarray]) -> np.ndarray:
    if len(arrays) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.ravel(a) for a in arrays]).astype(np.int64, copy=False)


def _check_ranks(ranks, allow_empty: bool = False) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or not (np.issubdtype(ranks.dtype, np.integer) or ranks.size == 0):
        raise ValueError(f"ranks must be a 1-D integer array; got shape {ranks.shape}.")
    if not allow_empty and ranks.size == 0:
        raise ValueError("ranks is empty: there are no users to average over.")
    if ranks.size and ranks.min() < 0:
        raise ValueError("ranks must be non-negative.")
    return ranks.astype(np.int64, copy=False)


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")

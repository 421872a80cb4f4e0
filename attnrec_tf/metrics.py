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


def popularity_scores(train_sequences: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
    """Returns the training count of each item as a score `(V,)`; column 0 (padding) is -inf.

    Zeros in the sequences (padding) are ignored; other indices must lie in `1..V-1`.
    """
    _check_positive_int(vocab_size, "vocab_size")
    items = _concatenate(train_sequences)
    if items.size and (items.min() < 0 or items.max() >= vocab_size):
        raise ValueError(f"train_sequences hold item indices outside 0..{vocab_size - 1}.")
    counts = np.bincount(items, minlength=vocab_size).astype(np.float64)
    counts[0] = -np.inf
    return counts


def evaluate_popularity(
    train_sequences: Sequence[np.ndarray],
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    vocab_size: int,
    *,
    exclude_history: bool = True,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Full-ranking evaluation of the most-popular baseline (the same list for every user)."""
    popularity = popularity_scores(train_sequences, vocab_size)

    def score_fn(batch_histories: list[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(popularity, (len(batch_histories), vocab_size))  # read-only view

    return evaluate_scores(score_fn, histories, targets, exclude_history=exclude_history, ks=ks)


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

"""Counterfactual explanations: the history items without which a recommendation would score lower.

For a history `h` and a recommended item `j`, this module removes each history item `i` (every
occurrence of it) and scores again:

    drop_ij = s_j(h) - s_j(h without i)         how much of j's score i is responsible for
    rank_ij = rank of j among the unseen items when the model sees h without i

A history item is a reason for `j` only when its removal lowers `j`'s score (`drop_ij > 0`); the
reasons are ordered by the drop, and each says where `j` would fall ("#3 -> #41"). Only the
distinct items of the model's window (the last `max_len` of the history) are removed, each
history scored in one batched call beside the whole history; an older item may slide into the
window. The history's items stay excluded from the ranks. Why counterfactual rather than
additive: docs/notes/export-training-serving.md.

Example:

>>> import numpy as np
>>> def score_fn(histories):           # item 3's score is 2 per occurrence of item 1, else 0
...     return np.array([[0.0, 0.0, 0.5, 2.0 * list(h).count(1), 1.0] for h in histories])
>>> found = counterfactuals(score_fn, [1, 2, 1], np.array([3]), max_len=5)
>>> found.items.tolist(), found.drops[:, 0].tolist(), found.ranks_without[:, 0].tolist()
([1, 2], [4.0, 0.0], [2, 1])
>>> [(r.item, r.score_drop, r.rank_without) for r in found.reasons(0)]
[(1, 4.0, 2)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from attnrec_tf.metrics import rank_of_targets

ScoreFn = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Removal:
    """One history item as a reason for one recommendation.

    Attributes:
        item: Vocabulary index of the history item.
        score_drop: The recommendation's score with the whole history minus without the item.
        rank_without: The recommendation's 1-based rank among unseen items without the item.
    """

    item: int
    score_drop: float
    rank_without: int


@dataclass(frozen=True)
class Counterfactuals:
    """What removing each item of a history's window does to each candidate.

    Attributes:
        items: `(n,)` the distinct history items of the window, most recent first.
        candidates: `(J,)` the candidates' vocabulary indices.
        scores: `(J,)` their scores with the whole history.
        ranks: `(J,)` their 1-based ranks among unseen items with the whole history.
        drops: `(n, J)` `score - score without items[i]`.
        ranks_without: `(n, J)` 1-based ranks without `items[i]`.
        verified: `(n,)` bool, the items whose removal was scored, or None: all of them. A
            likely-reasons-only answer (`serving.explain_verified`, the explain `.tflite`) has
            drop 0 for the others, and rank 0 (not computed) outside each candidate's 3
            largest scored drops, so `reasons` names scored removals only.
    """

    items: np.ndarray
    candidates: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    drops: np.ndarray
    ranks_without: np.ndarray
    verified: np.ndarray | None = None

    def reasons(self, column: int, top: int = 3, min_share: float = 0.1) -> list[Removal]:
        """The items whose removal lowers candidate `column`'s score most, largest drop first.

        Args:
            column: The candidate's position in `candidates`.
            top: How many reasons at most.
            min_share: Leave out drops below this fraction of the largest one.

        Returns:
            Up to `top` `Removal`s, each with a positive drop.
        """
        drops = self.drops[:, column]
        order = np.argsort(-drops, kind="stable")
        found = [
            Removal(int(self.items[i]), float(drops[i]), int(self.ranks_without[i, column]))
            for i in order[:top]
            if drops[i] > 0
        ]
        return [r for r in found if r.score_drop >= min_share * found[0].score_drop]


def removal_histories(
    history: Sequence[int] | np.ndarray, max_len: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct items of the last `max_len` of `history` (most recent first), and for each
    the whole history without any occurrence of it.

    >>> items, rows = removal_histories([5, 1, 2, 1], max_len=3)
    >>> items.tolist(), [r.tolist() for r in rows]
    ([1, 2], [[5, 2], [5, 1, 1]])
    """
    whole = np.asarray(history, np.int64)
    window = whole[-max_len:][::-1]
    items = np.asarray(list(dict.fromkeys(window.tolist())), np.int64)
    return items, [whole[whole != item] for item in items]


def counterfactuals(
    score_fn: ScoreFn,
    history: Sequence[int] | np.ndarray,
    candidates: np.ndarray,
    *,
    max_len: int,
    exclude_history: bool = True,
) -> Counterfactuals:
    """Scores `history` and each of its removal histories in one call of `score_fn`.

    Args:
        score_fn: Histories -> `(B, V)` catalog scores (e.g. `evaluate.keras_score_fn`, or the
            SavedModel's `rerank` with every item as candidate).
        history: Vocabulary indices, oldest first.
        candidates: `(J,)` the items to explain (e.g. the top-K).
        max_len: The model's window.
        exclude_history: Rank among items outside the whole history (as served).

    Returns:
        The Counterfactuals.
    """
    whole = np.asarray(history, np.int64)
    candidates = np.asarray(candidates, np.int64)
    items, rows = removal_histories(whole, max_len)
    scores = np.asarray(score_fn([whole, *rows]), np.float64)  # (1 + n, V)
    excluded = [whole if exclude_history else np.zeros(0, np.int64)] * len(scores)
    ranks = np.stack(
        [
            rank_of_targets(scores, np.full(len(scores), candidate), excluded) + 1
            for candidate in candidates
        ],
        axis=1,
    )  # (1 + n, J)
    picked = scores[:, candidates]  # (1 + n, J)
    return Counterfactuals(
        items=items,
        candidates=candidates,
        scores=picked[0],
        ranks=ranks[0],
        drops=picked[0][None, :] - picked[1:],
        ranks_without=ranks[1:],
    )

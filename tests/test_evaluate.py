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

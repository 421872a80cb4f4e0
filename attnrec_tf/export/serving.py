"""The serving computation shared by the SavedModel and the TFLite files.

Every exported artifact runs the same graph between its input and the Keras model:

    x      = where(0 < x < V, x, 0)                  # (B, T) out-of-range / unknown -> padding
    window = compact_right(x, max_len)               # (B, max_len) real ids packed to the right,
                                                     #   in order, most recent max_len kept
    scores, attention = model.serve_outputs(window)  # (B, V), (B, max_len); the int8 files
                                                     #   read a per-row int8 table instead
                                                     #   (`tflite.int8_table_outputs`)
    scores = where(excluded(x), floor, scores)       # every real id of x, and 0, to the bottom
    item_ids, scores = top_k(scores, K)              # (B, K), (B, K)

The model attends over the most recent `max_len` real ids only, but the exclusion covers every
real id of the row (any length `T` for the SavedModel, `T = history_length` for the TFLite
files). Left, right and middle padding are equivalent (`compact_right`). Excluded items score
`floor = min - 0.01 * (max - min) - 0.001` of the row. Only builtin TFLite ops are used, and the
exclusion mask is built in int32, so full-integer quantization leaves it exact. The scoring
and the top-K run under the name scope `RANKING_SCOPE`, which the full-integer int8 file keeps
in float32. Why: docs/notes/export-training-serving.md.

Example:

```python
import tensorflow as tf
from attnrec_tf.export.serving import compact_right

compact_right(tf.constant([[3, 0, 5, 0]]), 3).numpy()  # [[0, 3, 5]]
compact_right(tf.constant([[1, 2, 3, 4]]), 2).numpy()  # [[3, 4]]
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

ServeOutputs = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
"""`(B, max_len)` window -> `(B, V)` scores and `(B, max_len)` attention, as
`AttentionRecommender.serve_outputs`."""

RECOMMEND_OUTPUTS = ("item_ids", "scores", "attention")
"""Output names of a recommendation signature, in the order the docs list them."""


def clean_indices(indices: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """`(B, T)` int32 vocabulary indices; values outside `1..vocab_size-1` become 0 (padding)."""
    indices = tf.cast(indices, tf.int32)
    valid = tf.logical_and(indices > 0, indices < vocab_size)
    return tf.where(valid, indices, tf.zeros_like(indices))


def compact_right(indices: tf.Tensor, length: int) -> tf.Tensor:
    """Packs the non-zero entries of each row to the right end, keeping their order.

    Args:
        indices: `(B, T)` int32, 0 = padding anywhere in the row, no negative values (see
            `clean_indices`).
        length: Output width; rows with more than `length` real entries keep the last ones.

    Returns:
        `(B, length)` int32, left-padded with 0.
    """
    steps = tf.shape(indices)[1]
    positions = tf.broadcast_to(tf.range(1, steps + 1), tf.shape(indices))  # (B, T)
    key = tf.where(indices > 0, positions, tf.zeros_like(positions))  # padding sorts first
    width = indices.shape[1]
    if width is not None and width >= length:  # static, wide enough (TFLite): no pad / slice
        # the `length` largest keys are the last `length` real positions, or padding (key 0,
        # value 0) when the row has fewer real entries
        order = tf.reverse(tf.math.top_k(key, k=length).indices, axis=[1])  # (B, length)
        return tf.gather(indices, order, batch_dims=1)
    order = tf.reverse(tf.math.top_k(key, k=steps).indices, axis=[1])  # (B, T) ascending key
    packed = tf.gather(indices, order, batch_dims=1)  # (B, T) padding, then reals in order
    padding = tf.zeros([tf.shape(indices)[0], length], indices.dtype)
    window = tf.concat([padding, packed], axis=1)[:, -length:]  # (B, length)
    return tf.ensure_shape(window, [None, length])


def excluded_items(indices: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """`(B, V)` bool: True for index 0 and for every item that occurs in the row of `indices`."""
    indices = tf.concat([tf.zeros_like(indices[:, :1]), indices], axis=1)  # (B, T+1), 0 always
    rows = tf.broadcast_to(tf.range(tf.shape(indices)[0])[:, None], tf.shape(indices))
    coordinates = tf.stack([rows, indices], axis=-1)  # (B, T+1, 2)
    shape = tf.stack([tf.shape(indices)[0], vocab_size])
    counts = tf.scatter_nd(coordinates, tf.ones_like(indices), shape)  # (B, V) int32
    return counts > 0


RANKING_SCOPE = "ranking"
"""The name scope of the graph's scoring and top-K ops (after the user vector), which the
full-integer int8 file keeps in float32 (`tflite.float_scopes_in_int8`)."""


def top_k_excluding(scores: tf.Tensor, excluded: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Top-`k` `(indices, scores)` of each row of `scores` `(B, V)`, never an excluded item.

    An excluded item can only appear when fewer than `k` items are left in the row.
    """
    low = tf.reduce_min(scores, axis=-1, keepdims=True)  # (B, 1)
    high = tf.reduce_max(scores, axis=-1, keepdims=True)
    # 1e-3 keeps excluded items strictly below the rest even when every score ties
    floor = low - 0.01 * (high - low) - 1e-3
    masked = tf.where(excluded, tf.broadcast_to(floor, tf.shape(scores)), scores)
    top = tf.math.top_k(masked, k=k)
    return top.indices, top.values


def recommend(
    model: Any,
    indices: tf.Tensor,
    *,
    top_k: int,
    exclude_history: bool = True,
    outputs: ServeOutputs | None = None,
) -> dict[str, tf.Tensor]:
    """The recommendation graph on vocabulary indices.

    Args:
        model: An `AttentionRecommender` (anything with `vocab_size`, `max_len`,
            `serve_outputs`).
        indices: `(B, T)` int vocabulary indices, any padding (see `compact_right`), any `T`:
            the model sees the last `max_len` real ones.
        top_k: K.
        exclude_history: Leave every real item of `indices` (all `T` columns, not only the
            model's window) out of the top-K. Index 0 is always left out.
        outputs: The model's scores and attention of a window; None: `model.serve_outputs`
            (the int8 TFLite files pass `tflite.int8_table_outputs`, which reads a per-row
            int8 item table).

    Returns:
        `{"item_ids": (B, K) int32 indices, "scores": (B, K) float32,
        "attention": (B, max_len) float32}`, the attention over the compacted, left-padded
        window the model saw.
    """
    indices = clean_indices(indices, model.vocab_size)  # (B, T)
    window = compact_right(indices, model.max_len)  # (B, L)
    scores, attention = (outputs or model.serve_outputs)(window)  # (B, V), (B, L)
    history = indices if exclude_history else tf.zeros_like(indices[:, :1])
    excluded = excluded_items(history, model.vocab_size)
    with tf.name_scope(RANKING_SCOPE):
        scores = tf.cast(scores, tf.float32)
        item_ids, top_scores = top_k_excluding(scores, excluded, top_k)
    return {
        "item_ids": item_ids,
        "scores": top_scores,
        "attention": tf.cast(attention, tf.float32),
    }


def window_scores(model: Any, indices: tf.Tensor) -> tf.Tensor:
    """`(B, V)` float32 catalog scores for histories of vocabulary indices in any padding."""
    window = compact_right(clean_indices(indices, model.vocab_size), model.max_len)
    return tf.cast(model.serve_outputs(window)[0], tf.float32)


def user_vectors(model: Any, indices: tf.Tensor) -> tf.Tensor:
    """`(B, D)` float32 user vectors of histories of vocabulary indices in any padding.

    `window_scores` is exactly `user_vectors(model, x) @ transpose(model.item_representations())`,
    so an inner-product index over the item representations ranks as the model does.
    """
    window = compact_right(clean_indices(indices, model.vocab_size), model.max_len)
    user, _ = model.encode(window, training=False, last_only=True)  # (B, 1, D)
    return tf.cast(user[:, -1, :], tf.float32)


EXPLAIN_OUTPUTS = ("removed", "score_drops", "ranks_without", "scores", "ranks")
"""Output names of the `explain` computation, in the order the docs list them."""


def _explained_window(
    model: Any, indices: tf.Tensor, candidates: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The explain graphs' common start: clean `(B, T)` histories and `(B, C)` candidates, the
    model's window `(B, L)` (`compact_right`), and `cut` = L - W, W the longest row's items."""
    indices = clean_indices(indices, model.vocab_size)  # (B, T)
    candidates = clean_indices(candidates, model.vocab_size)  # (B, C)
    length = model.max_len
    full = compact_right(indices, length)  # (B, L)
    real = tf.reduce_sum(tf.cast(indices > 0, tf.int32), axis=1)  # (B,)
    cut = length - tf.clip_by_value(tf.reduce_max(real), 1, length)  # L - W
    return indices, candidates, full, cut


def explain_removals(model: Any, indices: tf.Tensor, candidates: tf.Tensor) -> dict[str, tf.Tensor]:
    """What removing each item of the model's window does to each candidate's score and rank.

    The counterfactual explanation of `attnrec_tf.counterfactual`, as one graph: for each
    position `l` of the window (the last `max_len` real items), the row without any occurrence
    of that position's item is scored with the others, in one model call cut to the batch's
    longest window. Ranks are 1-based among the items outside the whole history (index 0 never
    counts), ties counted against the candidate, as `metrics.rank_of_targets` does. A candidate
    that is not a catalog item has rank 0 and no drops.

    Args:
        model: An `AttentionRecommender`.
        indices: `(B, T)` int vocabulary indices, any padding.
        candidates: `(B, C)` int vocabulary indices of the items to explain.

    Returns:
        `{"removed": (B, L) int32 the window's items (0 = padding, where every drop is 0 and
        every rank without is the rank), "score_drops": (B, L, C) float32 score with the
        history minus without `removed[:, l]`, "ranks_without": (B, L, C) int32, "scores":
        (B, C) float32, "ranks": (B, C) int32}`, `L` = `max_len` (static when `candidates`'
        shape is, as in a `.tflite`).
    """
    indices, candidates, full, cut = _explained_window(model, indices, candidates)
    length = model.max_len
    window = full[:, cut:]  # (B, W); a row without an item has fewer real items still
    batch, steps = tf.shape(indices)[0], tf.shape(indices)[1]
    same = tf.equal(indices[:, None, :], window[:, :, None])  # (B, W, T)
    rows = tf.where(same, tf.zeros_like(same, tf.int32), indices[:, None, :])  # (B, W, T)
    rows = tf.concat([indices[:, None, :], rows], axis=1)  # (B, 1 + W, T): the whole row first
    flat = compact_right(tf.reshape(rows, [-1, steps]), length)[:, cut:]  # (B (1 + W), W)
    scores = tf.cast(model.serve_outputs(flat)[0], tf.float32)  # (B (1 + W), V)
    scores = tf.reshape(scores, [batch, -1, model.vocab_size])  # (B, 1 + W, V)
    picked = tf.gather(scores, candidates, axis=2, batch_dims=1)  # (B, 1 + W, C)
    ranks = _ranks(scores, picked, indices, candidates, model.vocab_size)  # (B, 1 + W, C)
    real_pairs = tf.logical_and(window[:, :, None] > 0, candidates[:, None, :] > 0)  # (B, W, C)
    drops = tf.where(
        real_pairs, picked[:, :1, :] - picked[:, 1:, :], tf.zeros_like(real_pairs, tf.float32)
    )
    without = tf.where(
        real_pairs, ranks[:, 1:, :], tf.broadcast_to(ranks[:, :1, :], tf.shape(drops))
    )
    padding = tf.broadcast_to(ranks[:, :1, :], [batch, cut, tf.shape(candidates)[1]])
    return {
        "removed": full,
        "score_drops": _widen(tf.pad(drops, [[0, 0], [cut, 0], [0, 0]]), candidates, length),
        "ranks_without": _widen(tf.concat([padding, without], axis=1), candidates, length),
        "scores": picked[:, 0, :],
        "ranks": ranks[:, 0, :],
    }


def _ranks(
    scores: tf.Tensor, picked: tf.Tensor, indices: tf.Tensor, candidates: tf.Tensor, vocab_size: int
) -> tf.Tensor:
    """`(B, R, C)` 1-based ranks of the candidates' scores `picked` `(B, R, C)` in each row of
    `scores` `(B, R, V)`, among the items outside `indices`; 0 for a padding candidate."""
    unseen = tf.logical_not(excluded_items(indices, vocab_size))  # (B, V)
    higher = scores[:, :, None, :] >= picked[:, :, :, None]  # (B, R, C, V)
    others = tf.not_equal(tf.range(vocab_size)[None, None, :], candidates[:, :, None])  # (B, C, V)
    counted = tf.logical_and(higher, tf.logical_and(unseen[:, None, :], others)[:, None, :, :])
    ranks = 1 + tf.reduce_sum(tf.cast(counted, tf.int32), axis=-1)  # (B, R, C)
    return tf.where(candidates[:, None, :] > 0, ranks, tf.zeros_like(ranks))


def _widen(values: tf.Tensor, candidates: tf.Tensor, length: int) -> tf.Tensor:
    """`values` `(B, length, C)` with a shape as static as `candidates`' (a `.tflite` then has
    fixed output shapes, although its window is cut at run time)."""
    batch, count = candidates.shape
    if batch is not None and count is not None:
        return tf.reshape(values, [batch, length, count])
    return tf.ensure_shape(values, [batch, length, count])


VERIFIED_OUTPUTS = (*EXPLAIN_OUTPUTS, "verified")
"""Output names of `explain_verified`: `EXPLAIN_OUTPUTS` and which removals were scored."""
VERIFY = 16
"""Removals `explain_verified` scores: at most this many distinct window items."""
RECENT = 6
"""Of them, the most recent distinct items, always; the rest by attention."""
REASONS = 3
"""Removals per candidate whose full-catalog rank `explain_verified` computes (the largest drops;
`Counterfactuals.reasons` shows at most 3)."""


def explain_verified(
    model: Any,
    indices: tf.Tensor,
    candidates: tf.Tensor,
    *,
    verify: int = VERIFY,
    recent: int = RECENT,
    reasons: int = REASONS,
) -> dict[str, tf.Tensor]:
    """`explain_removals` for a few likely reasons only: pick them cheaply, then remove them.

    One model call on the whole window gives the scores and the last position's attention. The
    `recent` most recent distinct window items, then the most attended others, `verify` in all
    (every distinct item when the window has no more), are the likely reasons (on the ML-1M
    preset the item whose removal lowers a top-10 candidate's score most is among 16 so chosen in
    97.6% of the pairs: docs/explanations.md); each is removed (every occurrence) and scored, in
    one batched model call. Scores are taken on the candidates' item rows only; full-catalog
    ranks only for the whole history and for each candidate's `reasons` largest drops. Nothing
    grows with the window beyond `L x L` masks, nothing with the catalog beyond
    `C (1 + reasons)` score rows.

    Args:
        model: An `AttentionRecommender`.
        indices: `(B, T)` int vocabulary indices, any padding.
        candidates: `(B, C)` int vocabulary indices of the items to explain.
        verify: At most this many removals per history. Defaults to `VERIFY`.
        recent: The most recent distinct items always among them. Defaults to `RECENT`.
        reasons: Ranks without an item for this many largest drops per candidate. Defaults to
            `REASONS`.

    Returns:
        The outputs of `explain_removals`, except that `score_drops` is 0 at a position whose
        removal was not scored, and `ranks_without` is 0 outside each candidate's `reasons`
        largest scored drops; and `"verified": (B, L) int32`, 1 at the most recent position of
        each removed item. A scored drop and a rank given equal `explain_removals`'.
    """
    indices, candidates, full, cut = _explained_window(model, indices, candidates)
    length = model.max_len
    table = model.item_representations()  # (V, D)
    whole, attention = _last_user(model, table, full[:, cut:])  # (B, D), (B, W)
    attention = tf.concat([tf.zeros_like(full[:, :cut], tf.float32), attention], axis=1)  # (B, L)
    chosen, valid = likely_reasons(full, attention, min(verify, length), recent)  # (B, M) x2
    batch, steps = tf.shape(indices)[0], tf.shape(indices)[1]
    gone = tf.gather(full, chosen, batch_dims=1)  # (B, M) the items removed
    rows = tf.where(
        tf.equal(indices[:, None, :], gone[:, :, None]),
        tf.zeros_like(gone[:, :, None]),
        indices[:, None, :],
    )  # (B, M, T)
    flat = compact_right(tf.reshape(rows, [-1, steps]), length)[:, cut:]  # (B M, W)
    users = tf.reshape(_last_user(model, table, flat)[0], [batch, -1, tf.shape(whole)[1]])
    items = tf.cast(tf.gather(table, candidates), tf.float32)  # (B, C, D)
    scores = tf.einsum("bd,bcd->bc", whole, items)  # (B, C)
    without = tf.einsum("bmd,bcd->bmc", users, items)  # (B, M, C)
    scored = tf.logical_and(valid[:, :, None], candidates[:, None, :] > 0)  # (B, M, C)
    drops = tf.where(scored, scores[:, None, :] - without, tf.zeros_like(without))  # (B, M, C)
    unseen = tf.logical_not(excluded_items(indices, model.vocab_size))  # (B, V)
    catalog = tf.cast(table, tf.float32)  # (V, D)
    everything = tf.matmul(whole, catalog, transpose_b=True)  # (B, V)
    ranks = _rank_rows(everything[:, None, None, :], scores[:, :, None], unseen, candidates)
    ranks = ranks[:, :, 0]  # (B, C)
    ranked = tf.where(scored, drops, tf.fill(tf.shape(drops), -3.0e38))  # unscored last
    best = tf.math.top_k(tf.transpose(ranked, [0, 2, 1]), k=min(reasons, chosen.shape[1]))
    top_users = tf.gather(users, best.indices, batch_dims=1)  # (B, C, R, D)
    top_scores = tf.gather(tf.transpose(without, [0, 2, 1]), best.indices, batch_dims=2)
    rows_top = tf.einsum("bcrd,vd->bcrv", top_users, catalog)  # (B, C, R, V)
    ranks_top = _rank_rows(rows_top, top_scores, unseen, candidates)  # (B, C, R)
    at = tf.one_hot(chosen, length) * tf.cast(valid, tf.float32)[:, :, None]  # (B, M, L)
    top_at = tf.gather(at, best.indices, batch_dims=1)  # (B, C, R, L)
    ranks_without = tf.einsum("bcrl,bcr->blc", top_at, tf.cast(ranks_top, tf.float32))
    return {
        "removed": full,
        "score_drops": _widen(tf.einsum("bml,bmc->blc", at, drops), candidates, length),
        "ranks_without": _widen(tf.cast(tf.round(ranks_without), tf.int32), candidates, length),
        "scores": scores,
        "ranks": ranks,
        "verified": tf.cast(tf.reduce_sum(at, axis=1) > 0, tf.int32),
    }


def likely_reasons(
    window: tf.Tensor, attention: tf.Tensor, count: int, recent: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """The positions of the items to remove: the `recent` most recent distinct items, then the
    most attended others, `count` in all; each item at its most recent position.

    Args:
        window: `(B, L)` int32 the model's window, left-padded with 0.
        attention: `(B, L)` float32 the last position's attention, each in `[0, 1]`.
        count: `M <= L`, a Python int.
        recent: How many of the most recent distinct items come first.

    Returns:
        `(positions (B, M) int32, valid (B, M) bool)`: a position is not valid (and must not be
        removed) where the window has fewer than `M` distinct items.
    """
    steps = window.shape[1]
    order = tf.range(steps)
    later = order[None, :] > order[:, None]  # (L, L): column q is after row p
    again = tf.logical_and(tf.equal(window[:, :, None], window[:, None, :]), later[None])
    first = tf.logical_and(window > 0, tf.logical_not(tf.reduce_any(again, axis=2)))  # (B, L)
    newer = tf.logical_and(first[:, None, :], later[None])  # (B, L, L) distinct items after p
    recency = tf.reduce_sum(tf.cast(newer, tf.int32), axis=2)  # (B, L) 0 = the latest item
    priority = attention + tf.where(recency < recent, 2.0, 0.0)  # recent ones first
    priority = tf.where(first, priority, -tf.ones_like(priority))
    top = tf.math.top_k(priority, k=count)
    return top.indices, top.values >= 0.0


def _last_user(model: Any, table: tf.Tensor, window: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(B, D)` float32 user vectors and `(B, W)` float32 attention at the window's last
    position, its rows gathered from `table` (as `serve_outputs` does)."""
    user, attention = model.encode(
        window, training=False, lookup=lambda ids: tf.gather(table, ids), last_only=True
    )
    return tf.cast(user[:, -1, :], tf.float32), tf.cast(attention[:, -1, :], tf.float32)


def _rank_rows(
    scores: tf.Tensor, picked: tf.Tensor, unseen: tf.Tensor, candidates: tf.Tensor
) -> tf.Tensor:
    """`(B, C, R)` 1-based ranks of `picked` `(B, C, R)` in its score rows `(B, C|1, R|1, V)`
    among the `unseen` `(B, V)` items other than the candidate; 0 for a padding candidate."""
    vocab = tf.shape(unseen)[1]
    others = tf.not_equal(tf.range(vocab)[None, None, :], candidates[:, :, None])  # (B, C, V)
    counted = tf.logical_and(unseen[:, None, :], others)[:, :, None, :]  # (B, C, 1, V)
    higher = tf.logical_and(scores >= picked[..., None], counted)  # (B, C, R, V)
    ranks = 1 + tf.reduce_sum(tf.cast(higher, tf.int32), axis=-1)
    return tf.where(candidates[:, :, None] > 0, ranks, tf.zeros_like(ranks))

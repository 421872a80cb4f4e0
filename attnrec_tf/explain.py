"""Per-recommendation explanations: which history items pushed each recommended item up.

The score of recommendation `j` is split exactly along the model's own algebra. At serving
time (`model/`)

    u   = K_a^T (sum_i a_i h_i) + K_c^T h_L + b       Dense([pooled ; current]) with
                                                      kernel K = [K_a ; K_c], bias b
    s_j = u . e_j                                     e_j = item representation of j

so, with the projected history states `p_i = K_a^T h_i`,

    s_j = sum_i a_i (p_i . e_j)  +  (K_c^T h_L) . e_j  +  b . e_j
          -------------------       ----------------     -------
          attention term             recent term          bias term

and the contribution of history item i to recommendation j is

    c_ij = a_i * (p_i . e_j)        attention weight x similarity of i and j in score space

`c_ij` may be negative; a history item's contributions over its positions add up. `reasons`
lists up to three items with the largest positive `c_ij`, leaving out those under a tenth of the
largest; the recent and bias terms are reported apart. `mean` has uniform `a`, `last` a one-hot
`a` and no recent term; `sasrec` has no pooling head (`u = h_L`), so it gets no reasons. `h_i`
are the history states (after the causal blocks, if any), recomputed from `model.keras`. The
three terms add up to the Keras score up to float32 rounding.

Example:

>>> import numpy as np
>>> a = np.array([0.25, 0.75])                      # attention over two history items
>>> p = np.array([[1.0, 0.0], [0.0, 2.0]])          # projected history states p_i
>>> e = np.array([[4.0, 1.0]])                      # one recommended item e_j
>>> contributions(a, p, e)                          # [[0.25 * 4], [0.75 * 2]]
array([[1. ],
       [1.5]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def contributions(attention: np.ndarray, projected: np.ndarray, items: np.ndarray) -> np.ndarray:
    """`c_ij = a_i * (p_i . e_j)`.

    Args:
        attention: `(L,)` attention weights `a_i` of the history positions.
        projected: `(L, D)` projected history states `p_i = K_a^T h_i`.
        items: `(J, D)` representations `e_j` of the recommended items.

    Returns:
        `(L, J)` float64 contributions.
    """
    attention = np.asarray(attention, np.float64)
    similarity = np.asarray(projected, np.float64) @ np.asarray(items, np.float64).T  # (L, J)
    return attention[:, None] * similarity


@dataclass(frozen=True)
class ScoreParts:
    """The model quantities of one history window that the explanation needs.

    Attributes:
        window: `(L,)` int32 vocabulary indices, left-padded with 0 (what the model saw).
        attention: `(L,)` the Keras model's attention weights over `window`.
        projected: `(L, D)` `p_i = K_a^T h_i` (zero rows at padding).
        recent: `(D,)` `K_c^T h_L` (zeros when the model has no recent path).
        bias: `(D,)` the projection's bias `b`.
        items: `(V, D)` item representations `e_j` of the whole catalog (row 0 = padding).
    """

    window: np.ndarray
    attention: np.ndarray
    projected: np.ndarray
    recent: np.ndarray
    bias: np.ndarray
    items: np.ndarray

    def terms(self, item: int, attention: np.ndarray | None = None) -> dict[str, float]:
        """The attention, recent and bias terms of one item's score, and their sum."""
        weights = self.attention if attention is None else np.asarray(attention, np.float64)
        e = self.items[item].astype(np.float64)
        parts = {
            "attention": float(contributions(weights, self.projected, e[None])[:, 0].sum()),
            "recent": float(self.recent @ e),
            "bias": float(self.bias @ e),
        }
        return {**parts, "total": sum(parts.values())}


def score_parts(model: Any, window: np.ndarray) -> ScoreParts:
    """Recomputes the serving-time quantities of `model` for one left-padded window.

    Mirrors `AttentionRecommender.encode` at inference (dropout off): item representations plus
    positions, masked, through the causal blocks and the final norm when the variant has them,
    then the pooling attention of the last position.

    Args:
        model: A trained `AttentionRecommender`.
        window: `(max_len,)` int vocabulary indices, left-padded with 0.

    Returns:
        The `ScoreParts`.
    """
    from keras import ops

    window = np.asarray(window, np.int32).reshape(1, -1)  # (1, L)
    history = model._clean(window)
    mask = history > 0  # (1, L)
    h = model.embed(history, mask, training=False)
    h, _ = model.contextualize(h, mask, training=False)
    _, attention = model.serve_outputs(window)  # (1, L)

    states = np.asarray(ops.convert_to_numpy(h), np.float64)[0]  # (L, D)
    dim = states.shape[1]
    if model.projection is None:  # sasrec: u = h_L, no pooled term to split
        projected, recent, bias = np.zeros_like(states), states[-1], np.zeros(dim)
    else:
        kernel = np.asarray(ops.convert_to_numpy(model.projection.kernel), np.float64)
        bias = np.asarray(ops.convert_to_numpy(model.projection.bias), np.float64)  # (D,)
        projected = states @ kernel[:dim]  # (L, D)
        recent = states[-1] @ kernel[dim:] if model.concat_last else np.zeros(kernel.shape[1])
    items = np.asarray(ops.convert_to_numpy(model.item_representations()), np.float64)  # (V, D)
    return ScoreParts(
        window=window[0],
        attention=np.asarray(ops.convert_to_numpy(attention), np.float64)[0],
        projected=projected,
        recent=recent,
        bias=bias,
        items=items,
    )


@dataclass(frozen=True)
class Reason:
    """One history item's share in one recommendation.

    Attributes:
        item: Vocabulary index of the history item.
        attention: Its attention weight (summed over its positions).
        contribution: `sum over its positions of a_i * (p_i . e_j)`.
    """

    item: int
    attention: float
    contribution: float


def reasons(
    parts: ScoreParts,
    item: int,
    attention: np.ndarray | None = None,
    top: int = 3,
    min_share: float = 0.1,
) -> list[Reason]:
    """The history items with the largest positive contribution to `item`, largest first.

    Args:
        parts: `score_parts` of the history window.
        item: Vocabulary index of the recommended item.
        attention: `(L,)` weights to use instead of the Keras ones (e.g. a runtime's output).
            Defaults to the Keras model's.
        top: How many reasons at most. Defaults to `3`.
        min_share: Leave out items whose contribution is below this fraction of the largest
            one (a reason worth a hundredth of the main one is noise). Defaults to `0.1`.

    Returns:
        Up to `top` `Reason`s with a positive contribution.
    """
    weights = parts.attention if attention is None else np.asarray(attention, np.float64)
    column = contributions(weights, parts.projected, parts.items[item][None])[:, 0]  # (L,)
    totals: dict[int, list[float]] = {}
    for position, index in enumerate(parts.window.tolist()):
        if index > 0:
            entry = totals.setdefault(index, [0.0, 0.0])
            entry[0] += float(weights[position])
            entry[1] += float(column[position])
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][1], kv[0]))
    found = [Reason(index, a, c) for index, (a, c) in ranked if c > 0][:top]
    return [r for r in found if r.contribution >= min_share * found[0].contribution]

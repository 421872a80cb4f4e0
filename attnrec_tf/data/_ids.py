"""Raw id arrays: normalisation and factorisation (private helper of vocabulary and sequences).

Raw ids are either int64 arrays or object arrays of Python `str`; never a mix. `factorize`
turns ids into dense codes 0..k-1 in sorted id order, with counts and first positions.

Example:
    >>> import numpy as np
    >>> uniques, codes, counts, first = factorize(np.array([30, 10, 30]))
    >>> uniques.tolist(), codes.tolist(), counts.tolist(), first.tolist()
    ([10, 30], [1, 0, 1], [1, 2], [1, 0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_id_array(values: Sequence | np.ndarray) -> np.ndarray:
    """Returns `values` as a 1-D int64 array or a 1-D object array of str.

    Args:
        values: Sequence | np.ndarray. Integers (Python or numpy) or strings, not mixed.

    Returns:
        An int64 array or an object array of `str` (numpy string arrays become object arrays).

    Raises:
        TypeError: The values are neither all integers nor all strings.
    """
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    arr = arr.reshape(-1)
    kind = arr.dtype.kind
    if kind in "iu":
        return arr.astype(np.int64, copy=False)
    if kind == "U":
        return arr.astype(object)
    if kind == "f" and arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if kind == "O":
        types = set(map(type, arr.tolist()))
        if types <= {str}:
            return arr
        integer = (int, np.integer)
        if types and all(issubclass(t, integer) and not issubclass(t, bool) for t in types):
            return arr.astype(np.int64)
    raise TypeError(f"raw ids must be all integers or all strings; got dtype {arr.dtype}")


def factorize(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense codes for raw ids.

    Args:
        ids: np.ndarray. Raw ids, shape (n,): integers or strings (see `as_id_array`).

    Returns:
        (uniques, codes, counts, first): the distinct ids in sorted order; int64 codes of shape
        (n,) with `uniques[codes] == ids`; how often each distinct id occurs; and the position of
        its first occurrence.
    """
    ids = as_id_array(ids)
    if ids.dtype != object:
        if len(ids) and ids.min() >= 0 and ids.max() < 4 * len(ids) + (1 << 20):
            return _factorize_dense(ids)
        uniques, first, codes, counts = np.unique(
            ids, return_index=True, return_inverse=True, return_counts=True
        )
        return uniques, codes.reshape(-1).astype(np.int64), counts, first
    index: dict[str, int] = {}
    by_appearance_codes = np.fromiter(
        (index.setdefault(v, len(index)) for v in ids.tolist()), np.int64, len(ids)
    )
    # Code j (in order of appearance) first occurs where the running maximum first reaches j.
    running_max = np.maximum.accumulate(by_appearance_codes)
    first_by_appearance = np.flatnonzero(np.r_[True, running_max[1:] > running_max[:-1]])
    by_appearance = np.empty(len(index), dtype=object)
    by_appearance[:] = list(index)
    order = np.argsort(by_appearance.astype(str), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[by_appearance_codes]
    counts = np.bincount(codes, minlength=len(order))
    return by_appearance[order], codes, counts, first_by_appearance[order]


def _factorize_dense(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`factorize` for small non-negative integers: a lookup table instead of a sort."""
    present = np.zeros(int(ids.max()) + 1, dtype=bool)
    present[ids] = True
    uniques = np.flatnonzero(present).astype(np.int64)
    code_of = np.cumsum(present, dtype=np.int64) - 1
    codes = code_of[ids]
    counts = np.bincount(codes, minlength=len(uniques))
    first = np.full(len(uniques), len(ids), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(ids)))
    return uniques, codes, counts, first

"""Raw item ids <-> contiguous indices, the mapping saved next to every exported model.

Index 0 is padding; items are 1..num_items. Raw ids are either all integers (stored as int64)
or all strings, never mixed. `encode` maps unknown ids to 0, so a serving request with an
unseen item degrades to padding instead of failing. `decode(0)` gives the padding marker: 0 for
integer vocabularies, "" for string vocabularies.

The JSON form is `{"format": "attnrec_tf.vocabulary", "version": 1, "id_dtype": "int64" or
"string", "padding_index": 0, "raw_ids": [...]}` where `raw_ids[i]` has index i + 1.

Example:
    >>> import numpy as np
    >>> vocab = Vocabulary.fit(np.array([50, 20, 50, 30]))
    >>> vocab.raw_ids.tolist(), vocab.size
    ([50, 20, 30], 4)
    >>> vocab.encode([20, 99, 50]).tolist()
    [2, 0, 1]
    >>> vocab.decode([1, 0]).tolist()
    [50, 0]
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.data._ids import as_id_array, factorize
from attnrec_tf.errors import DataError

FORMAT = "attnrec_tf.vocabulary"
VERSION = 1
VOCABULARY_ORDERS = ("frequency", "appearance")


class Vocabulary:
    """Raw item id <-> contiguous index; index 0 is padding, items are 1..num_items.

    Args:
        raw_ids: Sequence | np.ndarray. Distinct raw ids (all integers or all strings);
            `raw_ids[i]` gets index i + 1.

    Raises:
        ValueError: `raw_ids` holds a duplicate.
        TypeError: `raw_ids` mixes integers and strings.

    Example:
        >>> vocab = Vocabulary(["b", "a"])
        >>> vocab.encode(["a", "zzz"]).tolist(), vocab.id_dtype
        ([2, 0], 'string')
    """

    def __init__(self, raw_ids: Sequence | np.ndarray) -> None:
        ids = as_id_array(raw_ids).copy()
        ids.flags.writeable = False
        self._raw_ids = ids
        if ids.dtype == np.int64:
            self._order = np.argsort(ids, kind="stable")
            self._sorted = ids[self._order]
            duplicate = np.flatnonzero(self._sorted[1:] == self._sorted[:-1])
            if duplicate.size:
                raise ValueError(
                    f"raw ids must be distinct; {self._sorted[duplicate[0]]} appears twice"
                )
            self._index: dict[str, int] = {}
        else:
            self._index = {raw: i + 1 for i, raw in enumerate(ids.tolist())}
            if len(self._index) != len(ids):
                counts = collections.Counter(ids.tolist())
                duplicate_id = next(r for r, count in counts.items() if count > 1)
                raise ValueError(f"raw ids must be distinct; {duplicate_id!r} appears twice")

    @classmethod
    def fit(cls, raw_items: np.ndarray | Sequence, order: str = "frequency") -> Vocabulary:
        """Builds the vocabulary of the distinct ids in `raw_items`.

        Args:
            raw_items: np.ndarray | Sequence. Raw item ids, one per interaction.
            order: str. "frequency": most frequent first, ties in order of first appearance;
                "appearance": in order of first appearance. Defaults to `"frequency"`.

        Returns:
            The Vocabulary.

        Example:
            >>> Vocabulary.fit(["x", "y", "y"], order="appearance").raw_ids.tolist()
            ['x', 'y']
        """
        _check_order(order)
        uniques, _, counts, first = factorize(as_id_array(raw_items))
        return cls(uniques[item_ranking(counts, first, order)])

    @property
    def num_items(self) -> int:
        """Number of items, without padding."""
        return len(self._raw_ids)

    @property
    def size(self) -> int:
        """num_items + 1 (the padding index 0): the input dimension of an embedding table."""
        return self.num_items + 1

    @property
    def id_dtype(self) -> str:
        """ "int64" or "string"."""
        return "int64" if self._raw_ids.dtype == np.int64 else "string"

    @property
    def raw_ids(self) -> np.ndarray:
        """Read-only raw ids; index i belongs to raw_ids[i - 1]."""
        return self._raw_ids

    def encode(self, raw: np.ndarray | Sequence) -> np.ndarray:
        """Maps raw ids to int32 indices (unknown ids -> 0), keeping the input's shape.

        An integer vocabulary also accepts ids given as canonical decimal strings ("12", not
        "012"); a string vocabulary compares ids as text (12 finds "12").
        """
        arr = np.asarray(raw)
        flat = arr.reshape(-1)
        if self.id_dtype == "int64":
            out = self._encode_ints(flat)
        else:
            keys = flat.tolist() if flat.dtype.kind in "OU" else flat.astype(str).tolist()
            if flat.dtype == object:
                keys = [k if isinstance(k, str) else str(k) for k in keys]
            out = np.fromiter(map(self._index.get, keys, itertools.repeat(0)), np.int64, len(keys))
        return out.astype(np.int32).reshape(arr.shape)

    def _encode_ints(self, flat: np.ndarray) -> np.ndarray:
        if flat.dtype.kind in "iu":
            keys, known = flat.astype(np.int64), np.ones(len(flat), dtype=bool)
        else:
            parsed = [_parse_int(v) for v in flat.tolist()]
            known = np.array([v is not None for v in parsed], dtype=bool)
            keys = np.array([0 if v is None else v for v in parsed], dtype=np.int64)
        if not self.num_items:
            return np.zeros(len(flat), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, keys), self.num_items - 1)
        found = known & (self._sorted[pos] == keys)
        return np.where(found, self._order[pos] + 1, 0)

    def decode(self, indices: np.ndarray | Sequence) -> np.ndarray:
        """Maps indices back to raw ids, keeping the shape; index 0 gives 0 or "" (padding).

        Raises:
            IndexError: An index is outside 0..num_items.
        """
        arr = np.asarray(indices)
        if arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > self.num_items):
            raise IndexError(f"indices must be integers in 0..{self.num_items}")
        padding: Any = 0 if self.id_dtype == "int64" else ""
        table = np.concatenate([np.array([padding], dtype=self._raw_ids.dtype), self._raw_ids])
        return table[arr.astype(np.int64)]

    def to_json(self) -> dict:
        """Returns the JSON-serialisable form (see the module docstring)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "id_dtype": self.id_dtype,
            "padding_index": 0,
            "raw_ids": self._raw_ids.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        """Rebuilds a vocabulary from `to_json` output.

        Raises:
            ValueError: `data` is not a vocabulary of a known version.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} document")
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported vocabulary version {data.get('version')!r}")
        raw = data.get("raw_ids")
        dtype = data.get("id_dtype")
        if not isinstance(raw, list) or dtype not in ("int64", "string"):
            raise ValueError("vocabulary needs a list `raw_ids` and id_dtype 'int64' or 'string'")
        wanted = int if dtype == "int64" else str
        if not all(isinstance(r, wanted) and not isinstance(r, bool) for r in raw):
            raise ValueError(f"every raw id must be of type {wanted.__name__} (id_dtype={dtype})")
        array = np.empty(len(raw), dtype=np.int64 if dtype == "int64" else object)
        array[:] = raw
        return cls(array)

    def save(self, path: str | Path) -> None:
        """Writes the JSON form atomically (temporary file in the same folder + os.replace)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_json(), f, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Reads a file written by `save`.

        Raises:
            DataError: The file is missing or is not a vocabulary (the message names it).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_json(data)
        except FileNotFoundError:
            raise DataError(f"{path}: no such vocabulary file") from None
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: not a valid vocabulary file ({err})") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.id_dtype == other.id_dtype and np.array_equal(self.raw_ids, other.raw_ids)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Vocabulary(num_items={self.num_items}, id_dtype={self.id_dtype!r})"


def _check_order(order: str) -> None:
    if order not in VOCABULARY_ORDERS:
        raise ValueError(f"`order` must be one of {VOCABULARY_ORDERS}. Received: order={order!r}")


def item_ranking(counts: np.ndarray, first: np.ndarray, order: str = "frequency") -> np.ndarray:
    """The order in which distinct items get indices 1, 2, ... (see `Vocabulary.fit`).

    Args:
        counts: np.ndarray. Occurrences of each distinct item.
        first: np.ndarray. Position of each distinct item's first occurrence.
        order: str. "frequency" or "appearance". Defaults to `"frequency"`.

    Returns:
        A permutation of range(len(counts)).

    Example:
        >>> item_ranking(np.array([1, 3, 3]), np.array([0, 2, 1])).tolist()
        [2, 1, 0]
    """
    _check_order(order)
    if order == "frequency":
        return np.lexsort((first, -np.asarray(counts)))
    return np.argsort(first, kind="stable")


def _parse_int(value: object) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
        if str(number) == value.strip():  # "010" was never an integer id: the reader keeps it str
            return number
    return None

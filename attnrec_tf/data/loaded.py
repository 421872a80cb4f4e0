"""What every reader returns: `LoadedData`, the common in-memory form of a data set.

Raw (user, item, timestamp) rows in file order (`Interactions`), plus optional item metadata
(`ItemMetadata`: titles and categorical features such as genres). The readers (the generic
CSV/TSV/.inter reader in `data/interactions.py`, Parquet in `data/parquet.py`, MovieLens in
`data/movielens.py`, the synthetic generator) build it with the helpers below; later steps
(vocabulary, sequences) work on this form only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.errors import DataError


@dataclass(frozen=True, eq=False)
class Interactions:
    """Raw interaction rows in file order.

    Attributes:
        users: np.ndarray. Raw user ids, shape (n,): int64, or object array of str.
        items: np.ndarray. Raw item ids, shape (n,): int64 if every id in the source is an
            integer, else object array of str.
        timestamps: np.ndarray. float64 seconds (or any ordinal), shape (n,). Rows with equal
            timestamps keep their file order when sequences are built.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.users) == len(self.items) == len(self.timestamps):
            raise ValueError(
                "users, items and timestamps must have the same length. Received: "
                f"{len(self.users)}, {len(self.items)}, {len(self.timestamps)}"
            )

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True, eq=False)
class ItemMetadata:
    """What is known about items besides their ids.

    Attributes:
        titles: dict. Raw item id -> title; may be empty.
        features: dict[str, dict]. Feature name -> {raw item id -> tuple of str values}.
            MovieLens puts genres under "genres".
    """

    titles: dict = field(default_factory=dict)
    features: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class LoadedData:
    """A data set ready for sequence building.

    Attributes:
        name: str. Short name, e.g. "movielens-1m", "synthetic" or the file name.
        source: str. Where it came from: a path, a URL or "synthetic(seed=0)".
        interactions: Interactions. The rows.
        items: ItemMetadata. Titles and item features.
        row_filters: dict. What reading dropped, for report.json's dataset entry: with
            `--min-rating`, `{"min_rating": X, "rows_below_min_rating": N}`; else empty.
    """

    name: str
    source: str
    interactions: Interactions
    items: ItemMetadata = field(default_factory=ItemMetadata)
    row_filters: dict[str, Any] = field(default_factory=dict)


def find_column(names: Sequence[str], file: str, name: str, flag: str) -> int:
    """The index of column `name` (exact, else the one case-insensitive match).

    Raises:
        DataError: No such column; the message names the file, the columns found and `flag`.
    """
    if name in names:
        return list(names).index(name)
    folded = [i for i, found in enumerate(names) if found.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise DataError(
        f"{file}: no column {name!r} in the header (found: {', '.join(names)}); "
        f"choose the column with {flag}"
    )


def first_values_per_item(
    items: np.ndarray, values: list[str], into: dict, parse: type | object = str
) -> None:
    """Adds `values[row]` for the first row of every item not yet in `into` (vectorised)."""
    if not len(items):
        return
    order_key = items.astype(str) if items.dtype == object else items
    _, first = np.unique(order_key, return_index=True)
    for row in first.tolist():
        key = items[row]
        key = key if isinstance(key, str) else int(key)
        if key not in into:
            into[key] = parse(values[row])  # type: ignore[operator]


def split_multi_value(value: str) -> tuple[str, ...]:
    """Splits a categorical cell on '|' into stripped non-empty values.

    Example:
        >>> split_multi_value(" Comedy|Drama ||")
        ('Comedy', 'Drama')
    """
    return tuple(v for v in (part.strip() for part in value.split("|")) if v)


def _with_string_keys(mapping: dict) -> dict:
    return {str(k): v for k, v in mapping.items()}


def min_rating_filters(min_rating: float | None, rows_in: int, rows_kept: int) -> dict[str, Any]:
    """`LoadedData.row_filters` after keeping ratings >= `min_rating` (empty without one)."""
    if min_rating is None:
        return {}
    return {"min_rating": min_rating, "rows_below_min_rating": rows_in - rows_kept}


def no_rows_left(file: str | Path, column: str, min_rating: float) -> DataError:
    """The error for a file whose every row is below `--min-rating`."""
    return DataError(
        f"{file}: no row has {column} >= {min_rating:g}; lower --min-rating (or choose the "
        "column with --rating-col)"
    )


def loaded_data(
    path: Path, interactions: Interactions, titles: dict, features: dict[str, dict],
    row_filters: dict[str, Any],
) -> LoadedData:  # fmt: skip
    """The LoadedData of a generic file; metadata keys become str when some item id is one."""
    if interactions.items.dtype == object:  # some block had non-integer ids: keys become str
        titles = _with_string_keys(titles)
        features = {name: _with_string_keys(m) for name, m in features.items()}
    return LoadedData(
        path.name, str(path), interactions, ItemMetadata(titles, features), row_filters
    )

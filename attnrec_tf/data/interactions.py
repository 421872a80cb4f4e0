"""The generic interaction file reader: CSV/TSV, RecBole `.inter`, and (through
`data/parquet.py`) Parquet, into `LoadedData` (`data/loaded.py`, re-exported here with
`Interactions` and `ItemMetadata`).

A generic file needs a header. Ids may be strings; the timestamp column holds numbers (epoch
seconds or any increasing ordinal) or ISO-8601 dates (converted to epoch seconds, UTC when no
zone is given). Item feature columns are categorical, with `|` between several values.
Besides CSV/TSV: RecBole atomic `.inter` files (header fields `name:type`, read as they are) and
Parquet files (`data/parquet.py`). With `min_rating`, only rows whose rating column holds at least
that value are kept (explicit feedback turned into positives, e.g. MovieLens ratings >= 4).

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = path.write_text("user_id,item_id,timestamp,genre\\nu1,i9,2024-01-01,Jazz|Pop\\n")
    >>> data = read_interaction_file(path, feature_cols=["genre"])
    >>> data.interactions.items.tolist(), data.interactions.timestamps.tolist()
    (['i9'], [1704067200.0])
    >>> data.items.features["genre"]["i9"]
    ('Jazz', 'Pop')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnrec_tf.data import _text
from attnrec_tf.data.loaded import (
    Interactions,
    ItemMetadata,
    LoadedData,
    find_column,
    first_values_per_item,
    loaded_data,
    min_rating_filters,
    no_rows_left,
    split_multi_value,
)
from attnrec_tf.errors import DataError

__all__ = [
    "ATOMIC_SUFFIX",
    "ATOMIC_TYPES",
    "PARQUET_SUFFIXES",
    "Interactions",
    "ItemMetadata",
    "LoadedData",
    "find_column",
    "loaded_data",
    "min_rating_filters",
    "no_rows_left",
    "read_interaction_file",
    "split_multi_value",
    "split_tokens",
]

_EXTENSION_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".inter": "\t"}
_TITLE_COLUMN = "title"
ATOMIC_SUFFIX = ".inter"
ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
"""The field types of RecBole's atomic files (`name:type` in the header)."""
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class _Columns:
    """Where the wanted columns are in a header (a title column when one is not taken)."""

    user: int
    item: int
    time: int
    features: list[int]
    rating: int | None
    title: int | None

    @classmethod
    def find(
        cls,
        header: _text.Header,
        names: tuple[str, str, str],
        feature_cols: Sequence[str],
        rating_col: str | None,
    ) -> _Columns:
        def find(name: str, flag: str) -> int:
            return find_column(header.names, header.file, name, flag)

        user, item, time = (find(n, f) for n, f in zip(names, _ID_FLAGS, strict=True))
        features = [find(name, "--feature-cols") for name in feature_cols]
        rating = None if rating_col is None else find(rating_col, "--rating-col")
        taken = {user, item, time, *features, rating}
        title = next(
            (
                i
                for i, n in enumerate(header.names)
                if n.lower() == _TITLE_COLUMN and i not in taken
            ),
            None,
        )
        return cls(user, item, time, features, rating, title)

    def usecols(self) -> list[int]:
        """user, item, time, the features, then the rating and title when present."""
        extra = [i for i in (self.rating, self.title) if i is not None]
        return [self.user, self.item, self.time, *self.features, *extra]


_ID_FLAGS = ("--user-col", "--item-col", "--time-col")


def split_tokens(value: str) -> tuple[str, ...]:
    """Splits a RecBole `token_seq` cell on whitespace.

    Example:
        >>> split_tokens(" Comedy  Drama ")
        ('Comedy', 'Drama')
    """
    return tuple(value.split())


def _atomic_header(header: _text.Header) -> tuple[_text.Header, list[str]]:
    """RecBole's `name:type` header fields -> the plain names, and each column's type."""
    names, types = [], []
    for field_name in header.names:
        name, sep, kind = field_name.rpartition(":")
        if not sep or not name.strip() or kind.strip() not in ATOMIC_TYPES:
            raise DataError(
                f"{header.file} line {header.data_line - 1}: header field {field_name!r} is not "
                f"name:type with a RecBole type ({', '.join(ATOMIC_TYPES)}), e.g. user_id:token"
            )
        names.append(name.strip())
        types.append(kind.strip())
    return dataclasses.replace(header, names=names), types


@dataclass
class _Parsed:
    """What the blocks of a file gave, gathered."""

    users: list[np.ndarray] = field(default_factory=list)
    items: list[np.ndarray] = field(default_factory=list)
    times: list[np.ndarray] = field(default_factory=list)
    titles: dict = field(default_factory=dict)
    features: dict[str, dict] = field(default_factory=dict)
    rows_in: int = 0


def _parse_blocks(
    path: Path,
    header: _text.Header,
    columns: _Columns,
    feature_cols: Sequence[str],
    splitters: Sequence[Callable[[str], tuple[str, ...]]],
    min_rating: float | None,
) -> _Parsed:
    parsed = _Parsed(features={name: {} for name in feature_cols})
    names = header.names
    with _text.gc_paused():
        for rows in _text.iter_rows(path, header, columns.usecols()):
            cols = rows.columns
            users = _text.to_ids(cols[0], rows, names[columns.user])
            items = _text.to_ids(cols[1], rows, names[columns.item])
            times = _text.to_timestamps(cols[2], rows, names[columns.time])
            values = cols[3 : 3 + len(columns.features)]
            for name, cells, split in zip(feature_cols, values, splitters, strict=True):
                first_values_per_item(items, cells, parsed.features[name], split)
            if columns.title is not None:
                first_values_per_item(items, cols[-1], parsed.titles, str.strip)
            parsed.rows_in += len(rows)
            if columns.rating is not None and min_rating is not None:
                ratings = _text.to_floats(
                    cols[3 + len(columns.features)], rows, names[columns.rating]
                )
                keep = ratings >= min_rating
                users, items, times = users[keep], items[keep], times[keep]
            parsed.users.append(users)
            parsed.items.append(items)
            parsed.times.append(times)
    return parsed


def read_interaction_file(
    path: str | Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    feature_cols: Sequence[str] = (),
    delimiter: str | None = None,
    rating_col: str = "rating",
    min_rating: float | None = None,
) -> LoadedData:
    """Reads an interaction file with a header into a `LoadedData`.

    Delimited text (.csv, .tsv, .tab or any other extension); RecBole atomic `.inter` files
    (tab-separated, header fields `name:type`, the names before the colon are the column names;
    `token_seq` feature cells are split on spaces); Parquet (.parquet, .pq; needs pyarrow, see
    `data.parquet`).

    Args:
        path: str | Path. The file.
        user_col: str. Header name of the user id column. Defaults to `"user_id"`.
        item_col: str. Header name of the item id column. Defaults to `"item_id"`.
        time_col: str. Header name of the timestamp column (numbers or ISO-8601 dates).
            Defaults to `"timestamp"`.
        feature_cols: Sequence[str]. Categorical item feature columns, `|` between values; the
            first value seen for an item wins. Defaults to `()`.
        delimiter: str | None. Field separator; None takes it from the extension (.csv -> ",",
            .tsv/.tab/.inter -> tab) or sniffs it from the header. Defaults to `None`.
        rating_col: str. Header name of the rating (or weight) column, read only with
            `min_rating`. Defaults to `"rating"`.
        min_rating: float | None. Keep only rows whose rating is >= this (explicit feedback
            kept as positives); None keeps every row and ignores ratings. Defaults to `None`.

    Returns:
        The LoadedData, named after the file. A "title" column, if present, fills
        `items.titles`; with `min_rating`, `row_filters` counts the rows dropped.

    Raises:
        DataError: Missing or empty file, missing column, wrong field count, empty id,
            non-numeric timestamp or rating, invalid UTF-8, a bad `.inter` header, a damaged
            Parquet file, or no row left; the message names the file and line or column.
        MissingDependencyError: A Parquet file without pyarrow installed.

    Example:
        >>> data = read_interaction_file("events.tsv", time_col="ts")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a CSV, TSV, .inter or Parquet file")
    names = (user_col, item_col, time_col)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        from attnrec_tf.data.parquet import read_parquet_file

        return read_parquet_file(
            path, names=names, feature_cols=feature_cols, rating_col=rating_col,
            min_rating=min_rating,
        )  # fmt: skip
    atomic = path.suffix.lower() == ATOMIC_SUFFIX
    delimiter = delimiter or _EXTENSION_DELIMITERS.get(path.suffix.lower())
    header = _text.read_header(path, delimiter)
    types = None
    if atomic:
        header, types = _atomic_header(header)
    columns = _Columns.find(
        header, names, feature_cols, rating_col if min_rating is not None else None
    )
    splitters = [
        split_tokens if types is not None and types[i] == "token_seq" else split_multi_value
        for i in columns.features
    ]
    parsed = _parse_blocks(path, header, columns, feature_cols, splitters, min_rating)
    if not parsed.rows_in:
        raise DataError(f"{path}: no data rows after the header")
    interactions = Interactions(
        _text.merge_ids(parsed.users), _text.merge_ids(parsed.items), np.concatenate(parsed.times)
    )
    if min_rating is not None and not len(interactions):
        raise no_rows_left(path, header.names[columns.rating or 0], min_rating)
    return loaded_data(
        path, interactions, parsed.titles, parsed.features,
        min_rating_filters(min_rating, parsed.rows_in, len(interactions)),
    )  # fmt: skip

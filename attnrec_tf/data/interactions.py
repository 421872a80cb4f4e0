"""The common in-memory form of a data set, and the generic CSV/TSV reader.

Every source (MovieLens folders, a user's file, the synthetic generator) ends up as a
`LoadedData`: raw (user, item, timestamp) rows in file order, plus optional item metadata
(titles and categorical features such as genres). Later steps (vocabulary, sequences) work on
this form only.

A generic file needs a header. Ids may be strings; the timestamp column holds numbers (epoch
seconds or any increasing ordinal) or ISO-8601 dates (converted to epoch seconds, UTC when no
zone is given). Item feature columns are categorical, with `|` between several values.

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnrec_tf.data import _text
from attnrec_tf.errors import DataError

_EXTENSION_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_TITLE_COLUMN = "title"


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
    """

    name: str
    source: str
    interactions: Interactions
    items: ItemMetadata = field(default_factory=ItemMetadata)


def _find_column(header: _text.Header, name: str, flag: str) -> int:
    if name in header.names:
        return header.names.index(name)
    folded = [i for i, found in enumerate(header.names) if found.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise DataError(
        f"{header.file}: no column {name!r} in the header (found: {', '.join(header.names)}); "
        f"choose the column with {flag}"
    )


def _first_values_per_item(
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


def read_interaction_file(
    path: str | Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    feature_cols: Sequence[str] = (),
    delimiter: str | None = None,
) -> LoadedData:
    """Reads a delimited text file with a header into a `LoadedData`.

    Args:
        path: str | Path. The file (.csv, .tsv, .tab or any other extension).
        user_col: str. Header name of the user id column. Defaults to `"user_id"`.
        item_col: str. Header name of the item id column. Defaults to `"item_id"`.
        time_col: str. Header name of the timestamp column (numbers or ISO-8601 dates).
            Defaults to `"timestamp"`.
        feature_cols: Sequence[str]. Categorical item feature columns, `|` between values; the
            first value seen for an item wins. Defaults to `()`.
        delimiter: str | None. Field separator; None takes it from the extension (.csv -> ",",
            .tsv/.tab -> tab) or sniffs it from the header. Defaults to `None`.

    Returns:
        The LoadedData, named after the file. A "title" column, if present, fills
        `items.titles`.

    Raises:
        DataError: Missing or empty file, missing column, wrong field count, empty id,
            non-numeric timestamp or invalid UTF-8; the message names the file and line or
            column.

    Example:
        >>> data = read_interaction_file("events.tsv", time_col="ts")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a CSV or TSV file")
    delimiter = delimiter or _EXTENSION_DELIMITERS.get(path.suffix.lower())
    header = _text.read_header(path, delimiter)
    user_i = _find_column(header, user_col, "--user-col")
    item_i = _find_column(header, item_col, "--item-col")
    time_i = _find_column(header, time_col, "--time-col")
    feature_i = [_find_column(header, name, "--feature-cols") for name in feature_cols]
    taken = {user_i, item_i, time_i, *feature_i}
    title_i = next(
        (i for i, n in enumerate(header.names) if n.lower() == _TITLE_COLUMN and i not in taken),
        None,
    )
    usecols = [user_i, item_i, time_i, *feature_i] + ([title_i] if title_i is not None else [])

    users, items, times = [], [], []
    titles: dict = {}
    features: dict[str, dict] = {name: {} for name in feature_cols}
    with _text.gc_paused():
        for rows in _text.iter_rows(path, header, usecols):
            cols = rows.columns
            users.append(_text.to_ids(cols[0], rows, header.names[user_i]))
            items.append(_text.to_ids(cols[1], rows, header.names[item_i]))
            times.append(_text.to_timestamps(cols[2], rows, header.names[time_i]))
            for name, values in zip(feature_cols, cols[3 : 3 + len(feature_i)], strict=True):
                _first_values_per_item(items[-1], values, features[name], split_multi_value)
            if title_i is not None:
                _first_values_per_item(items[-1], cols[-1], titles, str.strip)
    if not users:
        raise DataError(f"{path}: no data rows after the header")
    interactions = Interactions(
        _text.merge_ids(users), _text.merge_ids(items), np.concatenate(times)
    )
    if interactions.items.dtype == object:  # some block had non-integer ids: keys become str
        titles = _with_string_keys(titles)
        features = {name: _with_string_keys(m) for name, m in features.items()}
    return LoadedData(path.name, str(path), interactions, ItemMetadata(titles, features))

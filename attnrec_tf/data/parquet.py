"""Parquet interaction files, read with pyarrow (an optional dependency).

`pip install pyarrow` (or the package's `parquet` extra) brings it; without it, reading a
Parquet file raises `MissingDependencyError`, one line naming the package and the command. The
columns are chosen by name in the file's schema, with the same flags as a CSV file
(`--user-col`, `--item-col`, `--time-col`, `--feature-cols`, `--rating-col` with
`--min-rating`; names match case-insensitively when exactly one column fits):

* ids: integer columns, or strings (canonical integer strings become integers as in CSV, "007"
  stays a string); dictionary-encoded columns (pandas categoricals) are decoded; floats only when
  every value is a whole number;
* timestamps: numbers (epoch seconds or any ordinal), Arrow timestamps of any unit (epoch
  seconds; a timestamp without a zone is taken as UTC), dates, or ISO-8601 strings;
* ratings: numbers or numeric strings;
* feature columns: strings (`|` between values), lists of strings, or numbers; a "title" column,
  if present, fills the titles.

Errors name the file and the 1-based data row or the column, e.g. `events.parquet row 3: empty
user_id (null)` or `events.parquet: not a readable Parquet file (...)`.

Example:
    >>> data = read_parquet_file("events.parquet", names=("uid", "sku", "ts"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.data import _text
from attnrec_tf.data.loaded import (
    Interactions,
    find_column,
    first_values_per_item,
    loaded_data,
    min_rating_filters,
    no_rows_left,
    split_multi_value,
)
from attnrec_tf.errors import DataError, MissingDependencyError

_UNIT_SECONDS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_TITLE_COLUMN = "title"
_FLAGS = ("--user-col", "--item-col", "--time-col")


class _TableRows(_text.Rows):
    """`Rows` whose errors say "row N" (1-based data row of the table) instead of "line N"."""

    def error(self, row: int, message: str) -> DataError:
        return DataError(f"{self.file} row {self.line(row)}: {message}")


def _pyarrow(path: Path) -> tuple[Any, Any]:
    """The `pyarrow` and `pyarrow.parquet` modules, or the one-line install error."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingDependencyError(
            "pyarrow", "pyarrow", what=f"{path}: reading Parquet"
        ) from None
    return pyarrow, pyarrow.parquet


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def read_parquet_file(
    path: str | Path,
    *,
    names: tuple[str, str, str] = ("user_id", "item_id", "timestamp"),
    feature_cols: Sequence[str] = (),
    rating_col: str = "rating",
    min_rating: float | None = None,
) -> Any:
    """Reads a Parquet file into a `LoadedData`.

    Args:
        path: str | Path. The file.
        names: tuple[str, str, str]. The user, item and timestamp column names. Defaults to
            `("user_id", "item_id", "timestamp")`.
        feature_cols: Sequence[str]. Categorical item feature columns. Defaults to `()`.
        rating_col: str. The rating (or weight) column, read only with `min_rating`.
            Defaults to `"rating"`.
        min_rating: float | None. Keep only rows whose rating is >= this; None keeps every
            row. Defaults to `None`.

    Returns:
        The LoadedData, named after the file (`row_filters` counts the rows `min_rating`
        dropped).

    Raises:
        MissingDependencyError: pyarrow is not installed.
        DataError: The file is missing, damaged or empty, a column is missing or of a type
            that cannot hold it, a value is null or malformed, or no row is left; the message
            names the file and the row or column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    pa, pq = _pyarrow(path)
    columns, title = _read_columns(path, pa, pq, names, feature_cols, rating_col, min_rating)
    rows = _TableRows(path.name, [], first_line=1)
    users = _ids(pa, columns[names[0]], rows, names[0])
    items = _ids(pa, columns[names[1]], rows, names[1])
    times = _timestamps(pa, columns[names[2]], rows, names[2])
    features: dict[str, dict] = {name: {} for name in feature_cols}
    for name in feature_cols:
        first_values_per_item(items, _cells(pa, columns[name]), features[name], split_multi_value)
    titles: dict = {}
    if title is not None:
        first_values_per_item(items, _cells(pa, columns[title]), titles, str.strip)
    rows_in = len(users)
    if min_rating is not None:
        keep = _ratings(pa, columns[rating_col], rows, rating_col) >= min_rating
        if not keep.any():
            raise no_rows_left(path, rating_col, min_rating)
        users, items, times = users[keep], items[keep], times[keep]
    return loaded_data(
        path,
        Interactions(users, items, times),
        titles,
        features,
        min_rating_filters(min_rating, rows_in, len(users)),
    )


def _read_columns(
    path: Path,
    pa: Any,
    pq: Any,
    names: tuple[str, str, str],
    feature_cols: Sequence[str],
    rating_col: str,
    min_rating: float | None,
) -> tuple[dict[str, Any], str | None]:
    """The wanted columns by the names asked for, and the key of a "title" column if any.

    Raises:
        DataError: The file is damaged or has no rows, or a column is missing.
    """
    try:
        parquet = pq.ParquetFile(path)
        found = list(parquet.schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({_one_line(error)})") from None
    asked = [*zip(names, _FLAGS, strict=True), *((n, "--feature-cols") for n in feature_cols)]
    if min_rating is not None:
        asked.append((rating_col, "--rating-col"))
    index = {name: find_column(found, path.name, name, flag) for name, flag in asked}
    title = next((n for n in found if n.lower() == _TITLE_COLUMN), None)
    if title is not None and found.index(title) in index.values():
        title = None  # a column asked for by another name: not the titles
    if title is not None:
        index[title] = found.index(title)
    try:
        table = parquet.read(columns=sorted({found[i] for i in index.values()}))
        columns = {name: table.column(found[i]) for name, i in index.items()}
    except (pa.ArrowException, OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({_one_line(error)})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: no data rows")
    return columns, title


def _decoded(pa: Any, column: Any) -> Any:
    """`column` with dictionary encoding removed."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _no_nulls(pa: Any, column: Any, rows: _TableRows, name: str) -> None:
    if column.null_count:
        import pyarrow.compute as pc

        row = pc.index(pc.is_null(column), True).as_py()
        raise rows.error(row, f"empty {name} (null)")


def _is_text(pa: Any, kind: Any) -> bool:
    text_types = [pa.types.is_string, pa.types.is_large_string]
    text_types += [getattr(pa.types, "is_string_view", lambda _: False)]
    return any(check(kind) for check in text_types)


def _type_error(rows: _TableRows, name: str, kind: Any, expected: str) -> DataError:
    return DataError(f"{rows.file}: column {name!r} has type {kind}; expected {expected}")


def _ids(pa: Any, column: Any, rows: _TableRows, name: str) -> np.ndarray:
    """Raw ids: int64, or an object array of str (as `_text.to_ids` gives for CSV)."""
    column = _decoded(pa, column)
    _no_nulls(pa, column, rows, name)
    kind = column.type
    if pa.types.is_integer(kind):
        try:
            return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)
        except pa.ArrowInvalid:  # uint64 above the int64 range: the digits as strings
            return _text.to_ids([str(v) for v in column.to_pylist()], rows, name)
    if pa.types.is_floating(kind):
        values = np.asarray(column.to_numpy(), dtype=np.float64)
        whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2**63)
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise rows.error(row, f"{name} {float(values[row])!r} is not a whole number")
        return values.astype(np.int64)
    if _is_text(pa, kind):
        return _text.to_ids(column.to_pylist(), rows, name)
    raise _type_error(rows, name, kind, "integers or strings (ids)")


def _numbers(column: Any, rows: _TableRows, name: str) -> np.ndarray:
    values = np.asarray(column.to_numpy(), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise rows.error(row, f"{name} {float(values[row])!r} is not a finite number")
    return values


def _timestamps(pa: Any, column: Any, rows: _TableRows, name: str) -> np.ndarray:
    """float64 seconds (or the column's own numbers)."""
    column = _decoded(pa, column)
    _no_nulls(pa, column, rows, name)
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return _numbers(column, rows, name)
    if pa.types.is_timestamp(kind):
        ticks = np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.float64)
        return ticks / _UNIT_SECONDS[kind.unit]
    if pa.types.is_date(kind):
        millis = column.cast(pa.timestamp("ms")).cast(pa.int64()).to_numpy()
        return np.asarray(millis, dtype=np.float64) / 1e3
    if _is_text(pa, kind):
        return _text.to_timestamps(column.to_pylist(), rows, name)
    raise _type_error(rows, name, kind, "numbers, timestamps, dates or ISO-8601 strings")


def _ratings(pa: Any, column: Any, rows: _TableRows, name: str) -> np.ndarray:
    column = _decoded(pa, column)
    _no_nulls(pa, column, rows, name)
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return _numbers(column, rows, name)
    if _is_text(pa, kind):
        return _text.to_floats(column.to_pylist(), rows, name)
    raise _type_error(rows, name, kind, "numbers or numeric strings (ratings)")


def _cells(pa: Any, column: Any) -> list[str]:
    """Feature or title cells as text: lists joined with '|', nulls empty."""
    column = _decoded(pa, column)
    values = column.to_pylist()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return ["|".join(map(str, v)) if v else "" for v in values]
    return ["" if v is None else str(v) for v in values]

"""Parquet interaction files (pyarrow): the CSV reader's columns, flags, filters and errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.data import sources
from attnrec_tf.data.interactions import read_interaction_file
from attnrec_tf.errors import DataError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write(tmp_path: Path, columns: dict, name: str = "events.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def test_integer_ids_and_numeric_times(tmp_path):
    path = write(tmp_path, {"user_id": [2, 1, 2], "item_id": [10, 11, 12], "timestamp": [5, 3, 4]})
    data = read_interaction_file(path)
    rows = data.interactions
    assert data.name == "events.parquet" and data.source == str(path)
    assert rows.users.dtype == np.int64 and rows.users.tolist() == [2, 1, 2]
    assert rows.items.tolist() == [10, 11, 12]
    assert rows.timestamps.dtype == np.float64 and rows.timestamps.tolist() == [5.0, 3.0, 4.0]
    assert data.row_filters == {}


def test_string_and_dictionary_ids_behave_as_in_csv(tmp_path):
    path = write(
        tmp_path,
        {
            "user_id": pa.array(["alice", "bob", "alice"]).dictionary_encode(),
            "item_id": ["007", "7", " 8 "],
            "timestamp": [1.5, 2.5, 3.5],
        },
    )
    rows = read_interaction_file(path).interactions
    assert rows.users.tolist() == ["alice", "bob", "alice"]
    assert rows.items.tolist() == ["007", "7", "8"]  # no collision of 007 and 7


def test_whole_floats_and_uint64_ids(tmp_path):
    path = write(
        tmp_path,
        {
            "user_id": pa.array([1.0, 2.0], pa.float64()),
            "item_id": pa.array([2**63 + 1, 3], pa.uint64()),
            "timestamp": [1, 2],
        },
    )
    rows = read_interaction_file(path).interactions
    assert rows.users.tolist() == [1, 2]
    assert rows.items.tolist() == [str(2**63 + 1), "3"]


@pytest.mark.parametrize(
    ("values", "kind", "expected"),
    [
        ([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)], pa.timestamp("s"), 1704067200.0),
        ([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)], pa.timestamp("ms"), 1704067200.0),
        ([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)], pa.timestamp("ns"), 1704067200.0),
        (
            [
                dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc),
            ],
            pa.timestamp("us", tz="Europe/Paris"),
            1704067200.0,
        ),
        ([dt.date(2024, 1, 1), dt.date(2024, 1, 2)], pa.date32(), 1704067200.0),
        ([dt.date(2024, 1, 1), dt.date(2024, 1, 2)], pa.date64(), 1704067200.0),
        (["2024-01-01", "2024-01-02T00:00:00Z"], pa.string(), 1704067200.0),
    ],
)
def test_timestamp_types(tmp_path, values, kind, expected):
    path = write(
        tmp_path, {"user_id": [1, 1], "item_id": [1, 2], "timestamp": pa.array(values, kind)}
    )
    times = read_interaction_file(path).interactions.timestamps
    assert times.tolist() == [expected, expected + 86400.0]


def test_column_flags_features_and_titles(tmp_path):
    path = write(
        tmp_path,
        {
            "uid": ["u1", "u2", "u1"],
            "SKU": [10, 11, 10],
            "ts": [1, 2, 3],
            "genre": [["Jazz", "Pop"], None, ["Rock"]],
            "brand": ["acme|zeta", "beta", "gamma"],
            "Title": ["Ten", "Eleven", "Ten again"],
        },
    )
    data = read_interaction_file(
        path, user_col="uid", item_col="sku", time_col="ts", feature_cols=["genre", "brand"]
    )
    assert data.interactions.items.tolist() == [10, 11, 10]
    assert data.items.features["genre"] == {10: ("Jazz", "Pop"), 11: ()}
    assert data.items.features["brand"] == {10: ("acme", "zeta"), 11: ("beta",)}
    assert data.items.titles == {10: "Ten", 11: "Eleven"}


def test_min_rating_with_numeric_and_text_ratings(tmp_path):
    base = {"user_id": [1, 1, 2], "item_id": [1, 2, 3], "timestamp": [1, 2, 3]}
    numeric = write(tmp_path, {**base, "rating": [5.0, 3.0, 4.0]}, "a.parquet")
    data = read_interaction_file(numeric, min_rating=4)
    assert data.interactions.items.tolist() == [1, 3]
    assert data.row_filters == {"min_rating": 4, "rows_below_min_rating": 1}
    text = write(tmp_path, {**base, "stars": ["5", "3", "4.5"]}, "b.parquet")
    data = read_interaction_file(text, rating_col="stars", min_rating=4)
    assert data.interactions.items.tolist() == [1, 3]


@pytest.mark.parametrize(
    ("column", "values", "pattern"),
    [
        ("user_id", pa.array([1, None, 3]), r"e\.parquet row 2: empty user_id \(null\)"),
        ("item_id", pa.array(["a", "", "c"]), r"e\.parquet row 2: empty item_id"),
        ("item_id", pa.array([1.0, 2.5, 3.0]), r"e\.parquet row 2: item_id 2.5 is not a whole"),
        ("item_id", pa.array([True, False, True]), r"e\.parquet: column 'item_id' has type bool"),
        ("timestamp", pa.array([1.0, float("nan"), 3.0]), r"row 2: timestamp nan is not a finite"),
        ("timestamp", pa.array(["1", "2", "soon"]), r"row 3: timestamp 'soon' is neither"),
        ("timestamp", pa.array([None, 2, 3]), r"e\.parquet row 1: empty timestamp \(null\)"),
        ("timestamp", pa.array([[1], [2], [3]]), r"column 'timestamp' has type list<"),
        ("rating", pa.array(["5", "x", "4"]), r"e\.parquet row 2: rating 'x' is not a number"),
        ("rating", pa.array([5.0, None, 4.0]), r"e\.parquet row 2: empty rating \(null\)"),
        ("rating", pa.array([5.0, float("inf"), 4.0]), r"row 2: rating inf is not a finite"),
        ("rating", pa.array([1.0, 2.0, 3.0]), r"e\.parquet: no row has rating >= 4"),
    ],
)
def test_bad_values_name_the_file_row_and_column(tmp_path, column, values, pattern):
    columns = {
        "user_id": [1, 2, 3],
        "item_id": [4, 5, 6],
        "timestamp": [7, 8, 9],
        "rating": [5] * 3,
    }
    columns[column] = values
    with pytest.raises(DataError, match=pattern):
        read_interaction_file(write(tmp_path, columns, "e.parquet"), min_rating=4)


def test_missing_column_names_the_flag_and_the_columns(tmp_path):
    path = write(tmp_path, {"uid": [1], "item_id": [2], "timestamp": [3]})
    with pytest.raises(DataError, match=r"no column 'user_id' .*found: uid, item_id.*--user-col"):
        read_interaction_file(path)
    with pytest.raises(DataError, match=r"no column 'rating' .*--rating-col"):
        read_interaction_file(path, user_col="uid", min_rating=4)
    with pytest.raises(DataError, match=r"no column 'genre' .*--feature-cols"):
        read_interaction_file(path, user_col="uid", feature_cols=["genre"])


def test_an_empty_table(tmp_path):
    path = write(tmp_path, {"user_id": pa.array([], pa.int64()), "item_id": [], "timestamp": []})
    with pytest.raises(DataError, match=r"events\.parquet: no data rows"):
        read_interaction_file(path)


@pytest.mark.parametrize("damage", ["random", "truncated", "not parquet", "empty"])
def test_a_damaged_file_is_one_line_naming_it(tmp_path, damage):
    good = write(tmp_path, {"user_id": [1, 2] * 50, "item_id": [3, 4] * 50, "timestamp": [5] * 100})
    raw = good.read_bytes()
    broken = {
        "random": bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8)),
        "truncated": raw[: len(raw) // 2],
        "not parquet": b"user_id,item_id,timestamp\n1,2,3\n",
        "empty": b"",
    }[damage]
    path = tmp_path / "broken.parquet"
    path.write_bytes(broken)
    with pytest.raises(DataError) as error:
        read_interaction_file(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a readable Parquet file (")
    assert len(message.splitlines()) == 1


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_interaction_file(tmp_path / "nothing.parquet")


def test_the_pq_extension_and_the_data_flag(tmp_path):
    path = write(tmp_path, {"user_id": [1], "item_id": [2], "timestamp": [3]}, "log.pq")
    assert sources.load(str(path)).interactions.items.tolist() == [2]

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.data import _text
from attnrec_tf.data.interactions import Interactions, read_interaction_file
from attnrec_tf.errors import DataError


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_integer_ids_keeps_file_order(tmp_path):
    path = write(tmp_path, "r.csv", "user_id,item_id,timestamp\n2,10,5\n1,11,3.5\n2,12,4\n")
    data = read_interaction_file(path)
    rows = data.interactions
    assert data.name == "r.csv" and data.source == str(path)
    assert rows.users.dtype == np.int64 and rows.items.dtype == np.int64
    assert rows.users.tolist() == [2, 1, 2]
    assert rows.items.tolist() == [10, 11, 12]
    assert rows.timestamps.dtype == np.float64
    assert rows.timestamps.tolist() == [5.0, 3.5, 4.0]
    assert len(rows) == 3


def test_string_ids_and_leading_zeros_stay_strings(tmp_path):
    path = write(tmp_path, "r.tsv", "user_id\titem_id\ttimestamp\nalice\t007\t1\nbob\t7\t2\n")
    rows = read_interaction_file(path).interactions
    assert rows.users.dtype == object and rows.users.tolist() == ["alice", "bob"]
    assert rows.items.dtype == object and rows.items.tolist() == ["007", "7"]  # no collision


def test_spaces_around_fields_are_ignored(tmp_path):
    path = write(tmp_path, "r.csv", "user_id, item_id, timestamp\n 1, 2, 3\n")
    rows = read_interaction_file(path).interactions
    assert rows.users.tolist() == [1] and rows.items.tolist() == [2]


def test_custom_columns_sniffed_delimiter_and_extra_columns(tmp_path):
    path = write(tmp_path, "events.txt", "rating;ts;u;i\n5;10;a;x\n4;11;b;y\n")
    data = read_interaction_file(path, user_col="u", item_col="i", time_col="ts")
    assert data.interactions.users.tolist() == ["a", "b"]
    assert data.interactions.timestamps.tolist() == [10.0, 11.0]


def test_multi_character_delimiter(tmp_path):
    path = write(tmp_path, "r.dat", "user_id::item_id::timestamp\n1::2::3\n")
    assert read_interaction_file(path, delimiter="::").interactions.items.tolist() == [2]


def test_column_names_match_case_insensitively(tmp_path):
    path = write(tmp_path, "r.csv", "User_ID,Item_Id,TimeStamp\n1,2,3\n")
    assert len(read_interaction_file(path).interactions) == 1


def test_iso_dates_become_epoch_seconds(tmp_path):
    path = write(
        tmp_path,
        "r.csv",
        "user_id,item_id,timestamp\n"
        "1,1,1970-01-02\n1,2,1970-01-01T00:01:00Z\n1,3,1970-01-01T02:00:00+01:00\n",
    )
    assert read_interaction_file(path).interactions.timestamps.tolist() == [86400.0, 60.0, 3600.0]


def test_quoted_titles_features_and_bom(tmp_path):
    text = (
        "\ufeffuser_id,item_id,timestamp,title,genre\n"
        '1,5,1,"Good, the Bad and the Ugly, The (1966)",Western|Action\n'
        '2,5,2,"ignored, later title",Comedy\n'
        '2,6,3,"Multi\nline ""quoted"" title",\n'
    )
    data = read_interaction_file(write(tmp_path, "r.csv", text), feature_cols=["genre"])
    assert data.interactions.items.tolist() == [5, 5, 6]
    assert data.items.titles[5] == "Good, the Bad and the Ugly, The (1966)"  # first value wins
    assert data.items.titles[6] == 'Multi\nline "quoted" title'
    assert data.items.features == {"genre": {5: ("Western", "Action"), 6: ()}}


def test_crlf_and_blank_lines(tmp_path):
    path = write(tmp_path, "r.csv", b"user_id,item_id,timestamp\r\n1,2,3\r\n\r\n4,5,6\r\n")
    assert read_interaction_file(path).interactions.items.tolist() == [2, 5]


def test_small_blocks_give_the_same_result_and_right_line_numbers(tmp_path, monkeypatch):
    lines = [f"u{i % 7},{i},{i}" for i in range(200)]
    lines[150] = 'u1,x150,"150"'  # a quoted field, and a non-integer id in a later block
    body = "user_id,item_id,timestamp\n" + "\n".join(lines) + "\n"
    path = write(tmp_path, "r.csv", body)
    whole = read_interaction_file(path).interactions
    monkeypatch.setattr(_text, "CHUNK_BYTES", 64)
    blocks = read_interaction_file(path).interactions
    assert blocks.items.dtype == object  # "x150" turns every id into a string
    assert blocks.items.tolist() == whole.items.tolist()
    assert blocks.items[:3].tolist() == ["0", "1", "2"] and blocks.items[150] == "x150"
    assert np.array_equal(blocks.timestamps, whole.timestamps)

    lines[180] = "u1,180"
    path.write_text("user_id,item_id,timestamp\n" + "\n\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"r\.csv line 362: expected 3 fields"):
        read_interaction_file(path)  # row 181 sits on line 2 + 2 * 180


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        read_interaction_file(tmp_path / "nope.csv")


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file(tmp_path, content):
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_interaction_file(write(tmp_path, "empty.csv", content))


def test_header_without_rows(tmp_path):
    with pytest.raises(DataError, match="h.csv: no data rows"):
        read_interaction_file(write(tmp_path, "h.csv", "user_id,item_id,timestamp\n"))


def test_missing_column_lists_header_and_flag(tmp_path):
    path = write(tmp_path, "r.csv", "userId,movieId,timestamp\n1,2,3\n")
    with pytest.raises(DataError) as err:
        read_interaction_file(path)
    message = str(err.value)
    assert "r.csv" in message and "'user_id'" in message
    assert "userId, movieId, timestamp" in message and "--user-col" in message
    with pytest.raises(DataError, match="--item-col"):
        read_interaction_file(path, user_col="userId")
    with pytest.raises(DataError, match="--feature-cols"):
        read_interaction_file(path, user_col="userId", item_col="movieId", feature_cols=["g"])


def test_undetectable_delimiter(tmp_path):
    with pytest.raises(DataError, match="r.txt line 1: cannot detect .* --delimiter"):
        read_interaction_file(write(tmp_path, "r.txt", "user_id item_id timestamp\n1 2 3\n"))


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("1,2,3\n4,5\n", r"r\.csv line 3: expected 3 fields separated by ',', got 2"),
        ("1,2,3\n4,5,6,7\n", r"r\.csv line 3: expected 3 fields .* got 4"),
        ('1,2,3\n4,"5,6\n', r"r\.csv line 3: "),  # unterminated quote
        ("1,2,3\n4,5,yesterday\n", r"r\.csv line 3: timestamp 'yesterday' is neither"),
        ("1,2,3\n4,5,nan\n", r"r\.csv line 3: timestamp 'nan' is not a finite number"),
        ("1,2,3\n4,5,\n", r"r\.csv line 3: timestamp '' is neither"),
        ("1,2,3\n,5,6\n", r"r\.csv line 3: empty user_id"),
        ("1,2,3\n4, ,6\n", r"r\.csv line 3: empty item_id"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, body, pattern):
    path = write(tmp_path, "r.csv", "user_id,item_id,timestamp\n" + body)
    with pytest.raises(DataError, match=pattern):
        read_interaction_file(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "r.csv", b"user_id,item_id,timestamp\n1,2,3\n1,caf\xe9,4\n")
    with pytest.raises(DataError, match=r"r\.csv line 3: not valid utf-8 \(byte 0xe9"):
        read_interaction_file(path)


def test_folder_is_rejected(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_interaction_file(tmp_path)


def test_interactions_need_equal_lengths():
    with pytest.raises(ValueError, match="same length"):
        Interactions(np.arange(2), np.arange(3), np.zeros(2))

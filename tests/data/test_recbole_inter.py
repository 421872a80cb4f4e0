"""RecBole atomic `.inter` files, read as they are (`name:type` header fields, tabs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnrec_tf.data import sources
from attnrec_tf.data.interactions import read_interaction_file
from attnrec_tf.errors import DataError

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ROWS = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t51\t2\t1\n"


def write(tmp_path: Path, text: str, name: str = "ml-100k.inter") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_recbole_ml100k_layout_is_read_as_it_is(tmp_path):
    data = read_interaction_file(write(tmp_path, HEADER + ROWS))
    rows = data.interactions
    assert data.name == "ml-100k.inter"
    assert rows.users.tolist() == [196, 186, 22, 196]
    assert rows.items.tolist() == [242, 302, 377, 51]
    assert rows.timestamps.tolist() == [881250949.0, 891717742.0, 878887116.0, 1.0]


def test_min_rating_reads_the_rating_field(tmp_path):
    data = read_interaction_file(write(tmp_path, HEADER + ROWS), min_rating=3)
    assert data.interactions.items.tolist() == [242, 302]
    assert data.row_filters == {"min_rating": 3, "rows_below_min_rating": 2}


def test_column_flags_apply_to_the_names_before_the_colon(tmp_path):
    text = "session:token\tsku:token\tts:float\ttags:token_seq\tprice:float_seq\n"
    text += "s1\tA-1\t5\tjazz pop\t1.5 2\ns1\tA-2\t6\t\t3\n"
    data = read_interaction_file(
        write(tmp_path, text, "shop.inter"),
        user_col="session",
        item_col="sku",
        time_col="ts",
        feature_cols=["tags"],
    )
    assert data.interactions.users.tolist() == ["s1", "s1"]
    assert data.items.features["tags"] == {"A-1": ("jazz", "pop"), "A-2": ()}


def test_the_extension_is_what_makes_it_atomic(tmp_path):
    path = write(tmp_path, HEADER + ROWS, "log.tsv")  # same bytes, another name: plain TSV
    with pytest.raises(DataError, match=r"no column 'user_id' .*user_id:token"):
        read_interaction_file(path)


def test_through_the_data_flag(tmp_path):
    loaded = sources.load(str(write(tmp_path, HEADER + ROWS)), min_rating=2)
    assert len(loaded.interactions) == 3


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "user_id\titem_id:token\ttimestamp:float\n1\t2\t3\n",
            r"x\.inter line 1: header field 'user_id' is not name:type .*token_seq",
        ),
        (
            "user_id:int\titem_id:token\ttimestamp:float\n1\t2\t3\n",
            r"x\.inter line 1: header field 'user_id:int' is not name:type",
        ),
        (
            ":token\titem_id:token\ttimestamp:float\n1\t2\t3\n",
            r"x\.inter line 1: header field ':token'",
        ),
        (
            "\n\nuser\titem_id:token\ttimestamp:float\n1\t2\t3\n",
            r"x\.inter line 3: header field 'user' is not",
        ),
        (HEADER + "1\t2\t3\n", r"x\.inter line 2: expected 4 fields separated by '\\t', got 3"),
        (HEADER + "1\t2\t3\tlater\n", r"x\.inter line 2: timestamp 'later' is neither"),
        (HEADER + "1\t\t3\t4\n", r"x\.inter line 2: empty item_id"),
        (HEADER, r"x\.inter: no data rows after the header"),
        ("", r"x\.inter: the file is empty"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, text, pattern):
    with pytest.raises(DataError, match=pattern):
        read_interaction_file(write(tmp_path, text, "x.inter"))


def test_bad_rating_names_line_and_column(tmp_path):
    path = write(tmp_path, HEADER + "1\t2\tfive\t4\n", "x.inter")
    with pytest.raises(DataError, match=r"x\.inter line 2: rating 'five' is not a number"):
        read_interaction_file(path, min_rating=4)
    missing = write(tmp_path, "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n", "y.inter")
    with pytest.raises(DataError, match=r"y\.inter: no column 'rating' .*--rating-col"):
        read_interaction_file(missing, min_rating=4)

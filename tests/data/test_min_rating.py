"""`--min-rating` and `--rating-col`: explicit feedback kept as positives above a threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnrec_tf.data import sources
from attnrec_tf.data.interactions import read_interaction_file
from attnrec_tf.data.movielens import read_movielens
from attnrec_tf.errors import ConfigError, DataError

from .conftest import RATINGS, write_ml1m

LOG = "user_id,item_id,timestamp,rating\n1,10,1,5\n1,11,2,3.5\n2,10,3,4\n2,12,4,1\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_below_the_threshold_are_dropped_and_counted(tmp_path):
    data = read_interaction_file(write(tmp_path, "r.csv", LOG), min_rating=4)
    assert data.interactions.items.tolist() == [10, 10]
    assert data.interactions.timestamps.tolist() == [1.0, 3.0]
    assert data.row_filters == {"min_rating": 4, "rows_below_min_rating": 2}


def test_without_a_threshold_ratings_are_not_read(tmp_path):
    path = write(tmp_path, "r.csv", "user_id,item_id,timestamp,rating\n1,10,1,x\n")
    data = read_interaction_file(path)
    assert len(data.interactions) == 1 and data.row_filters == {}


def test_a_weight_column_by_another_name(tmp_path):
    path = write(tmp_path, "r.tsv", "u\ti\tts\tplays\n1\t2\t3\t0\n1\t3\t4\t7\n")
    data = read_interaction_file(
        path, user_col="u", item_col="i", time_col="ts", rating_col="plays", min_rating=1
    )
    assert data.interactions.items.tolist() == [3]


def test_the_filter_runs_block_by_block(tmp_path, monkeypatch):
    from attnrec_tf.data import _text

    rows = "".join(f"{u},{u % 7},{u},{u % 5}\n" for u in range(500))
    path = write(tmp_path, "r.csv", "user_id,item_id,timestamp,rating\n" + rows)
    monkeypatch.setattr(_text, "CHUNK_BYTES", 64)
    data = read_interaction_file(path, min_rating=3)
    assert data.interactions.users.tolist() == [u for u in range(500) if u % 5 >= 3]
    assert data.row_filters["rows_below_min_rating"] == 300


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("1,10,1,5\n1,11,2,x\n", r"r\.csv line 3: rating 'x' is not a number"),
        ("1,10,1,5\n1,11,2,\n", r"r\.csv line 3: rating '' is not a number"),
        ("1,10,1,nan\n", r"r\.csv line 2: rating 'nan' is not a finite number"),
        ("1,10,1,inf\n", r"r\.csv line 2: rating 'inf' is not a finite number"),
        ("1,10,1,2\n", r"r\.csv: no row has rating >= 4; lower --min-rating"),
    ],
)
def test_bad_ratings_name_file_line_and_column(tmp_path, body, pattern):
    path = write(tmp_path, "r.csv", "user_id,item_id,timestamp,rating\n" + body)
    with pytest.raises(DataError, match=pattern):
        read_interaction_file(path, min_rating=4)


def test_missing_rating_column_names_the_flag(tmp_path):
    path = write(tmp_path, "r.csv", "user_id,item_id,timestamp\n1,2,3\n")
    with pytest.raises(DataError, match=r"r\.csv: no column 'rating' .*--rating-col"):
        read_interaction_file(path, min_rating=4)


def test_movielens_folders_apply_it_and_count_the_rows(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    data = read_movielens(folder, min_rating=4)
    below = sum(1 for *_, rating, _ in RATINGS if rating < 4)
    assert data.row_filters == {"min_rating": 4, "rows_below_min_rating": below}
    assert len(data.interactions) == len(RATINGS) - below
    assert read_movielens(folder).row_filters == {}
    with pytest.raises(DataError, match=r"ratings\.dat: no row has rating >= 6"):
        read_movielens(folder, min_rating=6)


def test_sources_route_the_options(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    assert sources.load(str(folder), min_rating=5).row_filters["rows_below_min_rating"] == 6
    path = write(tmp_path, "r.csv", LOG.replace("rating", "stars"))
    loaded = sources.load(str(path), rating_col="stars", min_rating=4)
    assert len(loaded.interactions) == 2
    with pytest.raises(ConfigError, match="--min-rating: the synthetic data has no ratings"):
        sources.load(None, min_rating=4)
    with pytest.raises(ConfigError, match="--min-rating: the synthetic data has no ratings"):
        sources.load("synthetic:num_users=10", min_rating=4)
    with pytest.raises(ConfigError, match="--rating-col 'stars': a MovieLens folder"):
        sources.load(str(folder), rating_col="stars", min_rating=4)


@pytest.mark.parametrize(
    ("min_rating", "rating_col", "message"),
    [
        (None, "stars", "--rating-col needs --min-rating"),
        (float("nan"), None, "--min-rating must be a finite number"),
        ("4", None, "--min-rating must be a finite number"),
    ],
)
def test_bad_option_values(min_rating, rating_col, message):
    with pytest.raises(ConfigError, match=message):
        sources.check_rating_options(min_rating, rating_col)

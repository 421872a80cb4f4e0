from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.data.movielens import ML100K_GENRES, detect_movielens, read_movielens
from attnrec_tf.errors import DataError

from .conftest import MOVIES, RATINGS, write_ml1m


def write_ml100k(folder: Path, *, with_genre_file: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    flags = {
        1: {"Drama", "Musical"},
        2: {"Action", "Sci-Fi"},
        3: {"Animation", "Children's", "Comedy"},
        4: {"unknown"},
    }
    lines = []
    for movie, title, _ in MOVIES:
        bits = "|".join("1" if g in flags[movie] else "0" for g in ML100K_GENRES)
        lines.append(f"{movie}|{title}|01-Jan-1995||http://example.invalid/{movie}|{bits}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    if with_genre_file:
        (folder / "u.genre").write_text(
            "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n"
        )
    return folder


def write_ml20m(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        + "".join(f"{u},{i},{r - 0.5},{t}\n" for u, i, r, t in RATINGS)
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        '1,"Misérables, Les (1995)",Drama|Musical\n'
        "2,Star Wars: Episode IV - A New Hope (1977),Action|Sci-Fi\n"
        '3,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Adventure\n'
        "4,Shoah (1985),(no genres listed)\n",
        encoding="utf-8",
    )
    return folder


def check_rows(data):
    rows = data.interactions
    assert rows.users.tolist() == [r[0] for r in RATINGS]
    assert rows.items.tolist() == [r[1] for r in RATINGS]
    assert rows.timestamps.tolist() == [float(r[3]) for r in RATINGS]
    assert rows.items.dtype == np.int64


def test_ml1m_layout(ml1m_folder):
    data = read_movielens(ml1m_folder)
    assert data.name == "movielens-1m" and data.source == str(ml1m_folder)
    check_rows(data)
    assert data.items.titles[1] == "Misérables, Les (1995)"  # latin-1 decoded
    assert data.items.titles[2] == "Star Wars: Episode IV - A New Hope (1977)"  # single colons
    assert data.items.features["genres"][3] == ("Animation", "Children's", "Comedy")


def test_ml100k_layout(tmp_path):
    data = read_movielens(write_ml100k(tmp_path / "ml-100k"))
    assert data.name == "movielens-100k"
    check_rows(data)
    assert data.items.titles[1] == "Misérables, Les (1995)"
    assert data.items.features["genres"][2] == ("Action", "Sci-Fi")
    assert data.items.features["genres"][4] == ()  # "unknown" is no genre


def test_ml100k_without_genre_file_uses_standard_names(tmp_path):
    data = read_movielens(write_ml100k(tmp_path / "x", with_genre_file=False))
    assert data.items.features["genres"][3] == ("Animation", "Children's", "Comedy")
    assert data.name == "movielens-100k"  # the layout is unique to ML-100K


def test_ml20m_layout_with_quoted_titles(tmp_path):
    data = read_movielens(write_ml20m(tmp_path / "ml-latest-small"))
    assert data.name == "movielens-latest-small"
    check_rows(data)
    assert data.items.titles[1] == "Misérables, Les (1995)"
    assert data.items.titles[3] == "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    assert data.items.features["genres"][4] == ()  # "(no genres listed)" dropped
    assert data.items.features["genres"][1] == ("Drama", "Musical")


def test_min_rating_keeps_only_high_ratings(ml1m_folder):
    rows = read_movielens(ml1m_folder, min_rating=4).interactions
    assert rows.items.tolist() == [r[1] for r in RATINGS if r[2] >= 4]


def test_movie_file_is_optional(ml1m_folder):
    (ml1m_folder / "movies.dat").unlink()
    data = read_movielens(ml1m_folder)
    assert len(data.interactions) == len(RATINGS) and data.items.titles == {}


@pytest.mark.parametrize(
    ("folder_name", "readme", "expected"),
    [
        ("ml-10M100K", None, "movielens-10m"),
        ("movielens-25m", None, "movielens-25m"),
        ("data", "These files contain 1,000,209 anonymous ratings", "movielens-1m"),
        ("data", "This dataset (ml-20m) describes 5-star rating", "movielens-20m"),
        ("data", None, "movielens"),
    ],
)
def test_name_from_folder_or_readme(tmp_path, folder_name, readme, expected):
    folder = write_ml1m(tmp_path / folder_name)
    if readme is not None:
        (folder / "README").write_text(f"SUMMARY\n{readme}\n")
    assert read_movielens(folder).name == expected


def test_detect_movielens(tmp_path, ml1m_folder):
    assert detect_movielens(ml1m_folder) == "ml-1m"
    assert detect_movielens(write_ml100k(tmp_path / "a")) == "ml-100k"
    assert detect_movielens(write_ml20m(tmp_path / "b")) == "ml-20m"
    assert detect_movielens(tmp_path) is None


def test_folder_without_known_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as err:
        read_movielens(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    for name in ("u.data", "ratings.dat", "ratings.csv", "movies.csv"):
        assert name in message


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_movielens(tmp_path / "missing")


def test_malformed_ratings_dat(ml1m_folder):
    with open(ml1m_folder / "ratings.dat", "a") as f:
        f.write("9::9::4\n")
    with pytest.raises(DataError, match=r"ratings\.dat line 9: expected 4 fields .* got 3"):
        read_movielens(ml1m_folder)


def test_non_numeric_rating(tmp_path):
    folder = write_ml20m(tmp_path / "ml-20m")
    with open(folder / "ratings.csv", "a") as f:
        f.write("9,9,good,4\n")
    with pytest.raises(DataError, match=r"ratings\.csv line 10: rating 'good' is not a number"):
        read_movielens(folder)


def test_wrong_csv_header(tmp_path):
    folder = write_ml20m(tmp_path / "ml-20m")
    (folder / "ratings.csv").write_text("user,movie,rating,time\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"ratings\.csv line 1: expected the header userId"):
        read_movielens(folder)


def test_empty_ratings_file(ml1m_folder):
    (ml1m_folder / "ratings.dat").write_text("")
    with pytest.raises(DataError, match=r"ratings\.dat: the file is empty"):
        read_movielens(ml1m_folder)


def test_malformed_movies_dat(ml1m_folder):
    with open(ml1m_folder / "movies.dat", "ab") as f:
        f.write(b"5::No genres field\n")
    with pytest.raises(DataError, match=r"movies\.dat line 5: expected 3 fields"):
        read_movielens(ml1m_folder)


def test_malformed_u_item(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    with open(folder / "u.item", "ab") as f:
        f.write(b"5|Too short|0|1\n")
    with pytest.raises(DataError, match=r"u\.item line 5: expected 24 fields"):
        read_movielens(folder)

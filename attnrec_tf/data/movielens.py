"""Readers for the GroupLens MovieLens folders (https://grouplens.org/datasets/movielens/).

Three layouts exist; `detect_movielens` names them after the first release that used each:

* "ml-100k": `u.data` (tab: user, item, rating, timestamp; no header) and `u.item`
  (`|`-separated, latin-1: id, title, dates, URL, then one 0/1 flag per genre; the genre names
  come from `u.genre`, else the standard 19).
* "ml-1m" (also ML-10M): `ratings.dat` and `movies.dat`, fields separated by "::", genres by
  "|". `movies.dat` is latin-1 in ML-1M and UTF-8 in later releases; UTF-8 is tried first.
* "ml-20m" (also ML-25M, ml-latest, ml-latest-small): `ratings.csv` and `movies.csv` with a
  header, UTF-8, titles quoted when they contain commas.

Ratings are implicit feedback: every rating is one interaction (`min_rating` keeps only ratings
at or above a threshold). Titles go to `ItemMetadata.titles` and genres to
`ItemMetadata.features["genres"]`, without the placeholders "(no genres listed)" and "unknown".
The movie file is optional; without it titles and genres are empty.

Example:
    >>> data = read_movielens("../shared/data/ml-1m")  # doctest: +SKIP
    >>> data.name, len(data.interactions)  # doctest: +SKIP
    ('movielens-1m', 1000209)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from attnrec_tf.data import _text
from attnrec_tf.data.loaded import (
    Interactions,
    ItemMetadata,
    LoadedData,
    min_rating_filters,
    no_rows_left,
    split_multi_value,
)
from attnrec_tf.errors import DataError

# layout -> (ratings file, movies file)
LAYOUTS: dict[str, tuple[str, str]] = {
    "ml-100k": ("u.data", "u.item"),
    "ml-1m": ("ratings.dat", "movies.dat"),
    "ml-20m": ("ratings.csv", "movies.csv"),
}
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_NO_GENRE = {"(no genres listed)", "unknown"}
_NAME_PATTERN = re.compile(
    r"(?:ml|movielens)[-_ ]?(100k|1m|10m|20m|25m|32m|latest-small|latest)", re.IGNORECASE
)
_README_COUNTS = {
    "100,000 ratings": "100k",
    "1,000,209": "1m",
    "10000054": "10m",
    "20000263": "20m",
    "25000095": "25m",
}
_CSV_HEADER = ["userId", "movieId", "rating", "timestamp"]


def detect_movielens(folder: str | Path) -> str | None:
    """Returns the layout of a MovieLens folder ("ml-100k", "ml-1m", "ml-20m") or None.

    Example:
        >>> detect_movielens("/nonexistent") is None
        True
    """
    folder = Path(folder)
    for layout, (ratings, _) in LAYOUTS.items():
        if (folder / ratings).is_file():
            return layout
    return None


def _dataset_name(folder: Path, layout: str) -> str:
    match = _NAME_PATTERN.search(folder.name)
    if match is None:
        for readme in ("README", "README.txt", "README.md"):
            if (folder / readme).is_file():
                text = (folder / readme).read_bytes()[:4000].decode("latin-1")
                match = _NAME_PATTERN.search(text)
                if match is None:
                    size = next((s for key, s in _README_COUNTS.items() if key in text), None)
                    if size is not None:
                        return f"movielens-{size}"
                break
    if match is not None:
        return f"movielens-{match.group(1).lower()}"
    return "movielens-100k" if layout == "ml-100k" else "movielens"


def _read_ratings(
    path: Path, layout: str, min_rating: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Users, items and timestamps of the rows kept by `min_rating`, and every row's rating."""
    delimiter = {"ml-100k": "\t", "ml-1m": "::", "ml-20m": ","}[layout]
    has_header = layout == "ml-20m"
    header = _text.read_header(path, delimiter, has_header=has_header)
    if has_header and header.names != _CSV_HEADER:
        raise DataError(
            f"{path.name} line 1: expected the header {','.join(_CSV_HEADER)}, "
            f"found {','.join(header.names)}"
        )
    if len(header.names) != 4:
        raise DataError(
            f"{path.name} line {header.data_line}: expected 4 fields "
            f"(user, item, rating, timestamp) separated by {delimiter!r}, got {len(header.names)}"
        )
    users, items, ratings, times = [], [], [], []
    with _text.gc_paused():
        for rows in _text.iter_rows(path, header, [0, 1, 2, 3]):
            users.append(_text.to_ids(rows.columns[0], rows, "user id"))
            items.append(_text.to_ids(rows.columns[1], rows, "movie id"))
            ratings.append(_text.to_floats(rows.columns[2], rows, "rating"))
            times.append(_text.to_timestamps(rows.columns[3], rows, "timestamp"))
    if not users:
        raise DataError(f"{path}: no ratings in the file")
    rating = np.concatenate(ratings)
    if min_rating is None:
        return _text.merge_ids(users), _text.merge_ids(items), np.concatenate(times), rating
    keep = rating >= min_rating
    if not keep.any():
        raise no_rows_left(path, "rating", min_rating)
    return (
        _text.merge_ids(users)[keep],
        _text.merge_ids(items)[keep],
        np.concatenate(times)[keep],
        rating,
    )


def _movie_id(text: str, file: str, line: int) -> int | str:
    text = text.strip()
    if not text:
        raise DataError(f"{file} line {line}: empty movie id")
    return int(text) if text.isdigit() and str(int(text)) == text else text


def _genres(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(g for g in values if g not in _NO_GENRE)


def _decode_text(path: Path, encodings: tuple[str, ...]) -> str:
    raw = path.read_bytes()
    for encoding in encodings[:-1]:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode(encodings[-1])


def _lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _read_u_item(folder: Path, metadata: ItemMetadata) -> None:
    genre_names = list(ML100K_GENRES)
    if (folder / "u.genre").is_file():
        indexed = []
        for line_no, line in _lines(_decode_text(folder / "u.genre", ("latin-1",))):
            name, _, index = line.rpartition("|")
            if not name or not index.strip().isdigit():
                raise DataError(f"u.genre line {line_no}: expected 'name|index', got {line!r}")
            indexed.append((int(index), name))
        genre_names = [name for _, name in sorted(indexed)]
    genres: dict = {}
    for line_no, line in _lines(_decode_text(folder / "u.item", ("latin-1",))):
        fields = line.split("|")
        if len(fields) < 5 + len(genre_names):
            raise DataError(
                f"u.item line {line_no}: expected {5 + len(genre_names)} fields separated by "
                f"'|', got {len(fields)}"
            )
        movie = _movie_id(fields[0], "u.item", line_no)
        flags = fields[len(fields) - len(genre_names) :]
        metadata.titles[movie] = fields[1].strip()
        genres[movie] = _genres(
            tuple(g for g, f in zip(genre_names, flags, strict=True) if f.strip() == "1")
        )
    metadata.features["genres"] = genres


def _read_movies_dat(folder: Path, metadata: ItemMetadata) -> None:
    genres: dict = {}
    text = _decode_text(folder / "movies.dat", ("utf-8", "latin-1"))
    for line_no, line in _lines(text):
        fields = line.split("::")
        if len(fields) != 3:
            raise DataError(
                f"movies.dat line {line_no}: expected 3 fields (MovieID::Title::Genres), "
                f"got {len(fields)}"
            )
        movie = _movie_id(fields[0], "movies.dat", line_no)
        metadata.titles[movie] = fields[1].strip()
        genres[movie] = _genres(split_multi_value(fields[2]))
    metadata.features["genres"] = genres


def _read_movies_csv(folder: Path, metadata: ItemMetadata) -> None:
    path = folder / "movies.csv"
    header = _text.read_header(path, ",")
    if header.names[:3] != ["movieId", "title", "genres"]:
        raise DataError(
            f"movies.csv line 1: expected the header movieId,title,genres, found "
            f"{','.join(header.names)}"
        )
    genres: dict = {}
    for rows in _text.iter_rows(path, header, [0, 1, 2]):
        ids, titles, genre_cells = rows.columns
        for row, (movie_text, title, cell) in enumerate(zip(ids, titles, genre_cells, strict=True)):
            movie = _movie_id(movie_text, "movies.csv", rows.line(row))
            metadata.titles[movie] = title.strip()
            genres[movie] = _genres(split_multi_value(cell))
    metadata.features["genres"] = genres


def read_movielens(folder: str | Path, *, min_rating: float | None = None) -> LoadedData:
    """Reads a MovieLens folder in any of the GroupLens layouts.

    Args:
        folder: str | Path. The extracted folder (the one holding `ratings.dat`, `u.data` or
            `ratings.csv`).
        min_rating: float | None. Keep only ratings >= this value (`row_filters` counts the
            rows dropped); None keeps every rating. Defaults to `None`.

    Returns:
        The LoadedData, named "movielens-1m" etc. (from the folder name or README; "movielens"
        if neither tells).

    Raises:
        DataError: The folder holds none of the layouts, a file is malformed (the message
            names the file and line), or no rating is >= `min_rating`.

    Example:
        >>> data = read_movielens("ml-100k")  # doctest: +SKIP
        >>> len(data.interactions), data.items.titles[1]  # doctest: +SKIP
        (100000, 'Toy Story (1995)')
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    layout = detect_movielens(folder)
    if layout is None:
        looked_for = ", ".join(f"{r} + {m}" for r, m in LAYOUTS.values())
        raise DataError(
            f"{folder}: not a MovieLens folder (looked for {looked_for}); for another file "
            "layout pass the file itself with --data FILE"
        )
    ratings_file, movies_file = LAYOUTS[layout]
    users, items, times, ratings = _read_ratings(folder / ratings_file, layout, min_rating)
    metadata = ItemMetadata()
    if (folder / movies_file).is_file():
        reader = {"ml-100k": _read_u_item, "ml-1m": _read_movies_dat, "ml-20m": _read_movies_csv}
        reader[layout](folder, metadata)
    if items.dtype == object:  # non-integer movie ids (never in GroupLens files): str keys
        metadata = ItemMetadata(
            {str(k): v for k, v in metadata.titles.items()},
            {n: {str(k): v for k, v in m.items()} for n, m in metadata.features.items()},
        )
    return LoadedData(
        _dataset_name(folder, layout),
        str(folder),
        Interactions(users, items, times),
        metadata,
        min_rating_filters(min_rating, len(ratings), len(users)),
    )

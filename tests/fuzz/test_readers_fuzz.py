"""Broken data files, fuzzed: every reader either works or raises the project's `AttnRecError`
with a message naming the file; never another exception, and never a hang.

Inputs: random bytes; plausible files with damaged rows (truncated lines, wrong or mixed
separators, bytes that are not UTF-8, huge or negative ids, negative, fractional, NaN or infinite
timestamps, duplicated rows, quotes, a BOM, CRLF line ends). A file that is read is also taken
through vocabulary, sequences and the leave-one-out split, which must hold the same promise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from attnrec_tf.data import sources
from attnrec_tf.data.interactions import read_interaction_file
from attnrec_tf.data.item_features import item_feature_matrix
from attnrec_tf.data.movielens import read_movielens
from attnrec_tf.data.sequences import build_sequences, leave_one_out
from attnrec_tf.errors import AttnRecError
from tests.fuzz.conftest import FUZZ, time_limit

SECONDS = 20


def mostly(valid: st.SearchStrategy, broken: st.SearchStrategy) -> st.SearchStrategy:
    """`valid` nine times in ten, `broken` otherwise: most rows parse, some do not."""
    return st.integers(0, 9).flatmap(lambda k: broken if k == 9 else valid)


def sometimes(draw) -> bool:
    return draw(st.integers(0, 3)) == 3  # (hypothesis favours small numbers)


ids = mostly(
    st.one_of(st.integers(1, 25).map(str), st.integers(1, 9).map(lambda i: f"u{i}"),
              st.integers(-(10**40), 10**40).map(str)),
    st.sampled_from(["", " ", "007", "+5", "1_000", "1e3", "0x1F", "é", '"7"', "a\tb"]),
)  # fmt: skip
timestamps = mostly(
    st.one_of(st.integers(-(10**12), 10**12).map(str), st.floats(-1e12, 1e12).map(repr),
              st.sampled_from(["2024-01-01", "1970-01-01T00:00:00Z"])),
    st.one_of(st.floats().map(repr),
              st.sampled_from(["", "nan", "-inf", "2024-13-45", "yesterday", "0x10", "1,5"])),
)  # fmt: skip
ratings = mostly(st.sampled_from(["1", "2.5", "5", "0", "-1"]), st.sampled_from(["", "x", "nan"]))
texts = mostly(
    st.text(alphabet="abcXYZ éü-()0123456789", max_size=8),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
)
KINDS = {"id": ids, "time": timestamps, "rating": ratings, "text": texts}


@st.composite
def damaged_table(draw, delimiter: str, header: list[str] | None, kinds: list[str]) -> bytes:
    """A delimited table whose rows are mostly plausible, then (sometimes) damaged."""
    rows = [[draw(KINDS[k]) for k in kinds] for _ in range(draw(st.integers(0, 15)))]
    if rows and sometimes(draw):
        rows += draw(st.lists(st.sampled_from(rows), max_size=4))  # duplicate rows
    lines = ([delimiter.join(header)] if header else []) + [delimiter.join(r) for r in rows]
    if lines and sometimes(draw):  # one line with another separator
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i].replace(delimiter, draw(st.sampled_from([",", "\t", ";", "::", " "])))
    if lines and sometimes(draw):  # a line cut short
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    end = draw(st.sampled_from(["\n", "\r\n"]))
    data = (end.join(lines) + (end if draw(st.booleans()) else "")).encode("utf-8")
    if sometimes(draw):
        data = b"\xef\xbb\xbf" + data  # BOM
    if data and sometimes(draw):  # the file cut short
        data = data[: draw(st.integers(0, len(data)))]
    if data and sometimes(draw):  # a byte that is not UTF-8 somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80", b"\x00"])) + data[at:]
    return data


def works_or_raises_project_error(load) -> None:
    """Runs `load()` and the steps after reading; only AttnRecError may escape."""
    with time_limit(SECONDS):
        try:
            loaded = load()
            vocabulary, sequences, _ = build_sequences(
                loaded.interactions, min_user_interactions=1, min_item_interactions=1
            )
            split = leave_one_out(sequences)
            matrix, _ = item_feature_matrix(vocabulary, loaded.items)
        except AttnRecError as error:
            assert str(error).strip(), "a user error needs a message"
            return
    assert len(vocabulary.raw_ids) == vocabulary.num_items
    assert matrix.shape[0] == vocabulary.size
    for sequence in split.train:
        assert np.all((sequence >= 1) & (sequence <= vocabulary.num_items))


@FUZZ
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".tsv", ".txt", ".dat"]))
def test_generic_reader_on_random_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"log{suffix}"
    path.write_bytes(data)
    works_or_raises_project_error(lambda: read_interaction_file(path))


@FUZZ
@given(
    st.sampled_from([",", "\t", ";", "|"]).flatmap(
        lambda d: st.tuples(
            st.just(d),
            damaged_table(
                d,
                ["user_id", "item_id", "timestamp", "genre", "title"],
                ["id", "id", "time", "text", "text"],
            ),
            st.sampled_from([None, d, ","]),
        )
    )
)
def test_generic_reader_on_damaged_tables(tmp_path_factory, case):
    delimiter, data, given_delimiter = case
    path = tmp_path_factory.mktemp("table") / "log.txt"
    path.write_bytes(data)
    works_or_raises_project_error(
        lambda: read_interaction_file(path, feature_cols=["genre"], delimiter=given_delimiter)
    )


LAYOUTS = {  # ratings file, its separator, header, movies file, its separator
    "ml-100k": ("u.data", "\t", None, "u.item", "|"),
    "ml-1m": ("ratings.dat", "::", None, "movies.dat", "::"),
    "ml-20m": ("ratings.csv", ",", ["userId", "movieId", "rating", "timestamp"], "movies.csv",
               ","),
}  # fmt: skip


@st.composite
def movielens_folder(draw) -> tuple[str, bytes, bytes | None]:
    layout = draw(st.sampled_from(sorted(LAYOUTS)))
    ratings, sep, header, _, movie_sep = LAYOUTS[layout]
    table = draw(damaged_table(sep, header, ["id", "id", "rating", "time"]))
    movies = None
    if draw(st.booleans()):  # movies: id, title, genres in the layout's spirit, or noise
        genres = st.lists(st.sampled_from(["Drama", "Comedy", "(no genres listed)", "x"]),
                          max_size=3).map("|".join)  # fmt: skip
        movie_rows = draw(st.lists(st.tuples(ids, texts, genres), max_size=6))
        movies = "\n".join(movie_sep.join(row) for row in movie_rows).encode("utf-8")
        if sometimes(draw):
            movies = draw(st.binary(max_size=300))
    return layout, table, movies


@FUZZ
@given(case=movielens_folder())
def test_movielens_reader_on_damaged_folders(tmp_path_factory, case):
    layout, table, movies = case
    ratings, _, header, movies_name, _ = LAYOUTS[layout]
    folder = tmp_path_factory.mktemp(layout)
    (folder / ratings).write_bytes(table)
    if movies is not None:
        (folder / movies_name).write_bytes(movies)
    works_or_raises_project_error(lambda: read_movielens(folder))


@FUZZ
@example(spec="~0")  # "~user" of an unknown user: RuntimeError in Path.expanduser, fixed
@given(
    spec=st.one_of(
        st.text(max_size=30),
        st.sampled_from(["", ".", "..", "/", "/dev/null", "movielens-0m", "synthetic "]),
    )
)
def test_data_flag_values(spec):  # fmt: skip
    """`--data` with odd values names nothing loadable: a user error, never a crash."""
    if spec in ("synthetic", "") or Path(spec).is_dir():
        return  # a real folder of this machine or the embedded data: not the point here
    with time_limit(SECONDS):
        try:
            sources.load(spec, cache_dir=Path("/nonexistent/cache"), base_url="http://127.0.0.1:9/")
        except AttnRecError as error:
            assert str(error).strip()

"""The newer inputs, fuzzed: RecBole `.inter` files, rating columns with `--min-rating`, Parquet
files and the temporal split either work or raise the project's `AttnRecError` with a message
naming the file (or the flag); never another exception, and never a hang.

Inputs: damaged `.inter` tables (bad `name:type` headers, cut rows, other separators, bytes that
are not UTF-8); CSV tables whose rating column holds noise; random bytes, damaged and truncated
Parquet files, and well-formed Parquet files whose columns have random types and nulls; random
logs and cut-offs for the temporal split, which must also never train on anything at or after
its cut-off.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnrec_tf.data.interactions import Interactions, read_interaction_file
from attnrec_tf.data.sequences import build_sequences
from attnrec_tf.data.temporal import make_split
from attnrec_tf.errors import AttnRecError
from tests.fuzz.conftest import FUZZ, time_limit
from tests.fuzz.test_readers_fuzz import (
    SECONDS,
    damaged_table,
    mostly,
    works_or_raises_project_error,
)

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # the Parquet cases need it; the others run without
    pa = pq = None
needs_pyarrow = pytest.mark.skipif(pa is None, reason="pyarrow is not installed")

ATOMIC_FIELDS = st.sampled_from(
    ["user_id:token", "item_id:token", "timestamp:float", "rating:float", "tags:token_seq",
     "user_id", "item_id:int", "timestamp:", ":float", "rating:float:token", "user_id:TOKEN"]
)  # fmt: skip


@st.composite
def inter_file(draw) -> bytes:
    header = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    if draw(st.integers(0, 3)) == 3:  # a damaged header
        header = draw(st.lists(ATOMIC_FIELDS, min_size=1, max_size=5))
    kinds = ["id", "id", "rating", "time"] + ["text"] * (len(header) - 4)
    return draw(damaged_table("\t", header, kinds[: len(header)]))


@FUZZ
@given(data=inter_file(), min_rating=st.sampled_from([None, 0.0, 3.0]))
def test_inter_reader_on_damaged_files(tmp_path_factory, data, min_rating):
    path = tmp_path_factory.mktemp("inter") / "log.inter"
    path.write_bytes(data)
    works_or_raises_project_error(lambda: read_interaction_file(path, min_rating=min_rating))


@FUZZ
@given(
    data=damaged_table(
        ",", ["user_id", "item_id", "timestamp", "rating"], ["id", "id", "time", "rating"]
    ),
    min_rating=st.sampled_from([-1.0, 2.5, 5.0]),
)
def test_rating_filter_on_damaged_tables(tmp_path_factory, data, min_rating):
    path = tmp_path_factory.mktemp("rated") / "log.csv"
    path.write_bytes(data)
    works_or_raises_project_error(lambda: read_interaction_file(path, min_rating=min_rating))


def _parquet_bytes(table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=7)
    return sink.getvalue()


@functools.cache
def good_parquet() -> bytes:
    return _parquet_bytes(
        pa.table(
            {
                "user_id": [f"u{i % 5}" for i in range(40)],
                "item_id": list(range(40)),
                "timestamp": [float(i) for i in range(40)],
                "rating": [float(i % 6) for i in range(40)],
            }
        )
    )


@st.composite
def damaged_parquet(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "overwritten"]))
    if kind == "random":
        prefix = draw(st.sampled_from([b"", b"PAR1"]))
        return prefix + draw(st.binary(max_size=600)) + prefix
    good = good_parquet()
    if kind == "truncated":
        return good[: draw(st.integers(0, len(good)))]
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


@needs_pyarrow
@FUZZ
@given(data=damaged_parquet(), min_rating=st.sampled_from([None, 3.0]))
def test_parquet_reader_on_damaged_files(tmp_path_factory, data, min_rating):
    path = tmp_path_factory.mktemp("parquet") / "log.parquet"
    path.write_bytes(data)
    works_or_raises_project_error(lambda: read_interaction_file(path, min_rating=min_rating))


def _column(kind: str, values: list) -> object:
    types = {"int": pa.int64(), "uint": pa.uint64(), "float": pa.float64(), "str": pa.string(),
             "bool": pa.bool_(), "ts": pa.timestamp("ms"), "date": pa.date32(),
             "list": pa.list_(pa.string())}  # fmt: skip
    return pa.array(values, types[kind])


VALUES = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "uint": st.integers(0, 2**64 - 1),
    "float": st.floats(),
    "str": st.sampled_from(["1", "007", "", " ", "x", "2024-01-01", "nan", "4.5", "é"]),
    "bool": st.booleans(),
    "ts": st.integers(-(2**40), 2**40).map(lambda ms: np.datetime64(ms, "ms").item()),
    "date": st.dates(),
    "list": st.lists(st.sampled_from(["a", "b", ""]), max_size=3),
}


@st.composite
def typed_table(draw) -> bytes:
    rows = draw(st.integers(0, 12))
    columns = {}
    for name in ("user_id", "item_id", "timestamp", "rating", "genre"):
        kind = draw(st.sampled_from(sorted(VALUES)))
        values = [draw(st.one_of(st.none(), VALUES[kind])) if draw(st.integers(0, 5)) == 5
                  else draw(VALUES[kind]) for _ in range(rows)]  # fmt: skip
        columns[name] = _column(kind, values)
        if kind != "list" and draw(st.integers(0, 4)) == 4:
            columns[name] = columns[name].dictionary_encode()
    return _parquet_bytes(pa.table(columns))


@needs_pyarrow
@FUZZ
@given(data=typed_table(), min_rating=st.sampled_from([None, 0.0]))
def test_parquet_reader_on_columns_of_any_type(tmp_path_factory, data, min_rating):
    path = tmp_path_factory.mktemp("typed") / "log.parquet"
    path.write_bytes(data)
    works_or_raises_project_error(
        lambda: read_interaction_file(path, feature_cols=["genre"], min_rating=min_rating)
    )


@st.composite
def timed_log(draw) -> tuple[Interactions, dict]:
    """A random log in which every row has its own item, so an item's time is known."""
    n = draw(st.integers(0, 80))
    users = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 20).map(float), min_size=n, max_size=n))
    items = np.arange(n)
    interactions = Interactions(np.array(users, np.int64), items, np.array(times))
    return interactions, dict(zip(items.tolist(), times, strict=True))


@FUZZ
@given(
    log=timed_log(),
    cut=mostly(
        st.one_of(
            st.tuples(st.just("time"), st.integers(1, 20).map(str)),
            st.tuples(st.just("fraction"), st.floats(0.2, 0.95)),
        ),
        st.one_of(
            st.tuples(st.just("time"), st.one_of(st.integers(-2, 22), st.text(max_size=5))),
            st.tuples(st.just("fraction"), st.floats(allow_nan=True)),
        ),
    ),
)
def test_temporal_split_never_trains_after_its_cutoff(log, cut):
    interactions, time_of = log
    option = {"split_time": cut[1]} if cut[0] == "time" else {"split_fraction": cut[1]}
    with time_limit(SECONDS):
        try:
            vocab, seqs, _ = build_sequences(
                interactions, min_user_interactions=1, min_item_interactions=1
            )
            split = make_split(interactions, vocab, seqs, split="temporal", **option)
        except AttnRecError as error:
            assert str(error).strip() and len(str(error).splitlines()) == 1
            return
    cutoff = split.protocol["cutoff"]
    trained = [time_of[int(raw)] for seq in split.train for raw in vocab.decode(seq)]
    assert all(t < cutoff for t in trained)
    valid = [time_of[int(raw)] for raw in vocab.decode(split.valid_targets)]
    test = [time_of[int(raw)] for raw in vocab.decode(split.test_targets)]
    assert all(cutoff <= v <= t for v, t in zip(valid, test, strict=True))
    assert len(split.users) == split.protocol["users_evaluated"] >= 1

"""The DuckDB prepare engine (`data/prepare.py`) against the in-memory path, and its errors.

The reference is today's in-memory path (`sources.load` -> `build_sequences` ->
`temporal.make_split`): the prepared folder must give the same vocabulary, users, training
parts, targets, protocol and filter statistics, on seeded random logs (integer and string
ids, tied timestamps, duplicate rows, users and items below the thresholds, leave-one-out and
temporal splits, CSV, TSV and Parquet, --min-rating) and, in the slow tests, on ML-100K and
ML-1M.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.data import sources, temporal
from attnrec_tf.data.prepare import Engine, Filters, LogSource, prepare
from attnrec_tf.data.sequences import build_sequences
from attnrec_tf.data.shards import (
    ITEMS,
    read_item_counts,
    read_manifest,
    read_split,
    read_vocabulary,
)
from attnrec_tf.errors import AttnRecError, ConfigError, DataError
from attnrec_tf.run_dir import item_table

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CASES = 30


def _in_memory(source: LogSource, filters: Filters):
    loaded = sources.load(
        source.data, user_col=source.user_col, item_col=source.item_col,
        time_col=source.time_col, delimiter=source.delimiter, rating_col=source.rating_col,
        min_rating=source.min_rating, synthetic_seed=source.seed,
    )  # fmt: skip
    vocabulary, sequences, stats = build_sequences(
        loaded.interactions,
        min_user_interactions=filters.min_user_interactions,
        min_item_interactions=filters.min_item_interactions,
    )
    split = temporal.make_split(
        loaded.interactions, vocabulary, sequences, split=filters.split,
        split_time=filters.split_time, split_fraction=filters.split_fraction,
    )  # fmt: skip
    return loaded, vocabulary, stats, split


def assert_same_as_in_memory(
    source: LogSource, filters: Filters, output: Path, engine: Engine | None = None
) -> dict:
    """Prepares `source` and checks the folder against the in-memory path, field by field.

    When the in-memory path raises a user error, prepare must raise the same one.
    """
    try:
        loaded, vocabulary, stats, split = _in_memory(source, filters)
    except AttnRecError as expected:
        with pytest.raises(type(expected)) as raised:
            prepare(source, output, filters, engine or Engine())
        assert str(raised.value) == str(expected)
        assert not output.exists()
        return {}
    manifest = prepare(source, output, filters, engine or Engine())
    assert read_vocabulary(output) == vocabulary
    assert manifest["filters"] == dataclasses.asdict(stats)
    assert manifest["row_filters"] == loaded.row_filters
    assert manifest["protocol"] == split.protocol
    assert manifest["dataset"]["name"] == loaded.name
    prepared = read_split(output)
    expected_users = split.users.astype(str) if split.users.dtype == object else split.users
    assert prepared.users.dtype.kind == expected_users.dtype.kind
    assert prepared.users.tolist() == expected_users.tolist()
    assert [t.tolist() for t in prepared.train] == [t.tolist() for t in split.train]
    assert prepared.valid_targets.tolist() == split.valid_targets.tolist()
    assert prepared.test_targets.tolist() == split.test_targets.tolist()
    counts = np.bincount(np.concatenate(split.train), minlength=vocabulary.size)
    assert read_item_counts(output).tolist() == counts.tolist()
    if loaded.items.titles or loaded.items.features:
        items = json.loads((output / ITEMS).read_text(encoding="utf-8"))
        assert items == json.loads(json.dumps(item_table(vocabulary, loaded.items, split.train)))
    else:
        assert not (output / ITEMS).exists()
    assert manifest["num_users"] == len(split.train)
    return manifest


# ----------------------------------------------------------------------------- fuzzed logs


@dataclasses.dataclass
class _Case:
    rows: list[tuple[str, str, str, str]]  # user, item, timestamp, rating as text
    string_users: bool
    string_items: bool
    file_format: str
    filters: Filters
    min_rating: float | None
    batch_rows: int
    shards: int


def _random_case(seed: int) -> _Case:
    rng = np.random.default_rng(seed)
    users, items = int(rng.integers(3, 25)), int(rng.integers(3, 30))
    n = int(rng.integers(20, 250))
    string_users, string_items = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    times = rng.integers(0, int(rng.choice([5, 40, 10_000])), n)  # few values: many ties

    def ids(count: int, size: int, text: bool, prefix: str) -> list[str]:
        drawn = rng.integers(0, size, count) * int(rng.choice([1, 7, 1000]))
        if not text:
            return [str(v) for v in drawn]
        # leading zeros (text that looks numeric), plain integers and prefixed text mixed: the
        # column is text, and the ids sort as text, not as numbers
        return [f"0{v}" if v % 3 == 0 else str(v) if v % 3 == 1 else f"{prefix}{v}" for v in drawn]

    rows = list(zip(ids(n, users, string_users, "u"), ids(n, items, string_items, "i"),
                    map(str, times), map(str, rng.integers(1, 6, n)), strict=True))  # fmt: skip
    duplicates = rng.integers(0, n, int(rng.integers(0, n // 4 + 1)))
    rows += [rows[d] for d in duplicates]  # duplicate rows, again later in the file
    order = rng.permutation(len(rows)) if rng.random() < 0.7 else np.arange(len(rows))
    rows = [rows[k] for k in order]
    split = str(rng.choice(["leave-one-out", "fraction", "time"]))
    filters = Filters(
        min_user_interactions=int(rng.integers(1, 6)),
        min_item_interactions=int(rng.integers(1, 4)),
        split="leave-one-out" if split == "leave-one-out" else "temporal",
        split_fraction=round(float(rng.uniform(0.2, 0.95)), 2) if split == "fraction" else None,
        split_time=str(int(np.quantile(times, rng.uniform(0.3, 0.9)))) if split == "time" else None,
    )
    return _Case(
        rows, string_users, string_items, str(rng.choice(["csv", "tsv", "parquet"])), filters,
        3.0 if rng.random() < 0.3 else None, int(rng.integers(5, 60)), int(rng.integers(1, 5)),
    )  # fmt: skip


def _write(case: _Case, folder: Path) -> Path:
    header = ("user_id", "item_id", "timestamp", "rating", "title")
    titles = [f" {row[1]} take {k % 5} " for k, row in enumerate(case.rows)]
    if case.file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*case.rows, strict=True))
        table = pa.table({
            "user_id": list(columns[0]) if case.string_users else [int(v) for v in columns[0]],
            "item_id": list(columns[1]) if case.string_items else [int(v) for v in columns[1]],
            "timestamp": [int(v) for v in columns[2]],
            "rating": [float(v) for v in columns[3]],
            "title": titles,
        })  # fmt: skip
        path = folder / "log.parquet"
        pq.write_table(table, path, row_group_size=37)
        return path
    delimiter = "," if case.file_format == "csv" else "\t"
    path = folder / f"log.{case.file_format}"
    lines = [delimiter.join(header)]
    lines += [delimiter.join((*row, title)) for row, title in zip(case.rows, titles, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("seed", range(CASES))
def test_prepared_equals_in_memory_on_random_logs(seed: int, tmp_path: Path) -> None:
    case = _random_case(seed)
    path = _write(case, tmp_path)
    source = LogSource(str(path), min_rating=case.min_rating)
    engine = Engine(memory_limit="256MB", threads=1, shards=case.shards,
                    batch_rows=case.batch_rows, temp_dir=tmp_path / "tmp")  # fmt: skip
    assert_same_as_in_memory(source, case.filters, tmp_path / "prepared", engine)
    assert list((tmp_path / "tmp").iterdir()) == []  # DuckDB's folder removed


def test_the_generator_covers_what_the_cases_must_cover() -> None:
    cases = [_random_case(seed) for seed in range(CASES)]
    assert {c.file_format for c in cases} == {"csv", "tsv", "parquet"}
    assert {c.string_users for c in cases} == {True, False}
    assert {(c.filters.split, c.filters.split_time is None) for c in cases} == {
        ("leave-one-out", True),
        ("temporal", True),
        ("temporal", False),
    }
    assert any(c.min_rating is not None for c in cases)
    ties = [len({(r[0], r[2]) for r in c.rows}) < len(c.rows) for c in cases]
    assert all(ties)  # every log has a user with two rows at one time


def test_a_hand_made_log_gives_the_hand_computed_split(tmp_path: Path) -> None:
    # user b: items 7, 8 at time 1 (tie: file order), 9; user a: 8, 8, 7, 9 (a duplicate)
    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id,timestamp\nb,7,1\na,8,0\nb,8,1\na,8,1\nb,9,2\na,7,2\na,9,3\nc,7,0\n",
        encoding="utf-8",
    )
    filters = Filters(min_user_interactions=3, min_item_interactions=1)
    manifest = prepare(LogSource(str(log)), tmp_path / "p", filters, Engine(batch_rows=2))
    # counts among kept rows (user c dropped): 8 x3, 7 x2, 9 x2; 7 before 9 in the file
    assert read_vocabulary(tmp_path / "p").raw_ids.tolist() == [8, 7, 9]
    split = read_split(tmp_path / "p")
    assert split.users.tolist() == ["a", "b"]  # raw-id order
    assert [t.tolist() for t in split.train] == [[1, 1], [2]]  # a: 8 8 | 7, 9; b: 7 | 8, 9
    assert split.valid_targets.tolist() == [2, 1] and split.test_targets.tolist() == [3, 3]
    assert manifest["filters"]["users_dropped_too_few"] == 0
    assert manifest["filters"]["users_in"] == 3
    assert manifest["filters"]["interactions_kept"] == 7


def test_recbole_inter_file_and_iso_dates_equal_in_memory(tmp_path: Path) -> None:
    rows = [("u1", "a", "2024-01-01"), ("u2", "b", "2024-01-01T12:00:00Z"),
            ("u1", "b", "2024-01-02"), ("u1", "c", "2024-01-02"),
            ("u2", "a", "2024-01-03T00:00:00+01:00"),
            ("u2", "c", "2024-01-04"), ("u1", "a", "2024-01-05"), ("u3", "a", "2024-01-05"),
            ("u3", "c", "2024-01-01"), ("u3", "b", "2024-01-06")]  # fmt: skip
    inter = tmp_path / "log.inter"
    inter.write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n"
        + "".join("\t".join(row) + "\n" for row in rows),
        encoding="utf-8",
    )
    for split, cut in (("leave-one-out", None), ("temporal", "2024-01-02")):
        manifest = assert_same_as_in_memory(
            LogSource(str(inter)), Filters(1, 1, split=split, split_time=cut), tmp_path / split
        )
        assert manifest["num_users"] == 3


@pytest.mark.parametrize("pad", ["", " 0"])
def test_spaces_around_ids_are_stripped_as_in_memory(pad: str, tmp_path: Path) -> None:
    # " 7 " is the integer 7; with one " 07" in the column every id is text
    log = tmp_path / "log.csv"
    body = "".join(f" {u} ,\t{i} ,{t}\n" for t, (u, i) in enumerate([(7, 1), (7, 2), (10, 1)] * 3))
    log.write_text(f"user_id,item_id,timestamp\n{body}{pad}7,2,99\n", encoding="utf-8")
    manifest = assert_same_as_in_memory(LogSource(str(log)), Filters(1, 1), tmp_path / "p")
    assert manifest["user_id_dtype"] == ("int64" if not pad else "string")


def test_synthetic_data_equals_in_memory(tmp_path: Path) -> None:
    source = LogSource("synthetic:num_users=300,num_items=200", seed=3)
    for split in ("leave-one-out", "temporal"):
        manifest = assert_same_as_in_memory(
            source, Filters(split=split), tmp_path / split, Engine(batch_rows=500, shards=2)
        )
        assert manifest["dataset"]["sha256_of"] == "generator parameters"


def test_a_folder_of_parquet_files_reads_as_one_log(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    case = _random_case(1)
    whole = _write(dataclasses.replace(case, file_format="csv"), tmp_path)
    users, items, times, _ = zip(*case.rows, strict=True)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, start in enumerate(range(0, len(users), 40)):
        chunk = slice(start, start + 40)
        table = pa.table({"user_id": list(users[chunk]), "item_id": list(items[chunk]),
                          "timestamp": [int(t) for t in times[chunk]]})  # fmt: skip
        pq.write_table(table, parts / f"part-{k:03d}.parquet")
    reference = prepare(LogSource(str(whole)), tmp_path / "a", case.filters)
    chunked = prepare(LogSource(str(parts)), tmp_path / "b", case.filters)
    globbed = prepare(LogSource(str(parts / "part-*.parquet")), tmp_path / "c", case.filters)
    assert chunked["dataset"]["name"] == globbed["dataset"]["name"] == "parts"
    for manifest, folder in ((chunked, "b"), (globbed, "c")):
        assert manifest["filters"] == reference["filters"]
        assert read_vocabulary(tmp_path / folder) == read_vocabulary(tmp_path / "a")
        a, b = read_split(tmp_path / "a"), read_split(tmp_path / folder)
        assert [t.tolist() for t in a.train] == [t.tolist() for t in b.train]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text",
    [
        "user_id,item_id,timestamp\n1,2,3\n\n4,5,6\n7,8\n",  # a field missing, after a blank line
        "user_id,item_id,timestamp\n1,2,3\n4,5,6,7\n",  # one too many
        "user_id,item_id,timestamp\n1,2,3\n , 5, 6\n",  # an empty id
        "user_id,item_id,timestamp\n1,2,3\n\n1,5,soon\n",  # neither a number nor a date
        "user_id,item_id,timestamp\n1,2,3\n1,5,inf\n",  # not finite
        "user_id,item,timestamp\n1,2,3\n",  # a missing column
    ],
)
def test_bad_input_gives_the_in_memory_message(text: str, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as expected:
        sources.load(str(path))
    with pytest.raises(DataError) as raised:
        prepare(LogSource(str(path)), tmp_path / "p", Filters(1, 1))
    assert str(raised.value) == str(expected.value)
    assert "log.csv" in str(raised.value)
    assert not (tmp_path / "p").exists()


def test_a_malformed_quoted_row_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text('user_id,item_id,timestamp\n1,2,3\n4,"5,6\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"^log\.csv line 3: "):
        prepare(LogSource(str(path)), tmp_path / "p", Filters(1, 1))


def test_a_memory_limit_too_small_is_one_error_naming_the_flags(tmp_path: Path) -> None:
    path = _write(_random_case(2), tmp_path)
    temp = tmp_path / "tmp"
    with pytest.raises(DataError) as raised:
        prepare(LogSource(str(path)), tmp_path / "p", Filters(1, 1),
                Engine(memory_limit="1MB", temp_dir=temp))  # fmt: skip
    message = str(raised.value)
    assert "\n" not in message
    assert "--memory-limit 1MB" in message and "--temp-dir" in message
    assert not (tmp_path / "p").exists() and list(temp.iterdir()) == []


def test_a_cutoff_after_every_interaction_is_the_in_memory_error(tmp_path: Path) -> None:
    path = _write(_random_case(4), tmp_path)
    filters = Filters(1, 1, split="temporal", split_time="99999999")
    with pytest.raises(ConfigError) as expected:
        _in_memory(LogSource(str(path)), filters)
    with pytest.raises(ConfigError) as raised:
        prepare(LogSource(str(path)), tmp_path / "p", filters)
    assert str(raised.value) == str(expected.value)
    assert str(raised.value).startswith("--split-time 99999999: no user has an interaction")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("limit", ["4", "lots", "-1GB", ""])
def test_a_bad_memory_limit_names_the_flag(limit: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^--memory-limit must be a size"):
        prepare(LogSource(None), tmp_path / "p", Filters(), Engine(memory_limit=limit))


# ----------------------------------------------------------------------------- the CLI


def test_cli_prepares_and_prints_the_summary(tmp_path: Path, capsys) -> None:
    from attnrec_tf import prepare as cli

    path = _write(_random_case(5), tmp_path)
    status = cli.main(["--data", str(path), "--output", str(tmp_path / "p"), "--shards", "3",
                       "--min-user-interactions", "1", "--min-item-interactions", "1",
                       "--memory-limit", "200MB",
                       "--threads", "1", "--temp-dir", str(tmp_path / "tmp")])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    manifest = read_manifest(tmp_path / "p")
    assert len(manifest["shards"]) == 3
    assert manifest["options"]["min_user_interactions"] == 1
    assert manifest["duckdb"]["threads"] == 1
    summary = [line for line in out.splitlines() if line.startswith("prepared ")]
    assert summary and f"{manifest['num_users']} users" in summary[0]
    assert "3 shards" in summary[0] and "peak memory" in summary[0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--shards", "0"], "error: --shards must be a positive integer, got 0\n"),
        (["--memory-limit", "lots"], "error: --memory-limit must be a size"),
        (["--split-fraction", "0.5"], "error: --split-fraction needs --split temporal\n"),
        ([], "error: --output is required"),
        (["--bogus", "1"], "error: unrecognized arguments: --bogus 1"),
        (["--threads", "two"], "error: argument --threads: invalid int value: 'two'\n"),
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(flags, expected, tmp_path: Path, capsys) -> None:
    from attnrec_tf import prepare as cli

    output = [] if not flags else ["--output", str(tmp_path / "p")]
    status = cli.main(["--data", "synthetic", *output, *flags])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(expected) and err.count("\n") == 1


def test_cli_bad_row_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    from attnrec_tf import prepare as cli

    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n1,2,3\n4,5\n", encoding="utf-8")
    status = cli.main(["--data", str(path), "--output", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert status == 2
    assert err == "error: log.csv line 3: expected 3 fields separated by ',', got 2\n"


def test_without_pyarrow_the_cli_says_what_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pyarrow'] = None; from attnrec_tf import prepare; "
        "sys.exit(prepare.main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--data", "synthetic", "--output", str(tmp_path / "p")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        "error: python -m attnrec_tf.prepare: pyarrow is not installed (pip install pyarrow)\n"
    )


# ----------------------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ml-100k", "ml-1m"])
@pytest.mark.parametrize("split", ["leave-one-out", "temporal"])
def test_movielens_prepared_equals_in_memory(name: str, split: str, tmp_path: Path) -> None:
    folder = SHARED / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    manifest = assert_same_as_in_memory(
        LogSource(str(folder)), Filters(split=split), tmp_path / "p", Engine(shards=4)
    )
    assert manifest["dataset"]["sha256_of"] == "files in folder"


@pytest.mark.slow
def test_a_log_larger_than_the_memory_limit_spills_and_equals_in_memory(tmp_path: Path) -> None:
    # 300,000 rows within 40MB (10MB is too little for them): DuckDB spills to --temp-dir
    rng = np.random.default_rng(0)
    n = 300_000
    users, items = rng.integers(0, 15_000, n), rng.zipf(1.5, n) % 5000
    times = rng.integers(0, 99, n)
    log = tmp_path / "log.csv"
    rows = "".join(f"u{u},{i},{t}\n" for u, i, t in zip(users, items, times, strict=True))
    log.write_text("user_id,item_id,timestamp\n" + rows, encoding="utf-8")
    engine = Engine(memory_limit="40MB", threads=1, temp_dir=tmp_path / "tmp", batch_rows=50_000)
    manifest = assert_same_as_in_memory(LogSource(str(log)), Filters(), tmp_path / "p", engine)
    assert manifest["filters"]["interactions_in"] == n
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.slow
def test_movielens_with_min_rating_equals_in_memory(tmp_path: Path) -> None:
    folder = SHARED / "ml-100k"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    manifest = assert_same_as_in_memory(
        LogSource(str(folder), min_rating=4), Filters(split="temporal"), tmp_path / "p"
    )
    assert manifest["row_filters"]["rows_below_min_rating"] > 0

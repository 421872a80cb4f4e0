"""Prepare a log out of core: DuckDB reads, filters, orders and splits it into shards.

`python -m attnrec_tf.prepare` (`attnrec_tf/prepare.py`) runs `prepare`. The steps are those of
the in-memory path, with the same results (tests/data/test_prepare.py checks it on fuzzed logs
and on ML-1M / ML-100K), but the log never lives in Python:

1. **read** the log into an on-disk DuckDB database in a temporary folder (`SET memory_limit`,
   `threads`, `temp_directory`; `preserve_insertion_order`, so a table's `rowid` is the file
   order): a CSV/TSV/RecBole `.inter` file with a header (`read_csv`, every column as text), a
   Parquet file or a glob or folder of Parquet files (`read_parquet`), a MovieLens folder
   (ratings.dat, u.data or ratings.csv), or the synthetic generator (its arrays, registered).
   Ids are typed as `data/_text.py` types them (int64 when every id of the column is a
   canonical integer, else the stripped text), timestamps are numbers or ISO-8601 dates, and
   `--min-rating` keeps the rows rated at least that;
2. **filter** in SQL as `sequences.build_sequences` does: counts on the raw rows, both
   min-count filters in one pass, users left with fewer than 3 dropped; the vocabulary in
   frequency order, count ties to the first appearance among the kept rows;
3. **split**: the kept rows ordered by (user raw id, time, file order) are fetched in bounded
   Arrow batches cut at user boundaries, and each batch of users is split by the same code as
   in memory (`sequences.leave_one_out`, `temporal.temporal_split`; the temporal cut-off and
   the "no user evaluated" check come from SQL over the whole log) and written with
   `shards.ShardWriter`.

Python holds one batch of rows (`batch_rows`) plus the vocabulary; the SQL work spills to the
temporary folder, which is removed at the end. A memory limit too small for the data ends in
one `DataError` naming `--memory-limit` and `--temp-dir`; a malformed row in one naming the file
and line.

Example:
    >>> import tempfile
    >>> from attnrec_tf.data.shards import read_manifest, read_split
    >>> folder = Path(tempfile.mkdtemp())
    >>> log = folder / "log.csv"
    >>> _ = log.write_text("user_id,item_id,timestamp\\n" + "".join(
    ...     f"{u},{i},{t}\\n" for u in (1, 2) for t, i in enumerate((7, 8, 9, 7))))
    >>> manifest = prepare(LogSource(str(log)), folder / "prepared",
    ...                    Filters(min_user_interactions=1, min_item_interactions=1))
    >>> manifest["num_users"], manifest["filters"]["interactions_kept"]
    (2, 8)
    >>> split = read_split(folder / "prepared")
    >>> split.users.tolist(), [t.tolist() for t in split.train], split.test_targets.tolist()
    ([1, 2], [[1, 2], [1, 2]], [1, 1])
"""

from __future__ import annotations

import dataclasses
import glob
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.data import _text, fingerprint, movielens, sources, synthetic
from attnrec_tf.data.interactions import (
    ATOMIC_SUFFIX,
    PARQUET_SUFFIXES,
    _atomic_header,
    _Columns,
)
from attnrec_tf.data.item_features import item_feature_matrix
from attnrec_tf.data.loaded import ItemMetadata, find_column, no_rows_left
from attnrec_tf.data.sequences import (
    LEAVE_ONE_OUT,
    MIN_SEQUENCE_LENGTH,
    FilterStats,
    UserSequences,
    leave_one_out,
)
from attnrec_tf.data.shards import ITEMS, ShardWriter
from attnrec_tf.data.temporal import (
    TEMPORAL,
    check_split_options,
    choose_cutoff,
    fraction_position,
    no_user_evaluated,
    partition_users,
    temporal_split,
)
from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import ConfigError, DataError, MissingDependencyError
from attnrec_tf.peak_memory import peak_rss_mb  # DuckDB runs inside this process

DEFAULT_MEMORY_LIMIT = "4GB"
DEFAULT_SHARDS = 16
DEFAULT_BATCH_ROWS = 1 << 20
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.I)
# Python's str.strip() whitespace that ids may carry (the ASCII ones, and NBSP / NEL)
_SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"
_CANONICAL_INT = "0|-?[1-9][0-9]{0,18}"
_EXTENSION_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".inter": "\t"}
_ML_DELIMITERS = {"ml-100k": "\t", "ml-1m": "::", "ml-20m": ","}
_ML_HEADER = ["userId", "movieId", "rating", "timestamp"]


@dataclass(frozen=True)
class LogSource:
    """Where the log is and how to read it (the train CLI's data flags, same meaning).

    Attributes:
        data: str | None. A file (CSV/TSV/.inter/Parquet), a Parquet glob or folder, a
            MovieLens folder or name, or None / "synthetic[:KEY=INT,...]".
        user_col, item_col, time_col: str. Columns of a generic file.
        delimiter: str | None. Field separator of a text file (None: from the extension or
            header).
        rating_col: str | None. Rating column read with `min_rating` (None: "rating").
        min_rating: float | None. Keep rows rated at least this.
        cache_dir: Path | None. Download cache of a MovieLens name.
        seed: int. The synthetic generator's seed.
    """

    data: str | None
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    delimiter: str | None = None
    rating_col: str | None = None
    min_rating: float | None = None
    cache_dir: Path | None = None
    seed: int = 0


@dataclass(frozen=True)
class Filters:
    """The filters and the split (`Config`'s min counts, the train CLI's split flags)."""

    min_user_interactions: int = 5
    min_item_interactions: int = 5
    split: str = LEAVE_ONE_OUT
    split_time: str | float | None = None
    split_fraction: float | None = None


@dataclass(frozen=True)
class Engine:
    """DuckDB's settings: memory limit (DuckDB's syntax, e.g. "4GB"), temp folder's parent,
    threads (None: DuckDB's default, the cores), shards written and rows per fetched batch."""

    memory_limit: str = DEFAULT_MEMORY_LIMIT
    temp_dir: Path | None = None
    threads: int | None = None
    shards: int = DEFAULT_SHARDS
    batch_rows: int = DEFAULT_BATCH_ROWS


@dataclass
class _Read:
    """What reading the log gave besides the `raw` table."""

    name: str
    source: str
    sha256: dict[str, str]
    file: str  # named in errors
    rating_name: str = "rating"
    labels: dict[str, str] = field(default_factory=dict)  # column alias -> name in errors
    text: bool = False  # a delimited text file: an empty field is an empty value, not a null
    metadata: ItemMetadata | None = None  # a MovieLens folder's titles and genres
    locate: Callable[[int], str] = field(default=lambda row: f"row {row + 1}")


def check_memory_limit(value: str) -> str:
    """Raises ConfigError unless `value` is a DuckDB memory size such as "4GB" or "512MiB"."""
    if not isinstance(value, str) or not _MEMORY_LIMIT.match(value):
        raise ConfigError(
            f"--memory-limit must be a size such as 4GB, 512MB or 2GiB, got {value!r}"
        )
    return value.strip()


def prepare(
    source: LogSource,
    output: str | Path,
    filters: Filters = Filters(),
    engine: Engine = Engine(),
    *,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Prepares a log into the folder `output` (`data/shards.py`'s format), out of core.

    Args:
        source: LogSource. The log.
        output: str | Path. The prepared folder (replaced as a whole when complete).
        filters: Filters. Min counts and split. Defaults to `Filters()`.
        engine: Engine. DuckDB's memory limit, temp folder, threads; the shard count.
            Defaults to `Engine()`.
        log: Callable. Receives one progress line per phase. Defaults to nothing.

    Returns:
        The manifest written.

    Raises:
        DataError: A bad file (names the file and line), no rows left, or a memory limit too
            small for the data (names `--memory-limit` and `--temp-dir`).
        ConfigError: Bad options, or a temporal cut-off that leaves no user to evaluate.
    """
    import duckdb

    _require_pyarrow()
    check_split_options(filters.split, filters.split_time, filters.split_fraction)
    sources.check_rating_options(source.min_rating, source.rating_col)
    check_memory_limit(engine.memory_limit)
    started = time.perf_counter()
    parent = Path(engine.temp_dir) if engine.temp_dir is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="attnrec-prepare-", dir=parent))
    try:
        con = _connect(folder, engine)
        try:
            return _run(con, source, Path(output), filters, engine, log, started)
        finally:
            con.close()
    except duckdb.OutOfMemoryException as error:
        raise DataError(
            f"DuckDB ran out of memory within --memory-limit {engine.memory_limit} "
            f"({_first_line(error)}); raise --memory-limit, or give --temp-dir a folder with "
            f"more free disk for spilling (now {folder.parent})"
        ) from None
    except duckdb.IOException as error:
        raise DataError(
            f"DuckDB could not write to its temp folder {folder} ({_first_line(error)}); "
            "choose another with --temp-dir, or raise --memory-limit"
        ) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _require_pyarrow() -> None:
    """DuckDB hands batches to Python as Arrow: pyarrow (the `parquet` extra) is needed.

    Raises:
        MissingDependencyError: pyarrow is not installed (one line with the install command).
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "pyarrow", "pyarrow", what="python -m attnrec_tf.prepare"
        ) from None


def _connect(folder: Path, engine: Engine) -> Any:
    import duckdb

    settings: dict[str, Any] = {
        "memory_limit": engine.memory_limit,
        "temp_directory": str(folder / "spill"),
        "preserve_insertion_order": True,
    }
    if engine.threads is not None:
        settings["threads"] = engine.threads
    con = duckdb.connect(str(folder / "prepare.duckdb"), config=settings)
    con.execute("SET enable_progress_bar = false")  # the command prints a line per phase
    con.execute("SET TimeZone = 'UTC'")  # ISO dates without a zone are UTC, as in memory
    _python_function(con, "py_seconds", _py_seconds)
    _python_function(con, "py_number", _py_number)
    return con


def _python_function(con: Any, name: str, function: Callable[[str | None], float | None]) -> None:
    """Registers `function` (text -> float or None) as a SQL function; an exception is NULL."""
    import duckdb
    from duckdb.func import SPECIAL

    con.create_function(
        name, function, ["VARCHAR"], "DOUBLE", null_handling=SPECIAL,
        exception_handling=duckdb.PythonExceptionHandling.RETURN_NULL, side_effects=False,
    )  # fmt: skip


def _py_seconds(text: str | None) -> float | None:
    """A timestamp DuckDB's casts did not read, read as `_text.to_timestamps` does (or None)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        try:
            return _text.parse_iso_date(text)
        except (ValueError, IndexError):
            return None


def _run(
    con: Any,
    source: LogSource,
    output: Path,
    filters: Filters,
    engine: Engine,
    log: Callable[[str], None],
    started: float,
) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    read = _read_log(con, source)
    row_filters = _typed_rows(con, read, source)
    seconds["read"] = time.perf_counter() - clock
    log(f"read: {read.name} from {read.source} in {seconds['read']:.1f}s")
    clock = time.perf_counter()
    stats = _filter(con, filters)
    vocabulary = _vocabulary(con)
    seconds["filter"] = time.perf_counter() - clock
    log(
        f"filter: {stats.users_kept} users, {stats.items_kept} items, "
        f"{stats.interactions_kept} interactions in {seconds['filter']:.1f}s"
    )
    clock = time.perf_counter()
    cut = _cutoff(con, filters) if filters.split == TEMPORAL else None
    with ShardWriter(output, engine.shards) as writer:
        protocol, counts = _write_split(con, writer, cut, engine.batch_rows, vocabulary.size)
        metadata = _metadata(con, read, vocabulary)
        items = _item_records(metadata, vocabulary, counts)
        if items is not None:
            writer.write_json(ITEMS, items)
        if metadata is not None and metadata.features:
            writer.write_item_features(*item_feature_matrix(vocabulary, metadata))
        seconds["split_and_write"] = time.perf_counter() - clock
        seconds["total"] = time.perf_counter() - started
        manifest = {
            "dataset": {"name": read.name, "source": read.source, **read.sha256},
            "filters": dataclasses.asdict(stats),
            "row_filters": row_filters,
            "options": {**dataclasses.asdict(filters), **_source_options(source)},
            "protocol": protocol,
            "items": ITEMS if items is not None else None,
            "seconds": seconds,
            "duckdb": _settings(con, engine),
            "peak_rss_mb": peak_rss_mb(),
        }
        writer.finish(manifest, vocabulary)
    from attnrec_tf.data.shards import read_manifest

    return read_manifest(output)


def _source_options(source: LogSource) -> dict[str, Any]:
    options = dataclasses.asdict(source)
    options["cache_dir"] = None if source.cache_dir is None else str(source.cache_dir)
    return options


def _settings(con: Any, engine: Engine) -> dict[str, Any]:
    names = ("memory_limit", "threads", "temp_directory", "preserve_insertion_order")
    values = con.execute(
        "SELECT " + ", ".join(f"current_setting('{name}')" for name in names)
    ).fetchall()[0]
    return {**dict(zip(names, values, strict=True)), "batch_rows": engine.batch_rows}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# ----------------------------------------------------------------------------- reading


def _read_log(con: Any, source: LogSource) -> _Read:
    """Loads the log into table `raw(u, i, t[, r])` of text (or typed Parquet) columns."""
    spec = source.data
    if spec is None or spec == sources.SYNTHETIC or spec.startswith(sources.SYNTHETIC + ":"):
        return _read_synthetic(con, source)
    if spec in sources.KNOWN_DATASETS:
        from attnrec_tf.data.download import DEFAULT_BASE_URL, default_cache_dir, fetch

        folder = fetch(spec, source.cache_dir or default_cache_dir(), base_url=DEFAULT_BASE_URL)
        return _read_movielens(con, folder, source)
    path = Path(spec).expanduser()
    parquet = _parquet_files(spec, path)
    if parquet is not None:
        return _read_parquet(con, parquet, spec, source)
    if path.is_dir():
        return _read_movielens(con, path, source)
    if path.is_file():
        return _read_text(con, path, source)
    known = ", ".join([sources.SYNTHETIC, *sources.KNOWN_DATASETS])
    raise DataError(
        f"--data {spec!r}: no such file or folder, and not one of the known names: {known}"
    )


def _parquet_files(spec: str, path: Path) -> list[Path] | None:
    """The Parquet files of a Parquet file, glob or folder of Parquet files; else None."""
    if path.is_file():
        return [path] if path.suffix.lower() in PARQUET_SUFFIXES else None
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.suffix.lower() in PARQUET_SUFFIXES]
        return files if files and movielens.detect_movielens(path) is None else None
    if any(ch in spec for ch in "*?["):
        files = [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
        if not files:
            raise DataError(f"--data {spec!r}: the pattern matches no file")
        return files
    return None


def _read_synthetic(con: Any, source: LogSource) -> _Read:
    import pyarrow as pa

    if source.min_rating is not None:
        raise ConfigError("--min-rating: the synthetic data has no ratings")
    spec = source.data
    options = sources._synthetic_options(spec) if spec and spec != sources.SYNTHETIC else {}
    loaded = synthetic.generate(seed=source.seed, **options)
    rows = loaded.interactions
    table = pa.table({"u": rows.users, "i": rows.items, "t": rows.timestamps})
    con.register("synthetic_rows", table)
    con.execute("CREATE TABLE raw AS SELECT u, i, t FROM synthetic_rows")
    con.unregister("synthetic_rows")
    digest = fingerprint.synthetic_sha256({"seed": source.seed, **options})
    read = _Read("synthetic", f"synthetic(seed={source.seed})",
                 {"sha256": digest, "sha256_of": "generator parameters"}, "synthetic")  # fmt: skip
    if loaded.items.titles or loaded.items.features:
        read.metadata = loaded.items
    return read


def _csv(con: Any, path: Path, header: _text.Header, wanted: dict[str, int], file: str) -> None:
    """`raw` from a delimited text file: the `wanted` columns (alias -> index) as text."""
    import duckdb

    ncols = len(header.names)
    columns = "{" + ", ".join(f"'c{j}': 'VARCHAR'" for j in range(ncols)) + "}"
    quote = '"' if len(header.delimiter) == 1 else ""
    select = ", ".join(f"c{j} AS {alias}" for alias, j in wanted.items())
    query = (
        f"CREATE TABLE raw AS SELECT {select} FROM read_csv(?, delim = ?, header = false, "
        f"skip = ?, auto_detect = false, quote = ?, escape = ?, columns = {columns}, "
        "strict_mode = true, encoding = 'utf-8')"
    )
    params = [str(path), header.delimiter, header.data_line - 1, quote, quote]
    try:
        con.execute(query, params)
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as error:
        raise _csv_error(error, file, header) from None


def _csv_error(error: Exception, file: str, header: _text.Header) -> DataError:
    """DuckDB's CSV error as one line naming the file and line."""
    text = str(error)
    line = re.search(r"[Ll]ine:?\s*(\d+)", text)
    where = f"{file} line {line.group(1)}" if line else file
    fields = re.search(r"Expected Number of Columns:\s*(\d+)\s*Found:\s*(\d+)", text)
    if fields:
        return DataError(
            f"{where}: expected {fields.group(1)} fields separated by {header.delimiter!r}, "
            f"got {fields.group(2)}"
        )
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    detail = next(
        (p for p in lines[1:] if not p.startswith(("Original Line", "Possible", "*"))),
        _first_line(error),
    )
    if "unicode" in text.lower() or "utf" in text.lower():
        detail = f"not valid utf-8 ({detail}); save the file as UTF-8"
    return DataError(f"{where}: {detail}")


def _text_locator(path: Path, header: _text.Header, usecols: list[int]) -> Callable[[int], str]:
    """Data row k -> "line N" of a text file (read again block by block, only on an error)."""

    def locate(row: int) -> str:
        seen = 0
        for rows in _text.iter_rows(path, header, usecols[:1]):
            if row < seen + len(rows):
                return f"line {rows.line(row - seen)}"
            seen += len(rows)
        return f"row {row + 1}"

    return locate


def _read_text(con: Any, path: Path, source: LogSource) -> _Read:
    atomic = path.suffix.lower() == ATOMIC_SUFFIX
    delimiter = source.delimiter or _EXTENSION_DELIMITERS.get(path.suffix.lower())
    header = _text.read_header(path, delimiter)
    if atomic:
        header, _ = _atomic_header(header)
    rating = None if source.min_rating is None else (source.rating_col or "rating")
    names = (source.user_col, source.item_col, source.time_col)
    columns = _Columns.find(header, names, (), rating)
    wanted = {"u": columns.user, "i": columns.item, "t": columns.time}
    if columns.rating is not None:
        wanted["r"] = columns.rating
    if columns.title is not None:
        wanted["title"] = columns.title
    _csv(con, path, header, wanted, header.file)
    rating_name = header.names[columns.rating] if columns.rating is not None else "rating"
    read = _Read(path.name, str(path), _file_digest(path), header.file, rating_name)
    read.locate = _text_locator(path, header, list(wanted.values()))
    read.labels, read.text = {"u": names[0], "i": names[1], "t": names[2]}, True
    return read


def _file_digest(path: Path) -> dict[str, str]:
    return {"sha256": fingerprint.file_sha256(path), "sha256_of": "file bytes"}


def _read_movielens(con: Any, folder: Path, source: LogSource) -> _Read:
    if source.rating_col is not None:
        raise ConfigError(
            f"--rating-col {source.rating_col!r}: a MovieLens folder's ratings are its rating "
            "column; pass --min-rating alone"
        )
    layout = movielens.detect_movielens(folder)
    if layout is None:
        movielens.read_movielens(folder)  # raises its DataError (not a MovieLens folder)
        raise DataError(f"{folder}: not a MovieLens folder")  # pragma: no cover
    path = folder / movielens.LAYOUTS[layout][0]
    delimiter = _ML_DELIMITERS[layout]
    has_header = layout == "ml-20m"
    header = _text.read_header(path, delimiter, has_header=has_header)
    if has_header and header.names != _ML_HEADER:
        raise DataError(
            f"{path.name} line 1: expected the header {','.join(_ML_HEADER)}, "
            f"found {','.join(header.names)}"
        )
    if len(header.names) != 4:
        raise DataError(
            f"{path.name} line {header.data_line}: expected 4 fields "
            f"(user, item, rating, timestamp) separated by {delimiter!r}, got {len(header.names)}"
        )
    wanted = {"u": 0, "i": 1, "t": 3, "r": 2}
    _csv(con, path, header, wanted, path.name)
    name = movielens._dataset_name(folder, layout)
    digest = {"sha256": fingerprint.folder_sha256(folder), "sha256_of": "files in folder"}
    read = _Read(name, str(folder), digest, path.name, "rating")
    read.metadata = _movielens_metadata(folder, layout)
    read.locate = _text_locator(path, header, [0, 1, 2, 3])
    read.labels, read.text = {"u": "user id", "i": "movie id", "t": "timestamp"}, True
    return read


def _chunks_name(spec: Path) -> str:
    """The name of a log in chunks: its folder's ("logs" for logs/ or logs/part-*.parquet)."""
    return spec.parent.name if any(ch in spec.name for ch in "*?[") else spec.name


def _movielens_metadata(folder: Path, layout: str) -> ItemMetadata:
    """Titles and genres from the folder's movie file (small: one line per movie)."""
    metadata = ItemMetadata()
    readers = {"ml-100k": movielens._read_u_item, "ml-1m": movielens._read_movies_dat,
               "ml-20m": movielens._read_movies_csv}  # fmt: skip
    if (folder / movielens.LAYOUTS[layout][1]).is_file():
        readers[layout](folder, metadata)
    return metadata


def _read_parquet(con: Any, files: list[Path], spec: str, source: LogSource) -> _Read:
    import duckdb

    file = files[0].name if len(files) == 1 else spec
    paths = [str(p) for p in files]
    try:
        schema = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [paths]).fetchall()
    except duckdb.Error as error:
        raise DataError(f"{file}: not a readable Parquet file ({_first_line(error)})") from None
    found = [row[0] for row in schema]
    asked = {"u": (source.user_col, "--user-col"), "i": (source.item_col, "--item-col"),
             "t": (source.time_col, "--time-col")}  # fmt: skip
    if source.min_rating is not None:
        asked["r"] = (source.rating_col or "rating", "--rating-col")
    index = {alias: find_column(found, file, n, f) for alias, (n, f) in asked.items()}
    title = next((j for j, n in enumerate(found) if n.lower() == "title"), None)
    if title is not None and title not in index.values():
        index["title"] = title
    select = ", ".join(f'"{found[j]}" AS {alias}' for alias, j in index.items())
    try:
        con.execute(f"CREATE TABLE raw AS SELECT {select} FROM read_parquet(?)", [paths])
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as error:
        raise DataError(f"{file}: not a readable Parquet file ({_first_line(error)})") from None
    if len(files) == 1:
        digest = _file_digest(files[0])
    else:
        lines = "".join(sorted(f"{p}  {fingerprint.file_sha256(p)}\n" for p in files))
        import hashlib

        digest = {"sha256": hashlib.sha256(lines.encode()).hexdigest(), "sha256_of": "files"}
    name = files[0].name if len(files) == 1 else _chunks_name(Path(spec))
    read = _Read(name, spec, digest, file, found[index["r"]] if "r" in index else "rating")
    read.labels = {alias: found[j] for alias, j in index.items()}
    return read


# ----------------------------------------------------------------------------- typing


def _check_nulls(con: Any, read: _Read, column: str, label: str) -> None:
    """Raises DataError naming the first null of `column` (a text file's empty fields are
    checked as empty values instead)."""
    if read.text:
        return
    null = con.execute(f"SELECT min(rowid) FROM raw WHERE {column} IS NULL").fetchall()[0][0]
    if null is not None:
        raise DataError(f"{read.file} {read.locate(null)}: empty {label} (null)")


def _column_type(con: Any, column: str) -> str:
    rows = con.execute("DESCRIBE raw").fetchall()
    return next(str(row[1]).upper() for row in rows if row[0] == column)


def _id_expression(con: Any, read: _Read, column: str) -> str:
    """SQL for the raw ids of `column` of `raw`, typed as the in-memory readers type them.

    Raises:
        DataError: A null or empty id, or a fractional float id (names the file and row).
    """
    kind = _column_type(con, column)
    label = read.labels.get(column, column)
    _check_nulls(con, read, column, label)
    if any(word in kind for word in ("INT",)) and "INTERVAL" not in kind:
        return f"CAST({column} AS BIGINT)"
    if kind in ("FLOAT", "DOUBLE") or kind.startswith("DECIMAL"):
        bad = con.execute(
            f"SELECT min(rowid) FROM raw WHERE NOT (isfinite({column}) AND "
            f"{column} = floor({column}) AND abs({column}) < 9.2e18)"
        ).fetchall()[0][0]
        if bad is not None:
            value = con.execute(f"SELECT {column} FROM raw WHERE rowid = {bad}").fetchall()[0][0]
            raise DataError(
                f"{read.file} {read.locate(bad)}: {label} {value!r} is not a whole number"
            )
        return f"CAST({column} AS BIGINT)"
    stripped = f"trim(coalesce({column}, ''), '{_SPACES}')"
    empty = con.execute(f"SELECT min(rowid) FROM raw WHERE {stripped} = ''").fetchall()[0][0]
    if empty is not None:
        raise DataError(f"{read.file} {read.locate(empty)}: empty {label}")
    integer = con.execute(
        f"SELECT coalesce(bool_and(regexp_full_match({stripped}, '{_CANONICAL_INT}') AND "
        f"TRY_CAST({stripped} AS BIGINT) IS NOT NULL), true) FROM raw"
    ).fetchall()[0][0]
    return f"CAST({stripped} AS BIGINT)" if integer else stripped


def _number_expression(con: Any, read: _Read, column: str, timestamps: bool) -> str:
    """SQL for float64 seconds (or ratings) of `column`; raises DataError naming the row."""
    kind = _column_type(con, column)
    label = read.labels.get(column, read.rating_name if column == "r" else column)
    _check_nulls(con, read, column, label)
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return f"epoch_us(CAST({column} AS TIMESTAMP)) / 1e6"
    if "INT" in kind or kind in ("FLOAT", "DOUBLE") or kind.startswith("DECIMAL"):
        expression = f"CAST({column} AS DOUBLE)"
    elif timestamps:
        expression = f"coalesce(TRY_CAST({column} AS DOUBLE), py_seconds(coalesce({column}, '')))"
    else:
        expression = f"coalesce(TRY_CAST({column} AS DOUBLE), py_number(coalesce({column}, '')))"
    bad = con.execute(
        f"SELECT min(rowid) FROM raw WHERE {expression} IS NULL OR NOT isfinite({expression})"
    ).fetchall()[0][0]
    if bad is not None:
        value, number = con.execute(
            f"SELECT coalesce(CAST({column} AS VARCHAR), ''), {expression} FROM raw "
            f"WHERE rowid = {bad}"
        ).fetchall()[0]
        what = (
            "is not a finite number" if number is not None
            else "is neither a number nor an ISO-8601 date" if timestamps
            else "is not a number"
        )  # fmt: skip
        raise DataError(f"{read.file} {read.locate(bad)}: {label} {value!r} {what}")
    return expression


def _typed_rows(con: Any, read: _Read, source: LogSource) -> dict[str, Any]:
    """Table `ev(pos, u, i, t)`: the typed rows `--min-rating` keeps, `pos` the file order.

    Returns:
        The row filters (`{"min_rating", "rows_below_min_rating"}` with a minimum, else {}).
    """
    rows_in = con.execute("SELECT count(*) FROM raw").fetchall()[0][0]
    if not rows_in:
        raise DataError(f"{read.source}: no data rows after the header")
    u, i = _id_expression(con, read, "u"), _id_expression(con, read, "i")
    t = _number_expression(con, read, "t", timestamps=True)
    columns = {row[0] for row in con.execute("DESCRIBE raw").fetchall()}
    keep = "true"
    if "r" in columns:
        rating = _number_expression(con, read, "r", timestamps=False)
        if source.min_rating is not None:
            keep = f"{rating} >= {float(source.min_rating)!r}"
    con.execute(
        f"CREATE TABLE ev AS SELECT rowid AS pos, {u} AS u, {i} AS i, {t} AS t FROM raw "
        f"WHERE {keep}"
    )
    if "title" in columns:  # the first row's title of every item, as in memory
        con.execute(
            f"CREATE TABLE titles AS SELECT {i} AS i, arg_min(trim(coalesce(CAST(title AS "
            f"VARCHAR), ''), '{_SPACES}'), rowid) AS title FROM raw GROUP BY 1"
        )
    con.execute("DROP TABLE raw")
    if source.min_rating is None:
        return {}
    kept = con.execute("SELECT count(*) FROM ev").fetchall()[0][0]
    if not kept:
        raise no_rows_left(read.file if read.file != "synthetic" else read.source,
                           read.rating_name, source.min_rating)  # fmt: skip
    return {"min_rating": source.min_rating, "rows_below_min_rating": int(rows_in - kept)}


def _py_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


# ----------------------------------------------------------------------------- filtering


def _filter(con: Any, filters: Filters) -> FilterStats:
    """Table `kept(pos, u, i, t)` as `build_sequences` keeps rows; its `FilterStats`.

    Raises:
        ConfigError: A threshold is not a positive integer.
        DataError: No user is left (the message of `build_sequences`).
    """
    from attnrec_tf.data.sequences import _check_min

    min_user, min_item = filters.min_user_interactions, filters.min_item_interactions
    _check_min("min_user_interactions", min_user)
    _check_min("min_item_interactions", min_item)
    con.execute("CREATE TABLE user_counts AS SELECT u, count(*) AS n FROM ev GROUP BY u")
    con.execute("CREATE TABLE item_counts AS SELECT i, count(*) AS n FROM ev GROUP BY i")
    con.execute(
        "CREATE TABLE passed AS SELECT ev.* FROM ev "
        "JOIN user_counts USING (u) JOIN item_counts USING (i) "
        f"WHERE user_counts.n >= {int(min_user)} AND item_counts.n >= {int(min_item)}"
    )
    con.execute(
        "CREATE TABLE kept AS SELECT * FROM passed WHERE u IN "
        f"(SELECT u FROM passed GROUP BY u HAVING count(*) >= {MIN_SEQUENCE_LENGTH})"
    )
    (users_in, rows_in, passed_users) = con.execute(
        f"SELECT count(*), sum(n), count(*) FILTER (WHERE n >= {int(min_user)}) FROM user_counts"
    ).fetchall()[0]
    items_in = con.execute("SELECT count(*) FROM item_counts").fetchall()[0][0]
    users_kept, items_kept, rows_kept = con.execute(
        "SELECT count(DISTINCT u), count(DISTINCT i), count(*) FROM kept"
    ).fetchall()[0]
    for table in ("passed", "user_counts", "item_counts", "ev"):
        con.execute(f"DROP TABLE {table}")
    if not rows_kept:
        raise DataError(
            f"no user has {MIN_SEQUENCE_LENGTH} or more interactions after filtering "
            f"(min_user_interactions={min_user}, min_item_interactions={min_item}, "
            f"{rows_in} rows in)"
        )
    return FilterStats(
        users_in=int(users_in), users_kept=int(users_kept), items_in=int(items_in),
        items_kept=int(items_kept), interactions_in=int(rows_in),
        interactions_kept=int(rows_kept), users_dropped_too_few=int(passed_users - users_kept),
    )  # fmt: skip


def _vocabulary(con: Any) -> Vocabulary:
    """Table `vocab(i, idx)` (frequency order, ties to the first kept row) and its Vocabulary."""
    con.execute(
        "CREATE TABLE vocab AS SELECT i, CAST(row_number() OVER "
        "(ORDER BY count(*) DESC, min(pos)) AS INTEGER) AS idx FROM kept GROUP BY i"
    )
    ids = con.sql("SELECT i FROM vocab ORDER BY idx").to_arrow_table()
    column = ids.column(0)
    values = _ids_of(column.to_numpy(zero_copy_only=False))
    return Vocabulary(values)


def _ids_of(values: np.ndarray) -> np.ndarray:
    """int64 ids as they are; text ids as an object array of str (`_ids.as_id_array`)."""
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    out = np.empty(len(values), dtype=object)
    out[:] = [str(v) for v in values.tolist()]
    return out


# ----------------------------------------------------------------------------- splitting


@dataclass(frozen=True)
class _Cut:
    cutoff: float
    cutoff_from: str
    evaluated: int  # over the whole log: the index of the first user trained on only


def _cutoff(con: Any, filters: Filters) -> _Cut:
    """The temporal cut-off over the kept rows, and how many users it evaluates.

    Raises:
        ConfigError: No user is evaluated (`temporal.no_user_evaluated`, once for the log).
    """
    count = con.execute("SELECT count(*) FROM kept").fetchall()[0][0]

    def at_fraction(fraction: float) -> float:
        position = fraction_position(fraction, count)
        row = con.execute(f"SELECT t FROM kept ORDER BY t LIMIT 1 OFFSET {position}").fetchall()[0]
        return float(row[0])

    cutoff, cutoff_from = choose_cutoff(filters.split_time, filters.split_fraction, at_fraction)
    evaluated, low, high = con.execute(
        "SELECT count(*) FILTER (WHERE b >= 1 AND n - b >= 2), min(lo), max(hi) FROM "
        "(SELECT u, count(*) AS n, count(*) FILTER (WHERE t < ?) AS b, min(t) AS lo, "
        "max(t) AS hi FROM kept GROUP BY u)",
        [cutoff],
    ).fetchall()[0]
    if not evaluated:
        raise no_user_evaluated(cutoff, cutoff_from, float(low), float(high))
    return _Cut(cutoff, cutoff_from, int(evaluated))


def _user_batches(
    con: Any, batch_rows: int
) -> Iterator[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]]:
    """(users, sequences, times) of whole users, in raw-id order, about `batch_rows` rows each."""
    relation = con.sql(
        "SELECT k.u, v.idx, k.t FROM kept AS k JOIN vocab AS v USING (i) ORDER BY k.u, k.t, k.pos"
    )
    reader = (
        relation.to_arrow_reader(batch_rows) if hasattr(relation, "to_arrow_reader")
        else relation.fetch_record_batch(batch_rows)
    )  # fmt: skip
    carry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for batch in reader:
        users = _ids_of(batch.column(0).to_numpy(zero_copy_only=False))
        items = batch.column(1).to_numpy().astype(np.int32)
        times = batch.column(2).to_numpy().astype(np.float64)
        if carry is not None:
            users = np.concatenate([carry[0], users]) if len(carry[0]) else users
            items, times = np.concatenate([carry[1], items]), np.concatenate([carry[2], times])
        if not len(users):
            continue
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        last = int(starts[-1])  # the last user may go on in the next batch
        carry = (users[last:], items[last:], times[last:])
        if last:
            yield _group(users[:last], items[:last], times[:last], starts[starts < last])
    if carry is not None and len(carry[0]):
        yield _group(*carry, np.flatnonzero(np.r_[True, carry[0][1:] != carry[0][:-1]]))


def _group(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    items.flags.writeable = False
    return users[starts], np.split(items, starts[1:]), np.split(times, starts[1:])


def _write_split(
    con: Any, writer: ShardWriter, cut: _Cut | None, batch_rows: int, size: int
) -> tuple[dict[str, Any], np.ndarray]:
    """Splits every batch of users as in memory and writes it.

    Returns:
        The protocol of the whole log, and each vocabulary index's count in the training parts.
    """
    evaluated_next, trained_next = 0, 0 if cut is None else cut.evaluated
    totals: dict[str, Any] = {}
    kept_rows = 0
    counts = np.zeros(size, np.int64)
    for users, sequences, times in _user_batches(con, batch_rows):
        seqs = UserSequences(users, sequences)
        kept_rows += sum(len(s) for s in sequences)
        if cut is None:
            split = leave_one_out(seqs)
            trained_users = users[:0]
        else:
            split = temporal_split(
                seqs, times, cut.cutoff, cutoff_from=cut.cutoff_from, require_evaluated=False
            )
            lengths = np.fromiter(map(len, sequences), np.int64, len(sequences))
            _, _, trained_only = partition_users(lengths, np.concatenate(times), cut.cutoff)
            trained_users = users[trained_only]
            _add_counts(totals, split.protocol)
        n = len(split.users)
        index = np.r_[
            np.arange(evaluated_next, evaluated_next + n),
            np.arange(trained_next, trained_next + len(trained_users)),
        ].astype(np.int64)
        zeros = np.zeros(len(trained_users), np.int64)
        writer.add(
            np.concatenate([split.users, trained_users]) if len(trained_users) else split.users,
            index,
            split.train,
            np.r_[split.valid_targets, zeros],
            np.r_[split.test_targets, zeros],
        )
        evaluated_next += n
        trained_next += len(trained_users)
        if split.train:
            counts += np.bincount(np.concatenate(split.train), minlength=size)
    if cut is None:
        return {"name": LEAVE_ONE_OUT}, counts
    totals["fraction_before_cutoff"] = float(totals["train_interactions"] / max(1, kept_rows))
    return totals, counts


def _metadata(con: Any, read: _Read, vocabulary: Vocabulary) -> ItemMetadata | None:
    """The items' titles and features, keyed as the readers key them, when the log has any."""
    metadata = read.metadata
    tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    if metadata is None and "titles" in tables:
        rows = con.execute("SELECT t.i, t.title FROM titles AS t JOIN vocab USING (i)").fetchall()
        metadata = ItemMetadata(dict(rows))
    if metadata is None:
        return None
    if vocabulary.id_dtype == "string":  # keys as the readers give them for text ids
        metadata = ItemMetadata(
            {str(k): v for k, v in metadata.titles.items()},
            {n: {str(k): v for k, v in m.items()} for n, m in metadata.features.items()},
        )
    return metadata


def _item_records(
    metadata: ItemMetadata | None, vocabulary: Vocabulary, counts: np.ndarray
) -> list[dict[str, Any]] | None:
    """The run folder's items.json records (`run_dir.item_table`), when the log has metadata."""
    from attnrec_tf.run_dir import item_table

    if metadata is None:
        return None
    records = item_table(vocabulary, metadata, [])
    for record in records:
        record["count"] = int(counts[record["index"]])
    return records


_SUMMED = (
    "users_evaluated",
    "users_dropped_no_interaction_before_cutoff",
    "users_trained_not_evaluated_one_after_cutoff",
    "users_trained_not_evaluated_none_after_cutoff",
    "train_interactions",
)


def _add_counts(totals: dict[str, Any], protocol: dict[str, Any]) -> None:
    """Adds one batch's temporal protocol to the whole log's (counts summed, the rest kept)."""
    if not totals:
        totals.update(protocol)
        return
    for key in _SUMMED:
        totals[key] += protocol[key]


def describe(manifest: dict[str, Any]) -> str:
    """The one-line summary `python -m attnrec_tf.prepare` prints."""
    stats = manifest["filters"]
    size = sum(shard["bytes"] for shard in manifest["shards"])
    return (
        f"prepared {manifest['dataset']['name']}: {manifest['num_users']} users "
        f"({manifest['num_evaluated']} evaluated), {manifest['num_items']} items, "
        f"{stats['interactions_kept']} interactions of {stats['interactions_in']}; "
        f"{len(manifest['shards'])} shards, {size / 1e6:.1f} MB; "
        f"{manifest['seconds']['total']:.1f}s, peak memory {manifest['peak_rss_mb']:.0f} MB"
    )


__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_SHARDS",
    "Engine",
    "Filters",
    "LogSource",
    "check_memory_limit",
    "describe",
    "prepare",
]

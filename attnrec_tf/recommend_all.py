"""Batch recommendations: the top-K of every user of a run (or of a list of users) to a file.

`python -m attnrec_tf.recommend --output-dir RUN --all-users --out recs.jsonl` (or
`--users-file users.txt`, one raw user id a line; `recs.parquet` with pyarrow) loads the
artifact once and recommends in batches for each user's whole known history (`histories.npz`;
older runs fall back to `split.npz`, the evaluation users only), the history's items excluded.
One row a user, in the run's user order (or the file's):

    {"user": "42", "item_ids": [2571, 1196, ...], "scores": [7.91, 7.45, ...]}

Parquet has the same columns (`user` string, `item_ids` list, `scores` list of float32). The
file is written atomically; progress goes to stderr (`attnrec_tf.progress`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from attnrec_tf import atomic
from attnrec_tf.errors import ConfigError, MissingDependencyError
from attnrec_tf.progress import ProgressBar, progress_bar
from attnrec_tf.recommender import Recommender

FORMATS = (".jsonl", ".parquet")


def user_histories(recommender: Recommender) -> tuple[np.ndarray, list[np.ndarray], str]:
    """`(users, histories, source)`: every user's whole history in the run folder."""
    from attnrec_tf.run_dir import load_histories, load_split

    output = recommender.output
    if output.histories.exists():
        users, histories = load_histories(output.histories)
        return users, histories, str(output.histories)
    split = load_split(output.require(output.split))
    histories = [
        np.concatenate([train, [valid, test]]).astype(np.int32)
        for train, valid, test in zip(
            split.train, split.valid_targets, split.test_targets, strict=True
        )
    ]
    return np.asarray(split.users).astype(str), histories, f"{output.split} (evaluation users)"


def select_users(
    users: np.ndarray, histories: list[np.ndarray], users_file: Path | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """All users, or those listed in `users_file` (one id a line, in its order).

    Raises:
        ConfigError: The file is missing, or names a user the run does not have (file:line).
    """
    if users_file is None:
        return users, histories
    try:
        lines = Path(users_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--users-file {users_file}: cannot read it ({error})") from None
    row_of = {str(user): row for row, user in enumerate(users)}
    rows = []
    for number, line in enumerate(lines, start=1):
        user = line.strip()
        if not user:
            continue
        if user not in row_of:
            raise ConfigError(f"{users_file}:{number}: no user {user!r} in this run")
        rows.append(row_of[user])
    return users[rows], [histories[row] for row in rows]


def recommend_all(
    recommender: Recommender,
    users: np.ndarray,
    histories: list[np.ndarray],
    out: Path,
    *,
    k: int = 10,
    batch_size: int = 256,
    progress: IO[str] | None = sys.stderr,
) -> dict[str, Any]:
    """Writes the top `k` of every user to `out` (`.jsonl` or `.parquet`), atomically.

    Args:
        recommender: The loaded run.
        users: Raw user ids.
        histories: Each user's history of vocabulary indices.
        out: The file; its suffix picks the format (`FORMATS`).
        k: Recommendations a user.
        batch_size: Users a call of the artifact.
        progress: Where the progress line goes (None = silent).

    Returns:
        `{"users", "seconds", "users_per_second", "path"}`.

    Raises:
        ConfigError: An unknown suffix or a bad `k` / `batch_size`.
        MissingDependencyError: `.parquet` without pyarrow.
    """
    out = Path(out)
    if out.suffix not in FORMATS:
        raise ConfigError(f"--out {out}: the name must end in {' or '.join(FORMATS)}")
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size}")
    writer = _parquet_writer if out.suffix == ".parquet" else _jsonl_writer
    started = time.perf_counter()
    with progress_bar(len(users), progress, desc="recommend", unit=" users") as bar:
        rows = _rows(recommender, users, histories, k, batch_size, bar)
        with atomic.staged_path(out) as tmp:
            writer(tmp, rows)
    seconds = time.perf_counter() - started
    return {
        "users": len(users),
        "seconds": seconds,
        "users_per_second": len(users) / max(seconds, 1e-9),
        "path": str(out),
    }


def _rows(
    recommender: Recommender,
    users: np.ndarray,
    histories: list[np.ndarray],
    k: int,
    batch_size: int,
    bar: ProgressBar,
) -> Iterator[dict[str, Any]]:
    """One output row a user, in the given user order.

    Users are recommended in order of history length, so that a batch's histories are alike in
    length and little of it is padding; the rows come out in the original order.
    """
    ids = np.zeros((len(users), k), np.int64)
    scores = np.zeros((len(users), k), np.float64)
    order = np.argsort([len(h) for h in histories], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids[rows], scores[rows] = recommender.recommend_indices(
            [histories[row].tolist() for row in rows], k
        )
        bar.update(len(rows))
    catalog = recommender.catalog
    for row, user in enumerate(users):
        yield {
            "user": str(user),
            "item_ids": [catalog.raw_id(int(i)) for i in ids[row]],
            "scores": [round(float(s), 6) for s in scores[row]],
        }


def _jsonl_writer(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def _parquet_writer(path: Path, rows: Iterator[dict[str, Any]], chunk: int = 4096) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "pyarrow", what=f"--out {path.name}") from None
    writer = None
    buffer: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer
        table = pa.Table.from_pylist(buffer)
        if writer is None:
            writer = pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table)
        buffer.clear()

    for row in rows:
        buffer.append(row)
        if len(buffer) >= chunk:
            flush()
    if buffer or writer is None:
        flush()
    assert writer is not None
    writer.close()

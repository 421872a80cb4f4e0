"""Fast reading of delimited text files into columns (private helper of the readers).

The readers in `interactions.py` and `movielens.py` share this code. A file is read in blocks
of about 32 MB, each cut at a line end and never inside a quoted field, so memory stays bounded
(how it is fast: docs/notes/data-evaluation.md). Every error names the file and the 1-based
line, e.g. ``ratings.csv line 17: expected 4 fields separated by ',', got 3``.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "r.tsv"
    >>> _ = path.write_text("u\\ti\\n1\\t10\\n2\\t20\\n")
    >>> header = read_header(path, "\\t")
    >>> header.names
    ['u', 'i']
    >>> [rows.columns for rows in iter_rows(path, header, usecols=[1])]
    [[['10', '20']]]
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from attnrec_tf.errors import DataError

CHUNK_BYTES = 32 * 1024 * 1024
_SNIFF_CANDIDATES = ("\t", ",", ";", "|", "::")
_POWERS_OF_TEN = 10 ** np.arange(19, dtype=np.int64)  # 1, 10, ..., 1e18


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector (it rescans millions of fresh strings otherwise)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Header:
    """The first line of a file and where its data starts.

    Attributes:
        names: The column names (stripped), or the fields of the first row when `has_header` is
            False.
        delimiter: The field separator (given or detected).
        data_start: Byte offset of the first data row.
        data_line: 1-based line number of the first data row.
        file: The file name used in error messages.
        path: The file.
    """

    names: list[str]
    delimiter: str
    data_start: int
    data_line: int
    file: str
    path: Path


@dataclass
class Rows:
    """One block of rows: the selected columns as lists of strings, and their line numbers.

    Attributes:
        file: The file name used in error messages.
        columns: One list of raw field strings per selected column, all of equal length.
        first_line: The line of row 0 when `line_numbers` is None.
        line_numbers: The line of every row when rows are not on consecutive lines (blank lines,
            quoted fields spanning lines), else None.
    """

    file: str
    columns: list[list[str]]
    first_line: int
    line_numbers: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def line(self, row: int) -> int:
        """Returns the 1-based line number of `row`."""
        if self.line_numbers is None:
            return self.first_line + row
        return int(self.line_numbers[row])

    def error(self, row: int, message: str) -> DataError:
        """Returns a DataError "<file> line <n>: <message>" for `row`."""
        return DataError(f"{self.file} line {self.line(row)}: {message}")


def _decode(raw: bytes, file: str, first_line: int, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = first_line + raw.count(b"\n", 0, err.start)
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{file} line {line}: not valid {encoding} (byte 0x{raw[err.start]:02x} at column "
            f"{column}); save the file as {encoding.upper()}"
        ) from None


def _sniff(line: str, file: str) -> str:
    counts = {d: line.count(d) for d in _SNIFF_CANDIDATES}
    best = max(_SNIFF_CANDIDATES, key=lambda d: counts[d])  # ties: earlier candidate wins
    if counts[best] == 0:
        raise DataError(
            f"{file} line 1: cannot detect the field separator in the header {line.strip()!r} "
            f"(tried {', '.join(repr(d) for d in _SNIFF_CANDIDATES)}); pass --delimiter"
        )
    return best


def split_line(line: str, delimiter: str) -> list[str]:
    """Splits one line on `delimiter`, honouring CSV quotes when the delimiter is one character."""
    if len(delimiter) == 1 and '"' in line:
        return next(csv.reader([line], delimiter=delimiter), [])
    return line.split(delimiter)


def read_header(path: Path, delimiter: str | None, *, has_header: bool = True) -> Header:
    """Reads the first non-blank line of `path` (BOM and line end removed).

    Args:
        path: Path. The file.
        delimiter: str | None. The field separator; None sniffs it from the first line among
            tab, comma, semicolon, pipe and "::".
        has_header: bool. If False the first line is data and `data_start` is its offset.
            Defaults to `True`.

    Returns:
        The Header.

    Raises:
        DataError: The file is missing, empty or the separator cannot be detected.
    """
    file = path.name
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    line_no = 0
    offset = 0
    with open(path, "rb") as f:
        for raw in f:
            line_no += 1
            text = _decode(raw, file, line_no, "utf-8")
            if line_no == 1:
                text = text.removeprefix("\ufeff")
            if text.strip():
                break
            offset += len(raw)
        else:
            raise DataError(f"{path}: the file is empty")
    text = text.rstrip("\r\n")
    delimiter = delimiter or _sniff(text, file)
    names = [name.strip() for name in split_line(text, delimiter)]
    if has_header:
        return Header(names, delimiter, offset + len(raw), line_no + 1, file, path)
    bom = len(b"\xef\xbb\xbf") if line_no == 1 and raw.startswith(b"\xef\xbb\xbf") else 0
    return Header(names, delimiter, offset + bom, line_no, file, path)


def iter_rows(
    path: Path,
    header: Header,
    usecols: Sequence[int],
    *,
    encoding: str = "utf-8",
    chunk_bytes: int | None = None,
) -> Iterator[Rows]:
    """Yields the data rows of `path` block by block, keeping only the columns `usecols`.

    Every row must have exactly `len(header.names)` fields. Blank lines are skipped.

    Args:
        path: Path. The file.
        header: Header. From `read_header`; gives delimiter, field count and data start.
        usecols: Sequence[int]. Indices of the columns to keep, in the order wanted.
        encoding: str. Text encoding of the file. Defaults to `"utf-8"`.
        chunk_bytes: int | None. Approximate size of a block; None uses `CHUNK_BYTES` (32 MB).
            Defaults to `None`.

    Yields:
        Rows, one per block that has at least one data row.

    Raises:
        DataError: A row has the wrong number of fields, the bytes are not valid `encoding`, or a
            quoted field is malformed; the message names the file and line.
    """
    quoting = len(header.delimiter) == 1
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    with open(path, "rb") as f:
        f.seek(header.data_start)
        line_no = header.data_line
        pending = bytearray()
        while True:
            block = f.read(chunk_bytes)
            eof = not block
            pending += block
            if eof:
                piece = bytes(pending)
            else:
                cut = pending.rfind(b"\n") + 1
                if cut == 0:
                    continue
                if quoting and pending.count(b'"', 0, cut) % 2:
                    continue  # a quoted field spans the cut: read more before splitting
                piece = bytes(pending[:cut])
                del pending[:cut]
            if piece and not piece.isspace():
                rows = _split_block(piece, header, usecols, line_no, encoding, quoting)
                if len(rows):
                    yield rows
            line_no += piece.count(b"\n")
            if eof:
                return


def _split_block(
    raw: bytes,
    header: Header,
    usecols: Sequence[int],
    first_line: int,
    encoding: str,
    quoting: bool,
) -> Rows:
    text = _decode(raw, header.file, first_line, encoding)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if quoting and '"' in text:
        return _split_quoted(text, header, usecols, first_line)
    delimiter, ncols = header.delimiter, len(header.names)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final line end
    line_numbers = None
    if "" in lines:  # blank lines: drop them, remember where the others were
        keep = np.fromiter(map(len, lines), np.int64, len(lines)) > 0
        line_numbers = first_line + np.flatnonzero(keep)
        lines = list(itertools.compress(lines, keep))
        text = "\n".join(lines)
    counts = np.fromiter(map(str.count, lines, itertools.repeat(delimiter)), np.int64, len(lines))
    bad = np.flatnonzero(counts != ncols - 1)
    rows = Rows(header.file, [], first_line, line_numbers)
    if bad.size:
        row = int(bad[0])
        raise rows.error(
            row,
            f"expected {ncols} fields separated by {delimiter!r}, got {counts[row] + 1}",
        )
    flat = text.replace("\n", delimiter).split(delimiter) if lines else []
    del flat[len(lines) * ncols :]  # the empty field after a final line end
    rows.columns = [flat[c::ncols] for c in usecols]
    return rows


def _split_quoted(text: str, header: Header, usecols: Sequence[int], first_line: int) -> Rows:
    ncols = len(header.names)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=header.delimiter, strict=True)
    records: list[list[str]] = []
    starts: list[int] = []
    previous = 0
    try:
        for record in reader:
            start = first_line + previous
            previous = reader.line_num
            if not record:
                continue
            if len(record) != ncols:
                raise DataError(
                    f"{header.file} line {start}: expected {ncols} fields separated by "
                    f"{header.delimiter!r}, got {len(record)}"
                )
            records.append(record)
            starts.append(start)
    except csv.Error as err:
        raise DataError(f"{header.file} line {first_line + previous}: {err}") from None
    columns = [list(map(operator.itemgetter(c), records)) for c in usecols]
    return Rows(header.file, columns, first_line, np.asarray(starts, dtype=np.int64))


# ----------------------------------------------------------------------------- value parsing


def _canonical_ints(values: list[str], ints: np.ndarray) -> bool:
    """True if every string is exactly `str(int)` (no sign '+', spaces, '_' or leading zeros)."""
    if not "".join(values).isascii():
        return False
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    magnitude_digits = np.searchsorted(_POWERS_OF_TEN, np.abs(ints), side="right")
    digits = np.maximum(magnitude_digits, 1) + (ints < 0)  # "0" has one digit
    return bool(np.array_equal(lengths, digits))


def to_ids(values: list[str], rows: Rows, column: str) -> np.ndarray:
    """Parses raw ids: int64 if every value is a canonical integer, else an object array of str.

    Ids such as "007" or "B000123" stay strings, so that no two distinct ids can collide.
    Surrounding spaces are removed.

    Raises:
        DataError: An id is empty (names the file, line and `column`).
    """
    n = len(values)
    try:
        ints: np.ndarray | None = np.fromiter(map(int, values), np.int64, n)
    except (ValueError, OverflowError):
        ints = None
    if ints is not None and _canonical_ints(values, ints):
        return ints
    stripped = list(map(str.strip, values))
    if ints is not None and _canonical_ints(stripped, ints):
        return ints
    if "" in stripped:
        raise rows.error(stripped.index(""), f"empty {column}")
    out = np.empty(n, dtype=object)
    out[:] = stripped
    return out


def merge_ids(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenates id blocks: int64 if all blocks are int64, else object (ints become str)."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    if all(p.dtype == np.int64 for p in parts):
        return np.concatenate(parts)
    out = np.empty(sum(len(p) for p in parts), dtype=object)
    start = 0
    for part in parts:
        out[start : start + len(part)] = part.astype(str) if part.dtype == np.int64 else part
        start += len(part)
    return out


def to_floats(values: list[str], rows: Rows, column: str) -> np.ndarray:
    """Parses finite numbers into float64.

    Raises:
        DataError: A value is not a finite number (names the file, line and `column`).
    """
    try:
        out = np.fromiter(map(float, values), np.float64, len(values))
    except ValueError:
        for row, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise rows.error(row, f"{column} {value!r} is not a number") from None
        raise  # pragma: no cover - the loop above always finds the culprit
    _check_finite(out, values, rows, column)
    return out


def _check_finite(out: np.ndarray, values: list[str], rows: Rows, column: str) -> None:
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        row = int(bad[0])
        raise rows.error(row, f"{column} {values[row]!r} is not a finite number")


def parse_iso_date(text: str) -> float:
    """Converts an ISO-8601 date or date-time to epoch seconds (naive times are taken as UTC).

    Example:
        >>> parse_iso_date("1970-01-02")
        86400.0
        >>> parse_iso_date("1970-01-01T01:00:00+01:00")
        0.0
    """
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def to_timestamps(values: list[str], rows: Rows, column: str) -> np.ndarray:
    """Parses timestamps: numbers (epoch seconds or any ordinal) or ISO-8601 dates, into float64.

    Raises:
        DataError: A value is neither (names the file, line and `column`).
    """
    try:
        out = np.fromiter(map(float, values), np.float64, len(values))
    except ValueError:
        cache: dict[str, float] = {}
        out = np.empty(len(values), dtype=np.float64)
        for row, value in enumerate(values):
            seconds = cache.get(value)
            if seconds is None:
                try:
                    seconds = float(value)
                except ValueError:
                    try:
                        seconds = parse_iso_date(value)
                    except ValueError:
                        raise rows.error(
                            row, f"{column} {value!r} is neither a number nor an ISO-8601 date"
                        ) from None
                cache[value] = seconds
            out[row] = seconds
    _check_finite(out, values, rows, column)
    return out

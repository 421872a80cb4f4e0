"""Download, verify and cache the GroupLens MovieLens zips (`--data movielens-1m` and friends).

`fetch` returns the extracted folder. The cache holds one folder per data set, e.g.
`~/.cache/attnrec_tf/movielens-1m/` (`$ATTNREC_CACHE` overrides the root); when it exists the
network is not used. Otherwise:

1. `<zip>.md5` is fetched from GroupLens (it reads "MD5 (ml-1m.zip) = c4d9...");
2. the zip is streamed into a temporary file inside the cache folder while its MD5 and SHA-256
   are computed; a wrong MD5 (or a wrong pinned SHA-256) deletes the file and raises;
3. the zip is extracted into a temporary folder next to the final one and renamed into place in
   one step, so an interrupted run never leaves a folder that looks complete.

Progress goes to stderr: a line naming the URL and the cache folder, the package's progress bar
(`attnrec_tf.progress`), and a line saying where the data is cached; a cache hit prints one line
naming the cached folder. A release with no pinned SHA-256 (`KnownDataset.sha256` None) relies
on the MD5 alone (where the pins come from: docs/notes/data-evaluation.md).

MovieLens is for research use only and may not be redistributed; see the README inside each
zip.

Example:
    >>> list(KNOWN_DATASETS)[:2]
    ['movielens-100k', 'movielens-1m']
    >>> folder = fetch("movielens-1m", default_cache_dir())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

from attnrec_tf.data.movielens import detect_movielens
from attnrec_tf.errors import DataError
from attnrec_tf.progress import progress_bar

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
CACHE_ENV = "ATTNREC_CACHE"
_LOG = logging.getLogger(__name__)
_BLOCK = 1 << 20


@dataclass(frozen=True)
class KnownDataset:
    """A downloadable MovieLens release.

    Attributes:
        zip_name: str. File name under the base URL.
        sha256: str | None. Pinned SHA-256 of the zip, or None when not known.
    """

    zip_name: str
    sha256: str | None = None


KNOWN_DATASETS: dict[str, KnownDataset] = {
    "movielens-100k": KnownDataset(
        "ml-100k.zip", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
    ),
    "movielens-1m": KnownDataset(
        "ml-1m.zip", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
    ),
    "movielens-10m": KnownDataset("ml-10m.zip"),
    "movielens-20m": KnownDataset(
        "ml-20m.zip", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"
    ),
    "movielens-25m": KnownDataset(
        "ml-25m.zip", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"
    ),
    "movielens-latest-small": KnownDataset("ml-latest-small.zip"),
    "movielens-latest": KnownDataset("ml-latest.zip"),
}


def default_cache_dir() -> Path:
    """`$ATTNREC_CACHE` if set, else `~/.cache/attnrec_tf`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "attnrec_tf")


def _network_error(url: str, err: BaseException) -> DataError:
    reason = f"HTTP {err.code} {err.reason}" if isinstance(err, urllib.error.HTTPError) else err
    return DataError(
        f"could not download {url}: {reason}; download and extract it yourself and pass "
        "--data PATH to the extracted folder"
    )


def _expected_md5(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read(4096).decode("ascii", errors="replace")
    except (urllib.error.URLError, OSError) as err:
        raise _network_error(url, err) from None
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if match is None:
        raise DataError(f"{url}: no MD5 digest in {text.strip()[:80]!r}")
    return match.group(0).lower()


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


def _download(url: str, target: Path, timeout: float, stream: TextIO) -> tuple[str, str]:
    """Streams `url` into `target` with progress on `stream`; returns its (md5, sha256)."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            size = f" ({_megabytes(total)})" if total else ""
            stream.write(f"download: {url}{size} into {target.parent}\n")
            with progress_bar(
                total, stream, desc="download", unit="B", unit_scale=True, unit_divisor=1000
            ) as bar:
                while block := response.read(_BLOCK):
                    out.write(block)
                    md5.update(block)
                    sha256.update(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as err:
        raise _network_error(url, err) from None
    return md5.hexdigest(), sha256.hexdigest()


def _extract(archive: Path, into: Path, url: str) -> Path:
    """Extracts `archive` into `into`; returns the folder that holds the data files."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                parts = PurePosixPath(name).parts
                if name.startswith(("/", "\\")) or ".." in parts or ":" in name:
                    raise DataError(f"{url}: unsafe path {name!r} in the zip")
            zf.extractall(into)
    except zipfile.BadZipFile as err:
        raise DataError(f"{url}: not a valid zip file ({err})") from None
    entries = [p for p in into.iterdir() if not p.name.startswith("__MACOSX")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return into


def fetch(
    name: str,
    cache_dir: Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60.0,
    progress: TextIO | None = None,
) -> Path:
    """Returns the extracted folder of a known MovieLens release, downloading it if needed.

    Args:
        name: str. A key of `KNOWN_DATASETS`, e.g. "movielens-1m".
        cache_dir: Path. Root of the cache; the data set lands in `cache_dir / name`.
        base_url: str. Where the zips and their .md5 files are. Defaults to GroupLens.
        timeout: float. Seconds to wait for the server on each request. Defaults to `60.0`.
        progress: TextIO | None. Where progress and the cache location are written; None is
            stderr. Defaults to `None`.

    Returns:
        `cache_dir / name`, holding the data files (e.g. ratings.dat).

    Raises:
        DataError: Unknown name, network failure, checksum mismatch or a bad zip.
    """
    if name not in KNOWN_DATASETS:
        raise DataError(f"unknown data set {name!r}; known names: {', '.join(KNOWN_DATASETS)}")
    dataset = KNOWN_DATASETS[name]
    cache_dir = Path(cache_dir)
    final = cache_dir / name
    stream = progress if progress is not None else sys.stderr
    if final.is_dir() and detect_movielens(final) is not None:
        stream.write(f"{name}: using the copy cached in {final}\n")
        return final
    if final.exists():
        raise DataError(
            f"{final} exists but holds no MovieLens ratings file; remove it and try again"
        )
    url = base_url.rstrip("/") + "/" + dataset.zip_name
    expected_md5 = _expected_md5(url + ".md5", timeout)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=cache_dir, prefix=f".{dataset.zip_name}.", suffix=".part"
        )
    except OSError as err:
        raise DataError(
            f"cannot write to the cache folder {cache_dir} ({err}); set ${CACHE_ENV} to a "
            "writable folder"
        ) from None
    os.close(fd)
    archive = Path(tmp_name)
    workdir = None
    try:
        md5, sha256 = _download(url, archive, timeout, stream)
        if md5 != expected_md5:
            raise DataError(
                f"{url}: MD5 mismatch (expected {expected_md5}, got {md5}); the download was "
                "deleted, try again"
            )
        if dataset.sha256 is not None and sha256 != dataset.sha256:
            raise DataError(
                f"{url}: SHA-256 mismatch (expected {dataset.sha256}, got {sha256}); the "
                "download was deleted"
            )
        workdir = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{name}.", suffix=".extract"))
        content = _extract(archive, workdir, url)
        if detect_movielens(content) is None:
            raise DataError(f"{url}: the zip holds no MovieLens ratings file")
        try:
            os.replace(content, final)
        except OSError as err:
            if not (final.is_dir() and detect_movielens(final) is not None):  # not a race
                raise DataError(f"cannot move the extracted data to {final}: {err}") from None
        _LOG.info("extracted %s into %s", url, final)
        stream.write(f"{name}: cached in {final} (the next run reads it from there)\n")
        return final
    finally:
        archive.unlink(missing_ok=True)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

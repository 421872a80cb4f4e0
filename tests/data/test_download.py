from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from attnrec_tf.data import download
from attnrec_tf.data.download import KNOWN_DATASETS, KnownDataset, default_cache_dir, fetch
from attnrec_tf.data.movielens import read_movielens
from attnrec_tf.errors import DataError

from .conftest import RATINGS, LocalServer, make_zip


@pytest.fixture(autouse=True)
def unpinned(monkeypatch):
    """The test zips are synthetic, so the real pinned SHA-256 of ml-1m.zip cannot match."""
    monkeypatch.setitem(KNOWN_DATASETS, "movielens-1m", KnownDataset("ml-1m.zip", None))


def all_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_fetch_downloads_verifies_and_caches(server, tmp_path):
    make_zip(server.root, "ml-1m.zip", "ml-1m")
    cache = tmp_path / "cache"
    folder = fetch("movielens-1m", cache, base_url=server.url)
    assert folder == cache / "movielens-1m"
    assert sorted(p.name for p in folder.iterdir()) == ["movies.dat", "ratings.dat"]
    assert all_files(cache) == [
        "movielens-1m",
        "movielens-1m/movies.dat",
        "movielens-1m/ratings.dat",
    ]
    assert server.requests == ["/ml-1m.zip.md5", "/ml-1m.zip"]
    data = read_movielens(folder)
    assert data.name == "movielens-1m" and len(data.interactions) == len(RATINGS)

    server.stop()  # the second call must not need the network
    assert fetch("movielens-1m", cache, base_url=server.url) == folder


def test_pinned_sha256_is_checked(server, tmp_path, monkeypatch):
    archive = make_zip(server.root, "ml-1m.zip", "ml-1m")
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(KNOWN_DATASETS, "movielens-1m", KnownDataset("ml-1m.zip", good))
    assert fetch("movielens-1m", tmp_path / "ok", base_url=server.url).is_dir()
    monkeypatch.setitem(KNOWN_DATASETS, "movielens-1m", KnownDataset("ml-1m.zip", "0" * 64))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        fetch("movielens-1m", tmp_path / "bad", base_url=server.url)
    assert all_files(tmp_path / "bad") == []


def test_md5_mismatch_raises_and_leaves_nothing(server, tmp_path):
    archive = make_zip(
        server.root, "ml-1m.zip", "ml-1m", md5_text=f"MD5 (ml-1m.zip) = {'a' * 32}\n"
    )
    actual = hashlib.md5(archive.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        fetch("movielens-1m", cache, base_url=server.url)
    message = str(err.value)
    assert f"{server.url}ml-1m.zip" in message and "a" * 32 in message and actual in message
    assert all_files(cache) == []


def test_missing_zip_is_a_data_error(server, tmp_path):
    with pytest.raises(DataError) as err:
        fetch("movielens-100k", tmp_path / "cache", base_url=server.url)
    message = str(err.value)
    assert "ml-100k.zip" in message and "404" in message and "--data PATH" in message


def test_unreachable_server(tmp_path):
    server = LocalServer(tmp_path)
    url = server.url
    server.stop()
    with pytest.raises(DataError, match="could not download .*--data PATH"):
        fetch("movielens-1m", tmp_path / "cache", base_url=url, timeout=5)


def test_md5_file_without_digest(server, tmp_path):
    make_zip(server.root, "ml-1m.zip", "ml-1m", md5_text="<html>not found</html>")
    with pytest.raises(DataError, match="no MD5 digest"):
        fetch("movielens-1m", tmp_path / "cache", base_url=server.url)


def test_zip_without_movielens_files(server, tmp_path):
    archive = server.root / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/readme.txt", "nothing here")
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    (server.root / "ml-1m.zip.md5").write_text(f"MD5 (ml-1m.zip) = {digest}\n")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="holds no MovieLens ratings file"):
        fetch("movielens-1m", cache, base_url=server.url)
    assert all_files(cache) == []


def test_unknown_name(tmp_path):
    with pytest.raises(
        DataError, match="unknown data set 'movielens-2m'; known names: movielens-100k"
    ):
        fetch("movielens-2m", tmp_path)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv(download.CACHE_ENV)
    assert default_cache_dir().parts[-2:] == (".cache", "attnrec_tf")


def test_every_known_dataset_has_a_zip_name():
    assert {
        "movielens-100k",
        "movielens-1m",
        "movielens-10m",
        "movielens-20m",
        "movielens-25m",
        "movielens-latest-small",
        "movielens-latest",
    } <= set(KNOWN_DATASETS)
    for dataset in KNOWN_DATASETS.values():
        assert dataset.zip_name.endswith(".zip")
        assert dataset.sha256 is None or len(dataset.sha256) == 64


# --- progress and the cache location ------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_download_says_what_it_fetches_and_where_it_is_cached(server, tmp_path):
    make_zip(server.root, "ml-1m.zip", "ml-1m")
    size = (server.root / "ml-1m.zip").stat().st_size
    cache = tmp_path / "cache"
    out = io.StringIO()
    folder = fetch("movielens-1m", cache, base_url=server.url, progress=out)
    assert "\r" not in out.getvalue()  # not a terminal: plain lines, for logs
    lines = out.getvalue().splitlines()
    assert lines[0] == f"download: {server.url}ml-1m.zip ({size / 1e6:.1f} MB) into {cache}"
    assert lines[-2].startswith("download: 100%|") and f"{size}/{size} [" in lines[-2]
    assert len(lines) == 3  # a fast download: no line before the last
    assert lines[-1] == f"movielens-1m: cached in {folder} (the next run reads it from there)"
    again = io.StringIO()
    assert fetch("movielens-1m", cache, base_url=server.url, progress=again) == folder
    assert again.getvalue() == f"movielens-1m: using the copy cached in {folder}\n"


def test_progress_goes_to_stderr_by_default(server, tmp_path, capsys):
    make_zip(server.root, "ml-1m.zip", "ml-1m")
    folder = fetch("movielens-1m", tmp_path / "cache", base_url=server.url)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"movielens-1m: cached in {folder}" in captured.err


def test_a_terminal_gets_a_bar_redrawn_in_place(server, tmp_path):
    make_zip(server.root, "ml-1m.zip", "ml-1m")
    size = (server.root / "ml-1m.zip").stat().st_size
    out = _Terminal()
    folder = fetch("movielens-1m", tmp_path / "cache", base_url=server.url, progress=out)
    text = out.getvalue()
    first, rest = text.split("\n", 1)
    assert first.startswith("download: http")
    frames, last = rest.rsplit("\n", 2)[0].split("\r")[1:], rest.rsplit("\n", 2)[1]
    assert frames and all(frame.startswith("download: ") for frame in frames)
    assert frames[-1].startswith("download: 100%|") and f"{size}/{size}" in frames[-1]
    assert last == f"movielens-1m: cached in {folder} (the next run reads it from there)"

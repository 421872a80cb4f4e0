"""Fixtures for the data tests: tiny MovieLens folders (synthetic rows) and a local HTTP server.

Nothing here touches the internet or copies MovieLens data: every row is made up.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# user, item, rating, timestamp; user 1 has a tie at t=300 (items 3 then 1, file order)
RATINGS = [
    (1, 2, 5, 100),
    (1, 3, 4, 300),
    (1, 1, 3, 300),
    (1, 4, 2, 200),
    (2, 1, 5, 50),
    (2, 2, 4, 60),
    (2, 3, 1, 70),
    (3, 4, 3, 10),
]
MOVIES = [
    (1, "Misérables, Les (1995)", "Drama|Musical"),
    (2, "Star Wars: Episode IV - A New Hope (1977)", "Action|Sci-Fi"),
    (3, "Toy Story (1995)", "Animation|Children's|Comedy"),
    (4, "Shoah (1985)", "Documentary"),
]


def write_ml1m(folder: Path) -> Path:
    """Writes ratings.dat and movies.dat (latin-1) in the ML-1M layout; returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in RATINGS))
    (folder / "movies.dat").write_bytes(
        "".join(f"{m}::{title}::{genres}\n" for m, title, genres in MOVIES).encode("latin-1")
    )
    return folder


@pytest.fixture
def ml1m_folder(tmp_path: Path) -> Path:
    return write_ml1m(tmp_path / "ml-1m")


def make_zip(directory: Path, zip_name: str, inner: str, md5_text: str | None = None) -> Path:
    """Zips a synthetic ML-1M folder as `directory/zip_name` (top folder `inner`) + its .md5."""
    source = write_ml1m(directory / "_src" / inner)
    archive = directory / zip_name
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.iterdir()):
            zf.write(path, f"{inner}/{path.name}")
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    md5_text = md5_text if md5_text is not None else f"MD5 ({zip_name}) = {digest}\n"
    (directory / f"{zip_name}.md5").write_text(md5_text)
    return archive


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).requests.append(self.path)
        super().do_GET()


class LocalServer:
    """An http.server on 127.0.0.1 (random port) serving `root`, in a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler: type[_QuietHandler] = type("Handler", (_QuietHandler,), {"requests": []})
        self.handler = handler
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
        )
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    @property
    def requests(self) -> list[str]:
        return self.handler.requests

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    root = tmp_path / "www"
    root.mkdir()
    srv = LocalServer(root)
    try:
        yield srv
    finally:
        srv.stop()

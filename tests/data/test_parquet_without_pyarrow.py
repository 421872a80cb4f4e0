"""Without pyarrow, a Parquet file is one line naming the package and its install command."""

from __future__ import annotations

import sys

import pytest

from attnrec_tf import train
from attnrec_tf.data import sources
from attnrec_tf.errors import MissingDependencyError

INSTALL = "reading Parquet: pyarrow is not installed (pip install pyarrow)"


@pytest.fixture
def no_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)


def test_reading_names_the_package_and_the_command(tmp_path, no_pyarrow):
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(MissingDependencyError) as error:
        sources.load(str(path))
    assert str(error.value) == f"{path}: {INSTALL}"


def test_the_cli_prints_it_on_one_line(tmp_path, no_pyarrow, capsys):
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1")
    status = train.main(["--data", str(path), "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err == f"error: {path}: {INSTALL}"

"""The bench needs a source checkout; outside one it says so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import common, suites


def test_the_tests_run_in_a_checkout() -> None:
    assert common.checkout_problem() is None


def test_outside_a_checkout_one_line_error_and_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(common, "ROOT", tmp_path / "site-packages")
    assert suites.main(["--suite", "render", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "source checkout" in err and "make bench" in err

import pytest

from attnrec_tf import atomic


def test_write_json_and_no_leftovers(tmp_path):
    atomic.write_json(tmp_path / "r.json", {"a": 1})
    assert (tmp_path / "r.json").read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_staged_path_failure_leaves_nothing(tmp_path):
    final = tmp_path / "1"
    with pytest.raises(RuntimeError):
        with atomic.staged_path(final) as tmp:
            tmp.mkdir()
            (tmp / "half").write_text("x")
            raise RuntimeError("crash during export")
    assert list(tmp_path.iterdir()) == []


def test_staged_path_replaces_folder(tmp_path):
    final = tmp_path / "model"
    for text in ("old", "new"):
        with atomic.staged_path(final) as tmp:
            tmp.mkdir()
            (tmp / "f").write_text(text)
    assert (final / "f").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]

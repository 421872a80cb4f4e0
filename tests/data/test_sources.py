from __future__ import annotations

import pytest

from attnrec_tf.data.download import KNOWN_DATASETS, KnownDataset
from attnrec_tf.data.sources import load
from attnrec_tf.errors import DataError

from .conftest import RATINGS, make_zip


def test_default_and_synthetic():
    assert load(None).name == "synthetic"
    data = load("synthetic", synthetic_seed=3)
    assert data.source == "synthetic(seed=3)"


def test_folder_is_read_as_movielens(ml1m_folder):
    data = load(str(ml1m_folder))
    assert data.name == "movielens-1m" and len(data.interactions) == len(RATINGS)


def test_file_is_read_with_the_column_options(tmp_path):
    path = tmp_path / "clicks.psv"
    path.write_text("who|what|when|kind\n1|a|5|x\n2|b|6|y\n")
    data = load(
        str(path),
        user_col="who",
        item_col="what",
        time_col="when",
        feature_cols=["kind"],
        delimiter="|",
    )
    assert data.name == "clicks.psv"
    assert data.interactions.items.tolist() == ["a", "b"]
    assert data.items.features["kind"] == {"a": ("x",), "b": ("y",)}


def test_known_name_is_downloaded(server, tmp_path, monkeypatch):
    monkeypatch.setitem(KNOWN_DATASETS, "movielens-1m", KnownDataset("ml-1m.zip", None))
    make_zip(server.root, "ml-1m.zip", "ml-1m")
    data = load("movielens-1m", cache_dir=tmp_path / "cache", base_url=server.url)
    assert data.name == "movielens-1m" and len(data.interactions) == len(RATINGS)


def test_unknown_spec(tmp_path):
    with pytest.raises(DataError) as err:
        load(str(tmp_path / "nothing"))
    message = str(err.value)
    assert "no such file or folder" in message
    assert "synthetic" in message and "movielens-1m" in message


def test_sized_synthetic_spec():
    from attnrec_tf.data.sources import load

    data = load("synthetic:num_users=50,num_items=40,mean_length=10", synthetic_seed=2)
    assert len(set(data.interactions.users.tolist())) == 50
    assert len(set(data.interactions.items.tolist())) <= 40


def test_bad_synthetic_spec_names_the_flag():
    import pytest

    from attnrec_tf.data.sources import load
    from attnrec_tf.errors import DataError

    with pytest.raises(DataError, match="--data 'synthetic:users=x'"):
        load("synthetic:users=x")

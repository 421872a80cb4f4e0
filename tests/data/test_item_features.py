from __future__ import annotations

import numpy as np
import pytest

from attnrec_tf.data.interactions import ItemMetadata
from attnrec_tf.data.item_features import item_feature_matrix
from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import ConfigError

META = ItemMetadata(
    titles={1: "One"},
    features={
        "genres": {1: ("Drama",), 2: ("Comedy", "Drama"), 3: (), 99: ("Horror",)},
        "decade": {1: ("1990s",), 3: ("1980s",)},
    },
)


def test_multi_hot_rows_follow_the_vocabulary():
    vocab = Vocabulary([3, 2, 1, 4])  # 4 has no metadata; 99 is not in the vocabulary
    matrix, names = item_feature_matrix(vocab, META)
    assert names == ["decade=1980s", "decade=1990s", "genres=Comedy", "genres=Drama"]
    assert matrix.dtype == np.float32 and matrix.shape == (5, 4)
    assert matrix.tolist() == [
        [0, 0, 0, 0],  # padding
        [1, 0, 0, 0],  # 3
        [0, 0, 1, 1],  # 2
        [0, 1, 0, 1],  # 1
        [0, 0, 0, 0],  # 4
    ]


def test_selected_features_keep_the_requested_order():
    _, names = item_feature_matrix(Vocabulary([1, 2]), META, names=["genres", "decade"])
    assert names == ["genres=Comedy", "genres=Drama", "decade=1990s"]


def test_no_features_gives_an_empty_matrix():
    matrix, names = item_feature_matrix(Vocabulary(["a", "b"]), ItemMetadata())
    assert matrix.shape == (3, 0) and names == []


def test_string_ids():
    meta = ItemMetadata(features={"tag": {"a": ("x",), "b": ("y", "x")}})
    matrix, names = item_feature_matrix(Vocabulary(["b", "a"]), meta)
    assert names == ["tag=x", "tag=y"] and matrix.tolist() == [[0, 0], [1, 1], [1, 0]]


def test_unknown_feature():
    with pytest.raises(ConfigError, match="'mood' not in the data; available: decade, genres"):
        item_feature_matrix(Vocabulary([1]), META, names=["mood"])

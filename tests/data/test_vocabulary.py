from __future__ import annotations

import json

import numpy as np
import pytest

from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import DataError


def test_integer_ids_encode_decode():
    vocab = Vocabulary([30, 10, 20])
    assert vocab.num_items == 3 and vocab.size == 4 and vocab.id_dtype == "int64"
    assert vocab.raw_ids.dtype == np.int64 and vocab.raw_ids.tolist() == [30, 10, 20]
    encoded = vocab.encode(np.array([[10, 99], [30, 20]]))
    assert encoded.dtype == np.int32 and encoded.tolist() == [[2, 0], [1, 3]]
    assert vocab.decode(encoded).tolist() == [[10, 0], [30, 20]]
    assert vocab.encode(["20", "x", "010"]).tolist() == [3, 0, 0]  # decimal strings accepted


def test_string_ids_encode_decode():
    vocab = Vocabulary(np.array(["b", "a", "12"]))
    assert vocab.id_dtype == "string" and vocab.raw_ids.dtype == object
    assert vocab.encode(["a", "zzz", "b"]).tolist() == [2, 0, 1]
    assert vocab.encode([12]).tolist() == [3]  # compared as text
    assert vocab.decode([0, 1, 3]).tolist() == ["", "b", "12"]


def test_raw_ids_are_read_only():
    vocab = Vocabulary([1, 2])
    with pytest.raises(ValueError):
        vocab.raw_ids[0] = 5


def test_duplicates_and_mixed_types_are_rejected():
    with pytest.raises(ValueError, match="7 appears twice"):
        Vocabulary([7, 8, 7])
    with pytest.raises(ValueError, match="'x' appears twice"):
        Vocabulary(["x", "y", "x"])
    with pytest.raises(TypeError):
        Vocabulary([1, "a"])


def test_fit_by_frequency_breaks_ties_by_first_appearance():
    vocab = Vocabulary.fit(np.array([5, 9, 7, 9, 7, 3]))
    assert vocab.raw_ids.tolist() == [9, 7, 5, 3]
    vocab = Vocabulary.fit(np.array(["q", "p", "p", "r", "q"], dtype=object))
    assert vocab.raw_ids.tolist() == ["q", "p", "r"]


def test_fit_by_appearance():
    assert Vocabulary.fit([5, 9, 7, 9], order="appearance").raw_ids.tolist() == [5, 9, 7]
    with pytest.raises(ValueError, match="`order` must be one of"):
        Vocabulary.fit([1], order="alphabetical")


def test_decode_rejects_out_of_range():
    with pytest.raises(IndexError):
        Vocabulary([1, 2]).decode([3])
    with pytest.raises(IndexError):
        Vocabulary([1, 2]).decode([-1])


def test_empty_vocabulary():
    vocab = Vocabulary(np.zeros(0, dtype=np.int64))
    assert vocab.size == 1 and vocab.encode([1, 2]).tolist() == [0, 0]


@pytest.mark.parametrize("raw", [[30, 10, 20], ["b", "a", "12"]])
def test_json_and_file_round_trip(tmp_path, raw):
    vocab = Vocabulary(raw)
    data = json.loads(json.dumps(vocab.to_json()))
    again = Vocabulary.from_json(data)
    assert again == vocab and again.id_dtype == vocab.id_dtype
    path = tmp_path / "vocabulary.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.encode(raw).tolist() == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["vocabulary.json"]  # no temporary left


def test_string_ids_that_look_like_numbers_stay_strings(tmp_path):
    vocab = Vocabulary(["007", "7"])
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").raw_ids.tolist() == ["007", "7"]


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="no such vocabulary file"):
        Vocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not a valid vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DataError, match="other.json"):
        Vocabulary.load(tmp_path / "other.json")
    doc = Vocabulary([1]).to_json() | {"raw_ids": ["1"]}
    with pytest.raises(ValueError, match="must be of type int"):
        Vocabulary.from_json(doc)

"""Android demo assets: config.json against the .tflite tensors, movie list, choice rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.export import android_assets
from tests.export.conftest import TOP_K, keras_top_k, long_histories

REPOSITORY_ASSETS = Path(__file__).resolve().parents[2] / "android_demo_assets"


@pytest.fixture(scope="module")
def folder(exported_run) -> Path:
    return Path(exported_run["export"]["android"]["path"])


def test_exported_assets_have_no_problems(folder, exported_run):
    assert android_assets.check_assets(folder) == []
    android = exported_run["export"]["android"]
    assert android["model_file"] == f"attnrec_{android['kind']}.tflite"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["README.md", "config.json", "sorted_movie_vocab.json", android["model_file"]]
    )


def test_config_indices_are_the_interpreter_positions(folder, exported_run):
    from ai_edge_litert.interpreter import Interpreter

    config = json.loads((folder / "config.json").read_text())
    interpreter = Interpreter(model_path=str(folder / config["model"]))
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    (feature,) = config["inputs"]
    assert feature["name"] == "movieFeature"
    assert inputs[feature["index"]]["name"] == "history"
    assert feature["inputLength"] == exported_run["export"]["history_length"] == 512
    assert outputs[config["outputIdsIndex"]]["name"] == "item_ids"
    assert outputs[config["outputScoresIndex"]]["name"] == "scores"
    assert config["outputLength"] == config["topK"] == TOP_K
    assert list(outputs[config["outputIdsIndex"]]["shape"]) == [TOP_K]  # the app's int[K]


def test_movie_list_is_the_items_table_by_count(folder, trained_run):
    movies = json.loads((folder / "sorted_movie_vocab.json").read_text())
    items = json.loads((trained_run.root / "items.json").read_text())
    assert len(movies) == trained_run.vocabulary.num_items
    assert [m["count"] for m in movies] == sorted((m["count"] for m in movies), reverse=True)
    by_index = {item["index"]: item for item in items}
    for movie in movies[:20]:
        item = by_index[movie["id"]]
        assert (movie["title"], movie["genres"], movie["count"]) == (
            item["title"],
            item["genres"],
            item["count"],
        )


def test_demo_style_right_padded_input_matches_evaluated_file(folder, exported_run, trained_run):
    from attnrec_tf.export.litert import LiteRTRecommender

    config = json.loads((folder / "config.json").read_text())
    android = LiteRTRecommender(folder / config["model"])
    kind = exported_run["export"]["android"]["kind"]
    evaluated = LiteRTRecommender(Path(exported_run["artifacts"][f"tflite_{kind}"]["path"]))
    for history in trained_run.split.histories("test")[:10]:
        tail = history[-android.history_length :]
        right = np.zeros(android.history_length, np.int32)
        right[: len(tail)] = tail
        np.testing.assert_array_equal(
            android.run_window(right)["item_ids"], evaluated(history)["item_ids"]
        )
    assert exported_run["export"]["android"]["top_k_agreement_with_evaluated_file"] == 1.0


def test_no_selected_movie_is_recommended_beyond_the_models_window(folder, trained_run):
    """A selection longer than max_len (but within inputLength) is excluded in full."""
    from attnrec_tf.export.litert import LiteRTRecommender

    config = json.loads((folder / "config.json").read_text())
    android = LiteRTRecommender(folder / config["model"])
    selections = long_histories(trained_run.split.histories("test"))
    assert max(map(len, selections)) > android.max_len
    expected, _ = keras_top_k(trained_run.model, selections, exclude="all")
    overlap = []
    for selection, reference in zip(selections, expected, strict=True):
        right = np.zeros(config["inputs"][0]["inputLength"], np.int32)
        right[: len(selection)] = selection
        ids = android.run_window(right)["item_ids"]
        assert not set(ids.tolist()) & set(selection.tolist())
        overlap.append(len(set(ids.tolist()) & set(reference.tolist())) / TOP_K)
    assert np.mean(overlap) >= 0.9  # the app's file may be quantized


def test_check_assets_reports_broken_configs(folder, tmp_path):
    broken = tmp_path / "assets"
    shutil.copytree(folder, broken)
    config = json.loads((broken / "config.json").read_text())

    def problems_with(**changes):
        (broken / "config.json").write_text(json.dumps({**config, **changes}))
        return android_assets.check_assets(broken)

    swapped = problems_with(
        outputIdsIndex=config["outputScoresIndex"], outputScoresIndex=config["outputIdsIndex"]
    )
    assert any("outputIdsIndex" in p for p in swapped)
    assert any(
        "inputLength" in p or "feeds int32" in p
        for p in problems_with(inputs=[{**config["inputs"][0], "inputLength": 10}])
    )
    assert problems_with(topK=TOP_K + 1)
    assert problems_with(model="missing.tflite")
    assert problems_with(outputIdsIndex="2")
    (broken / "config.json").write_text("{not json")
    assert android_assets.check_assets(broken)


def test_choose_kind_rule():
    metrics = {"keras": {"ndcg@10": 0.20}, "tflite_dynamic_int8": {"ndcg@10": 0.197}}
    assert (
        android_assets.choose_kind(metrics, ["float32", "dynamic_int8"])["kind"] == "dynamic_int8"
    )
    metrics["tflite_dynamic_int8"]["ndcg@10"] = 0.195  # 2.5% below
    choice = android_assets.choose_kind(metrics, ["float32", "dynamic_int8"])
    assert choice["kind"] == "float32" and "below" in choice["reason"]
    assert android_assets.choose_kind(metrics, ["float32"])["kind"] == "float32"
    assert android_assets.choose_kind(metrics, ["int8"])["kind"] == "int8"
    # with keras_window (Keras on the same window) the rule measures quantisation only
    metrics["keras_window"] = {"ndcg@10": 0.196}
    choice = android_assets.choose_kind(metrics, ["float32", "dynamic_int8"])
    assert choice["kind"] == "dynamic_int8" and "keras_window" in choice["reason"]


def test_movie_list_sorting_ties_by_id():
    items = [
        {"index": 2, "id": 20, "title": "B", "genres": ["x"], "count": 3},
        {"index": 1, "id": 10, "title": "A", "genres": [], "count": 3},
        {"index": 3, "id": 30, "title": "", "genres": ["y"], "count": 9},
    ]
    movies = android_assets.movie_list(items)
    assert [m["id"] for m in movies] == [3, 1, 2]
    assert movies[0] == {"id": 3, "title": "30", "genres": ["y"], "count": 9}


@pytest.mark.skipif(
    not list(REPOSITORY_ASSETS.glob("*.tflite")),
    reason="the repository's android_demo_assets/ has no .tflite yet (made by the default run)",
)
def test_repository_android_demo_assets():
    assert android_assets.check_assets(REPOSITORY_ASSETS) == []

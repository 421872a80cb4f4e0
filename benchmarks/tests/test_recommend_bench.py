"""The bench's `recommend` suite on the small demo run: every user, both runtimes, agreement."""

from __future__ import annotations

import pytest

from benchmarks.recommend_bench import recommend_markdown, recommend_suite
from tests.demo_run import demo_run as build_or_reuse_demo_run


def test_recommend_suite_writes_every_user_and_agrees_with_serving(tmp_path_factory, tmp_path):
    pytest.importorskip("pyarrow.parquet", reason="pip install pyarrow")
    run = build_or_reuse_demo_run(tmp_path_factory)
    entry = recommend_suite(run, tmp_path)
    assert set(entry["runtimes"]) == {"saved_model", "tflite dynamic_int8"}
    saved_model = entry["runtimes"]["saved_model"]
    assert saved_model["rows"] == entry["users"] > 0
    assert saved_model["sample_agreement"] == 1.0  # the same graph, batched or not
    assert 0.5 <= entry["runtimes"]["tflite dynamic_int8"]["sample_agreement"] <= 1.0
    text = recommend_markdown(entry)
    assert text.startswith("## Batch recommendations for every user")
    assert f"| saved_model | {saved_model['seconds']:.1f} |" in text

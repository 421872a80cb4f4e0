"""The faithfulness benchmark on the small demo run: the counterfactual reasons are true."""

from __future__ import annotations

from benchmarks.explanations import METHODS, explanations_markdown, faithfulness
from tests.demo_run import demo_run as build_or_reuse_demo_run


def test_counterfactual_reasons_are_the_best_removal_and_lower_the_score(tmp_path_factory):
    run = build_or_reuse_demo_run(tmp_path_factory)
    entry = faithfulness(run, users=12)
    assert set(entry["methods"]) == set(METHODS) and entry["pairs"] == 120
    ours = entry["methods"]["counterfactual"]
    assert ours["shown"] > 0.5
    assert ours["lowers"] == 1.0  # the SavedModel agrees: each shown removal lowers the score
    assert ours["is_best"] >= 0.9
    assert ours["rank_without"] >= ours["rank"]
    device = entry["methods"]["on_device"]  # max_len 12 <= 16: the file removes every item
    assert entry["on_device_removed"] == 1.0
    assert device["lowers"] == 1.0 and device["is_best"] >= 0.9
    random = entry["methods"]["random"]
    assert random["shown"] == 1.0 and random["is_best"] < ours["is_best"]
    assert entry["on_device_explain_ms_p50"] > 0 and entry["on_device_explain_history"] == 20
    assert entry["on_device_explain_ms_p50_full_window"] > 0
    assert entry["on_device_explain_full_window"] == 12  # the demo model's max_len
    table = explanations_markdown({"demo": entry})
    assert "| demo (sasrec) | 12 | counterfactual |" in table
    short, full = table.splitlines()[-2:]
    assert short.startswith("| demo (sasrec) | 20 | ") and short.endswith(" ms |")
    assert full.startswith("| demo (sasrec) | 12 (a full window) | ") and full.endswith(" ms |")


def test_a_method_that_shows_nothing_is_a_dash_row():
    entry = {"variant": "sasrec", "users": 3, "methods": {"additive": {"shown": 0.0}}}
    assert explanations_markdown({"r": entry}).splitlines()[-1] == (
        "| r (sasrec) | 3 | additive | 0% | - | - | - |"
    )

"""`report.format_table`: one row per model or artifact, summaries left out."""

from __future__ import annotations

from attnrec_tf.report import artifact_metrics, format_table

ROWS = {
    "keras": {"hr@10": 0.5075, "ndcg@10": 0.38444, "mrr": 0.35531, "num_users": 2000},
    "popularity": {"hr@10": 0.091, "ndcg@10": 0.0496, "mrr": 0.0495, "num_users": 2000},
    "tflite_float32": {"hr@10": 0.5075, "ndcg@10": 0.3844, "mrr@10": 0.3, "num_users": 2000},
}
BY_LENGTH = {
    "lengths": [1, 3, 5, 10, 20, 50, "all"],
    "num_users": 2000,
    "model": {"hr@10": [0.1] * 7, "ndcg@10": [0.05] * 7},
    "popularity": {"hr@10": [0.09] * 7, "ndcg@10": [0.04] * 7},
    "item_knn": {"skipped": "catalog too large"},
}
TABLE = """\
model           HR@10   NDCG@10 MRR
keras           0.5075  0.3844  0.3553
popularity      0.0910  0.0496  0.0495
tflite_float32  0.5075  0.3844  -"""


def test_table_is_unchanged_by_the_history_length_entry():
    assert format_table(ROWS) == TABLE
    with_entry = {"keras": ROWS["keras"], "popularity": ROWS["popularity"]}
    with_entry["by_history_length"] = BY_LENGTH
    with_entry["tflite_float32"] = ROWS["tflite_float32"]
    assert format_table(with_entry) == TABLE


def test_artifact_metrics_keeps_the_order_and_drops_summaries():
    metrics = {"keras": {}, "by_history_length": BY_LENGTH, "saved_model": {}}
    assert list(artifact_metrics(metrics)) == ["keras", "saved_model"]
    assert "by_history_length" in metrics  # not modified

"""A small prepared folder is read into memory: the same run as on the log it came from.

`python -m attnrec_tf.prepare` writes the folder (DuckDB), `train --data FOLDER` reads it whole
(`--no-stream`, the default below 10^7 training interactions): vocabulary, split, item features
and so the training batches are the log's, and the test metrics equal a run on the log itself
to the last digit (issue 21: one data path).
"""

from __future__ import annotations

from attnrec_tf.data import shards

LOG = "synthetic:num_users=400,num_items=120"
TINY = dict(
    epochs=3, max_len=12, embedding_dim=16, attention_units=16, batch_size=32,
    sampled_negatives=0, export=False, verbose=0, seed=3, context_crops=2,
)  # fmt: skip


def test_a_run_on_the_prepared_folder_equals_the_run_on_the_log(tmp_path) -> None:
    import attnrec_tf
    from attnrec_tf import prepare

    folder = tmp_path / "prepared"
    assert prepare.main(["--data", LOG, "--seed", "3", "--output", str(folder)]) == 0
    assert shards.read_item_features(folder) is not None  # the genres travel with the folder
    on_folder = attnrec_tf.fit(data=str(folder), output_dir=tmp_path / "f", **TINY).report
    on_log = attnrec_tf.fit(data=LOG, output_dir=tmp_path / "l", **TINY).report
    assert on_folder["metrics"]["keras"] == on_log["metrics"]["keras"]
    assert on_folder["metrics"]["by_history_length"] == on_log["metrics"]["by_history_length"]
    for key in ("loss", "ndcg@10"):  # every epoch's, to the last digit
        assert [e[key] for e in on_folder["history"]] == [e[key] for e in on_log["history"]]
    assert on_folder["dataset"]["item_features"] == on_log["dataset"]["item_features"] != []
    assert on_folder["dataset"]["num_interactions"] == on_log["dataset"]["num_interactions"]

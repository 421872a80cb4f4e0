"""`train --data PREPARED_FOLDER`: training streamed from prepared shards (issue 21, item 3).

The folder is written here with `shards.ShardWriter` from the split the in-memory path builds
for the same synthetic log, so the two runs see the same users, targets and item counts; only
the batch order differs (the stream's shuffle buffer and buckets), so their test metrics are
close, not equal.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf import atomic
from attnrec_tf.data import shards, sources
from attnrec_tf.data.sequences import build_sequences, leave_one_out
from attnrec_tf.run_dir import item_table
from tests.reliability.conftest import report, run_train
from tests.reliability.test_resume import STATE, _kill_when, _start, _state, assert_same_results

LOG = "synthetic:num_users=1500,num_items=150"
TINY = dict(
    epochs=6, max_len=10, embedding_dim=16, attention_units=16, batch_size=32, learning_rate=0.01,
    sampled_negatives=0, export=False, verbose=0, seed=0, item_features=False,
)  # fmt: skip


def write_prepared(folder: Path, num_shards: int = 3) -> None:
    """The in-memory path's leave-one-out split of `LOG`, as a prepared folder."""
    loaded = sources.load(LOG, synthetic_seed=0)
    vocabulary, sequences, stats = build_sequences(loaded.interactions)
    split = leave_one_out(sequences)
    n = len(split.users)
    manifest = {
        "dataset": {"name": "synthetic"},
        "protocol": split.protocol,
        "filters": dataclasses.asdict(stats),
    }
    with shards.ShardWriter(folder, num_shards) as writer:
        writer.add(split.users, np.arange(n), split.train, split.valid_targets, split.test_targets)
        writer.finish(manifest, vocabulary)
    # What `prepare` adds beside the shards when the log has item metadata.
    atomic.write_json(folder / "items.json", item_table(vocabulary, loaded.items, split.train))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "prepared"
    write_prepared(folder)
    return folder


def test_streamed_and_in_memory_runs_both_learn_and_agree(prepared, tmp_path) -> None:
    import attnrec_tf

    streamed = attnrec_tf.fit(
        data=str(prepared), stream=True, output_dir=tmp_path / "s", **TINY
    ).report
    in_memory = attnrec_tf.fit(data=LOG, output_dir=tmp_path / "m", **TINY).report
    for run in (streamed, in_memory):
        keras, popularity = run["metrics"]["keras"], run["metrics"]["popularity"]
        assert keras["num_users"] == 1500
        assert keras["ndcg@10"] > 2 * popularity["ndcg@10"]
    # The same users, targets and training counts: the same popularity baseline, exactly.
    assert streamed["metrics"]["popularity"] == in_memory["metrics"]["popularity"]
    got, want = streamed["metrics"]["keras"]["ndcg@10"], in_memory["metrics"]["keras"]["ndcg@10"]
    assert got == pytest.approx(want, rel=0.15)
    # The windows are the same, so are the positions and (last windows only) the steps.
    assert streamed["examples_per_epoch"] == in_memory["examples_per_epoch"]
    assert streamed["steps_per_epoch"] == in_memory["steps_per_epoch"]
    entry = streamed["dataset"]
    assert entry["name"] == "synthetic" and entry["source"] == str(prepared)
    assert entry["num_users"] == 1500 and entry["num_evaluated"] == 1500
    assert entry["num_items"] == in_memory["dataset"]["num_items"]
    for key in ("num_interactions", "raw_interactions", "items_dropped"):
        assert entry[key] == in_memory["dataset"][key], key
    error = streamed["metrics"]["standard_error"]
    # sd / sqrt(n): per-user NDCG@10 lies in [0, 1], so its sd is at most 1/2.
    assert error["num_users"] == 1500 and 0 < error["ndcg@10"] < 0.5 / np.sqrt(1500)


def test_eval_users_samples_the_in_memory_users_and_the_export_works(prepared, tmp_path) -> None:
    import attnrec_tf

    options = {**TINY, "epochs": 1, "eval_users": 50}
    # The export reads the run folder's vocabulary, items, split and histories: they exist.
    streamed = attnrec_tf.fit(
        data=str(prepared), stream=True, output_dir=tmp_path / "s", **{**options, "export": True}
    )
    in_memory = attnrec_tf.fit(data=LOG, output_dir=tmp_path / "m", **options)
    served = streamed.report["metrics"]["saved_model"]
    assert served["ndcg@10"] == pytest.approx(streamed.report["metrics"]["keras"]["ndcg@10"])
    with np.load(tmp_path / "s" / "split.npz") as a, np.load(tmp_path / "m" / "split.npz") as b:
        assert a["users"].tolist() == b["users"].tolist() and len(a["users"]) == 50
        np.testing.assert_array_equal(a["test_targets"], b["test_targets"])
        np.testing.assert_array_equal(a["train_flat"], b["train_flat"])
    assert streamed.report["metrics"]["popularity"] == in_memory.report["metrics"]["popularity"]
    items = json.loads((tmp_path / "s" / "items.json").read_text())
    assert items == json.loads((tmp_path / "m" / "items.json").read_text())  # the folder's
    counts = shards.read_item_counts(prepared)
    assert [r["count"] for r in items] == counts[1:].tolist()


def test_context_crops_are_refused_in_one_line(prepared, tmp_path) -> None:
    result = run_train(
        tmp_path / "run", "--data", str(prepared), "--stream", "--context-crops", "2"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --context-crops")
    assert "Traceback" not in result.stderr


def test_killed_streamed_run_resumes_to_the_uninterrupted_numbers(prepared, tmp_path) -> None:
    extra = ("--data", str(prepared), "--stream", "--backup-every-steps", "4")
    reference = tmp_path / "reference"
    done = run_train(reference, *extra)
    assert done.returncode == 0, done.stderr[-3000:]

    steps = report(reference)["steps_per_epoch"]
    output = tmp_path / "run"
    process = _start(output, *extra)

    def ready(line: str) -> bool:  # a mid-epoch backup of epoch 2 or later is on disk
        while process.poll() is None:  # (as tests/reliability/test_resume.py waits for one)
            meta = _state(output)
            if meta is not None and meta["epoch"] >= 1 and 0 < meta["batch"] < steps:
                return True
            if meta is not None and meta["epoch"] >= 3:
                return False
            time.sleep(0.002)
        return False

    log = _kill_when(process, ready, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, log[-2000:]
    killed_at = _state(output)
    assert killed_at is not None and killed_at["batch"] > 0 and not killed_at["finished"]
    resumed = run_train(output, *extra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and str(output / STATE) in resumed.stdout
    assert_same_results(output, reference)
    assert report(output)["training"]["resumed_from"] == [
        {"epoch": killed_at["epoch"] + 1, "batch": killed_at["batch"]}
    ]


def test_two_workers_on_localhost_stream_their_own_shards(prepared, tmp_path) -> None:
    from tests.reliability.test_multi_worker import _finish, _start_workers

    outputs = [tmp_path / "chief", tmp_path / "worker1"]
    logs = _finish(_start_workers(outputs, "--data", str(prepared), "--stream"))
    assert "worker 1: training done" in logs[1]
    chief = report(outputs[0])
    assert chief["training"]["distribution"]["num_workers"] == 2
    steps = chief["steps_per_epoch"]
    for log in logs:  # every worker runs the global number of steps of every epoch
        assert log.count(f"{steps}/{steps} - ") == len(chief["history"]) == 2, log[-2000:]
    losses = [row["loss"] for row in chief["history"]]
    assert losses[1] < losses[0]
    assert list(outputs[1].rglob("*")) == []  # only the chief writes


def test_steps_per_epoch_cuts_an_epoch_or_goes_round_the_stream(prepared) -> None:
    from attnrec_tf.config import Config
    from attnrec_tf.training.fit import StreamedTrainingData, TrainingData

    def arrays(dataset) -> list[np.ndarray]:
        return [x.numpy() for x, _ in dataset]

    config = Config().replace(max_len=10, batch_size=64)
    split = shards.read_split(prepared)
    full = TrainingData(split.train, config)
    assert full.steps_per_epoch == 24  # 1,500 windows
    cut = TrainingData(split.train, config.replace(steps_per_epoch=5))
    full.epoch.assign(2)
    cut.epoch.assign(2)
    assert cut.steps_per_epoch == 5 and cut.positions_per_epoch < full.positions_per_epoch
    first = arrays(full.dataset())[:5]
    for got, want in zip(arrays(cut.dataset()), first, strict=True):
        np.testing.assert_array_equal(got, want)
    assert int(cut.dataset(start_batch=2).cardinality()) == 3
    longer = TrainingData(split.train, config.replace(steps_per_epoch=99))
    assert longer.steps_per_epoch == 24  # in memory: at most one pass

    streamed = StreamedTrainingData(prepared, config.replace(steps_per_epoch=30))
    assert streamed.steps_per_epoch == 30
    assert streamed.positions_per_epoch == full.positions_per_epoch * 30 // 24
    batches = arrays(streamed.dataset())
    assert len(batches) == 30 and int(streamed.dataset(start_batch=28).cardinality()) == 2
    assert sum(len(b) for b in batches) > 1500  # the stream went round again

"""The catalog-size benchmark's rows and table, from made-up reports (real runs: `make bench`)."""

from __future__ import annotations

from typing import Any

from benchmarks import catalog, common


def _report(name: str, loss: str, positions: float, ndcg: float) -> dict[str, Any]:
    return {
        "bench": {"name": name, "command": f"python -m attnrec_tf.train --loss {loss}"},
        "config": {"loss": loss},
        "loss_choice": {"used": loss, "reason": "--loss auto: 48,340 items > 20,000, so sampled"},
        "dataset": {"num_items": 48_340, "num_users": 35_000, "num_interactions": 352_708},
        "epochs_run": 2,
        "steps_per_epoch": 100,
        "train_seconds": 30.0,
        "validation_seconds": 10.0,
        "examples_per_second": positions,
        "validation": {"keras": {"validation_seconds": 8.0}, "users": {"per_epoch": 5, "of": 9}},
        "metrics": {
            "keras": {"ndcg@10": ndcg, "num_users": 35_000},
            "popularity": {"ndcg@10": 0.02},
            "keras_window": {"ndcg@10": ndcg},
            "tflite_float32": {"ndcg@10": ndcg},
            "tflite_int8": {"ndcg@10": ndcg * 0.99},
        },
        "artifacts": {
            "tflite_float32": {"bytes": 10_000, "latency_ms_p50": 0.3},
            "tflite_int8": {"bytes": 2_600, "latency_ms_p50": 0.2},
        },
    }


def test_row_times_a_step_from_fit_without_validation():
    row = catalog.catalog_row(_report("catalog-50k-auto", "sampled", 9000.0, 0.2), "50k", "auto")
    assert row["step_ms"] == (30.0 - 10.0) / (2 * 100) * 1000  # 100 ms
    assert row["validation_seconds_per_epoch"] == 5.0
    assert row["loss_used"] == "sampled" and row["int8_bytes"] == 2_600
    assert row["float16_bytes"] is None


def test_speedup_line_compares_the_default_with_the_full_softmax():
    rows = {
        "catalog-50k-auto": catalog.catalog_row(
            _report("catalog-50k-auto", "sampled", 9000.0, 0.196), "50k", "auto"
        ),
        "catalog-50k-softmax": catalog.catalog_row(
            _report("catalog-50k-softmax", "softmax", 900.0, 0.2), "50k", "softmax"
        ),
    }
    (line,) = catalog.speedup_lines(rows)
    assert "default sampled: the sampled softmax trains 9,000 real positions/s" in line
    assert "**10.0x** the full softmax's 900" in line
    assert "= **98.0%** of the full softmax's 0.2000 at 2 epochs each" in line
    table = catalog.catalog_markdown(rows)
    assert "| catalog-50k-auto | 48,340 | auto -> sampled | 100 | 9,000 | 5.0 (5 of 9) " in table
    assert "| 26% / 26% |" not in table and "| - / 26% |" not in table  # no dynamic file here
    assert "| 10 / 0.30 / 0.1960 |" in table and "| 3 / 0.20 / 0.1940 |" in table  # KB / p50 / NDCG


def test_suite_runs_the_default_first_and_skips_the_run_it_amounts_to(monkeypatch, tmp_path):
    runs: list[str] = []

    def fake_train(name: str, argv: list[str], out_root: Any) -> dict[str, Any]:
        runs.append(name)
        loss = argv[argv.index("--loss") + 1]
        used = {"auto": "softmax" if "10k" in name else "sampled"}.get(loss, loss)
        return _report(name, used, 1000.0, 0.1)

    def fake_steps(name, catalog_name, spec, flags, out_root):
        runs.append(name)
        return {"name": name, "catalog": catalog_name, "loss": "softmax", "loss_used": "softmax"}

    monkeypatch.setattr(common, "run_train", fake_train)
    monkeypatch.setattr(catalog, "steps_row", fake_steps)
    saved: list[int] = []
    rows = catalog.catalog_suite(tmp_path, lambda r: saved.append(len(r)))
    assert runs == [
        "catalog-10k-auto",
        "catalog-10k-sampled",  # 10k's auto was the softmax: not run twice
        "catalog-50k-auto",
        "catalog-50k-softmax",
        "catalog-50k-sampled-1024",  # 50k's auto was `sampled`
        "catalog-50k-sampled-lazy",
        "catalog-50k-sampled-batch-512",
        "catalog-200k-auto",
        "catalog-200k-softmax",  # step time only
    ]
    assert list(rows) == runs and saved == list(range(1, len(runs) + 1))


def test_time_steps_measures_the_training_step_on_real_batches():
    result = catalog.time_steps("synthetic:num_users=300,num_items=60,mean_length=8", "softmax", 2)
    assert result["items"] == 60 and 250 < result["users"] <= 300 and result["steps"] == 2
    assert result["step_seconds"] > 0 and result["positions_per_second"] > 0

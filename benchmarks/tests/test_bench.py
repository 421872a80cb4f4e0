"""The benchmark's tables, from made-up rows (the real runs live in `make bench`)."""

from benchmarks import suites


def _row(name, dataset, variant, ndcg):
    return {
        "name": name,
        "dataset": dataset,
        "variant": variant,
        "preset": "default",
        "epochs": 3,
        "best_epoch": 2,
        "train_seconds": 10.0,
        "wall_seconds": 20.0,
        "peak_rss_mb": 900.0,
        "examples_per_second": 1000.0,
        "valid_hr@10": 0.2,
        "valid_ndcg@10": 0.1,
        "valid_mrr": 0.1,
        "test_hr@10": 0.2,
        "test_ndcg@10": ndcg,
        "test_mrr": 0.1,
        "popularity_ndcg@10": 0.05,
        "int8_ndcg@10": None,
        "int8_bytes": None,
        "int8_latency_ms_p50": None,
        "command": "python -m attnrec_tf.train ...",
    }


def test_ablation_answers_by_how_much():
    runs = {
        "ml-1m-last": _row("ml-1m-last", "movielens-1m", "last", 0.10),
        "ml-1m-mean": _row("ml-1m-mean", "movielens-1m", "mean", 0.12),
        "ml-1m-pooling": _row("ml-1m-pooling", "movielens-1m", "pooling", 0.15),
    }
    text = suites.ablation_markdown(runs)
    row = [line for line in text.splitlines() if line.startswith("| ml-1m")][0]
    assert "+25.0%" in row  # 0.15 / 0.12 - 1
    assert "+50.0%" in row  # 0.15 / 0.10 - 1


def test_markdown_has_machine_and_every_run():
    results = {
        "machine": {"cores": 2, "cpu": "X"},
        "updated": "2026-01-01",
        "runs": {"a": _row("a", "movielens-100k", "pooling", 0.1)},
        "scale": {
            "scale-100": {
                "name": "scale-100",
                "interactions": 100,
                "users": 5,
                "items": 90,
                "prepare_seconds": 1.0,
                "epoch_seconds": 2.0,
                "examples_per_second": 50.0,
                "export_seconds": 3.0,
                "peak_rss_mb_prepare": 10.0,
                "peak_rss_mb_train": 20.0,
                "peak_rss_mb_export": 30.0,
                "wall_seconds": 9.0,
                "test_ndcg@10": 0.01,
                "popularity_ndcg@10": 0.005,
                "command": "python -m attnrec_tf.train x",
            }
        },
    }
    text = suites.markdown(results)
    assert "2 cores, X" in text and "| a | pooling |" in text
    assert "| 100 | 5 | 90 |" in text


def test_heads_table_gives_mean_and_standard_deviation_over_seeds():
    runs = {
        f"heads-ml-1m-sasrec-s{seed}": _row(f"heads-ml-1m-sasrec-s{seed}", "movielens-1m",
                                            "sasrec", ndcg)
        for seed, ndcg in enumerate([0.18, 0.19, 0.20])
    }  # fmt: skip
    row = [line for line in suites.heads_markdown(runs).splitlines() if "sasrec" in line][-1]
    assert "| 3 |" in row and "0.1900 ± 0.0100" in row  # stdev of 0.18, 0.19, 0.20


def test_default_table_pairs_each_seed_with_pooling():
    runs = {}
    for variant, scores in (("pooling", [0.10, 0.08]), ("sasrec", [0.11, 0.10])):
        for seed, ndcg in enumerate(scores):
            name = f"default-ml-100k-{variant}-s{seed}"
            runs[name] = {**_row(name, "movielens-100k", variant, ndcg), "last_item_ndcg@10": 0.05}
    lines = suites.default_markdown(runs).splitlines()
    sasrec = next(line for line in lines if "| sasrec |" in line)
    pooling = next(line for line in lines if "| pooling |" in line)
    assert "| 120 | sasrec | 2 |" in sasrec and "0.1050 ± 0.0071" in sasrec  # mean, stdev
    assert sasrec.endswith("| 0.0500 ± 0.0000 | +17.5% |")  # (0.11/0.10 - 1 + 0.10/0.08 - 1) / 2
    assert pooling.endswith("| - |")
    assert suites.job_suite("default-ml-100k-sasrec-s0") == "default"


def test_scale_growth_per_10x_of_catalog():
    rows = {
        name: {"interactions": n, "items": items, "peak_rss_mb_export": peak}
        for name, n, items, peak in [
            ("b", 1_000, 10_000, 2_000.0),
            ("a", 100, 1_000, 1_000.0),
            ("c", 10_000, 100_000, None),  # not exported: no line
        ]
    }
    (line,) = suites.scale_growth(rows, "peak_rss_mb_export", "export")
    assert (
        "- export, 1,000 -> 10,000 items (x10.00): 1,000 -> 2,000 MB (x2.00; x2.00 per 10x" in line
    )
    assert "+11,111 MB per 100,000 more items" in line  # 1,000 MB / 9,000 items

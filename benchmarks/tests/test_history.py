"""The history suite's rows and table, from report.json files written here."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.history import history_markdown, history_row

LENGTHS = [1, 3, 5, 10, 20, 50, "all"]


def _run(
    root: Path,
    name: str,
    seed: int,
    model: list[float],
    crops: int = 0,
    drawn: str | None = None,
    skip: int = 0,
) -> Path:
    folder = root / name
    folder.mkdir()
    entry = {
        "lengths": LENGTHS,
        "num_users": 3,
        "model": {"ndcg@10": model, "hr@10": model},
        "popularity": {"ndcg@10": [0.01] * 7, "hr@10": [0.02] * 7},
        "item_knn": {"ndcg@10": [0.05] * 7, "hr@10": [0.1] * 7},
    }
    report = {
        "config": {
            "preset": "ml-1m",
            "seed": seed,
            "context_crops": crops,
            **({"skip_first_picks": skip} if skip else {}),
        },
        "dataset": {"name": "ml-1m"},
        "metrics": {"by_history_length": entry},
        "epochs_run": 4,
        "train_seconds": 12.0,
        **({"training": {"context_crops_drawn": drawn}} if drawn else {}),
    }
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_history_table_has_each_run_the_seed_mean_and_the_baselines(tmp_path: Path) -> None:
    rows = {
        name: history_row(_run(tmp_path, name, seed, [0.1 * (seed + 1)] * 7))
        for name, seed in (("a", 0), ("b", 1))
    }
    rows["c"] = history_row(_run(tmp_path, "c", 0, [0.3] * 7, crops=1))
    text = history_markdown(rows)
    lines = text.splitlines()
    assert "### ml-1m" in lines
    assert (
        "| a | 0 | 0 | 4 | 12 | 0.1000 | 0.1000 | 0.1000 | 0.1000 | 0.1000 | 0.1000 | 0.1000 |"
        in lines
    )
    assert any(
        line.startswith("| **mean** ml-1m, crops 0 | 0 | 0,1 |") and "**0.1500**" in line
        for line in lines
    )
    assert not any("crops 1 |" in line and "mean" in line for line in lines)  # one seed: no mean
    rows["d"] = history_row(_run(tmp_path, "d", 0, [0.9] * 7))  # seed 0 twice: no mean of a, d
    assert "**mean**" not in history_markdown({k: rows[k] for k in ("a", "d")})
    assert any(line.startswith("| item-kNN |") and "0.0500" in line for line in lines)
    assert any(line.startswith("| popularity |") and "0.0100" in line for line in lines)


def test_crops_drawn_once_and_every_epoch_are_two_settings(tmp_path: Path) -> None:
    rows = {
        f"{drawn}-{seed}": history_row(
            _run(tmp_path, f"{drawn}-{seed}", seed, [0.1 + seed] * 7, 3, drawn or None)
        )
        for drawn in ("", "every epoch")
        for seed in (0, 1)
    }
    means = [line for line in history_markdown(rows).splitlines() if "**mean**" in line]
    assert len(means) == 2
    assert means[0].startswith("| **mean** ml-1m, crops 3 (every epoch) | 3 (every epoch) | 0,1")
    assert means[1].startswith("| **mean** ml-1m, crops 3 (once) | 3 (once) | 0,1")


def test_skipped_first_picks_are_their_own_setting(tmp_path: Path) -> None:
    rows = {
        f"{skip}-{seed}": history_row(
            _run(tmp_path, f"{skip}-{seed}", seed, [0.1] * 7, 3, "every epoch", skip)
        )
        for skip in (0, 5)
        for seed in (0, 1)
    }
    means = [line for line in history_markdown(rows).splitlines() if "**mean**" in line]
    assert [line.split(" | ")[1] for line in means] == [
        "3 (every epoch)",
        "3 (every epoch), first 5 picks skipped",
    ]

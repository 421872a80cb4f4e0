"""The `history` suite: test NDCG@10 by history length, for finished runs, beside two baselines.

Each run's report.json holds `metrics.by_history_length` (`attnrec_tf.evaluate`): full-ranking
HR@10 / NDCG@10 when the model sees only the last L items of each test history (the whole
history still excluded from the ranking), for the model, popularity and item-kNN (cosine
item-item co-occurrence over the training sequences, summed over the L items). This suite
tables them per dataset, one row per run, then the baselines once, and the mean over seeds of
runs that differ only in their seed.

    python -m benchmarks --suite history --history-runs runs/ml1m-preset,runs/ml1m-crops
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import fmt


def history_row(run: Path) -> dict[str, Any]:
    """The by-length figures of one run folder, with what identifies its configuration."""
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    config = report["config"]
    entry = report["metrics"]["by_history_length"]
    knn = entry["item_knn"]
    return {
        "run": run.name,
        "path": str(run),
        "time_budget": config.get("time_budget", 0.0),
        "dataset": report["dataset"]["name"],
        "preset": config.get("preset"),
        "seed": config["seed"],
        "context_crops": config.get("context_crops", 0),
        "crops_drawn": report.get("training", {}).get("context_crops_drawn") or "once",
        "skip_first_picks": config.get("skip_first_picks", 0),
        "absolute_positions": config.get("absolute_positions"),
        "epochs": report["epochs_run"],
        "train_seconds": report["train_seconds"],
        "lengths": entry["lengths"],
        "num_users": entry["num_users"],
        "model": entry["model"]["ndcg@10"],
        "popularity": entry["popularity"]["ndcg@10"],
        "item_knn": knn.get("ndcg@10"),
    }


def history_markdown(rows: dict[str, Any]) -> str:
    """One table per dataset: each run, the mean of each seed group, then the baselines."""
    lines = ["## NDCG@10 by history length", ""]
    lines.append(
        "The model given only the last L items of each test history (the whole history still "
        "excluded from the ranking), on the test users of each run (at most 10,000)."
    )
    for dataset in sorted({r["dataset"] for r in rows.values()}):
        runs = sorted((r for r in rows.values() if r["dataset"] == dataset), key=_key)
        lengths = runs[0]["lengths"]
        lines += ["", f"### {dataset}", ""]
        lines.append("| run | crops | seed | epochs | train s | " + " | ".join(
            f"L={n}" for n in lengths) + " |")  # fmt: skip
        lines.append("|---" * (5 + len(lengths)) + "|")
        for r in runs:
            lines.append(_row(r["run"], r, str(r["seed"]), r["model"]))
        for name, group in _seed_groups(runs).items():
            models = [r["model"] for r in group]
            mean = [statistics.mean(values) for values in zip(*models, strict=True)]
            seeds = ",".join(str(r["seed"]) for r in group)
            lines.append(_row(f"**mean** {name}", group[0], seeds, mean, bold=True))
        first = runs[0]
        if first["item_knn"] is not None:
            lines.append(_baseline("item-kNN", first["item_knn"], len(lengths)))
        lines.append(_baseline("popularity", first["popularity"], len(lengths)))
    return "\n".join(lines) + "\n"


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["preset"], _crops(row), row["seed"], row["run"])


def _crops(row: dict[str, Any]) -> str:
    """`3 (every epoch)`, `3 (once)` (crops drawn once per run, before 2026-12-05), or `0`;
    then `, first 5 picks skipped` with `--skip-first-picks 5`."""
    crops = row["context_crops"]
    text = f"{crops} ({row.get('crops_drawn', 'once')})" if crops else "0"
    skipped = row.get("skip_first_picks", 0)
    return text + (f", first {skipped} picks skipped" if skipped else "")


def _seed_groups(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs that differ only in their seed (same preset, crops and budget), two or more."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        budget = f", {r['time_budget']:.0f} s" if r.get("time_budget") else ""
        name = f"{r['preset']}, crops {_crops(r)}{budget}"
        groups.setdefault(name, []).append(r)
    return {
        name: group
        for name, group in groups.items()
        if len({r["seed"] for r in group}) == len(group) > 1
    }


def _row(name: str, r: dict[str, Any], seeds: str, values: list[float], bold: bool = False) -> str:
    cells = [fmt(v) for v in values]
    if bold:
        cells = [f"**{c}**" for c in cells]
    head = f"| {name} | {_crops(r)} | {seeds} | "
    if bold:
        return head + "| | " + " | ".join(cells) + " |"
    return head + f"{r['epochs']} | {r['train_seconds']:.0f} | " + " | ".join(cells) + " |"


def _baseline(name: str, values: list[float], count: int) -> str:
    return f"| {name} | | | | | " + " | ".join(fmt(v) for v in values[:count]) + " |"

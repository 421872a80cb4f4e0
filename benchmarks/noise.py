"""The `noise` suite: how much test NDCG@10 moves with the seed and with the order of ties.

Two tables for BENCHMARKS.md ("Noise"):

1. **Seeds** (`--noise-runs`): finished run folders, grouped by everything in their
   configuration but the seed, and by the CPU they ran on (its seconds are that machine's);
   per group the mean ± sd of test NDCG@10 and HR@10 over the seeds, each seed's figure,
   epochs and seconds. Runs are not started here: a preset run
   takes 30 minutes of a quiet 2-core machine, so they are run beforehand (README of this
   folder) and tabled from their report.json.
2. **Tie order** (`--suite noise` runs it): a log with real timestamps (ML-100K's `u.data`) is
   copied with the rows of every tied (user, timestamp) block permuted by a shuffle seed
   (`shuffled_ties`; seed 0 keeps the file's order), and each copy is trained with the same
   flags and seed. The loader keeps the file's order among ties (a stable sort), so this is
   the spread that the order of ties alone causes. ML-1M cannot be used: this project's
   `ratings.dat` keeps the real order but has pseudo-timestamps, so its tied blocks are
   unknown (../shared/data/README.md).
   `plot_tried` draws the ML-1M groups against the issue's target, the figure of what was
   tried (`benchmarks/noise-ml-1m.png`).
3. **SASRec's file** (`sasrec_file_agreement`): where the data folder has SASRec's own
   `ml-1m.txt`, how many of our ML-1M users have the same sequence there (so whether
   published figures are on our split).

The copies are written under `--out` (outside the repository; MovieLens is not
redistributed).
"""

from __future__ import annotations

import json
import shutil
import statistics
import zipfile
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import mean_sd, run_train

TIE_SEEDS = (0, 1, 2)
TIE_ARGS = ["--preset", "ml-1m", "--epochs", "20", "--time-budget", "0", "--seed", "0"]
TIE_ARGS += ["--no-export", "--verbose", "0"]
"""ML-100K under the ML-1M preset's recipe, 20 epochs (about 3 minutes each on 2 cores)."""
TARGET = 0.184
"""Issue 22's target for the `ml-1m` preset: a mean of 3 seeds of test NDCG@10."""
PLOT = "noise-ml-1m.png"
IGNORED = {"seed", "time_budget"}
"""Config keys that do not make two runs different settings (the budget is a limit)."""


def shuffled_ties(source: Path, destination: Path, seed: int) -> dict[str, Any]:
    """Copies an ML-100K folder with each tied (user, timestamp) block of `u.data` permuted.

    Args:
        source: A folder with `u.data` (user, item, rating, timestamp; tab-separated).
        destination: The copy (created; the other files are copied unchanged).
        seed: 0 = the file's order; otherwise the permutation's seed.

    Returns:
        The tie statistics: rows in tied blocks, and users whose last or second-to-last
        row (the test and validation targets) lies in a tied block.
    """
    destination.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name != "u.data":
            shutil.copyfile(path, destination / path.name)
    rows = np.loadtxt(source / "u.data", dtype=np.int64)
    user, stamp = rows[:, 0], rows[:, 3]
    order = np.lexsort((np.arange(len(rows)), stamp, user))  # stable: the file's order in ties
    block = np.r_[0, np.cumsum((np.diff(user[order]) != 0) | (np.diff(stamp[order]) != 0))]
    sizes = np.bincount(block)
    tied = sizes[block] > 1
    if seed:
        noise = np.random.default_rng(seed).random(len(rows))
        within = np.lexsort((noise, block))  # blocks stay in order, rows shuffled inside
        order = order[within]
    lines = "\n".join("\t".join(map(str, row)) for row in rows[order])
    (destination / "u.data").write_text(lines + "\n", encoding="ascii")
    last = np.r_[np.diff(user[order]) != 0, True]  # each user's last row
    second = np.r_[last[1:], False] & ~last
    return {
        "rows": len(rows),
        "rows_in_ties": int(tied.sum()),
        "users": int(last.sum()),
        "test_target_tied": int((last & tied).sum()),
        "validation_target_tied": int((second & tied).sum()),
    }


def tie_order(data_root: Path, out_root: Path, seeds: tuple[int, ...] = TIE_SEEDS) -> dict:
    """Trains ML-100K once per tie shuffle seed; the rows of the tie-order table."""
    rows: dict[str, Any] = {}
    for seed in seeds:
        copy = out_root / f"ml-100k-ties-{seed}"
        stats = shuffled_ties(data_root / "ml-100k", copy, seed)
        name = f"noise-ml-100k-ties-{seed}"
        report = run_train(name, ["--data", str(copy), *TIE_ARGS], out_root)
        keras = report["metrics"]["keras"]
        rows[str(seed)] = {
            "tie_seed": seed,
            "ties": stats,
            "ndcg@10": keras["ndcg@10"],
            "hr@10": keras["hr@10"],
            "command": report["bench"]["command"],
        }
    return rows


SASREC_FILE = "sasrec_ml-1m.txt"
SASREC_ITEM_MAP = "sasrec_ml-1m_itemmap.tsv"
"""SASRec's own ML-1M file (`user item` lines in each user's order) and its item ids' MovieIDs,
where ../shared/data/ml-1m has them."""


def sasrec_file_agreement(ml1m: Path) -> dict[str, Any] | None:
    """How far our ML-1M sequences (the loader and split the presets train on) are SASRec's.

    Published ML-1M figures (SASRec, SASRec+) are computed on SASRec's `ml-1m.txt`; if every
    user's sequence there equals ours, their test and validation targets are ours too and the
    figures are on our split.

    Returns:
        Counts of users whose whole sequence, test item and validation item agree, or None when
        the folder has no SASRec file.
    """
    from attnrec_tf.data.movielens import read_movielens
    from attnrec_tf.data.sequences import build_sequences

    if not (ml1m / SASREC_FILE).exists() or not (ml1m / SASREC_ITEM_MAP).exists():
        return None
    vocabulary, ours, _ = build_sequences(read_movielens(ml1m).interactions)
    movie = dict(np.loadtxt(ml1m / SASREC_ITEM_MAP, dtype=np.int64, skiprows=1).tolist())
    rows = np.loadtxt(ml1m / SASREC_FILE, dtype=np.int64)
    theirs: dict[int, list[int]] = {}
    for user, item in rows.tolist():
        theirs.setdefault(user, []).append(movie[item])
    raw = np.asarray(vocabulary.raw_ids)
    same = {"sequence": 0, "test": 0, "validation": 0}
    for user, sequence in zip(ours.users.tolist(), ours.sequences, strict=True):
        mine, other = raw[np.asarray(sequence) - 1].tolist(), theirs.get(int(user), [])
        same["sequence"] += mine == other
        same["test"] += bool(other) and mine[-1] == other[-1]
        same["validation"] += len(other) > 1 and mine[-2] == other[-2]
    return {"users": len(ours), "sasrec_users": len(theirs), "rows": len(rows), **same}


def seed_row(run: Path) -> dict[str, Any]:
    """One finished run's figures and the settings that group it with its other seeds."""
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    config = {**_field_defaults(), **report["config"]}  # a run older than a field: its default
    setting = {k: v for k, v in sorted(config.items()) if k not in IGNORED}
    # Only the report knows whether a preset's "auto" loss was resolved or given as a flag.
    loss_given = report.get("loss_choice", {}).get("reason", "").endswith("(given)")
    label = _label(config, {"loss"} if loss_given else set())
    notes = []
    if config.get("context_crops"):  # crops drawn once per run (older runs) or every epoch
        drawn = report.get("training", {}).get("context_crops_drawn") or "once"
        setting["context_crops_drawn"] = drawn
        notes.append(f"crops drawn {drawn}")
    if config.get("time_budget") and _cosine_end(run, report) == "epochs or time budget":
        setting["cosine_end"] = "epochs or time budget"
        notes.append("cosine ends within the budget")
    if config.get("time_budget") and any("batches" in r for r in report.get("history", [])):
        setting["budget_stop"] = "planned per batch"  # rows have `batches` since this rule
        notes.append("budget stop planned per batch")
    if notes:
        label += f" ({'; '.join(notes)})"
    keras = report["metrics"]["keras"]
    return {
        "path": str(run),
        "dataset": report["dataset"]["name"],
        "setting": json.dumps(setting, sort_keys=True),
        "label": label,
        "seed": config["seed"],
        "ndcg@10": keras["ndcg@10"],
        "hr@10": keras["hr@10"],
        "epochs": report["epochs_run"],
        "best_epoch": report.get("best_epoch"),
        "train_seconds": report["train_seconds"],
        "cpu": report.get("machine", {}).get("cpu"),
    }


def fill_machine(rows: dict[str, dict[str, Any]], cpu: str | None) -> None:
    """Names `cpu` as the machine of each row recorded before rows named theirs.

    Such rows were tabled under the section's one machine (`results["machines"]["noise"]`),
    which the caller passes before this run replaces it.
    """
    for row in rows.values():
        if row.get("cpu") is None:
            row["cpu"] = cpu


def _cosine_end(run: Path, report: dict[str, Any]) -> str | None:
    """report.json `training.cosine_end`; for a run written before that field, read from
    the optimizer's schedule in its `model.keras` (the branch that brought
    `BudgetCosineDecay` measured its seeds before the report said so)."""
    training = report.get("training", {})
    if "cosine_end" in training:
        return training["cosine_end"]
    model = run / "model.keras"
    if not model.exists():
        return None
    with zipfile.ZipFile(model) as archive:
        compiled = json.loads(archive.read("config.json")).get("compile_config") or {}
    rate = compiled.get("optimizer", {}).get("config", {}).get("learning_rate")
    if isinstance(rate, dict) and rate.get("class_name") == "BudgetCosineDecay":
        return "epochs or time budget"
    return "epochs" if isinstance(rate, dict) else None


def _field_defaults() -> dict[str, Any]:
    """Every `Config` field's default."""
    import dataclasses

    from attnrec_tf.config import Config

    fields = dataclasses.fields(Config)
    return {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}


def _label(config: dict[str, Any], given: AbstractSet[str] = frozenset()) -> str:
    """The run's preset and the flags that differ from it (the seed aside).

    A preset's "auto" or unset value is resolved per data set, so it counts as a flag only
    when its key is in `given`.
    """
    from attnrec_tf.config import preset

    name = config.get("preset") or "default"
    base = preset(name).__dict__
    flags = [
        f"--{key.replace('_', '-')} {value}"
        for key, value in sorted(config.items())
        if key in base
        and key not in IGNORED
        and (base[key] not in ("auto", None) or key in given)
        and base[key] != value
    ]
    return " ".join([f"--preset {name}", *flags])


def markdown(
    seeds: dict[str, Any],
    ties: dict[str, Any],
    sasrec: dict[str, Any] | None = None,
    plot: str | None = None,
) -> str:
    """The "Noise" section of BENCHMARKS.md."""
    lines = ["## Noise: seeds and the order of tied timestamps", ""]
    if sasrec:
        lines += [
            f"ML-1M against SASRec's own `{SASREC_FILE}` ({sasrec['rows']:,} rows, "
            f"{sasrec['sasrec_users']:,} users): of our {sasrec['users']:,} users, "
            f"{sasrec['sequence']:,} have the same whole sequence, {sasrec['test']:,} the same "
            f"test item and {sasrec['validation']:,} the same validation item. Published "
            "figures on that file are on our split.",
            "",
        ]
    if seeds:
        lines += [
            "Test NDCG@10 and HR@10 of finished runs that differ only in their seed (mean ± sd; "
            "the standard error of NDCG@10 over ML-1M's 6,040 users is about 0.004). Seconds "
            "are as measured on the row's machine: the ML-100K runs shared the machine with "
            "other jobs, so compare them by epochs, not seconds.",
            "",
            "| dataset | settings | seeds | NDCG@10 | HR@10 | each seed's NDCG@10 | epochs | "
            "train s | machine |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        groups = _groups(seeds)
        by_label = sorted(groups.items(), key=lambda g: (g[0][0], g[1][0]["label"], g[0][2]))
        for (dataset, _, cpu), rows in by_label:
            rows.sort(key=lambda r: r["seed"])
            each = ", ".join(f"{r['ndcg@10']:.4f}" for r in rows)
            seconds = ", ".join(f"{r['train_seconds']:.0f}" for r in rows)
            lines.append(
                f"| {dataset} | `{rows[0]['label']}` | {', '.join(str(r['seed']) for r in rows)} "
                f"| {mean_sd([r['ndcg@10'] for r in rows])} | "
                f"{mean_sd([r['hr@10'] for r in rows])} | "
                f"{each} | "
                f"{', '.join(str(r['epochs']) for r in rows)} | "
                f"{seconds} | {cpu} |"
            )
    if plot:
        lines += ["", f"![test NDCG@10 of each setting against the target]({plot})"]
    if ties:
        first = next(iter(ties.values()))
        stats = first["ties"]
        lines += [
            "",
            f"Tie order (ML-100K, real timestamps): {stats['rows_in_ties']:,} of "
            f"{stats['rows']:,} rows share their user's timestamp with another row; the test "
            f"target of {stats['test_target_tied']} of {stats['users']} users and the "
            f"validation target of {stats['validation_target_tied']} lie in such a block. Each "
            "copy permutes the rows inside every tied block (seed 0: the file's order), then "
            f"trains with `{first['command']}` on the copy.",
            "",
            "| tie shuffle seed | NDCG@10 | HR@10 |",
            "|---|---|---|",
        ]
        for row in sorted(ties.values(), key=lambda r: r["tie_seed"]):
            lines.append(f"| {row['tie_seed']} | {row['ndcg@10']:.4f} | {row['hr@10']:.4f} |")
        ndcg = mean_sd([row["ndcg@10"] for row in ties.values()])
        lines.append(f"| mean ± sd | {ndcg} | {mean_sd([r['hr@10'] for r in ties.values()])} |")
    return "\n".join(lines)


def plot_tried(seeds: dict[str, Any], path: Path, dataset: str = "movielens-1m") -> Path | None:
    """PNG of each setting's test NDCG@10 on `dataset` (one dot a seed, a bar at the mean),
    best first, against `TARGET`; None when no row is of `dataset`.

    A row's label drops the `--preset ml-1m` the settings share; its seconds are not drawn
    (rows ran on different machines), only its seeds.
    """
    from matplotlib.figure import Figure

    from attnrec_tf import atomic

    groups = {key: rows for key, rows in _groups(seeds).items() if key[0] == dataset}
    if not groups:
        return None
    ranked = sorted(groups.values(), key=lambda rows: statistics.mean(r["ndcg@10"] for r in rows))
    figure = Figure(figsize=(13, 0.32 * len(ranked) + 1.4), dpi=110, layout="constrained")
    axes = figure.subplots()
    for y, rows in enumerate(ranked):
        values = [r["ndcg@10"] for r in rows]
        axes.barh(y, statistics.mean(values), color="C0", alpha=0.35)
        axes.plot(values, [y] * len(values), "o", color="C0", markersize=4)
    machines = {cpu for _, _, cpu in groups}
    labels = [_short(rows[0]["label"]) + _suffix(rows, len(machines) > 1) for rows in ranked]
    axes.set_yticks(range(len(ranked)), labels, fontsize=7)
    axes.axvline(
        TARGET, color="C3", linestyle="--", linewidth=1, label=f"target {TARGET} (3 seeds)"
    )
    low = min(r["ndcg@10"] for rows in ranked for r in rows)
    axes.set_xlim(low - 0.005, max(TARGET, *(r["ndcg@10"] for g in ranked for r in g)) + 0.003)
    axes.set_xlabel(f"test NDCG@10, {dataset} (bar: mean over seeds; dot: a seed)")
    axes.set_title("What was tried, against the target")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.staged_path(path) as staged:
        figure.savefig(staged, format="png")
    return path


def _groups(seeds: dict[str, Any]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Seed rows grouped by `(dataset, setting, cpu)`: one group is one setting's seeds on one
    machine (`-` where the machine is unknown)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in seeds.values():
        key = (row["dataset"], row["setting"], row.get("cpu") or "-")
        groups.setdefault(key, []).append(row)
    return groups


def _suffix(rows: list[dict[str, Any]], name_machine: bool) -> str:
    """` (N seeds)`, with the CPU's vendor when the rows ran on more than one machine."""
    vendor = (rows[0].get("cpu") or "-").split()[0].replace("(R)", "")
    return f" ({len(rows)} seed{'s' * (len(rows) > 1)}{', ' + vendor if name_machine else ''})"


def _short(label: str) -> str:
    """A row label without the shared `--preset ml-1m`, and `(preset)` if nothing is left."""
    rest = label.removeprefix("--preset ml-1m").strip()
    return rest if rest and not rest.startswith("(") else f"the preset {rest}".strip()

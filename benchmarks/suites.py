"""`python -m benchmarks`: real-data runs -> benchmarks/results.json and BENCHMARKS.md.

Each run is a fresh `python -m attnrec_tf.train` process (so peak memory is that run's own, read
with `os.wait4`), on the MovieLens copies in `../shared/data` (or `--data-root`). Suites:

* `ablation`: does attention pooling beat mean pooling and the last item, and does the
  self-attention encoder add to it? The same budget for each variant, on ML-100K and ML-1M.
* `heads`: does the attention-pooling head add anything on top of self-attention? `sasrec`
  (blocks alone) vs `self-attention` (blocks + AttentionPooling head) vs `pooling` (the head
  alone), all with the `sasrec` recipe, the same wall-clock budget (`HEADS_BUDGET`) and three
  seeds each: mean and standard deviation.
* `default`: which variant the default configuration should train: `sasrec` and `pooling`,
  every other option at its default, the same wall-clock budget (`DEFAULT_BUDGET`) and seeds
  0, 1, 2, with NDCG@10 from the last item alone (the few-picks case).
* `preset`: the tuned `ml-1m` preset, with its int8 TFLite artifacts.
* `step`: where the preset's train step spends its time (`step_profile.py`: by part, with and
  without length bucketing, against this machine's matmul rate), and the real positions
  trained per second of `--baseline-ref` (a git revision, checked out into `--out`) beside this
  tree's, two epochs each, one after the other in the same bench run.
* `scale`: the synthetic generator with a 1,000,000-item catalog at 10^5, 10^6 and 10^7
  interactions, sampled softmax, one epoch, evaluation on 1,000 random users: wall time and peak
  memory of data preparation, training and export, to show how each grows.
* `out-of-core`: synthetic logs of 10^6, 10^7 and 10^8 interactions written in chunks, prepared
  with DuckDB under a 3 GB memory limit and streamed into training (`benchmarks/out_of_core.py`;
  not part of `all`).
* `catalog`: synthetic catalogs of about 10k, 50k and 200k items, each loss for the same
  epochs: step time, positions/s, validation time, test NDCG@10 and `.tflite` sizes
  (`benchmarks/catalog.py`).
* `noise` (not part of `all`): finished runs by seed, and ML-100K with its tied timestamps
  reshuffled (`benchmarks/noise.py`).
* `peers` (not part of `all`): a published SASRec (RecTools', or RecBole's) next to ours on the
  same split, cores and budget (`benchmarks/peers.py`; its own flags: `--suite peers --help`).

    python -m benchmarks                       # every suite (hours on 2 cores)
    python -m benchmarks --suite ablation --datasets ml-100k
    python -m benchmarks --suite preset

Results are merged into `benchmarks/results.json` by run name, and BENCHMARKS.md (the tables,
each under its command and machine) is regenerated from it, so suites can be run one at a time.
It runs from the repository root of a source checkout (`make bench`); `benchmarks/` is not
installed with the package.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from attnrec_tf import atomic
from attnrec_tf.cli import command_parser, quiet_tensorflow, run_command
from attnrec_tf.errors import ConfigError
from attnrec_tf.report import machine
from benchmarks import (
    catalog,
    explanations,
    history,
    litert_tool,
    noise,
    out_of_core,
    peers,
    recommend_bench,
    step_profile,
)
from benchmarks.common import (
    PLOTS,
    RESULTS_JSON,
    RESULTS_MD,
    ROOT,
    checkout_problem,
    fmt,
    load_results,
    mean_sd,
    run_train,
)

DATASETS = {"ml-100k": "ml-100k", "ml-1m": "ml-1m"}
ABLATION = {
    # One budget for every variant (the default config, with a window that fits the data):
    # the ablation asks which head wins under equal terms, not how far each can be pushed.
    "ml-100k": ["--max-len", "200", "--epochs", "60", "--patience", "10"],
    "ml-1m": ["--max-len", "50", "--epochs", "20", "--patience", "5"],
}
VARIANTS = ("last", "mean", "pooling", "self-attention")
HEADS = ("sasrec", "self-attention", "pooling")
HEADS_BUDGET = {"ml-100k": 100, "ml-1m": 240}  # seconds of training, validation included
# Which variant should `python -m attnrec_tf.train --data events.csv` train? Each with every
# other option at its default, the same wall-clock budget (validation included), early stopping.
DEFAULT_CANDIDATES = ("sasrec", "pooling")
DEFAULT_BUDGET = {"ml-100k": 120, "ml-1m": 300}
SEEDS = (0, 1, 2)
SCALE_ITEMS = 1_000_000
SCALE_INTERACTIONS = (100_000, 1_000_000, 10_000_000)
SCALE_TFLITE = "float32,dynamic_int8"
SCALE_ARGS = [
    "--loss",
    "sampled",
    "--num-negatives",
    "1024",
    "--epochs",
    "1",
    "--batch-size",
    "1024",
    "--max-len",
    "50",
    "--min-item-interactions",
    "1",
    "--eval-users",
    "1000",
    "--sampled-negatives",
    "0",
    "--tflite",
    SCALE_TFLITE,
]


STEP_BASELINE = "634f319"  # the code before the step work (issue 10): its preset epoch
STEP_PRESET = "ml-1m-pooling"  # that tree's `--preset ml-1m`, under its name in this one
STEP_EPOCHS = ["--epochs", "2", "--no-export", "--sampled-negatives", "0"]


def row(report: dict[str, Any]) -> dict[str, Any]:
    """The BENCHMARKS row of one run."""
    metrics = report["metrics"]
    keras_test = metrics["keras"]
    valid = report.get("validation", {}).get("keras", {})
    int8 = metrics.get("tflite_int8") or {}
    int8_artifact = report.get("artifacts", {}).get("tflite_int8") or {}
    dyn = metrics.get("tflite_dynamic_int8") or {}
    dyn_artifact = report.get("artifacts", {}).get("tflite_dynamic_int8") or {}
    return {
        "name": report["bench"]["name"],
        "dataset": report["dataset"]["name"],
        "variant": report["config"]["variant"],
        "preset": report["config"].get("preset"),
        "epochs": report["epochs_run"],
        "best_epoch": report["best_epoch"],
        "train_seconds": report["train_seconds"],
        "wall_seconds": report["bench"]["wall_seconds"],
        "peak_rss_mb": report["bench"]["peak_rss_mb"],
        "examples_per_second": report["examples_per_second"],
        "valid_hr@10": valid.get("hr@10"),
        "valid_ndcg@10": valid.get("ndcg@10"),
        "valid_mrr": valid.get("mrr"),
        "test_hr@10": keras_test["hr@10"],
        "test_ndcg@10": keras_test["ndcg@10"],
        "test_mrr": keras_test["mrr"],
        "popularity_ndcg@10": metrics["popularity"]["ndcg@10"],
        "last_item_ndcg@10": _last_item_ndcg(metrics),
        "int8_ndcg@10": int8.get("ndcg@10"),
        "int8_bytes": int8_artifact.get("bytes"),
        "int8_latency_ms_p50": int8_artifact.get("latency_ms_p50"),
        "dynamic_int8_ndcg@10": dyn.get("ndcg@10"),
        "dynamic_int8_bytes": dyn_artifact.get("bytes"),
        "dynamic_int8_latency_ms_p50": dyn_artifact.get("latency_ms_p50"),
        "command": report["bench"]["command"],
    }


def _last_item_ndcg(metrics: dict[str, Any]) -> float | None:
    """Test NDCG@10 from each user's last history item alone (`by_history_length`, L = 1)."""
    entry = metrics.get("by_history_length") or {}
    lengths = entry.get("lengths") or []
    if 1 not in lengths:
        return None
    return entry["model"]["ndcg@10"][lengths.index(1)]


def ablation_markdown(runs: dict[str, Any]) -> str:
    """Answers the founding question from the ablation rows: which pooling wins, by how much."""
    lines = [
        "## Ablation: does attention pooling beat mean pooling and the last item?",
        "",
        "Same data, split, budget and head for each variant (test NDCG@10, full ranking; relative",
        "change of attention pooling against each):",
        "",
        "| dataset | last item | mean pooling | attention pooling | self-attention + pooling "
        "| pooling vs mean | pooling vs last |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        cells = {v: runs.get(f"{dataset}-{v}", {}).get("test_ndcg@10") for v in VARIANTS}
        if cells["pooling"] is None:
            continue

        def rel(other: float | None, pooled: float = cells["pooling"]) -> str:
            return "-" if not other else f"{(pooled / other - 1) * 100:+.1f}%"

        lines.append(
            f"| {dataset} | {fmt(cells['last'])} | {fmt(cells['mean'])} "
            f"| {fmt(cells['pooling'])} | {fmt(cells['self-attention'])} "
            f"| {rel(cells['mean'])} | {rel(cells['last'])} |"
        )
    return "\n".join(lines) + "\n"


def step_suite(data_root: Path, out_root: Path, baseline: str) -> dict[str, Any]:
    """The `step` suite: the step profile, then baseline and current throughput side by side."""
    profile_file = (out_root / "step_profile.json").resolve()
    command = [
        sys.executable,
        "-m",
        "benchmarks.step_profile",
        "--data",
        str(data_root / "ml-1m"),
        "--preset",
        STEP_PRESET,
        "--out",
        str(profile_file),
    ]
    print(f"[bench] step profile: {' '.join(command[1:])}", flush=True)
    with open(out_root / "step_profile.log", "w", encoding="utf-8") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, check=True)
    source = _checkout(baseline, out_root / f"source-{baseline}")
    data = ["--data", str((ROOT / data_root / "ml-1m").resolve())]
    rates = {}
    for label, tree, name in (
        (f"baseline {baseline}", source, "ml-1m"),
        ("this tree", None, STEP_PRESET),
    ):
        argv = [*data, "--preset", name, *STEP_EPOCHS]
        report = run_train(f"step-{'baseline' if tree else 'current'}", argv, out_root, source=tree)
        rates[label] = {
            "examples_per_second": report["examples_per_second"],
            "train_seconds": report["train_seconds"],
            "validation_seconds": report.get("validation_seconds"),
            "epochs": report["epochs_run"],
        }
    return {
        "profile": json.loads(profile_file.read_text()),
        "throughput": rates,
        "command": f"python -m attnrec_tf.train --data ml-1m --preset {STEP_PRESET} "
        + " ".join(STEP_EPOCHS),
    }


def _checkout(revision: str, folder: Path) -> Path:
    """A read-only copy of `revision`'s tree (git archive), made once."""
    if not (folder / "attnrec_tf").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder.resolve()


def step_markdown(step: dict[str, Any]) -> str:
    """The step section of BENCHMARKS.md."""
    profile = step["profile"]
    gflops = profile["matmul_gflops"]
    lines = [
        f"## The train step, by part (ML-1M, `--preset {STEP_PRESET}`, the `ml-1m` preset before "
        "issue 10)",
        "",
        f"Cumulative forward+backward timings on the same 8 pipeline batches, interleaved "
        f"(`python -m benchmarks --suite step`). This machine's fp32 matmul: "
        f"{gflops:.0f} GFLOP/s, measured in the same process. An epoch has "
        f"{profile['epoch_real_positions']:,} real positions in "
        f"{profile['epoch_positions']:,} window cells.",
    ]
    for label, p in profile["profiles"].items():
        lines += [
            "",
            f"**{label}** batches: {p['real_positions']:.0f} real of {p['positions']:.0f} "
            f"positions a batch, {p['useful_gflop']:.1f} GFLOP of useful matmul work a step.",
            "",
            "| part | ms | share / rate |",
            "|---|---|---|",
            *step_profile.describe(p, gflops),
        ]
    lines += [
        "",
        "Real positions trained per second (`examples_per_second` of report.json, validation "
        f"excluded), two epochs each, one after the other in one run (`{step['command']}`):",
        "",
        "| code | examples/s | train s | validation s | ratio |",
        "|---|---|---|---|---|",
    ]
    rates = step["throughput"]
    first = next(iter(rates.values()))["examples_per_second"]
    for label, r in rates.items():
        lines.append(
            f"| {label} | {r['examples_per_second']:.0f} | {r['train_seconds']:.0f} "
            f"| {fmt(r['validation_seconds'], 1)} | {r['examples_per_second'] / first:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def heads_jobs(data_root: Path, datasets: list[str]) -> list[tuple[str, list[str]]]:
    """`(name, train flags)` of the heads suite."""
    jobs = []
    for dataset in datasets:
        for variant in HEADS:
            for seed in SEEDS:
                jobs.append(
                    (
                        f"heads-{dataset}-{variant}-s{seed}",
                        [
                            "--data", str(data_root / DATASETS[dataset]),
                            "--preset", "sasrec", "--variant", variant, "--seed", str(seed),
                            "--epochs", "1000", "--time-budget", str(HEADS_BUDGET[dataset]),
                            "--no-export", "--sampled-negatives", "0",
                        ],
                    )
                )  # fmt: skip
    return jobs


def heads_markdown(runs: dict[str, Any]) -> str:
    """Mean and standard deviation over seeds of each head, per dataset."""
    lines = [
        "## Does the attention-pooling head add anything on top of self-attention?",
        "",
        "The `sasrec` recipe (`--preset sasrec`) with three heads, the same wall-clock budget of "
        "training (validation included) and seeds 0, 1, 2: test NDCG@10 / HR@10, mean ± "
        "standard deviation over seeds (`python -m benchmarks --suite heads`).",
        "",
        "| dataset | budget s | head | seeds | epochs (mean) | test NDCG@10 | test HR@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        for variant in HEADS:
            prefix = f"heads-{dataset}-{variant}-s"
            rows = list(_seed_rows(runs, prefix).values())
            if rows:
                lines.append(
                    f"| {dataset} | {HEADS_BUDGET[dataset]} | {variant} | {_cells(rows)} |"
                )
    return "\n".join(lines) + "\n"


def _cells(rows: Any) -> str:
    """`seeds | epochs (mean) | test NDCG@10 | test HR@10` of one group of seed runs."""
    rows = list(rows)
    epochs = sum(r["epochs"] for r in rows) / len(rows)
    ndcg = mean_sd([r["test_ndcg@10"] for r in rows])
    return f"{len(rows)} | {epochs:.0f} | {ndcg} | {mean_sd([r['test_hr@10'] for r in rows])}"


def default_jobs(data_root: Path, datasets: list[str]) -> list[tuple[str, list[str]]]:
    """`(name, train flags)` of the default suite: each candidate variant, seed and dataset."""
    return [
        (
            f"default-{dataset}-{variant}-s{seed}",
            [
                "--data", str(data_root / DATASETS[dataset]), "--variant", variant,
                "--seed", str(seed), "--epochs", "200", "--patience", "10",
                "--time-budget", str(DEFAULT_BUDGET[dataset]), "--no-export",
            ],
        )
        for dataset in datasets
        for variant in DEFAULT_CANDIDATES
        for seed in SEEDS
    ]  # fmt: skip


def default_markdown(runs: dict[str, Any]) -> str:
    """Mean and standard deviation over seeds of each candidate default, per dataset."""
    lines = [
        "## Which variant is the default?",
        "",
        "What `python -m attnrec_tf.train --data FILE` trains: each variant with every other "
        "option at its default, the same wall-clock budget (validation included, early stopping "
        "with patience 10) and seeds 0, 1, 2. Test NDCG@10 / HR@10 (mean ± standard deviation "
        "over seeds), NDCG@10 from each user's last item alone (L = 1, the few-picks case) and "
        "the mean over seeds of the change against `pooling`, seed by seed.",
        "",
        "| dataset | budget s | variant | seeds | epochs (mean) | test NDCG@10 | test HR@10 "
        "| L = 1 NDCG@10 | paired change |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        base = _seed_rows(runs, f"default-{dataset}-pooling-s")
        for variant in DEFAULT_CANDIDATES:
            rows = _seed_rows(runs, f"default-{dataset}-{variant}-s")
            if not rows:
                continue
            last = [r["last_item_ndcg@10"] for r in rows.values() if r.get("last_item_ndcg@10")]
            lines.append(
                f"| {dataset} | {DEFAULT_BUDGET[dataset]} | {variant} | {_cells(rows.values())} "
                f"| {mean_sd(last) if last else '-'} "
                f"| {'-' if variant == 'pooling' else _paired_change(rows, base)} |"
            )
    return "\n".join(lines) + "\n"


def _seed_rows(runs: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """The runs named `prefix` + a seed, by seed."""
    return {name[len(prefix) :]: r for name, r in runs.items() if name.startswith(prefix)}


def _paired_change(rows: dict[str, Any], base: dict[str, Any]) -> str:
    """Mean over the seeds both have of the relative test NDCG@10 change against `base`."""
    seeds = sorted(set(rows) & set(base))
    if not seeds:
        return "-"
    changes = [rows[s]["test_ndcg@10"] / base[s]["test_ndcg@10"] - 1 for s in seeds]
    return f"{sum(changes) / len(changes) * 100:+.1f}%"


def scale_row(report: dict[str, Any]) -> dict[str, Any]:
    """The scale-table row of one run (and of its export in a process of its own, if any)."""
    peak = report.get("peak_rss_mb", {})
    export_process = report["bench"].get("export_process", {})
    return {
        "name": report["bench"]["name"],
        "interactions": report["dataset"]["num_interactions"],
        "users": report["dataset"]["num_users"],
        "items": report["dataset"]["num_items"],
        "prepare_seconds": report["prepare_seconds"],
        "epoch_seconds": report["train_seconds"],
        "examples_per_second": report["examples_per_second"],
        "export_seconds": report.get("export_seconds"),
        "peak_rss_mb_prepare": peak.get("prepare"),
        "peak_rss_mb_train": peak.get("train"),
        "peak_rss_mb_export": peak.get("export"),
        "export_process_seconds": export_process.get("wall_seconds"),
        "peak_rss_mb_export_process": export_process.get("peak_rss_mb"),
        "export_process_command": export_process.get("command"),
        "wall_seconds": report["bench"]["wall_seconds"],
        "test_ndcg@10": report["metrics"]["keras"]["ndcg@10"],
        "popularity_ndcg@10": report["metrics"]["popularity"]["ndcg@10"],
        "command": report["bench"]["command"],
    }


def scale_markdown(rows: dict[str, Any]) -> str:
    """The scale section of BENCHMARKS.md."""
    lines = [
        "## Scale (synthetic, 1,000,000-item generator, sampled softmax, one epoch)",
        "",
        "Peak memory of the training command is its process's resident maximum during each "
        "phase (report.json's `peak_rss_mb`: the high-water mark is reset when a phase "
        "starts), so its export figure is the export's own, with what training left resident "
        "in it. The run folder is then exported again in a process of its own (`python -m "
        "attnrec_tf.export`, the last two columns: that process's resident maximum).",
        "",
        "| interactions | users | items in vocabulary | prepare s | 1 epoch s | examples/s "
        "| export s | peak MB prepare | peak MB train | peak MB export | test NDCG@10 "
        "(1,000 users) | popularity | export s, own process | peak MB export, own process |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows.values(), key=lambda r: r["interactions"]):
        lines.append(
            f"| {r['interactions']:,} | {r['users']:,} | {r['items']:,} "
            f"| {r['prepare_seconds']:.1f} | {r['epoch_seconds']:.1f} "
            f"| {r['examples_per_second']:.0f} | {fmt(r['export_seconds'], 1)} "
            f"| {fmt(r['peak_rss_mb_prepare'], 0)} | {fmt(r['peak_rss_mb_train'], 0)} "
            f"| {fmt(r['peak_rss_mb_export'], 0)} | {fmt(r['test_ndcg@10'])} "
            f"| {fmt(r['popularity_ndcg@10'])} | {fmt(r.get('export_process_seconds'), 1)} "
            f"| {fmt(r.get('peak_rss_mb_export_process'), 0)} |"
        )
    lines += [
        "",
        "Growth of the export's peak memory with the catalog:",
        "",
        *scale_growth(rows, "peak_rss_mb_export", "in the training process"),
        *scale_growth(rows, "peak_rss_mb_export_process", "own process"),
        "",
        "Commands:",
        "",
    ]
    for r in sorted(rows.values(), key=lambda r: r["interactions"]):
        lines.append(f"- `{r['command']}`")
    exports = {r.get("export_process_command") for r in rows.values()} - {None}
    lines += [f"- then `{command}` on each run folder" for command in sorted(exports)]
    return "\n".join(lines) + "\n"


def scale_growth(rows: dict[str, Any], key: str, label: str) -> list[str]:
    """Markdown lines: how one peak-memory column grows with the catalog, row to row.

    For consecutive rows (by interactions) with a value in `key`: the peaks, their ratio, the
    catalog's ratio, the ratio per 10x of catalog (`(p2 / p1) ** (1 / log10(n2 / n1))`, the
    growth a 10x larger catalog would bring at the same rate) and the MB each 100,000 more
    items added (`(p2 - p1) / (n2 - n1)`).

    Args:
        rows: The scale rows.
        key: The column, e.g. `peak_rss_mb_export`.
        label: Named in each line (which export).

    Returns:
        One line per pair of consecutive rows (none with fewer than two values).
    """
    import itertools
    import math

    ordered = [r for r in sorted(rows.values(), key=lambda r: r["interactions"]) if r.get(key)]
    lines = []
    for small, large in itertools.pairwise(ordered):
        peak = large[key] / small[key]
        items = large["items"] / small["items"]
        per_10x = peak ** (1 / math.log10(items)) if items > 1 else float("nan")
        slope = (large[key] - small[key]) / (large["items"] - small["items"]) * 1e5
        lines.append(
            f"- {label}, {small['items']:,} -> {large['items']:,} items (x{items:.2f}): "
            f"{small[key]:,.0f} -> {large[key]:,.0f} MB (x{peak:.2f}; x{per_10x:.2f} per 10x "
            f"of catalog; {slope:+,.0f} MB per 100,000 more items)."
        )
    return lines


def _tflite(r: dict[str, Any], prefix: str) -> str:
    """`NDCG / KB / ms` of one TFLite kind of a row, or `-` when it was not exported."""
    ndcg = r.get(f"{prefix}ndcg@10")
    if ndcg is None:
        return "-"
    kb = (r.get(f"{prefix}bytes") or 0) / 1024
    return f"{ndcg:.4f} / {kb:.0f} / {fmt(r.get(prefix + 'latency_ms_p50'), 3)}"


def machine_line(info: dict[str, Any]) -> str:
    """`cores, CPU; Python, TensorFlow, Keras, LiteRT versions` of a `report.machine()` dict."""
    return (
        f"{info.get('cores')} cores, {info.get('cpu')}; Python {info.get('python')}, "
        f"TensorFlow {info.get('tensorflow')}, Keras {info.get('keras')}, "
        f"LiteRT {info.get('ai_edge_litert')}"
    )


def with_source(section: str, command: str, info: dict[str, Any]) -> str:
    """`section` (a `## ` heading first) with the command and machine that made it under its
    heading."""
    heading, _, rest = section.rstrip().partition("\n")
    source = f"Command: `{command}`. Machine: {machine_line(info)}."
    return f"{heading}\n\n{source}\n{rest}"


def markdown(results: dict[str, Any]) -> str:
    """BENCHMARKS.md from the merged JSON: the tables only, each under its command and machine
    (the notes on what was tried are benchmarks/NOTES.md, written by hand)."""
    machines = results.get("machines", {})

    def source(section: str, suite: str, command: str = "") -> list[str]:
        info = machines.get(suite, results["machine"])
        return ["", with_source(section, command or f"python -m benchmarks --suite {suite}", info)]

    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks` from `benchmarks/results.json` (edit the code, not "
        "this file; `benchmarks/README.md` says what each suite measures, `benchmarks/NOTES.md` "
        "what was tried). Protocol: leave-one-out, full ranking over the whole catalog, items in "
        "the history excluded, model chosen by validation NDCG@10. Latency: LiteRT interpreter, "
        "one thread, one request, median after warm-up.",
        "",
        f"Machine: {machine_line(results['machine'])}. Updated {results.get('updated')}.",
    ]
    accuracy = accuracy_markdown(results["runs"])
    command = "python -m benchmarks --suite ablation` and `python -m benchmarks --suite preset"
    lines += source(accuracy, "preset", command)
    lines += source(ablation_markdown(results["runs"]), "ablation")
    if any(name.startswith("heads-") for name in results["runs"]):
        lines += source(heads_markdown(results["runs"]), "heads")
    if any(name.startswith("default-") for name in results["runs"]):
        lines += source(default_markdown(results["runs"]), "default")
    if results.get("step"):
        lines += source(step_markdown(results["step"]), "step")
    if results.get("scale"):
        lines += source(scale_markdown(results["scale"]), "scale")
    if results.get("out_of_core"):
        text = out_of_core.markdown(results["out_of_core"])
        lines += source(text, "out-of-core")
    if results.get("catalog"):
        lines += source(catalog.catalog_markdown(results["catalog"]), "catalog")
    if results.get("peers"):
        lines += source(peers.peers_markdown(results["peers"]), "peers")
    if results.get("explanations"):
        text = explanations.explanations_markdown(results["explanations"])
        lines += source(text, "explanations")
    if results.get("history"):
        runs = ",".join(row["path"] for _, row in sorted(results["history"].items()))
        command = f"python -m benchmarks --suite history --history-runs {runs}"
        lines += source(history.history_markdown(results["history"]), "history", command)
    if results.get("noise"):
        entry = results["noise"]
        runs = ",".join(sorted(entry["seeds"]))
        command = f"python -m benchmarks --suite noise --noise-runs {runs}"
        text = noise.markdown(entry["seeds"], entry["ties"], entry.get("sasrec"), entry.get("plot"))
        lines += source(text, "noise", command)
    if results.get("litert"):
        timed = results["litert"].get("runs", [results["litert"]])
        command = "python -m benchmarks --suite litert --litert-run " + ",".join(
            entry["run"] for entry in timed
        )
        lines += source(litert_tool.litert_markdown(results["litert"]), "litert", command)
    if results.get("recommend"):
        run = results["recommend"].get("run", "RUN")
        command = f"python -m benchmarks --suite recommend --run {run}"
        lines += source(
            recommend_bench.recommend_markdown(results["recommend"]), "recommend", command
        )
    return "\n".join(lines) + "\n"


def accuracy_markdown(runs: dict[str, Any]) -> str:
    """The accuracy table: every run of the ablation and preset suites, with its command."""
    lines = [
        "## Accuracy",
        "",
        "| run | variant | epochs (best) | train s | ex/s | val HR@10 | val NDCG@10 | test HR@10 "
        "| test NDCG@10 | test MRR | popularity NDCG@10 | dynamic-int8 NDCG@10 / KB / p50 ms "
        "| int8 NDCG@10 / KB / p50 ms | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table = {k: r for k, r in runs.items() if not k.startswith(("heads-", "default-"))}
    for r in sorted(table.values(), key=lambda r: (r["dataset"], r["name"])):
        lines.append(
            f"| {r['name']} | {r['variant']} | {r['epochs']} ({r['best_epoch']}) "
            f"| {r['train_seconds']:.0f} | {r['examples_per_second']:.0f} "
            f"| {fmt(r['valid_hr@10'])} | {fmt(r['valid_ndcg@10'])} | {fmt(r['test_hr@10'])} "
            f"| {fmt(r['test_ndcg@10'])} | {fmt(r['test_mrr'])} "
            f"| {fmt(r['popularity_ndcg@10'])} | {_tflite(r, 'dynamic_int8_')} "
            f"| {_tflite(r, 'int8_')} | {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", "Commands:", ""]
    for r in sorted(table.values(), key=lambda r: r["name"]):
        lines.append(f"- `{r['name']}`: `{r['command']}`")
    return "\n".join(lines) + "\n"


def save(results: dict[str, Any], root: Path, suite: str | None = None) -> None:
    """Merges `results` into what is on disk (another bench may have written meanwhile), then
    writes `RESULTS_JSON` and `RESULTS_MD` under `root`; `suite` records this machine as the
    one that ran that suite."""
    on_disk = load_results(root)
    keys = ("runs", "scale", "out_of_core", "peers", "explanations", "catalog", "history")
    for key in (*keys, "machines"):
        results[key] = {**on_disk.get(key, {}), **results.get(key, {})}
    for key in ("step", "recommend", "litert"):
        if key in on_disk and key not in results:
            results[key] = on_disk[key]
    results["machine"] = machine()
    if suite is not None:
        results["machines"][suite] = results["machine"]
    results["updated"] = time.strftime("%Y-%m-%d")
    atomic.write_json(root / RESULTS_JSON, results)
    atomic.write_text(root / RESULTS_MD, markdown(results))


def build_parser() -> argparse.ArgumentParser:
    """The CLI of `python -m benchmarks` (the peers suite has its own: `peers.py`)."""
    parser = command_parser("python -m benchmarks", __doc__, doc=True)
    parser.add_argument(
        "--suite",
        choices=(
            "all",
            "ablation",
            "heads",
            "default",
            "preset",
            "step",
            "scale",
            "out-of-core",
            "catalog",
            "recommend",
            "explanations",
            "history",
            "noise",
            "litert",
            "render",
            "peers",
        ),
        help="render: rewrite BENCHMARKS.md from benchmarks/results.json without running anything",
        default="all",
    )
    parser.add_argument(
        "--datasets", default="ml-100k,ml-1m", help="comma-separated: ml-100k, ml-1m"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "runs" / "bench", help="run folders and logs"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT,
        help=f"where results go: {RESULTS_JSON}, {RESULTS_MD} and the plots ({PLOTS}/) under it",
    )
    parser.add_argument(
        "--run",
        type=Path,
        default=ROOT / "runs" / "bench" / "ml-1m-preset",
        help="recommend suite: the exported run whose users are recommended",
    )
    parser.add_argument(
        "--explain-runs",
        default=str(ROOT / "runs" / "bench" / "ml-1m-preset"),
        help="explanations suite: comma-separated exported runs to judge",
    )
    parser.add_argument(
        "--explain-users", type=int, default=200, help="explanations suite: test users a run"
    )
    parser.add_argument(
        "--litert-run",
        default=str(ROOT / "runs" / "bench" / "ml-1m-preset"),
        help="litert suite: the exported run (or comma-separated runs, timed one after the "
        "other) whose .tflite files LiteRT's benchmark tool times",
    )
    parser.add_argument(
        "--history-runs",
        default="",
        help="history suite: comma-separated finished runs whose NDCG@10 by history length "
        "to table",
    )
    parser.add_argument(
        "--noise-runs",
        default="",
        help="noise suite: comma-separated finished runs to table by seed (grouped by settings)",
    )
    parser.add_argument(
        "--tie-seeds",
        default=",".join(str(seed) for seed in noise.TIE_SEEDS),
        help="noise suite: tie shuffle seeds of ML-100K to train (empty: keep the last table)",
    )
    parser.add_argument(
        "--oc-sizes",
        default=",".join(str(size) for size in out_of_core.SIZES),
        help="out-of-core suite: comma-separated log sizes (interactions)",
    )
    parser.add_argument(
        "--catalogs", default="10k,50k,200k", help="catalog suite: comma-separated sizes to run"
    )
    parser.add_argument(
        "--baseline-ref", default=STEP_BASELINE, help="git revision the step suite compares with"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`).

    `--suite peers` hands the other flags to `peers.main` (its own flags: `--suite peers --help`).
    """
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("--suite")
    known, rest = first.parse_known_args(argv)
    if known.suite == "peers":
        return peers.main(rest, save)
    args = build_parser().parse_args(argv)
    quiet_tensorflow()  # save() records the machine, which imports TensorFlow
    return run_command(lambda: run_suites(args))


def run_suites(args: argparse.Namespace) -> None:
    """Runs the chosen suite(s), saving after every run; prints BENCHMARKS.md at the end.

    Raises:
        ConfigError: Not a source checkout, an unknown dataset, or its folder is missing.
    """
    problem = checkout_problem()
    if problem:
        raise ConfigError(problem)
    datasets = check_datasets(args.datasets, args.data_root)
    if args.suite == "render":
        save(json.loads((args.results / RESULTS_JSON).read_text()), args.results)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    data_root = Path(os.path.relpath(args.data_root.resolve(), ROOT))  # short, portable commands
    results = load_results(args.results)
    for name, job_argv in train_jobs(args.suite, data_root, datasets, args.variants.split(",")):
        report = run_train(name, job_argv, args.out)
        results["runs"][name] = row(report)
        save(results, args.results, job_suite(name))
    if args.suite in ("all", "step"):
        results["step"] = step_suite(data_root, args.out, args.baseline_ref)
        save(results, args.results, "step")
    if args.suite in ("all", "scale"):
        scale_suite(results, args.out, args.results)
    if args.suite == "out-of-core":  # about an hour: not part of "all"
        sizes = tuple(int(size) for size in args.oc_sizes.split(",") if size)
        out_of_core.suite(results, args.out / "out-of-core", sizes)
        save(results, args.results, "out-of-core")
    if args.suite in ("all", "catalog"):

        def save_catalog(rows: dict[str, Any]) -> None:
            results["catalog"] = rows
            save(results, args.results, "catalog")

        catalog.catalog_suite(args.out, save_catalog, check_catalogs(args.catalogs))
    if args.suite in ("all", "explanations"):
        for run in (Path(r) for r in args.explain_runs.split(",") if r):
            entry = explanations.faithfulness(run, users=args.explain_users)
            results.setdefault("explanations", {})[run.name] = entry
            save(results, args.results, "explanations")
    if args.suite == "litert":
        runs = [Path(run) for run in str(args.litert_run).split(",") if run]
        results["litert"] = {"runs": [litert_tool.litert_suite(run) for run in runs]}
        save(results, args.results, "litert")
    if args.suite == "history":
        for run in (Path(r) for r in args.history_runs.split(",") if r):
            results.setdefault("history", {})[str(run)] = history.history_row(run)
        save(results, args.results, "history")
    if args.suite == "noise":
        entry = results.setdefault("noise", {"seeds": {}, "ties": {}})
        noise.fill_machine(entry["seeds"], results.get("machines", {}).get("noise", {}).get("cpu"))
        for run in (Path(r) for r in args.noise_runs.split(",") if r):
            entry["seeds"][str(run)] = noise.seed_row(run)
        seeds = tuple(int(seed) for seed in args.tie_seeds.split(",") if seed)
        if seeds:
            entry["ties"] = noise.tie_order(args.data_root, args.out / "noise", seeds)
        entry["sasrec"] = noise.sasrec_file_agreement(args.data_root / "ml-1m")
        if noise.plot_tried(entry["seeds"], args.results / PLOTS / noise.PLOT):
            entry["plot"] = (PLOTS / noise.PLOT).as_posix()
        save(results, args.results, "noise")
    if args.suite in ("all", "recommend"):
        results["recommend"] = recommend_bench.recommend_suite(args.run, args.out)
        save(results, args.results, "recommend")
    print((args.results / RESULTS_MD).read_text())


def check_catalogs(text: str) -> tuple[str, ...]:
    """The `--catalogs` sizes, each one of `catalog.CATALOGS` (ConfigError naming the flag)."""
    sizes = tuple(c for c in text.split(",") if c)
    unknown = [c for c in sizes if c not in catalog.CATALOGS]
    if unknown or not sizes:
        raise ConfigError(
            f"--catalogs: unknown {unknown or text!r} (known: {', '.join(catalog.CATALOGS)})"
        )
    return sizes


def check_datasets(text: str, data_root: Path) -> list[str]:
    """The `--datasets` names, each known and with its folder under `data_root`.

    Raises:
        ConfigError: An unknown name, or a missing folder (the message names the flag).
    """
    datasets = [d for d in text.split(",") if d]
    for name in datasets:
        if name not in DATASETS:
            raise ConfigError(f"--datasets: unknown {name!r} (known: {', '.join(DATASETS)})")
        if not (data_root / DATASETS[name]).is_dir():
            raise ConfigError(f"--data-root: {data_root / DATASETS[name]} not found")
    return datasets


def job_suite(name: str) -> str:
    """The suite of a training run of `train_jobs`, by its name."""
    if name.startswith(("heads-", "default-")):
        return name.split("-", 1)[0]
    return "preset" if name.endswith("-preset") else "ablation"


def train_jobs(
    suite: str, data_root: Path, datasets: list[str], variants: list[str]
) -> list[tuple[str, list[str]]]:
    """`(name, train flags)` of the training runs of `suite`: ablation, heads, default, then
    preset."""
    jobs: list[tuple[str, list[str]]] = []
    if suite in ("all", "ablation"):
        jobs += ablation_jobs(data_root, datasets, variants)
    if suite in ("all", "heads"):
        jobs += heads_jobs(data_root, datasets)
    if suite in ("all", "default"):
        jobs += default_jobs(data_root, datasets)
    if suite in ("all", "preset") and "ml-1m" in datasets:
        jobs.append(("ml-1m-preset", ["--data", str(data_root / "ml-1m"), "--preset", "ml-1m"]))
    return jobs


def ablation_jobs(
    data_root: Path, datasets: list[str], variants: list[str]
) -> list[tuple[str, list[str]]]:
    """`(name, train flags)` of the ablation suite: each variant on each dataset's budget."""
    return [
        (
            f"{dataset}-{variant}",
            [
                "--data", str(data_root / DATASETS[dataset]), "--variant", variant,
                *ABLATION[dataset], "--no-export", "--sampled-negatives", "0",
            ],
        )
        for dataset in datasets
        for variant in variants
    ]  # fmt: skip


def scale_suite(results: dict[str, Any], out_root: Path, results_dir: Path) -> None:
    """The `scale` suite: one synthetic run per `SCALE_INTERACTIONS`, saved after each.

    Each run trains and exports in one process (`python -m attnrec_tf.train`), then its folder
    is exported again in a process of its own (`run_export`), as a trained run is re-exported.
    """
    for interactions in SCALE_INTERACTIONS:
        users = interactions // 40
        spec = f"synthetic:num_users={users},num_items={SCALE_ITEMS},mean_length=40"
        name = f"scale-{interactions}"
        report = run_train(name, ["--data", spec, *SCALE_ARGS], out_root)
        report["bench"]["export_process"] = run_export(name, out_root / name, out_root)
        results.setdefault("scale", {})[name] = scale_row(report)
        save(results, results_dir, "scale")


def run_export(name: str, run: Path, out_root: Path) -> dict[str, Any]:
    """Exports a trained run folder in a process of its own; its wall time and peak memory.

    Returns:
        `{"command", "wall_seconds", "peak_rss_mb"}` (`peak_rss_mb`: the process's resident
        maximum, from `wait4`).
    """
    argv = ["--output-dir", str(run.resolve()), "--tflite", SCALE_TFLITE, "--quiet"]
    command = [sys.executable, "-m", "attnrec_tf.export", *argv]
    print(f"[bench] {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    with open(out_root / f"{name}-export.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"[bench] {name} export failed; see {out_root / (name + '-export.log')}")
    return {
        "command": f"python -m attnrec_tf.export --output-dir RUN --tflite {SCALE_TFLITE}",
        "wall_seconds": time.perf_counter() - start,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks --suite catalog`: what a larger catalog costs, loss by loss.

Synthetic logs sized like real e-commerce logs (`CATALOGS`): about 0.35M interactions of 35,000
users over about 10k and 50k items, and 0.72M interactions of 60,000 users over about 200k
items (a log needs more users to reach that many distinct items); 64 to 256 item genres. On
each, the default configuration is trained for `EPOCHS` epochs with early stopping off
(equal epochs), once with its default loss (`--loss auto`) and once with each other row of
`RUNS`, then exported. Each row has the step time and real positions per second as `train` runs them
(validation excluded), the validation seconds per epoch (and on how many users), test NDCG@10
over every user, and each `.tflite` file's size, p50 and NDCG@10.

The full softmax at the 200k catalog would take about an hour per epoch here, so its row is
the median time of `STEP_ONLY_STEPS` train steps on the run's own batches (`time_steps`,
`train_on_batch` after warm-up), labelled so; it has no accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from attnrec_tf.cli import command_parser, quiet_tensorflow, run_command
from benchmarks import common

CATALOGS = {
    "10k": "synthetic:num_users=35000,num_items=12000,mean_length=10,num_interests=64",
    "50k": "synthetic:num_users=35000,num_items=60000,mean_length=10,num_interests=256",
    "200k": "synthetic:num_users=60000,num_items=600000,mean_length=12,num_interests=256",
}
"""Generator settings of each catalog (`--data` values); every item seen once is kept."""
LOSSES = {
    "auto": ["--loss", "auto"],
    "softmax": ["--loss", "softmax"],
    "sampled": ["--loss", "sampled"],
    "sampled-1024": ["--loss", "sampled", "--num-negatives", "1024"],
    "sampled-lazy": ["--loss", "sampled", "--lazy-adam"],
    "sampled-batch-512": ["--loss", "sampled", "--batch-size", "512", "--learning-rate", "6e-3"],
}
"""Each run's loss flags by row name; `auto` is the default."""
RUNS = {
    "10k": ("auto", "softmax", "sampled"),
    "50k": ("auto", "softmax", "sampled", "sampled-1024", "sampled-lazy", "sampled-batch-512"),
    "200k": ("auto", "softmax", "sampled"),
}
"""The rows of each catalog. `auto` runs first; the row whose flags it amounts to (its loss
with default flags) is not run again."""
EPOCHS = 8
STEP_ONLY = {("200k", "softmax")}
"""(catalog, loss) pairs measured by `time_steps` only (too slow to train in the bench)."""
STEP_ONLY_STEPS = 20
RUN_ARGS = ["--min-item-interactions", "1", "--epochs", str(EPOCHS), "--patience", str(EPOCHS)]
RUN_ARGS += ["--no-resume"]  # every row trains afresh, whatever an earlier run left
TFLITE_KINDS = ("float32", "float16", "dynamic_int8", "int8")


def catalog_suite(
    out_root: Path, save: Any, catalogs: tuple[str, ...] = tuple(CATALOGS)
) -> dict[str, Any]:
    """Runs each of `catalogs` x its losses; calls `save(rows)` after each run. Returns the
    rows."""
    rows: dict[str, Any] = {}
    for catalog in catalogs:
        spec = CATALOGS[catalog]
        chosen = None
        for loss in RUNS[catalog]:
            flags = LOSSES[loss]
            if loss == chosen:  # the default already ran with these flags
                continue
            name = f"catalog-{catalog}-{loss}"
            if (catalog, loss) in STEP_ONLY:
                rows[name] = steps_row(name, catalog, spec, flags, out_root)
            else:
                report = common.run_train(name, ["--data", spec, *flags, *RUN_ARGS], out_root)
                rows[name] = catalog_row(report, catalog, loss)
            chosen = chosen or rows[name]["loss_used"]
            save(rows)
    return rows


def catalog_row(report: dict[str, Any], catalog: str, loss: str) -> dict[str, Any]:
    """The table row of one trained and exported run."""
    epochs = max(report["epochs_run"], 1)
    steps = report.get("steps_per_epoch") or 1
    fit_seconds = report["train_seconds"] - report["validation_seconds"]
    metrics, artifacts = report["metrics"], report.get("artifacts", {})
    row: dict[str, Any] = {
        "name": report["bench"]["name"],
        "catalog": catalog,
        "loss": loss,
        "loss_used": report["config"]["loss"],
        "loss_reason": report.get("loss_choice", {}).get("reason"),
        "items": report["dataset"]["num_items"],
        "users": report["dataset"]["num_users"],
        "interactions": report["dataset"]["num_interactions"],
        "epochs": report["epochs_run"],
        "step_ms": fit_seconds / (epochs * steps) * 1000,
        "positions_per_second": report["examples_per_second"],
        "validation_seconds_per_epoch": report["validation_seconds"] / epochs,
        "validation_users": report["validation"].get("users", {}),
        "final_validation_seconds": report["validation"]["keras"].get("validation_seconds"),
        "test_ndcg@10": metrics["keras"]["ndcg@10"],
        "test_users": metrics["keras"]["num_users"],
        "popularity_ndcg@10": metrics["popularity"]["ndcg@10"],
        "window_ndcg@10": metrics.get("keras_window", {}).get("ndcg@10"),
        "command": report["bench"]["command"],
        "step_only": False,
    }
    for kind in TFLITE_KINDS:
        artifact = artifacts.get(f"tflite_{kind}", {})
        row[f"{kind}_bytes"] = artifact.get("bytes")
        row[f"{kind}_p50_ms"] = artifact.get("latency_ms_p50")
        row[f"{kind}_ndcg@10"] = metrics.get(f"tflite_{kind}", {}).get("ndcg@10")
    return row


def steps_row(
    name: str, catalog: str, spec: str, flags: list[str], out_root: Path
) -> dict[str, Any]:
    """A row with the step time only: `time_steps` in a process of its own."""
    out = out_root / f"{name}.json"
    loss = flags[flags.index("--loss") + 1]
    command = [sys.executable, "-m", "benchmarks.catalog", "--data", spec, "--loss", loss]
    command += ["--steps", str(STEP_ONLY_STEPS), "--out", str(out)]
    print(f"[bench] {name}: {' '.join(command[1:])}", flush=True)
    with open(out_root / f"{name}.log", "w", encoding="utf-8") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    timing = json.loads(out.read_text())
    return {
        "name": name,
        "catalog": catalog,
        "loss": name.rsplit("-", 1)[-1],
        "loss_used": loss,
        "items": timing["items"],
        "users": timing["users"],
        "interactions": timing["interactions"],
        "step_ms": timing["step_seconds"] * 1000,
        "positions_per_second": timing["positions_per_second"],
        "command": "python -m benchmarks.catalog " + " ".join(command[3:-2]),
        "step_only": True,
    }


def time_steps(data: str, loss: str, steps: int) -> dict[str, Any]:
    """Median `train_on_batch` time of the default configuration with `loss` on `data`.

    The model, optimizer, batches and op determinism are those of a training run
    (`training.fit`); `steps` batches are timed after three warm-up steps.
    """
    import tensorflow as tf

    from attnrec_tf.config import Config
    from attnrec_tf.run_options import RunOptions
    from attnrec_tf.training.fit import TrainingData, build_compiled_model
    from attnrec_tf.training.run import prepare_data

    tf.config.experimental.enable_op_determinism()
    config = Config(loss=loss, min_item_interactions=1).validated()
    options = RunOptions(data=data, export=False)
    prepared = prepare_data(config, options)
    assert prepared.stats is not None  # a log, not a prepared folder: the in-memory path
    training = TrainingData(prepared.split.train, config)
    batches = list(training.dataset().repeat().take(steps + 3))
    features = prepared.features if config.item_features else None
    model = build_compiled_model(config, prepared.vocabulary.size, features, training)
    times, positions = [], []
    for index, (inputs, targets) in enumerate(batches):
        start = time.perf_counter()
        model.train_on_batch(inputs, targets)
        if index >= 3:
            times.append(time.perf_counter() - start)
            positions.append(int((targets.numpy() > 0).sum()))
    step = statistics.median(times)
    return {
        "items": prepared.vocabulary.num_items,
        "users": prepared.stats.users_kept,
        "interactions": prepared.stats.interactions_kept,
        "steps": len(times),
        "step_seconds": step,
        "positions_per_second": statistics.mean(positions) / step,
    }


def catalog_markdown(rows: dict[str, Any]) -> str:
    """The catalog section of BENCHMARKS.md."""
    lines = [
        "## Catalog size (synthetic, default configuration, each loss)",
        "",
        f"Each run: `python -m attnrec_tf.train --data SPEC --loss LOSS {' '.join(RUN_ARGS)}` "
        "(`python -m benchmarks --suite catalog`; SPEC in `benchmarks/catalog.py`). "
        "`auto` is the default: the loss it chose is named. Step time and positions/s are "
        "those of `fit` in the run, validation excluded; validation s is per epoch, on the "
        "users named (a fixed sample during training when the catalog is large, every user "
        "once at the end); test NDCG@10 is over every user. `.tflite` cells: KB / p50 ms / "
        "NDCG@10 (LiteRT, one thread).",
        "",
        "| run | items | loss | step ms | real positions/s | validation s/epoch (users) "
        "| test NDCG@10 | popularity | float32 | float16 | dynamic int8 | int8 "
        "| dynamic int8 / int8 of float32 bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ordered = sorted(rows.values(), key=lambda r: (r["items"], r["name"]))
    for r in ordered:
        lines.append(_markdown_row(r))
    lines += ["", *speedup_lines(rows), "", "Commands:", ""]
    lines += [f"- `{r['name']}`: `{r['command']}`" for r in ordered]
    return "\n".join(lines) + "\n"


def _markdown_row(r: dict[str, Any]) -> str:
    loss = r["loss"] if r["loss"] != "auto" else f"auto -> {r['loss_used']}"
    if r["step_only"]:
        return (
            f"| {r['name']} | {r['items']:,} | {loss} | {r['step_ms']:.0f} "
            f"| {r['positions_per_second']:,.0f} | not trained: step time of "
            f"{STEP_ONLY_STEPS} steps only | - | - | - | - | - | - | - |"
        )
    users = r["validation_users"]
    per_epoch = f"{users.get('per_epoch', 0):,} of {users.get('of', 0):,}"
    sizes = [r.get(f"{kind}_bytes") for kind in ("float32", "dynamic_int8", "int8")]
    ratio = (
        f"{sizes[1] / sizes[0]:.0%} / {sizes[2] / sizes[0]:.0%}" if all(sizes) and sizes[0] else "-"
    )
    cells = [_tflite_cell(r, kind) for kind in TFLITE_KINDS]
    return (
        f"| {r['name']} | {r['items']:,} | {loss} | {r['step_ms']:.0f} "
        f"| {r['positions_per_second']:,.0f} | {r['validation_seconds_per_epoch']:.1f} "
        f"({per_epoch}) | {r['test_ndcg@10']:.4f} | {r['popularity_ndcg@10']:.4f} "
        f"| {' | '.join(cells)} | {ratio} |"
    )


def _tflite_cell(r: dict[str, Any], kind: str) -> str:
    size = r.get(f"{kind}_bytes")
    if not size:
        return "-"
    p50, ndcg = r.get(f"{kind}_p50_ms"), r.get(f"{kind}_ndcg@10")
    p50_text = "-" if p50 is None else f"{p50:.2f}"
    ndcg_text = "-" if ndcg is None else f"{ndcg:.4f}"
    return f"{size / 1024:,.0f} / {p50_text} / {ndcg_text}"


def speedup_lines(rows: dict[str, Any]) -> list[str]:
    """Per catalog: the sampled softmax's positions/s and test NDCG@10 as ratios of the full
    softmax's (the default's row and the other loss's), in the same bench run."""
    lines = []
    for catalog in CATALOGS:
        default = rows.get(f"catalog-{catalog}-auto")
        if not default:
            continue
        other = "sampled" if default["loss_used"] == "softmax" else "softmax"
        pair = {default["loss_used"]: default, other: rows.get(f"catalog-{catalog}-{other}")}
        sampled, softmax = pair["sampled"], pair["softmax"]
        if not sampled or not softmax:
            continue
        speed = sampled["positions_per_second"] / softmax["positions_per_second"]
        line = (
            f"- {catalog} ({default['items']:,} items), default {default['loss_used']}: the "
            f"sampled softmax trains {sampled['positions_per_second']:,.0f} real positions/s, "
            f"**{speed:.1f}x** the full softmax's {softmax['positions_per_second']:,.0f}"
        )
        if not softmax["step_only"]:
            accuracy = sampled["test_ndcg@10"] / softmax["test_ndcg@10"]
            line += (
                f"; test NDCG@10 {sampled['test_ndcg@10']:.4f} = **{accuracy:.1%}** of the "
                f"full softmax's {softmax['test_ndcg@10']:.4f} at {softmax['epochs']} epochs each"
            )
        else:
            line += " (the full softmax's from its step time alone; not trained)"
        lines.append(line + ".")
        lines += _variant_lines(rows, catalog, softmax, skip=(sampled["name"], softmax["name"]))
    return lines


def _variant_lines(
    rows: dict[str, Any], catalog: str, softmax: dict[str, Any], skip: tuple[str, ...]
) -> list[str]:
    """Sub-items: the catalog's other trained rows as ratios of the full softmax's."""
    if softmax["step_only"]:
        return []
    lines = []
    for r in sorted(rows.values(), key=lambda r: r["name"]):
        if r["catalog"] != catalog or r["name"] in skip or r["step_only"]:
            continue
        speed = r["positions_per_second"] / softmax["positions_per_second"]
        accuracy = r["test_ndcg@10"] / softmax["test_ndcg@10"]
        lines.append(f"  - {r['loss']}: {speed:.1f}x the positions/s, {accuracy:.1%} of NDCG@10.")
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The CLI of `python -m benchmarks.catalog` (the step-time-only measurement)."""
    parser = command_parser("python -m benchmarks.catalog", __doc__, doc=True)
    parser.add_argument("--data", required=True, help="a --data value (e.g. synthetic:...)")
    parser.add_argument("--loss", default="softmax")
    parser.add_argument("--steps", type=int, default=STEP_ONLY_STEPS)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the result")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.catalog --data SPEC --loss L --out FILE.json`."""
    args = build_parser().parse_args(argv)

    def measure() -> None:
        from attnrec_tf import atomic

        quiet_tensorflow()
        result = time_steps(args.data, args.loss, args.steps)
        atomic.write_json(args.out, result)
        print(json.dumps(result, indent=1))

    return run_command(measure)


if __name__ == "__main__":
    sys.exit(main())

"""The `out-of-core` suite: synthetic logs of 10^6, 10^7 and 10^8 interactions, prepared with
DuckDB under a memory limit and streamed into training, each step in a process of its own.

For each size the suite
1. writes the log in chunks of at most `CHUNK_INTERACTIONS` rows, one Parquet file a chunk
   (`synthetic.generate` per chunk with its own seed and user ids; a 1,000,000-item catalog);
2. runs `python -m attnrec_tf.prepare` on the folder of chunks with `--memory-limit 3GB` and a
   temp folder of its own, and records its wall time, the peak resident memory of its process
   tree (sampled from /proc every `SAMPLE_SECONDS`) and of the process (`wait4`), the shard bytes,
   whether the temp folder is empty afterwards and whether the manifest's counts add up;
3. trains from the prepared folder for a fixed number of steps (`TRAIN_ARGS`, no export) and
   records positions/s and the training phase's peak memory (report.json).

Training memory is compared at the same model: the largest prepared folder is also trained from
one of its shards only (`SUBSET` below: the same vocabulary, so the same model and optimizer
state, and about 1/64 of the data), so the difference in peak memory is what the amount of data
costs, not the catalog.

The table goes to BENCHMARKS.md ("Out of core") with the growth per 10x and an extrapolation to
10^9 interactions. Run: `python -m benchmarks --suite out-of-core` (about an hour on 2 cores;
`--oc-sizes 1000000,10000000` for fewer).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT

SIZES = (1_000_000, 10_000_000, 100_000_000)
ITEMS = 1_000_000
MEAN_LENGTH = 100
CHUNK_INTERACTIONS = 10_000_000
MEMORY_LIMIT = "3GB"
SHARDS = 64
SAMPLE_SECONDS = 0.2
TRAIN_STEPS = 300
TRAIN_ARGS = [
    "--loss", "sampled", "--num-negatives", "1024", "--batch-size", "256", "--max-len", "50",
    "--epochs", "1", "--steps-per-epoch", str(TRAIN_STEPS), "--eval-users", "2000",
    "--validation-users", "2000", "--sampled-negatives", "0", "--no-export", "--no-resume",
    "--stream",
]  # fmt: skip
SUBSET = "subset-1-of-64"


def write_log(folder: Path, interactions: int, seed: int = 0) -> dict[str, Any]:
    """Writes a synthetic log of about `interactions` rows as Parquet chunks; what it wrote.

    Each chunk is `synthetic.generate(num_users=n, num_items=ITEMS, mean_length=MEAN_LENGTH,
    seed=seed + chunk)` with its users renumbered after the previous chunks', so no chunk is held
    in memory with another.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from attnrec_tf.data.synthetic import generate

    if (folder / "_SUCCESS").is_file():
        return json.loads((folder / "_SUCCESS").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started, rows, first_user = time.perf_counter(), 0, 0
    chunks = max(1, math.ceil(interactions / CHUNK_INTERACTIONS))
    for chunk in range(chunks):
        users = max(1, interactions // chunks // MEAN_LENGTH)
        data = generate(
            num_users=users, num_items=ITEMS, mean_length=MEAN_LENGTH, seed=seed + chunk
        ).interactions
        table = pa.table(
            {
                "user_id": data.users + first_user,
                "item_id": data.items,
                "timestamp": data.timestamps.astype(np.int64),
            }
        )
        pq.write_table(table, folder / f"part-{chunk:05d}.parquet")
        rows, first_user = rows + len(data), first_user + users
        print(f"[bench] log {folder.name}: chunk {chunk + 1}/{chunks}, {rows:,} rows", flush=True)
    written = {
        "rows": rows,
        "users": first_user,
        "bytes": sum(p.stat().st_size for p in folder.glob("*.parquet")),
        "seconds": time.perf_counter() - started,
    }
    (folder / "_SUCCESS").write_text(json.dumps(written))
    return written


def _tree_rss_mb(pid: int) -> float:
    """The resident memory of `pid` and its descendants, MB (0 once they are gone)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as handle:
                    stack += [int(child) for child in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def measured(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs `command` to its end; its wall time, exit status and peak memory (tree and own).

    Raises:
        SystemExit: The command failed (names its log).
    """
    print(f"[bench] {' '.join(command[1:])}", flush=True)
    peak = [0.0]
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                peak[0] = max(peak[0], _tree_rss_mb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"[bench] failed: {' '.join(command[1:])}; see {log}")
    return {
        "seconds": time.perf_counter() - started,
        "peak_tree_mb": max(peak[0], usage.ru_maxrss / 1024),
        "peak_process_mb": usage.ru_maxrss / 1024,
    }


def prepare(log_folder: Path, prepared: Path, temp: Path, out_root: Path) -> dict[str, Any]:
    """`python -m attnrec_tf.prepare` on a log folder; its measurements and manifest checks."""
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    argv = [
        "--data", str(log_folder / "*.parquet"), "--output", str(prepared),
        "--memory-limit", MEMORY_LIMIT, "--temp-dir", str(temp), "--shards", str(SHARDS),
    ]  # fmt: skip
    command = [sys.executable, "-m", "attnrec_tf.prepare", *argv]
    row = measured(command, out_root / f"{prepared.name}.log")
    manifest = json.loads((prepared / "manifest.json").read_text())
    shards = manifest["shards"]
    row.update(
        command="python -m attnrec_tf.prepare " + " ".join(argv),
        temp_left=sorted(str(p.relative_to(temp)) for p in temp.rglob("*")),
        counts_add_up=(
            sum(s["users"] for s in shards) == manifest["num_users"]
            and sum(s["evaluated"] for s in shards) == manifest["num_evaluated"]
            and sum(s["train_items"] for s in shards) == manifest["train_items"]
        ),
        shard_bytes=sum(s["bytes"] for s in shards),
        users=manifest["num_users"],
        items=manifest["num_items"],
        interactions=manifest["filters"]["interactions_kept"],
        train_items=manifest["train_items"],
    )
    return row


def subset(prepared: Path, target: Path) -> Path:
    """A prepared folder holding shard 0 of `prepared` only (links; same vocabulary)."""
    manifest = json.loads((prepared / "manifest.json").read_text())
    shutil.rmtree(target, ignore_errors=True)
    (target / "shards").mkdir(parents=True)
    first = manifest["shards"][0]
    for name in ("vocabulary.json", "item_counts.npy", first["file"]):
        os.symlink((prepared / name).resolve(), target / name)
    kept = {
        **manifest,
        "shards": [first],
        "num_users": first["users"],
        "num_evaluated": first["evaluated"],
        "train_items": first["train_items"],
    }
    (target / "manifest.json").write_text(json.dumps(kept, indent=2))
    return target


def train(prepared: Path, out_root: Path, name: str) -> dict[str, Any]:
    """Trains `TRAIN_STEPS` steps from a prepared folder; positions/s and peak memory."""
    run = out_root / f"{name}-run"
    command = [
        sys.executable, "-m", "attnrec_tf.train", "--data", str(prepared),
        "--output-dir", str(run), *TRAIN_ARGS,
    ]  # fmt: skip
    row = measured(command, out_root / f"{name}-train.log")
    report = json.loads((run / "report.json").read_text())
    row.update(
        command="python -m attnrec_tf.train --data PREPARED " + " ".join(TRAIN_ARGS),
        positions_per_second=report["examples_per_second"],
        train_seconds=report["train_seconds"],
        peak_train_mb=report["peak_rss_mb"]["train"],
        steps=report["steps_per_epoch"],
        positions_per_epoch=report["examples_per_epoch"],
        loss_first_last=_loss_first_last(report),
        test_ndcg=report["metrics"]["keras"]["ndcg@10"],
        popularity_ndcg=report["metrics"]["popularity"]["ndcg@10"],
    )
    return row


def _loss_first_last(report: dict[str, Any]) -> list[float] | None:
    history = report.get("history") or []
    losses = [h["loss"] for h in history if "loss" in h]
    return [losses[0], losses[-1]] if losses else None


def suite(
    results: dict[str, Any], out_root: Path, sizes: tuple[int, ...] = SIZES
) -> dict[str, Any]:
    """Runs every size (then the same-model subset of the largest); returns the rows."""
    rows: dict[str, Any] = results.setdefault("out_of_core", {})
    out_root.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        name = f"oc-{size}"
        log_folder = out_root / f"{name}-log"
        row = {"log": write_log(log_folder, size)}
        prepared = out_root / f"{name}-prepared"
        row["prepare"] = prepare(log_folder, prepared, out_root / f"{name}-tmp", out_root)
        row["train"] = train(prepared, out_root, name)
        rows[name] = row
    largest = f"oc-{max(sizes)}"
    part = subset(out_root / f"{largest}-prepared", out_root / f"{largest}-{SUBSET}")
    rows[largest]["train_subset"] = train(part, out_root, f"{largest}-{SUBSET}")
    return rows


def markdown(rows: dict[str, Any]) -> str:
    """The "Out of core" section of BENCHMARKS.md."""
    ordered = sorted(rows.values(), key=lambda r: r["prepare"]["interactions"])
    lines = [
        "## Out of core (synthetic, prepared with DuckDB, streamed into training)",
        "",
        f"Logs written in chunks of {CHUNK_INTERACTIONS:,} rows (Parquet), {ITEMS:,}-item "
        f"generator, {MEAN_LENGTH} interactions per user on average; prepare with "
        f"`--memory-limit {MEMORY_LIMIT} --shards {SHARDS}`; training {TRAIN_STEPS} steps of "
        "the sampled softmax, no export. Peak MB: the process tree's resident maximum "
        "(sampled), and for training the training phase's own (report.json).",
        "",
        "| interactions | users | items | log MB | prepare s | prepare peak MB | temp left "
        "| counts add up | shard MB | train positions/s | train peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ordered:
        p, t = r["prepare"], r["train"]
        lines.append(
            f"| {p['interactions']:,} | {p['users']:,} | {p['items']:,} "
            f"| {r['log']['bytes'] / 1e6:,.0f} | {p['seconds']:.0f} | {p['peak_tree_mb']:,.0f} "
            f"| {len(p['temp_left'])} files | {p['counts_add_up']} "
            f"| {p['shard_bytes'] / 1e6:,.0f} | {t['positions_per_second']:,.0f} "
            f"| {t['peak_train_mb']:,.0f} |"
        )
    lines += ["", *_same_model(ordered), "", *_growth(ordered), "", "Commands:", ""]
    if ordered:
        lines += [
            f"- `{ordered[-1]['prepare']['command']}`",
            f"- `{ordered[-1]['train']['command']}`",
        ]
    return "\n".join(lines) + "\n"


def _same_model(ordered: list[dict[str, Any]]) -> list[str]:
    largest = ordered[-1] if ordered else {}
    if "train_subset" not in largest:
        return []
    full, part = largest["train"], largest["train_subset"]
    return [
        f"Same model, {largest['prepare']['interactions']:,} interactions against one of its "
        f"{SHARDS} shards: training peak {full['peak_train_mb']:,.0f} MB against "
        f"{part['peak_train_mb']:,.0f} MB ({full['peak_train_mb'] - part['peak_train_mb']:+,.0f} "
        f"MB), positions/s {full['positions_per_second']:,.0f} against "
        f"{part['positions_per_second']:,.0f} "
        f"({full['positions_per_second'] / part['positions_per_second']:.0%})."
    ]


def _growth(ordered: list[dict[str, Any]]) -> list[str]:
    """Growth per 10x of the log (the largest two sizes), and the extrapolation to 10^9."""
    if len(ordered) < 2:
        return []
    small, large = ordered[-2], ordered[-1]
    decades = math.log10(large["prepare"]["interactions"] / small["prepare"]["interactions"])

    def per_10x(key: str) -> float:
        return float((large["prepare"][key] / small["prepare"][key]) ** (1 / decades))

    ahead = math.log10(1e9 / large["prepare"]["interactions"])
    hours = large["prepare"]["seconds"] * per_10x("seconds") ** ahead / 3600
    shard_gb = large["prepare"]["shard_bytes"] * per_10x("shard_bytes") ** ahead / 1e9
    positions = large["train"]["positions_per_epoch"] * 10**ahead
    rate = large["train"]["positions_per_second"]
    peaks = " -> ".join(f"{r['prepare']['peak_tree_mb']:,.0f}" for r in ordered)
    epoch_hours = positions / rate / 3600
    return [
        f"Growth per 10x of the log: prepare time x{per_10x('seconds'):.2f}, shard bytes "
        f"x{per_10x('shard_bytes'):.2f}; prepare's peak memory ({peaks} MB) is DuckDB's "
        f"`--memory-limit {MEMORY_LIMIT}` (beyond it DuckDB spills to `--temp-dir`) plus the "
        "process's own, so it does not keep growing with the log.",
        f"Extrapolated to 10^9 interactions at those rates: shards about {shard_gb:,.0f} GB, "
        f"prepare about {hours * 60:,.0f} minutes on this 2-core machine; an epoch of "
        f"{positions:,.0f} training positions (the last window of each user) at {rate:,.0f} "
        f"positions/s a worker: {epoch_hours * 60:,.0f} minutes on 1 worker, "
        f"{epoch_hours * 60 / 8:,.0f} on 8 if the all-reduce keeps up (measured here: 2 workers "
        "on one machine, tests/training/test_streamed_run.py).",
    ]

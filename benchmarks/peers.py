"""`python -m benchmarks --suite peers`: published SASRec implementations next to ours.

A peer is another library's SASRec, installed into its own virtual environment
(`runs/peers-venv`: torch 2.13.0 CPU first, so no dependency can pull a CUDA build, then the
peer library; none is ever a dependency of attnrec_tf). Two are wired in (`--peer`, comma-
separated for several in one table):

- `rectools` (the default): RecTools' `SASRecModel` with `loss="softmax"`, which trains every
  position of a user's latest window at once with the full softmax over the catalog, set up like
  our `--preset sasrec` (SASRec+: d 64, 2 blocks, 1 head, dropout 0.1, our `max_len`, lr 1e-3,
  batch 128), validated after each epoch and stopped by the same wall-clock rule as our
  `--time-budget` (`benchmarks/peer_rectools.py`);
- `recbole`: RecBole's SASRec (CE over the catalog, RecBole's defaults, our `max_len`), which
  trains one example per prefix, so its epochs are far longer than RecTools' or ours (see below;
  `benchmarks/peer_recbole.py`).

One run:

1. our side: runs the given training command (default: `--preset sasrec --epochs 1000
   --time-budget <budget> --no-export`, so both sides get the same wall-clock budget) or reuses
   a finished run folder (`--ours RUN_DIR`);
2. hands that run's own leave-one-out split (`split.npz`, vocabulary indices) to each peer:
   RecTools gets the training sequences (`s[:-2]`) as its interactions and ranks validation
   (`s[:-2]` -> `s[-2]`) and test (`s[:-1]` -> `s[-1]`) histories as ours does; RecBole gets
   every whole sequence as an atomic `.inter` file with positions as timestamps, so its own
   time-ordered leave-one-out is exactly our split (checked before training);
3. trains each peer on the same cores (`torch.set_num_threads`) for at most `--budget-seconds`
   of wall clock (training plus per-epoch validation, like our `train_seconds`), ranking the
   validation users after every epoch with `attnrec_tf.metrics`;
4. ranks each peer's full test score matrix with `attnrec_tf.metrics` (full ranking, history
   excluded, ties pessimistic), as our run ranks ours;
5. prints the table (test NDCG@10, HR@10, train seconds, seconds to reach validation NDCG@10
   0.15 and 0.17), plots validation NDCG@10 against wall-clock seconds for every model, and
   records them in benchmarks/results.json and BENCHMARKS.md (`--no-save` leaves them alone).

    python -m benchmarks --suite peers                      # ML-1M, RecTools, 1800 s
    python -m benchmarks --suite peers --dataset ml-100k --budget-seconds 120
    python -m benchmarks --suite peers --peer rectools,recbole --dataset ml-100k
    python -m benchmarks --suite peers --ours runs/ml1m     # reuse a finished run

What an epoch costs each peer: RecTools pads every batch of users to `session_max_len`
positions and computes the full softmax over the catalog at each (torch eager on CPU), where our
batches are cut to their longest window. RecBole trains one example per prefix of every
sequence, each encoding its whole window and scoring only its last position, so an epoch has
about as many examples as the training set has positions (`--peer-option
MAX_ITEM_LIST_LENGTH=50` is RecBole's own default window). Measured epoch times, data
preparation and memory are in benchmarks/NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf import atomic, metrics
from attnrec_tf.cli import command_parser, quiet_tensorflow, run_command
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.errors import AttnRecError
from benchmarks import peer_rectools
from benchmarks.common import PLOTS, RESULTS_JSON, RESULTS_MD, ROOT, load_results

DATASETS = ("ml-100k", "ml-1m")
DEFAULT_VENV = ROOT / "runs" / "peers-venv"
TORCH_REQUIREMENT = "torch==2.13.0"
THRESHOLDS = (0.15, 0.17)
EVAL_BATCH = 256
OURS_NAME = "attnrec_tf (ours)"


class PeerError(AttnRecError):
    """The peer cannot be installed, run or compared (the message says what to do)."""


@dataclass(frozen=True)
class Peer:
    """One peer library: how to install, run and describe it.

    Attributes:
        key: its `--peer` name and the folder of its run (`<work>/<key>/`).
        name: its row in the table and line in the plot.
        module: the module run in the peer venv (`python -m MODULE JOB.json`).
        imports: modules the venv must import for the peer to run.
        requirements: what `pip install` gets after torch (pins that keep torch and numpy).
        fields: the keys of its `result.json` copied into its row.
    """

    key: str
    name: str
    module: str
    imports: tuple[str, ...]
    requirements: tuple[str, ...]
    fields: tuple[str, ...]


PEERS = {
    "rectools": Peer(
        key="rectools",
        name="RecTools SASRec (softmax)",
        module="benchmarks.peer_rectools",
        imports=("torch", "pytorch_lightning", "rectools"),
        # rectools 0.19.0 allows torch<3 (so the CPU torch stays) and needs numpy<2 below
        # Python 3.13; numpy<2 and pandas<3 also keep RecBole working in the same venv.
        requirements=("rectools[torch]==0.19.0", "numpy<2", "pandas<3"),
        fields=(
            "stopped_by",
            "versions",
            "settings",
            "prepare_seconds",
            "train_users",
            "batches_per_epoch",
            "unknown_items",
            "unknown_targets",
            "recommend_check",
        ),
    ),
    "recbole": Peer(
        key="recbole",
        name="RecBole SASRec (CE)",
        module="benchmarks.peer_recbole",
        imports=("torch", "recbole"),
        # RecBole 1.2.1 predates numpy 2 (it sets np.float_) and pandas 3.
        requirements=("recbole==1.2.1", "numpy<2", "pandas<3"),
        fields=(
            "stopped_by",
            "versions",
            "settings",
            "recbole_test",
            "prepare_seconds",
            "probe_seconds",
            "train_examples",
            "batches_per_epoch",
        ),
    ),
}
DEFAULT_PEER = "rectools"


# --- data for the peer ---------------------------------------------------------------------------


def recbole_inter_lines(split: LeaveOneOutSplit) -> list[str]:
    """RecBole's atomic `.inter` lines for every user's whole sequence (train + valid + test).

    User tokens are our split's row numbers, item tokens our vocabulary indices, and the
    timestamp is the position in the sequence (0, 1, ...), so RecBole's leave-one-out by time
    holds out exactly our validation and test targets.

    Args:
        split: our leave-one-out split.

    Returns:
        The header `user_id:token item_id:token timestamp:float` (tab-separated), then one line
        per interaction, users in split order, each user's items oldest first.
    """
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for row, sequence in enumerate(split.histories("test")):
        full = np.append(sequence, split.test_targets[row])
        lines.extend(f"{row}\t{int(item)}\t{position}" for position, item in enumerate(full))
    return lines


def write_split(split: LeaveOneOutSplit, workdir: Path) -> Path:
    """Writes our split as `workdir/split.npz` (what every peer reads); returns its path."""
    from attnrec_tf.run_dir import save_split

    workdir.mkdir(parents=True, exist_ok=True)
    save_split(workdir / "split.npz", split)
    return workdir / "split.npz"


def write_peer_inputs(split: LeaveOneOutSplit, workdir: Path) -> Path:
    """RecBole's inputs: `data/attnrec/attnrec.inter` and `split.npz`; returns the `.inter`."""
    inter = workdir / "data" / "attnrec" / "attnrec.inter"
    inter.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(inter, "\n".join(recbole_inter_lines(split)) + "\n")
    write_split(split, workdir)
    return inter


def check_recbole_can_split(split: LeaveOneOutSplit) -> None:
    """Refuses a split that RecBole's leave-one-out cannot reproduce.

    RecBole keeps at least one training example per user, so for a user with exactly 3 items
    it would train on our validation target and hold out no validation row.

    Raises:
        PeerError: some user has fewer than 4 items.
    """
    short = sum(1 for history in split.train if len(history) < 2)
    if short:
        raise PeerError(
            f"{short} users have only 3 interactions; RecBole's leave-one-out keeps one training "
            "example per user, so its split would not be ours (raise --min-user-interactions)"
        )


def write_peer_job(workdir: Path, **job: Any) -> Path:
    """Writes `job.json` for a peer module (`workdir` and `repo_root` are added)."""
    path = workdir / "job.json"
    atomic.write_json(path, {"workdir": str(workdir.resolve()), "repo_root": str(ROOT), **job})
    return path


# --- scoring the peer with our metric code -------------------------------------------------------


def evaluate_peer_scores(
    scores: np.ndarray, split: LeaveOneOutSplit, stage: str = "test"
) -> dict[str, float]:
    """Full-ranking metrics of a peer's dumped score matrix, by `attnrec_tf.metrics`.

    Args:
        scores: float array `(users, vocab_size)`: row `u` scores every item for our split's
            user `u`, columns in our vocabulary order (column 0, padding, is never ranked).
        split: our split; its `stage` histories are excluded from the ranking (the target never).
        stage: "valid" or "test". Defaults to `"test"`.

    Returns:
        The `RankingAccumulator.result` dict (`hr@k`, `ndcg@k`, `mrr`, `num_users`).

    Raises:
        PeerError: the matrix has the wrong shape for the split or holds NaN.
    """
    histories, targets = split.histories(stage), split.targets(stage)
    if scores.ndim != 2 or scores.shape[0] != len(targets):
        raise PeerError(f"peer scores have shape {scores.shape}; expected ({len(targets)}, V)")
    if np.isnan(scores).any():
        raise PeerError("peer scores contain NaN")
    if len(targets) and int(max(targets.max(), max(int(h.max()) for h in histories))) >= len(
        scores[0]
    ):
        raise PeerError(f"peer scores have {scores.shape[1]} columns; the split needs more")
    accumulator = metrics.RankingAccumulator()
    for start in range(0, len(targets), EVAL_BATCH):
        batch = slice(start, start + EVAL_BATCH)
        ranks = metrics.rank_of_targets(scores[batch], targets[batch], histories[batch])
        accumulator.update(ranks)
    return accumulator.result()


# --- validation curves ---------------------------------------------------------------------------


def our_curve(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Validation NDCG@10 against wall-clock seconds from a report's `history`.

    Each row's `seconds` (cumulative since training started) is used when present; otherwise
    epoch `e` is placed at `e * train_seconds / epochs_run` and the point is marked `estimated`.

    Returns:
        One `{"epoch", "seconds", "ndcg@10", "estimated"}` dict per history row.
    """
    history = report.get("history") or []
    per_epoch = float(report.get("train_seconds", 0.0)) / max(
        int(report.get("epochs_run") or len(history) or 1), 1
    )
    curve = []
    for index, row in enumerate(history):
        epoch = int(row.get("epoch", index + 1))
        measured = row.get("seconds")
        curve.append(
            {
                "epoch": epoch,
                "seconds": float(measured) if measured is not None else epoch * per_epoch,
                "ndcg@10": float(row["ndcg@10"]),
                "estimated": measured is None,
            }
        )
    return curve


def peer_curve(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The peer's `history.json` rows as curve points (measured seconds)."""
    return [
        {
            "epoch": float(row["epoch"]),  # RecBole's points can fall inside an epoch
            "seconds": float(row["seconds"]),
            "ndcg@10": float(row["ndcg@10"]),
            "estimated": False,
        }
        for row in history
    ]


def seconds_to_reach(curve: Sequence[dict[str, Any]], threshold: float) -> float | None:
    """Seconds at the first validation point with NDCG@10 >= `threshold`, or None."""
    for point in curve:
        if point["ndcg@10"] >= threshold:
            return float(point["seconds"])
    return None


def plot_validation(
    curves: dict[str, list[dict[str, Any]]],
    path: Path,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    title: str = "",
    budget: float | None = None,
) -> Path:
    """PNG of validation NDCG@10 against wall-clock seconds, one line per model.

    Estimated points (our history without `seconds`) are drawn hollow and said so in the legend.

    Raises:
        PeerError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PeerError("the peers plot needs matplotlib: pip install -e '.[plots]'") from error
    figure = Figure(figsize=(8, 5), dpi=110, layout="constrained")
    axes = figure.subplots()
    for index, (name, curve) in enumerate(curves.items()):
        estimated = any(point["estimated"] for point in curve)
        label = name + (" (epoch times estimated)" if estimated else "")
        axes.plot(
            [p["seconds"] for p in curve],
            [p["ndcg@10"] for p in curve],
            "o-",
            color=f"C{index}",
            markerfacecolor="none" if estimated else f"C{index}",
            label=label,
        )
    for threshold in thresholds:
        axes.axhline(threshold, color="grey", linestyle=":", linewidth=1)
        axes.annotate(
            f"{threshold:g}",
            (0, threshold),
            xycoords=("axes fraction", "data"),
            xytext=(2, 2),
            textcoords="offset points",
            color="grey",
            fontsize=8,
        )
    if budget:
        axes.axvline(budget, color="C3", linestyle="--", linewidth=1, label="budget (each side)")
    axes.set_xlabel("wall-clock seconds since training started (training + validation)")
    axes.set_ylabel("validation NDCG@10 (full ranking)")
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncol=2, frameon=False)  # below: hides no point
    axes.set_title(title or "validation NDCG@10 against wall-clock time")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.staged_path(path) as staged:
        figure.savefig(staged, format="png")
    return path


# --- table ---------------------------------------------------------------------------------------


def model_row(
    name: str,
    test: dict[str, float],
    curve: list[dict[str, Any]],
    *,
    train_seconds: float,
    epochs: float,
    best_epoch: float,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, Any]:
    """One model's row of the peers table."""
    return {
        "model": name,
        "test_ndcg@10": float(test["ndcg@10"]),
        "test_hr@10": float(test["hr@10"]),
        "test_mrr": float(test["mrr"]),
        "train_seconds": float(train_seconds),
        "epochs": epochs,
        "best_epoch": best_epoch,
        "seconds_to": {f"{t:g}": seconds_to_reach(curve, t) for t in thresholds},
        "seconds_estimated": any(point["estimated"] for point in curve),
        "curve": curve,
    }


def _reach(row: dict[str, Any], threshold: str) -> str:
    seconds = row["seconds_to"].get(threshold)
    if seconds is None:
        return "not reached"
    return f"{'~' if row['seconds_estimated'] else ''}{seconds:.0f}"


def _epochs(value: float) -> str:
    """`3` for whole epochs, `0.07` for a fraction of one."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def table_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The markdown table of the peers rows (also printed as is)."""
    thresholds = list(rows[0]["seconds_to"]) if rows else []
    header = "| model | test NDCG@10 | test HR@10 | train s | epochs (best) | " + " | ".join(
        f"s to val NDCG@10 {t}" for t in thresholds
    )
    lines = [header + " |", "|---" * (5 + len(thresholds)) + "|"]
    for row in rows:
        cells = [
            row["model"],
            f"{row['test_ndcg@10']:.4f}",
            f"{row['test_hr@10']:.4f}",
            f"{row['train_seconds']:.0f}",
            f"{_epochs(row['epochs'])} ({_epochs(row['best_epoch'])})",
            *(_reach(row, t) for t in thresholds),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def peers_markdown(entries: dict[str, Any]) -> str:
    """The BENCHMARKS.md section of the recorded peer comparisons (one per dataset and peers)."""
    lines = [
        "## Published SASRec implementations on our split",
        "",
        "`python -m benchmarks --suite peers` (not run in CI): another library's SASRec in",
        "its own venv (torch 2.13.0 CPU), fed our run's leave-one-out split, on the same cores",
        "and for the same wall-clock budget as our run (`--time-budget`). Both test rankings and",
        "every validation point are computed by `attnrec_tf.metrics` (full ranking over the",
        "catalog, history excluded, ties pessimistic) from full score matrices. Train seconds",
        "include per-epoch validation; `~` marks seconds estimated from train_seconds / epochs",
        "(a history without per-epoch `seconds`). RecTools' SASRecModel (full softmax at every",
        "position, the SASRec+ settings) stops by our budget rule as it was until 2026-12-06",
        "(no epoch is started that would end past the budget, judged by the last epoch's",
        "length; since then ours also cuts its last epoch short).",
        "RecBole's epochs can outlast the budget, so it is also",
        "validated every `probe` seconds inside an epoch on a paused clock, and its budget is",
        "checked before every batch. RecBole is not in the ML-1M table because its SASRec",
        "cannot be fed whole sequences: `SASRec.forward` returns the last position only",
        "(`gather_indexes(output, item_seq_len - 1)`) and the CE loss scores that one position,",
        "so RecBole trains one example per prefix (981,491 windows of up to 200 items an epoch",
        "on ML-1M, each encoded whole for one target) where RecTools and ours train every",
        "position of 6,040 windows; one batch of 2,048 and one validation took 163 s there,",
        "so 1,800 s would cover a few percent of an epoch (benchmarks/NOTES.md). Feeding it",
        "whole sequences would need its model changed: it would no longer be RecBole's SASRec.",
    ]
    for key in sorted(entries):
        entry = entries[key]
        rows = entry_peer_rows(entry)
        lines += [
            "",
            f"### {entry['dataset']}: {', '.join(r['model'] for r in rows)} "
            f"({entry['budget_seconds']:.0f} s budget, {entry['threads']} threads; "
            f"{entry['updated']})",
            "",
            *table_lines([entry["ours"], *rows]),
            "",
            f"![validation NDCG@10 against seconds]({entry['plot']})",
            "",
            f"- ours: `{entry['ours_command']}`",
        ]
        for row in rows:
            lines += peer_notes(row, entry)
        loads = [(r["model"], r.get("load_at_start")) for r in (entry["ours"], *rows)]
        if any(load is not None for _, load in loads):
            lines.append(
                f"- 1-minute load average of the {entry.get('cores', 2)}-core machine as each "
                "side started (other jobs share it): "
                + ", ".join(f"{name} {_load(load)}" for name, load in loads)
            )
        lines.append(f"- command: `{entry['command']}`")
    return "\n".join(lines) + "\n"


def entry_peer_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The peer rows of a BENCHMARKS entry (`peers`; an entry of one RecBole row: `peer`)."""
    if "peers" in entry:
        return list(entry["peers"])
    return [{"peer": "recbole", **entry["peer"]}]


def peer_notes(row: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """The markdown bullets that describe one peer's run."""
    versions = row.get("versions", {})
    settings = row.get("settings", {})
    if row.get("peer") == "rectools":
        check = row.get("recommend_check") or {}
        unknown = row.get("unknown_targets") or {}
        return [
            f"- {row['model']}: rectools {versions.get('rectools')}, pytorch-lightning "
            f"{versions.get('pytorch_lightning')}, torch {versions.get('torch')}; stopped by "
            f"{row['stopped_by']}; {_settings_text(settings, RECTOOLS_SETTINGS)}",
            f"- {row['model']} epoch: {row.get('train_users', 0):,} users in "
            f"{row.get('batches_per_epoch', 0):,} batches (every position of each user's latest "
            f"window); data preparation {row.get('prepare_seconds', 0):.0f} s; "
            f"{row.get('unknown_items', 0)} items never in training (ranked last; "
            f"{unknown.get('valid', 0)} validation, {unknown.get('test', 0)} test targets); "
            f"the score matrix equals `recommend(k=catalog, filter_viewed=False)` on "
            f"{check.get('users', 0)} users (max |diff| {check.get('max_abs_diff', 0):.1e})",
        ]
    test = row.get("recbole_test") or {}
    return [
        f"- {row['model']}: recbole {versions.get('recbole')}, torch {versions.get('torch')}; "
        f"stopped by {row['stopped_by']}; probe every {entry.get('probe_seconds', 0):.0f} s; "
        f"{_settings_text(settings, RECBOLE_SETTINGS)}",
        f"- {row['model']} epoch: {row.get('train_examples', 0):,} training examples in "
        f"{row.get('batches_per_epoch', 0):,} batches (RecBole's sequential augmentation: "
        "one example per prefix, each window encoded in full, loss at its last position); "
        f"RecBole's data preparation {row.get('prepare_seconds', 0):.0f} s",
        f"- RecBole's own evaluator on its test set (no history exclusion, so not comparable "
        f"with the table): NDCG@10 {_fmt(test.get('ndcg@10'))}, HR@10 "
        f"{_fmt(test.get('hit@10'))}",
    ]


RECBOLE_SETTINGS = (
    "n_layers",
    "n_heads",
    "hidden_size",
    "MAX_ITEM_LIST_LENGTH",
    "train_batch_size",
    "learning_rate",
    "hidden_dropout_prob",
    "stopping_step",
)
RECTOOLS_SETTINGS = (*peer_rectools.COMPARED_SETTINGS, "patience")


def _settings_text(settings: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{key} {settings.get(key)}" for key in keys)


def _load(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


# --- the peers' environment ----------------------------------------------------------------------


def peer_python(venv: Path) -> Path:
    """The interpreter of the peer's virtual environment."""
    return venv / "bin" / "python"


def peer_missing(python: Path, imports: Sequence[str] = PEERS[DEFAULT_PEER].imports) -> str | None:
    """Why `python` cannot run a peer (no interpreter, or one of `imports` fails), or None."""
    if not python.exists():
        return f"{python} does not exist"
    probe = subprocess.run(
        [str(python), "-c", f"import {', '.join(imports)}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        return f"{python}: {last}"
    return None


def install_commands(venv: Path, peers: Sequence[Peer] = (PEERS[DEFAULT_PEER],)) -> list[list[str]]:
    """The commands that make the peers' venv: the venv, torch (CPU, from disk) first, then
    each peer's requirements (which leave that torch in place)."""
    pip = [str(peer_python(venv)), "-m", "pip", "install", "--quiet"]
    return [
        [sys.executable, "-m", "venv", str(venv)],
        [*pip, TORCH_REQUIREMENT],
        *([*pip, *peer.requirements] for peer in peers),
    ]


def install_hint(venv: Path, peers: Sequence[Peer] = (PEERS[DEFAULT_PEER],)) -> str:
    """One shell line that installs the peers by hand."""
    return " && ".join(shlex.join(command) for command in install_commands(venv, peers))


def install_peer(
    venv: Path, log_path: Path, peers: Sequence[Peer] = (PEERS[DEFAULT_PEER],)
) -> float:
    """Creates (or completes) the peers' venv; returns the seconds it took.

    Raises:
        PeerError: a step failed (the message names the log).
    """
    started = time.perf_counter()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        for command in install_commands(venv, peers):
            if command[1:3] == ["-m", "venv"] and peer_python(venv).exists():
                continue  # an existing venv is completed, not made anew
            print(f"[peers] {shlex.join(command)}", flush=True)
            log.write(f"$ {shlex.join(command)}\n")
            log.flush()
            status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
            if status.returncode != 0:
                raise PeerError(
                    f"installing the peer failed ({shlex.join(command)}); see {log_path}"
                )
    return time.perf_counter() - started


# --- the runs ------------------------------------------------------------------------------------


def default_ours_command(dataset: str, data_root: Path, out: Path, budget: float = 1800.0) -> str:
    """Our side's training command: the SASRec+ preset under the peers' wall-clock budget."""
    return (
        f"python -m attnrec_tf.train --data {data_root / dataset} --preset sasrec "
        f"--epochs 1000 --time-budget {budget:g} --no-export --output-dir {out / 'ours'}"
    )


def output_dir_of(argv: Sequence[str]) -> Path:
    """The `--output-dir` of a training command.

    Raises:
        PeerError: the command names none.
    """
    for index, token in enumerate(argv):
        if token == "--output-dir" and index + 1 < len(argv):
            return Path(argv[index + 1])
        if token.startswith("--output-dir="):
            return Path(token.split("=", 1)[1])
    raise PeerError("--ours-command must name --output-dir, where its report.json goes")


def run_ours(command: str, log_path: Path) -> Path:
    """Runs our training command (from the repository root); returns its output folder.

    A leading `python`/`python3` is this interpreter.

    Raises:
        PeerError: the command failed (the message names the log).
    """
    argv = shlex.split(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    output = output_dir_of(argv)
    print(f"[peers] ours: {command}  (log: {log_path})", flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        status = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    if status.returncode != 0:
        raise PeerError(
            f"our training command failed with status {status.returncode}; see {log_path}"
        )
    return output if output.is_absolute() else ROOT / output


def load_our_run(run: Path) -> tuple[dict[str, Any], LeaveOneOutSplit]:
    """The report and split of a finished run of ours.

    Raises:
        PeerError: it is no finished run, or it was evaluated on a subset of users.
    """
    from attnrec_tf.report import load as load_report
    from attnrec_tf.run_dir import RunDir, load_split

    paths = RunDir(run)
    try:
        report = load_report(paths.require(paths.report))
        split = load_split(paths.require(paths.split))
    except AttnRecError as error:
        raise PeerError(f"--ours: {error}") from error
    users = report.get("dataset", {}).get("num_users")
    if users is not None and len(split.users) != users:
        raise PeerError(
            f"--ours {run}: split.npz holds {len(split.users)} of {users} users (--eval-users); "
            "the peer must train on the whole split"
        )
    return report, split


def run_peer(
    python: Path, job: Path, log_path: Path, module: str = PEERS[DEFAULT_PEER].module
) -> dict[str, Any]:
    """Runs a peer module on a job; returns its result with `history` and `test_scores`.

    The module runs as `python -m MODULE JOB.json` in the job's folder, with the repository on
    PYTHONPATH (it imports `benchmarks.peer_common` and `attnrec_tf.metrics`, no TensorFlow).

    Raises:
        PeerError: the peer failed or did not write its outputs (the message names the log).
    """
    workdir = job.parent
    print(f"[peers] peer: {python} -m {module} {job}  (log: {log_path})", flush=True)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    with open(log_path, "w", encoding="utf-8") as log:
        status = subprocess.run(
            [str(python), "-m", module, str(job)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            check=False,
        )
    if status.returncode != 0:
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
        raise PeerError(f"the peer failed with status {status.returncode} ({tail}); see {log_path}")
    try:
        result = json.loads((workdir / "result.json").read_text())
        result["history"] = json.loads((workdir / "history.json").read_text())
        result["test_scores"] = np.load(workdir / "test_scores.npy")
    except (OSError, ValueError) as error:
        raise PeerError(f"the peer wrote no complete result in {workdir}: {error}") from error
    return result


# --- the suite -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The suite's flags (`python -m benchmarks --suite peers --help`)."""
    parser = command_parser(
        "python -m benchmarks --suite peers", __doc__, doc=True, allow_abbrev=False
    )
    _add_folder_flags(parser)
    _add_our_side_flags(parser)
    _add_peer_flags(parser)
    _add_record_flags(parser)
    return parser


def _add_folder_flags(parser: argparse.ArgumentParser) -> None:
    """`--dataset`, `--peer` and the folders: data, work, results."""
    parser.add_argument("--dataset", choices=DATASETS, default="ml-1m")
    parser.add_argument(
        "--peer",
        default=DEFAULT_PEER,
        help=f"comma-separated peers, run one after the other: {', '.join(PEERS)} "
        f"(default: {DEFAULT_PEER})",
    )
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "runs" / "bench",
        help="work folder; this suite uses <out>/peers-<dataset>/",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT,
        help=f"where results go: {RESULTS_JSON}, {RESULTS_MD} and the plot ({PLOTS}/) under it",
    )


def _add_our_side_flags(parser: argparse.ArgumentParser) -> None:
    """How our side is run (or reused), and the budget both sides get."""
    parser.add_argument(
        "--ours",
        type=Path,
        default=None,
        help="reuse this finished run folder instead of training ours",
    )
    parser.add_argument(
        "--ours-command",
        default=None,
        help="our training command (default: python -m attnrec_tf.train --data "
        "<root>/<dataset> --preset sasrec --epochs 1000 --time-budget <budget> --no-export "
        "--output-dir <work>/ours)",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=1800.0,
        help="wall-clock budget of each side, training plus validation (ours gets it as "
        "--time-budget)",
    )


def _add_peer_flags(parser: argparse.ArgumentParser) -> None:
    """How the peers run: threads, probes, patience, their venv and settings."""
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the peer")
    parser.add_argument(
        "--peer-probe-seconds",
        type=float,
        default=None,
        help="recbole: also rank the validation users every this many training seconds inside "
        "an epoch (the clock pauses meanwhile; default: budget / 10; 0 = at epoch ends only)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="rectools: epochs without a better validation NDCG@10 before it stops "
        "(default: our run's --patience)",
    )
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument(
        "--install",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="install into the peer venv whatever a chosen peer lacks",
    )
    parser.add_argument(
        "--peer-option",
        action="append",
        default=[],
        metavar="[PEER.]KEY=VALUE",
        help="a setting on top of the peer's defaults (VALUE parsed as JSON when it can be): "
        "a SASRecModel keyword for rectools (e.g. batch_size=256), a RecBole setting for "
        "recbole (e.g. recbole.train_batch_size=512); the PEER. prefix is needed with "
        "several peers; repeatable",
    )


def _add_record_flags(parser: argparse.ArgumentParser) -> None:
    """What the table reports and whether it is recorded."""
    parser.add_argument(
        "--thresholds",
        default=",".join(f"{t:g}" for t in THRESHOLDS),
        help="validation NDCG@10 levels for the seconds-to-reach columns",
    )
    parser.add_argument(
        "--save",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"record the result in {RESULTS_JSON} and {RESULTS_MD}, the plot in {PLOTS}/",
    )


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> a dict; values parsed as JSON when possible, else kept as text.

    Raises:
        PeerError: a pair has no `=`.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PeerError(f"--peer-option: expected KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def parse_peers(text: str) -> list[Peer]:
    """`"rectools,recbole"` -> those peers, in that order.

    Raises:
        PeerError: an unknown or repeated name, or none.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PEERS]
    if unknown or not names or len(set(names)) != len(names):
        raise PeerError(f"--peer: expected names among {', '.join(PEERS)}, got {text!r}")
    return [PEERS[name] for name in names]


def peer_options(pairs: Sequence[str], peers: Sequence[Peer]) -> dict[str, dict[str, Any]]:
    """`--peer-option` values per chosen peer: `PEER.KEY=VALUE` goes to that peer, a bare
    `KEY=VALUE` to the only chosen peer.

    Raises:
        PeerError: a bare option with several peers, or a prefix naming a peer not chosen.
    """
    chosen = {peer.key for peer in peers}
    options: dict[str, dict[str, Any]] = {peer.key: {} for peer in peers}
    for key, value in parse_options(pairs).items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix in PEERS:
            if prefix not in chosen:
                raise PeerError(f"--peer-option {key}: {prefix} is not among --peer")
            options[prefix][rest] = value
        elif len(peers) == 1:
            options[peers[0].key][key] = value
        else:
            raise PeerError(f"--peer-option {key}: name the peer (e.g. {peers[0].key}.{key})")
    return options


def parse_thresholds(text: str) -> tuple[float, ...]:
    """`"0.15,0.17"` -> `(0.15, 0.17)`.

    Raises:
        PeerError: a value is not a number in (0, 1].
    """
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise PeerError(f"--thresholds: expected numbers like 0.15,0.17, got {text!r}") from error
    if not values or any(not 0 < v <= 1 for v in values):
        raise PeerError(f"--thresholds: expected values in (0, 1], got {text!r}")
    return values


def check_args(args: argparse.Namespace) -> None:
    """Raises PeerError on a flag value the suite cannot use."""
    if args.budget_seconds <= 0:
        raise PeerError(f"--budget-seconds must be > 0, got {args.budget_seconds:g}")
    if args.threads < 1:
        raise PeerError(f"--threads must be >= 1, got {args.threads}")
    if args.peer_probe_seconds is not None and args.peer_probe_seconds < 0:
        raise PeerError(f"--peer-probe-seconds must be >= 0, got {args.peer_probe_seconds:g}")
    if args.patience is not None and args.patience < 1:
        raise PeerError(f"--patience must be >= 1, got {args.patience}")
    if args.ours is None and args.ours_command is None:
        folder = args.data_root / args.dataset
        if not folder.is_dir():
            raise PeerError(f"--data-root: {folder} not found")


def ensure_peers(
    args: argparse.Namespace, peers: Sequence[Peer], work: Path
) -> tuple[Path, float | None]:
    """The peer venv's interpreter, installing what the peers lack when allowed; with the
    install seconds (None when nothing was installed).

    Raises:
        PeerError: a peer is missing and `--no-install` was given, or the install failed.
    """
    python = peer_python(args.peer_venv)
    missing = [peer for peer in peers if peer_missing(python, peer.imports) is not None]
    if not missing:
        return python, None
    reason = peer_missing(python, missing[0].imports)
    if not args.install:
        raise PeerError(
            f"{missing[0].name} peer not installed ({reason}); install it with: "
            f"{install_hint(args.peer_venv, missing)}"
        )
    seconds = install_peer(args.peer_venv, work / "install.log", missing)
    for peer in missing:
        reason = peer_missing(python, peer.imports)
        if reason is not None:
            raise PeerError(f"the peer venv still cannot run {peer.name}: {reason}")
    print(f"[peers] installed {', '.join(p.key for p in missing)} in {seconds:.0f}s", flush=True)
    return python, seconds


def compare(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Runs (or reuses) ours, runs the peers, ranks all; returns the BENCHMARKS entry."""
    thresholds = parse_thresholds(args.thresholds)
    peers = parse_peers(args.peer)
    options = peer_options(args.peer_option, peers)
    python, install_seconds = ensure_peers(args, peers, work)
    load = None if args.ours is not None else load_average()
    command, run = our_side(args, work)
    report, split = load_our_run(run)
    if any(peer.key == "recbole" for peer in peers):
        check_recbole_can_split(split)
    ours_row = {**our_row(report, thresholds), "load_at_start": load}
    rows = []
    for peer in peers:
        load = load_average()
        result = peer_side(peer, python, split, report, args, options[peer.key], work)
        row = peer_row(peer, result, split, thresholds)
        row.update(install_seconds=install_seconds, load_at_start=load)
        rows.append(row)
    plot = plot_validation(
        {ours_row["model"]: ours_row["curve"], **{row["model"]: row["curve"] for row in rows}},
        work / f"valid_ndcg_vs_seconds-{'-'.join(p.key for p in peers)}.png",
        thresholds=thresholds,
        title=f"{report['dataset']['name']}: validation NDCG@10 over time",
        budget=args.budget_seconds,
    )
    return {
        "dataset": report["dataset"]["name"],
        "data": args.dataset,
        "budget_seconds": args.budget_seconds,
        "threads": args.threads,
        "cores": os.cpu_count(),
        "probe_seconds": probe_seconds(args),
        "updated": time.strftime("%Y-%m-%d"),
        "ours": ours_row,
        "peers": rows,
        "ours_command": command,
        "ours_run": str(run),
        "plot": str(plot),
        "command": suite_command(args),
    }


def load_average() -> float | None:
    """The machine's 1-minute load average now (None where the OS has none): the timings of
    the two sides are only comparable when it was alike."""
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return None


def our_side(args: argparse.Namespace, work: Path) -> tuple[str, Path]:
    """The command that made our run (or a note that it is reused) and the run folder."""
    if args.ours is not None:
        return f"(reused run folder {args.ours})", args.ours
    data_root = Path(os.path.relpath(args.data_root.resolve(), ROOT))  # short, portable commands
    command = args.ours_command or default_ours_command(
        args.dataset, data_root, _short(work), args.budget_seconds
    )
    return command, run_ours(command, work / "ours.log")


def peer_side(
    peer: Peer,
    python: Path,
    split: LeaveOneOutSplit,
    report: dict[str, Any],
    args: argparse.Namespace,
    options: dict[str, Any],
    work: Path,
) -> dict[str, Any]:
    """Writes the peer's inputs and job into `<work>/<peer>/`, runs it, returns its result."""
    peer_dir = work / peer.key
    if peer_dir.exists():
        shutil.rmtree(peer_dir)
    config = report["config"]
    options = dict(options)
    job: dict[str, Any] = {
        "vocab_size": int(report["dataset"]["num_items"]) + 1,
        "max_len": int(config["max_len"]),
        "budget_seconds": args.budget_seconds,
        "threads": args.threads,
        "seed": int(config.get("seed", 0)),
    }
    if peer.key == "recbole":
        write_peer_inputs(split, peer_dir)
        job["max_len"] = int(options.pop("MAX_ITEM_LIST_LENGTH", job["max_len"]))
        job["probe_seconds"] = probe_seconds(args)
    else:
        write_split(split, peer_dir)
        job["patience"] = args.patience or int(config.get("patience", 10))
        job["max_epochs"] = int(options.pop("max_epochs", 1000))
    path = write_peer_job(peer_dir, **job, options=options)
    return run_peer(python, path, work / f"{peer.key}.log", peer.module)


def our_row(report: dict[str, Any], thresholds: Sequence[float]) -> dict[str, Any]:
    """Our row of the table, from the run's report."""
    return model_row(
        OURS_NAME,
        report["metrics"]["keras"],
        our_curve(report),
        train_seconds=report["train_seconds"],
        epochs=report["epochs_run"],
        best_epoch=report["best_epoch"],
        thresholds=thresholds,
    )


def peer_row(
    peer: Peer, result: dict[str, Any], split: LeaveOneOutSplit, thresholds: Sequence[float]
) -> dict[str, Any]:
    """A peer's row: its dumped test scores ranked here, its curve and its own details."""
    row = model_row(
        peer.name,
        evaluate_peer_scores(result["test_scores"], split),
        peer_curve(result["history"]),
        train_seconds=result["train_seconds"],
        epochs=result["epochs_run"],
        best_epoch=result["best_epoch"],
        thresholds=thresholds,
    )
    row["peer"] = peer.key
    row.update({key: result[key] for key in peer.fields if key in result})
    return row


def _short(path: Path) -> Path:
    """`path` relative to the repository when it lies inside it (for portable commands)."""
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path


def probe_seconds(args: argparse.Namespace) -> float:
    """Seconds between RecBole's mid-epoch validation probes (0 = none)."""
    if args.peer_probe_seconds is not None:
        return float(args.peer_probe_seconds)
    return float(args.budget_seconds) / 10


def suite_command(args: argparse.Namespace) -> str:
    """The bench command that reproduces this comparison (run folders left out)."""
    parts = [
        "python -m benchmarks --suite peers",
        f"--dataset {args.dataset}",
        f"--budget-seconds {args.budget_seconds:g}",
    ]
    if args.peer != DEFAULT_PEER:
        parts.append(f"--peer {args.peer}")
    if args.threads != 2:
        parts.append(f"--threads {args.threads}")
    if args.peer_probe_seconds is not None:
        parts.append(f"--peer-probe-seconds {args.peer_probe_seconds:g}")
    if args.patience is not None:
        parts.append(f"--patience {args.patience}")
    if args.ours_command:
        parts.append(f"--ours-command {shlex.quote(args.ours_command)}")
    parts += [f"--peer-option {shlex.quote(option)}" for option in args.peer_option]
    return " ".join(parts)


def entry_key(entry: dict[str, Any]) -> str:
    """BENCHMARKS key of an entry: `<dataset>-<peer>[-<peer>...]`."""
    return "-".join([entry["data"], *(row["peer"] for row in entry["peers"])])


Save = Callable[[dict[str, Any], Path, str], None]
"""`suites.save(results, results_dir, suite)`: merges and writes the results and their tables."""


def record(entry: dict[str, Any], results_dir: Path, key: str, save: Save) -> None:
    """Copies the plot to `<results>/benchmarks/peers-<key>.png` and saves the entry in the
    results (`save`)."""
    plot = results_dir / PLOTS / f"peers-{key}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry["plot"], plot)
    entry = {**entry, "plot": (PLOTS / plot.name).as_posix()}
    entry.pop("ours_run")
    results = load_results(results_dir)
    results.setdefault("peers", {})[key] = entry
    save(results, results_dir, "peers")


def main(argv: Sequence[str] | None, save: Save) -> int:
    """Entry point of `python -m benchmarks --suite peers`, which passes its `save`; returns
    the exit status (2 on a user error)."""
    args = build_parser().parse_args(argv)
    quiet_tensorflow()  # save() imports TensorFlow
    return run_command(lambda: _compare_and_record(args, save))


def _compare_and_record(args: argparse.Namespace, save: Save) -> None:
    check_args(args)
    work = args.out / f"peers-{args.dataset}"
    work.mkdir(parents=True, exist_ok=True)
    entry = compare(args, work)
    print("\n".join(table_lines([entry["ours"], *entry["peers"]])))
    print(f"\nplot: {entry['plot']}")
    atomic.write_json(work / f"peers-{entry_key(entry)}.json", entry)
    if args.save:
        record(entry, args.results, entry_key(entry), save)
        print(f"recorded in {args.results / RESULTS_MD}")

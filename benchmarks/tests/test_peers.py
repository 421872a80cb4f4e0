"""The peers suite (`benchmarks.peers`): our split as the peers read it (RecTools'
interactions, RecBole's atomic file), the RecTools script's numpy parts (item mapping, windows,
stopping rule), a peer's dumped scores ranked by our metric code, the table, plot and results
entry; and (slow) the real RecTools and RecBole peers, skipped when the peer venv lacks them.

Every split here is made up; no MovieLens data is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnrec_tf import metrics
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.run_dir import save_split
from benchmarks import peer_common, peer_rectools, peers, suites

RECTOOLS = peers.PEERS["rectools"]
RECBOLE = peers.PEERS["recbole"]

PNG = b"\x89PNG\r\n\x1a\n"


def tiny_split() -> LeaveOneOutSplit:
    """Two users over items 1..5: s0 = [1, 2, 3, 4], s1 = [5, 3, 1]."""
    return LeaveOneOutSplit(
        users=np.array(["a", "b"]),
        train=[np.array([1, 2], np.int32), np.array([5], np.int32)],
        valid_targets=np.array([3, 3], np.int32),
        test_targets=np.array([4, 1], np.int32),
    )


def synthetic_split(num_users: int, num_items: int, seed: int = 0) -> LeaveOneOutSplit:
    """Random sequences of 4..13 distinct items, with some structure for a model to learn."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(num_users):
        start = int(rng.integers(1, num_items + 1))
        length = int(rng.integers(4, 14))
        walk = [(start + step * int(rng.integers(1, 3)) - 1) % num_items + 1 for step in range(40)]
        sequence = list(dict.fromkeys(walk))[:length]
        sequences.append(np.array(sequence, np.int32))
    return LeaveOneOutSplit(
        users=np.array([f"u{i}" for i in range(num_users)]),
        train=[s[:-2] for s in sequences],
        valid_targets=np.array([s[-2] for s in sequences], np.int32),
        test_targets=np.array([s[-1] for s in sequences], np.int32),
    )


# --- the data the peer reads -------------------------------------------------------------------


def test_inter_file_holds_every_whole_sequence_in_order() -> None:
    lines = peers.recbole_inter_lines(tiny_split())
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert lines[1:] == [
        "0\t1\t0", "0\t2\t1", "0\t3\t2", "0\t4\t3",
        "1\t5\t0", "1\t3\t1", "1\t1\t2",
    ]  # fmt: skip


def test_inter_timestamps_order_each_user_so_the_last_two_are_valid_then_test() -> None:
    split = synthetic_split(30, 40)
    rows = [line.split("\t") for line in peers.recbole_inter_lines(split)[1:]]
    for user in range(len(split.users)):
        mine = [(float(t), int(i)) for u, i, t in rows if int(u) == user]
        items = [i for _, i in sorted(mine)]  # RecBole's time order
        assert items[-1] == split.test_targets[user]
        assert items[-2] == split.valid_targets[user]
        assert items[:-2] == split.train[user].tolist()


def test_write_peer_inputs_and_job(tmp_path: Path) -> None:
    split = tiny_split()
    inter = peers.write_peer_inputs(split, tmp_path)
    assert inter == tmp_path / "data" / "attnrec" / "attnrec.inter"
    assert inter.read_text().count("\n") == 8
    with np.load(tmp_path / "split.npz") as saved:
        assert saved["test_targets"].tolist() == [4, 1]
        assert saved["train_flat"].tolist() == [1, 2, 5]
    job = json.loads(peers.write_peer_job(tmp_path, vocab_size=6, max_len=3).read_text())
    assert job["vocab_size"] == 6 and job["max_len"] == 3
    assert Path(job["repo_root"], "attnrec_tf", "metrics.py").is_file()


def test_rectools_interactions_are_the_training_sequences_in_order() -> None:
    split = tiny_split()
    columns = peer_rectools.interaction_columns(split.histories("valid"))
    assert columns["user"].tolist() == [0, 0, 1]
    assert columns["item"].tolist() == [1, 2, 5]
    assert columns["position"].tolist() == [0, 1, 0]


def test_the_peer_reads_our_split_back_with_numpy_only(tmp_path: Path) -> None:
    split = synthetic_split(25, 30, seed=4)
    loaded = peer_common.load_split(peers.write_split(split, tmp_path / "peer"))
    for stage in ("valid", "test"):
        assert np.array_equal(loaded.targets(stage), split.targets(stage))
        for mine, ours in zip(loaded.histories(stage), split.histories(stage), strict=True):
            assert mine.tolist() == ours.tolist()


def rectools_mapping() -> peer_rectools.ItemMapping:
    """Our items 1..6; RecTools knows 5, 2, 6, 1 (internal 1..4 after its padding), not 3, 4."""
    return peer_rectools.ItemMapping.from_external(
        np.array(["PAD", 5, 2, 6, 1], dtype=object), extra_tokens=1, vocab_size=7
    )


def test_rectools_item_mapping_windows_keep_the_latest_known_items_left_padded() -> None:
    mapping = rectools_mapping()
    assert mapping.internal_of_ours.tolist() == [-1, 4, 2, -1, -1, 1, 3]
    assert mapping.unknown_items() == 2
    windows = mapping.windows([np.array([1, 3, 2, 6, 5]), np.array([4, 2])], max_len=3)
    assert windows.tolist() == [[2, 3, 1], [0, 0, 2]]  # 3 and 4 dropped, as RecTools does


def test_rectools_logits_become_our_columns_with_unknown_items_last() -> None:
    mapping = rectools_mapping()
    logits = np.array([[0.0, 10.0, 20.0, 30.0, 40.0]], np.float32)  # internal ids 0..4
    scores = mapping.to_ours(logits)
    assert scores.shape == (1, 7)
    assert scores[0, [1, 2, 5, 6]].tolist() == [40.0, 20.0, 10.0, 30.0]
    assert np.isneginf(scores[0, [0, 3, 4]]).all()
    ranks = metrics.rank_of_targets(scores, np.array([3]), [np.array([1])])
    assert ranks.tolist() == [4]  # unknown target: below the 3 known items and tied with 4


def test_peer_validation_is_our_metric_code() -> None:
    split = synthetic_split(70, 25, seed=3)
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(70, 26)).round(1).astype(np.float32)
    scores[:, 0] = -np.inf
    rows = iter(range(70))

    def score_batch(batch: list[np.ndarray]) -> np.ndarray:
        return scores[[next(rows) for _ in batch]]

    got = peer_common.rank_metrics(score_batch, split.histories("valid"), split.valid_targets)
    rows = iter(range(70))
    ours = metrics.evaluate_scores(score_batch, split.histories("valid"), split.valid_targets)
    assert got == {key: ours[key] for key in ("hr@10", "ndcg@10", "mrr")}


def _tracker(budget: float, patience: int = 10) -> tuple[peer_rectools.Tracker, list[float]]:
    """A Tracker whose clock reads from a list (the next value at each call)."""
    tracker = peer_rectools.Tracker(budget=budget, patience=patience)
    times: list[float] = []
    tracker.clock = lambda: times[0]  # type: ignore[assignment,misc]
    return tracker, times


def _epoch(tracker: peer_rectools.Tracker, times: list[float], at: float, ndcg: float,
           epoch: float, partial: bool = False) -> bool:  # fmt: skip
    times[:] = [at]
    valid = {"hr@10": ndcg * 2, "ndcg@10": ndcg, "mrr": ndcg}
    return tracker.epoch_end(
        epoch, valid, loss=5.0, validation_seconds=0.1, partial=partial, state=lambda: {"e": epoch}
    )


def test_rectools_tracker_stops_by_our_time_budget_rule() -> None:
    tracker, times = _tracker(budget=100.0)
    assert not _epoch(tracker, times, 30.0, 0.10, 1)  # 30 + 30 <= 100
    assert not _epoch(tracker, times, 60.0, 0.12, 2)  # 60 + 30 <= 100
    assert _epoch(tracker, times, 85.0, 0.11, 3)  # 85 + 25 > 100: no 4th epoch
    assert tracker.stopped_by == "budget"
    assert tracker.best_epoch == 2 and tracker.best_state == {"e": 2}
    assert [row["seconds"] for row in tracker.history] == [30.0, 60.0, 85.0]
    assert tracker.train_seconds == 85.0


def test_rectools_tracker_early_stops_and_a_cut_epoch_ends_the_run() -> None:
    tracker, times = _tracker(budget=1e9, patience=2)
    assert not _epoch(tracker, times, 1.0, 0.2, 1)
    assert not _epoch(tracker, times, 2.0, 0.1, 2)
    assert _epoch(tracker, times, 3.0, 0.2, 3)  # not better than epoch 1 for 2 epochs
    assert tracker.stopped_by == "early stopping" and tracker.best_epoch == 1
    tracker, times = _tracker(budget=5.0)
    assert _epoch(tracker, times, 6.0, 0.05, 0.25, partial=True)
    assert tracker.stopped_by == "budget (epoch cut)"
    assert tracker.history[0]["partial"] and tracker.history[0]["epoch"] == 0.25


# --- a peer's scores ranked by our code -------------------------------------------------------


def test_peer_scores_are_ranked_with_history_excluded_and_ties_pessimistic() -> None:
    split = tiny_split()  # test histories: [1, 2, 3] -> 4 and [5, 3] -> 1
    scores = np.array(
        [
            [-np.inf, 9.0, 8.0, 7.0, 5.0, 5.0],  # history 1-3 excluded; item 5 ties with 4
            [-np.inf, 6.0, 1.0, 9.0, 0.0, 9.0],  # history 3, 5 excluded; target 1 first
        ],
        dtype=np.float32,
    )
    result = peers.evaluate_peer_scores(scores, split)
    assert result["num_users"] == 2
    assert result["hr@1"] == pytest.approx(0.5)
    assert result["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1.0) / 2)


def test_peer_scores_match_our_pipeline_on_a_random_split() -> None:
    split = synthetic_split(70, 25, seed=3)
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(70, 26)).round(1).astype(np.float32)  # ties on purpose
    scores[:, 0] = -np.inf
    rows = iter(range(70))

    def score_fn(batch: list[np.ndarray]) -> np.ndarray:
        return scores[[next(rows) for _ in batch]]

    ours = metrics.evaluate_scores(score_fn, split.histories("test"), split.test_targets)
    assert peers.evaluate_peer_scores(scores, split) == ours


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (np.zeros((3, 6)), "shape"),
        (np.full((2, 6), np.nan), "NaN"),
        (np.zeros((2, 4)), "columns"),
    ],
)
def test_bad_peer_scores_are_refused(scores: np.ndarray, message: str) -> None:
    with pytest.raises(peers.PeerError, match=message):
        peers.evaluate_peer_scores(scores, tiny_split())


# --- curves, table, plot ------------------------------------------------------------------------


def test_our_curve_prefers_measured_seconds_and_else_estimates() -> None:
    history = [{"epoch": 1, "ndcg@10": 0.1}, {"epoch": 2, "ndcg@10": 0.16}]
    estimated = peers.our_curve({"history": history, "train_seconds": 50.0, "epochs_run": 2})
    assert [p["seconds"] for p in estimated] == [25.0, 50.0]
    assert all(p["estimated"] for p in estimated)
    timed = [{**row, "seconds": s} for row, s in zip(history, (30.0, 44.0), strict=True)]
    measured = peers.our_curve({"history": timed, "train_seconds": 50.0, "epochs_run": 2})
    assert [p["seconds"] for p in measured] == [30.0, 44.0]
    assert not any(p["estimated"] for p in measured)


def test_seconds_to_reach_is_the_first_point_at_or_above() -> None:
    curve = peers.peer_curve(
        [
            {"epoch": 1, "seconds": 10.0, "ndcg@10": 0.12},
            {"epoch": 2, "seconds": 20.0, "ndcg@10": 0.15},
            {"epoch": 3, "seconds": 30.0, "ndcg@10": 0.14},
        ]
    )
    assert peers.seconds_to_reach(curve, 0.15) == 20.0
    assert peers.seconds_to_reach(curve, 0.17) is None


def _row(name: str, estimated: bool = False) -> dict[str, Any]:
    curve = [{"epoch": 1, "seconds": 12.0, "ndcg@10": 0.16, "estimated": estimated}]
    test = {"ndcg@10": 0.155, "hr@10": 0.27, "mrr": 0.13}
    return peers.model_row(name, test, curve, train_seconds=99.4, epochs=3, best_epoch=2)


def test_table_says_not_reached_and_marks_estimates() -> None:
    lines = peers.table_lines([_row("ours", estimated=True), _row("peer")])
    assert lines[0].startswith("| model | test NDCG@10 | test HR@10 | train s | epochs (best) |")
    assert lines[2] == "| ours | 0.1550 | 0.2700 | 99 | 3 (2) | ~12 | not reached |"
    assert lines[3].endswith("| 12 | not reached |")


def _entry(plot: str) -> dict[str, Any]:
    rectools = {
        **_row(RECTOOLS.name),
        "peer": "rectools",
        "stopped_by": "budget",
        "versions": {"rectools": "0.19.0", "pytorch_lightning": "2.5.2", "torch": "2.13.0+cpu"},
        "settings": {"n_factors": 64, "session_max_len": 200, "loss": "softmax"},
        "train_users": 943,
        "batches_per_epoch": 8,
        "unknown_items": 1,
        "unknown_targets": {"valid": 0, "test": 1},
        "recommend_check": {"users": 200, "max_abs_diff": 0.0, "ok": True},
        "load_at_start": 5.2,
    }
    recbole = {
        **_row(RECBOLE.name),
        "peer": "recbole",
        "stopped_by": "budget",
        "versions": {"recbole": "1.2.1", "torch": "2.13.0+cpu"},
        "settings": {"n_layers": 2, "MAX_ITEM_LIST_LENGTH": 50},
        "recbole_test": {"ndcg@10": 0.1, "hit@10": 0.2},
    }
    return {
        "dataset": "movielens-100k",
        "data": "ml-100k",
        "budget_seconds": 120.0,
        "threads": 2,
        "updated": "2026-12-01",
        "ours": _row("attnrec_tf (ours)"),
        "peers": [rectools, recbole],
        "ours_command": "python -m attnrec_tf.train ...",
        "plot": plot,
        "command": "python -m benchmarks --suite peers --dataset ml-100k",
    }


PLOT = "benchmarks/peers-ml-100k-rectools-recbole.png"


def test_benchmarks_markdown_renders_the_peers_section() -> None:
    results = {
        "machine": {"cores": 2, "cpu": "X"},
        "updated": "2026-12-01",
        "runs": {},
        "peers": {"ml-100k-rectools-recbole": _entry(PLOT)},
    }
    text = suites.markdown(results)
    assert "## Published SASRec implementations on our split" in text
    assert (
        "### movielens-100k: RecTools SASRec (softmax), RecBole SASRec (CE) (120 s budget, "
        "2 threads; 2026-12-01)" in text
    )
    assert "| RecTools SASRec (softmax) | 0.1550 |" in text
    assert "| RecBole SASRec (CE) | 0.1550 |" in text
    assert "943 users in 8 batches" in text and "1 items never in training" in text
    assert "RecBole's own evaluator" in text
    assert "attnrec_tf (ours) -, RecTools SASRec (softmax) 5.2, RecBole SASRec (CE) -" in text
    assert f"![validation NDCG@10 against seconds]({PLOT})" in text


def test_an_entry_of_the_recbole_only_layout_still_renders() -> None:
    entry = _entry("p.png")
    recbole = entry.pop("peers")[1]
    entry["peer"] = {k: v for k, v in recbole.items() if k != "peer"}
    text = peers.peers_markdown({"ml-100k": entry})
    assert "| RecBole SASRec (CE) | 0.1550 |" in text and "RecBole's own evaluator" in text


def test_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    ours = peers.our_curve(
        {"history": [{"epoch": e, "ndcg@10": 0.05 * e} for e in (1, 2, 3)], "train_seconds": 9}
    )
    theirs = peers.peer_curve([{"epoch": 1, "seconds": 4.0, "ndcg@10": 0.1}])
    path = peers.plot_validation({"ours": ours, "peer": theirs}, tmp_path / "p.png", budget=8)
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5_000


# --- flags ---------------------------------------------------------------------------------------


def test_parse_options_reads_json_values_and_keeps_text() -> None:
    got = peers.parse_options(["train_batch_size=256", "hidden_act=relu", "x=[1, 2]"])
    assert got == {"train_batch_size": 256, "hidden_act": "relu", "x": [1, 2]}
    with pytest.raises(peers.PeerError, match="KEY=VALUE"):
        peers.parse_options(["nonsense"])


def test_thresholds_and_output_dir_flags() -> None:
    assert peers.parse_thresholds("0.15,0.17") == (0.15, 0.17)
    with pytest.raises(peers.PeerError, match="--thresholds"):
        peers.parse_thresholds("0.15,x")
    assert peers.output_dir_of(["-m", "x", "--output-dir", "runs/a"]) == Path("runs/a")
    assert peers.output_dir_of(["--output-dir=runs/b"]) == Path("runs/b")
    with pytest.raises(peers.PeerError, match="--output-dir"):
        peers.output_dir_of(["python", "-m", "attnrec_tf.train"])


def test_peers_and_their_options() -> None:
    assert peers.parse_peers("rectools") == [RECTOOLS]
    assert peers.parse_peers("rectools,recbole") == [RECTOOLS, RECBOLE]
    for bad in ("lightfm", "", "rectools,rectools"):
        with pytest.raises(peers.PeerError, match="--peer"):
            peers.parse_peers(bad)
    assert peers.peer_options(["batch_size=256"], [RECTOOLS]) == {"rectools": {"batch_size": 256}}
    both = peers.peer_options(
        ["recbole.train_batch_size=512", "rectools.n_factors=32"], [RECTOOLS, RECBOLE]
    )
    assert both == {"rectools": {"n_factors": 32}, "recbole": {"train_batch_size": 512}}
    with pytest.raises(peers.PeerError, match="name the peer"):
        peers.peer_options(["batch_size=256"], [RECTOOLS, RECBOLE])
    with pytest.raises(peers.PeerError, match="not among --peer"):
        peers.peer_options(["recbole.epochs=1"], [RECTOOLS])


def test_default_ours_command_is_the_sasrec_preset_under_the_same_budget() -> None:
    work = Path("runs/bench/peers-ml-1m")
    assert peers.default_ours_command("ml-1m", Path("../shared/data"), work, 1800) == (
        "python -m attnrec_tf.train --data ../shared/data/ml-1m --preset sasrec --epochs 1000 "
        "--time-budget 1800 --no-export --output-dir runs/bench/peers-ml-1m/ours"
    )


def test_install_commands_put_torch_first_then_each_peer() -> None:
    commands = peers.install_commands(Path("/v"), [RECTOOLS, RECBOLE])
    assert commands[0][-1] == "/v" and commands[1][-1] == "torch==2.13.0"
    assert "rectools[torch]==0.19.0" in commands[2] and "numpy<2" in commands[2]
    assert "recbole==1.2.1" in commands[3]
    assert all("torch" not in " ".join(c).replace("rectools[torch]", "") for c in commands[2:])
    assert peers.install_commands(Path("/v")) == commands[:3]  # RecTools by default


# --- the suite, with a stand-in peer --------------------------------------------------------------


def fake_run(folder: Path, split: LeaveOneOutSplit, vocab_size: int) -> Path:
    """A finished run folder of ours: report.json and split.npz."""
    folder.mkdir(parents=True)
    save_split(folder / "split.npz", split)
    history = [{"epoch": e, "ndcg@10": 0.1 * e, "hr@10": 0.2 * e, "loss": 5.0} for e in (1, 2)]
    report = {
        "dataset": {
            "name": "synthetic",
            "num_users": len(split.users),
            "num_items": vocab_size - 1,
        },
        "config": {"max_len": 8, "seed": 7, "patience": 3},
        "train_seconds": 10.0,
        "epochs_run": 2,
        "best_epoch": 2,
        "history": history,
        "metrics": {"keras": {"ndcg@10": 0.3, "hr@10": 0.5, "mrr": 0.25}},
    }
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def _stand_in(split: LeaveOneOutSplit, vocab_size: int, jobs: list[dict[str, Any]]) -> Any:
    """A peer runner that checks its inputs and returns a perfect peer's scores."""

    def run_peer(python: Path, job: Path, log: Path, module: str) -> dict[str, Any]:
        spec = json.loads(job.read_text())
        jobs.append({**spec, "module": module})
        assert (job.parent / "split.npz").is_file()
        if module.endswith("recbole"):
            lines = (job.parent / "data" / "attnrec" / "attnrec.inter").read_text().splitlines()
            assert len(lines) == 1 + sum(len(h) + 1 for h in split.histories("test"))
        scores = np.zeros((len(split.users), vocab_size), np.float32)
        scores[np.arange(len(split.users)), split.test_targets] = 1.0
        return {
            "history": [{"epoch": 1, "seconds": 3.0, "ndcg@10": 0.2}],
            "test_scores": scores,
            "train_seconds": 3.5,
            "epochs_run": 1,
            "best_epoch": 1,
            "stopped_by": "budget",
            "versions": {},
            "settings": {},
            "recbole_test": {"ndcg@10": 0.9},
            "prepare_seconds": 1.0,
            "train_users": 40,
            "batches_per_epoch": 5,
            "recommend_check": {"users": 40, "max_abs_diff": 0.0, "ok": True},
        }

    return run_peer


def test_suite_reuses_our_run_ranks_the_peers_and_records_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    split, vocab_size = synthetic_split(40, 30), 31
    run = fake_run(tmp_path / "ours", split, vocab_size)
    (tmp_path / "results").mkdir()
    jobs: list[dict[str, Any]] = []
    monkeypatch.setattr(peers, "ensure_peers", lambda args, chosen, work: (Path("py"), None))
    monkeypatch.setattr(peers, "run_peer", _stand_in(split, vocab_size, jobs))
    status = suites.main(
        ["--suite", "peers", "--ours", str(run), "--out", str(tmp_path / "work"),
         "--results", str(tmp_path / "results"), "--budget-seconds", "5",
         "--peer", "rectools,recbole", "--peer-option", "recbole.train_batch_size=64",
         "--peer-option", "rectools.n_factors=32", "--thresholds", "0.1,0.3"]
    )  # fmt: skip
    assert status == 0
    rectools, recbole = jobs
    assert rectools["module"] == "benchmarks.peer_rectools"
    assert rectools["max_len"] == 8 and rectools["seed"] == 7 and rectools["budget_seconds"] == 5
    assert rectools["patience"] == 3 and rectools["max_epochs"] == 1000  # our run's patience
    assert rectools["options"] == {"n_factors": 32} and rectools["vocab_size"] == 31
    assert recbole["module"] == "benchmarks.peer_recbole" and recbole["probe_seconds"] == 0.5
    assert recbole["options"] == {"train_batch_size": 64}
    printed = capsys.readouterr().out
    assert "| attnrec_tf (ours) | 0.3000 | 0.5000 | 10 | 2 (2) | ~5 | not reached |" in printed
    assert (
        "| RecTools SASRec (softmax) | 1.0000 | 1.0000 | 4 | 1 (1) | 3 | not reached |" in printed
    )
    assert "| RecBole SASRec (CE) | 1.0000 | 1.0000 | 4 | 1 (1) | 3 | not reached |" in printed
    saved = json.loads((tmp_path / "results" / "benchmarks" / "results.json").read_text())
    entry = saved["peers"]["ml-1m-rectools-recbole"]
    assert [row["peer"] for row in entry["peers"]] == ["rectools", "recbole"]
    assert entry["peers"][0]["test_ndcg@10"] == 1.0
    assert entry["peers"][0]["recommend_check"]["ok"]
    assert "recbole_test" not in entry["peers"][0] and "recbole_test" in entry["peers"][1]
    markdown = (tmp_path / "results" / "BENCHMARKS.md").read_text()
    assert "RecTools SASRec (softmax)" in markdown and "RecBole SASRec (CE)" in markdown
    png = tmp_path / "results" / "benchmarks" / "peers-ml-1m-rectools-recbole.png"
    assert png.read_bytes().startswith(PNG)


def test_the_default_peer_is_rectools_and_ours_gets_the_same_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    split, vocab_size = synthetic_split(30, 20), 21
    commands: list[str] = []

    def run_ours(command: str, log: Path) -> Path:
        commands.append(command)
        return fake_run(tmp_path / "ours", split, vocab_size)

    jobs: list[dict[str, Any]] = []
    monkeypatch.setattr(peers, "ensure_peers", lambda args, chosen, work: (Path("py"), None))
    monkeypatch.setattr(peers, "run_peer", _stand_in(split, vocab_size, jobs))
    monkeypatch.setattr(peers, "run_ours", run_ours)
    monkeypatch.setattr(peers, "plot_validation", lambda curves, path, **kw: path)
    data = tmp_path / "data"
    (data / "ml-100k").mkdir(parents=True)
    status = peers.main(
        ["--dataset", "ml-100k", "--data-root", str(data), "--budget-seconds", "120",
         "--out", str(tmp_path / "work"), "--no-save"],
        suites.save,
    )  # fmt: skip
    assert status == 0
    assert [job["module"] for job in jobs] == ["benchmarks.peer_rectools"]
    assert "--preset sasrec --epochs 1000 --time-budget 120 --no-export" in commands[0]
    assert (tmp_path / "work" / "peers-ml-100k" / "peers-ml-100k-rectools.json").is_file()


def test_missing_peer_with_no_install_names_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fake_run(tmp_path / "ours", tiny_split(), 6)
    status = peers.main(
        ["--ours", str(run), "--no-install", "--peer-venv", str(tmp_path / "venv"),
         "--out", str(tmp_path / "work"), "--no-save"],
        suites.save,
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "RecTools SASRec (softmax) peer not installed" in err
    assert "pip install --quiet torch==2.13.0" in err and "'rectools[torch]==0.19.0'" in err


def test_a_split_recbole_cannot_reproduce_is_refused() -> None:
    with pytest.raises(peers.PeerError, match="1 users have only 3 interactions"):
        peers.check_recbole_can_split(tiny_split())  # user 1: [5, 3, 1]
    peers.check_recbole_can_split(synthetic_split(20, 30))


def test_a_run_evaluated_on_some_users_is_refused(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "ours", tiny_split(), 6)
    report = json.loads((run / "report.json").read_text())
    report["dataset"]["num_users"] = 5
    (run / "report.json").write_text(json.dumps(report))
    with pytest.raises(peers.PeerError, match="--eval-users"):
        peers.load_our_run(run)


# --- the real peers ---------------------------------------------------------------------------


def real_peer_python(peer: peers.Peer) -> Path:
    """The peer venv's interpreter ($ATTNREC_PEER_PYTHON or runs/peers-venv); skips when it
    cannot run `peer`."""
    python = Path(os.environ.get("ATTNREC_PEER_PYTHON") or peers.peer_python(peers.DEFAULT_VENV))
    missing = peers.peer_missing(python, peer.imports)
    if missing:
        pytest.skip(
            f"{peer.name} peer not installed ({missing}); install: "
            f"{peers.install_hint(peers.DEFAULT_VENV, [peer])}"
        )
    return python


def run_real_peer(
    python: Path, peer: peers.Peer, folder: Path, vocab_size: int, **job: Any
) -> dict[str, Any]:
    """Writes a job (window 6, seed 1, plus `job`) beside the inputs already in `folder` and runs
    `peer` on it; its log is `folder/peer.log`."""
    path = peers.write_peer_job(folder, vocab_size=vocab_size, max_len=6, seed=1, **job)
    return peers.run_peer(python, path, folder / "peer.log", peer.module)


@pytest.mark.slow
def test_real_rectools_peer_end_to_end_on_a_tiny_split(tmp_path: Path) -> None:
    python = real_peer_python(RECTOOLS)
    split, vocab_size = synthetic_split(60, 40, seed=5), 42
    split.test_targets[0] = 41  # an item only ever a test target: unknown to RecTools
    peers.write_split(split, tmp_path)
    result = run_real_peer(
        python, RECTOOLS, tmp_path, vocab_size, budget_seconds=120, threads=2, patience=10,
        max_epochs=2, options={"batch_size": 16},
    )  # fmt: skip
    scores = result["test_scores"]
    assert scores.shape == (60, 42)
    assert np.isneginf(scores[:, 0]).all() and np.isneginf(scores[:, 41]).all()
    assert np.isfinite(scores[:, 1:41]).all()
    assert result["unknown_items"] == 1 and result["unknown_targets"] == {"valid": 0, "test": 1}
    assert [row["epoch"] for row in result["history"]] == [1, 2]
    assert result["history"][1]["seconds"] > result["history"][0]["seconds"] > 0
    assert all(row["loss"] is not None and not row["partial"] for row in result["history"])
    assert result["stopped_by"] == "max_epochs"
    assert result["train_users"] == 60 and result["batches_per_epoch"] == 4
    check = result["recommend_check"]
    assert check["ok"] and check["users"] == 60 and check["items"] == 40
    settings = result["settings"]
    assert settings["loss"] == "softmax" and settings["session_max_len"] == 6
    assert (settings["n_factors"], settings["n_blocks"], settings["n_heads"]) == (64, 2, 1)
    assert settings["dropout_rate"] == 0.1 and settings["lr"] == 1e-3
    assert settings["batch_size"] == 16 and settings["deterministic"]
    valid = result["history"][int(result["best_epoch"]) - 1]
    assert 0.0 <= valid["ndcg@10"] <= 1.0
    test = peers.evaluate_peer_scores(scores, split)
    assert test["num_users"] == 60


@pytest.mark.slow
def test_real_rectools_peer_stops_inside_an_epoch_when_the_budget_is_spent(tmp_path: Path) -> None:
    python = real_peer_python(RECTOOLS)
    split = synthetic_split(80, 40, seed=6)
    peers.write_split(split, tmp_path)
    result = run_real_peer(
        python, RECTOOLS, tmp_path, 41, budget_seconds=0.01, threads=1, options={"batch_size": 2}
    )
    assert result["stopped_by"] == "budget (epoch cut)"
    assert len(result["history"]) == 1 and result["history"][0]["partial"]
    assert 0 < result["epochs_run"] < 1


@pytest.mark.slow
def test_real_recbole_peer_end_to_end_on_a_tiny_split(tmp_path: Path) -> None:
    python = real_peer_python(RECBOLE)
    split, vocab_size = synthetic_split(60, 40, seed=5), 41
    peers.write_peer_inputs(split, tmp_path)
    result = run_real_peer(
        python, RECBOLE, tmp_path, vocab_size, budget_seconds=60, threads=2,
        options={"epochs": 2, "train_batch_size": 64},
    )  # fmt: skip
    assert "split checked" in (tmp_path / "peer.log").read_text()
    assert result["test_scores"].shape == (60, 41)
    assert np.isneginf(result["test_scores"][:, 0]).all()
    assert [row["epoch"] for row in result["history"]] == [1, 2]
    assert result["history"][1]["seconds"] > result["history"][0]["seconds"] > 0
    assert result["settings"]["loss_type"] == "CE"
    assert result["settings"]["MAX_ITEM_LIST_LENGTH"] == 6
    test = peers.evaluate_peer_scores(result["test_scores"], split)
    assert test["num_users"] == 60 and 0.0 <= test["ndcg@10"] <= 1.0


@pytest.mark.slow
def test_real_recbole_peer_refuses_a_split_that_is_not_ours(tmp_path: Path) -> None:
    python = real_peer_python(RECBOLE)
    split = synthetic_split(20, 30, seed=2)
    peers.write_peer_inputs(split, tmp_path)
    inter = tmp_path / "data" / "attnrec" / "attnrec.inter"
    lines = inter.read_text().splitlines()
    user0 = [i for i, line in enumerate(lines) if line.startswith("0\t")]
    a, b = user0[-1], user0[-2]  # swap user 0's validation and test timestamps
    lines[a], lines[b] = (
        lines[a].rsplit("\t", 1)[0] + "\t" + lines[b].rsplit("\t", 1)[1],
        lines[b].rsplit("\t", 1)[0] + "\t" + lines[a].rsplit("\t", 1)[1],
    )
    inter.write_text("\n".join(lines) + "\n")
    with pytest.raises(peers.PeerError, match="status 3"):
        run_real_peer(python, RECBOLE, tmp_path, 31, budget_seconds=30, threads=1,
                      options={"epochs": 1})  # fmt: skip
    assert "not ours" in (tmp_path / "peer.log").read_text()

"""The train CLI's data flags: `--min-rating`, `--rating-col`, `--split temporal`, Parquet and
`.inter` input; a temporal run end to end (report, split.npz, export, recommend), and every bad
value as one line naming the file and line, or the flag, with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf import train

TINY = [
    "--epochs", "1", "--max-len", "5", "--embedding-dim", "8", "--attention-units", "4",
    "--min-item-interactions", "1", "--min-user-interactions", "1", "--verbose", "0",
    "--no-jit-compile", "--sampled-negatives", "0",
]  # fmt: skip
DAY = 86_400


def write_log(tmp_path: Path) -> Path:
    """40 users, 10 interactions each, one a day from 2024-01-01 on (user u starts on day u % 5);
    every third interaction is rated 2, the others 5."""
    rows = ["uid\tsku\tts\tstars"]
    for user in range(40):
        for step in range(10):
            day = user % 5 + step
            stars = 2 if step % 3 == 2 else 5
            rows.append(f"u{user}\titem-{(user + step) % 15}\t{1_704_067_200 + day * DAY}\t{stars}")
    path = tmp_path / "log.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    status = train.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip()


def test_temporal_run_with_min_rating_end_to_end(tmp_path, capsys):
    log = write_log(tmp_path)
    out = tmp_path / "run"
    flags = ["--data", str(log), "--user-col", "uid", "--item-col", "sku", "--time-col", "ts"]
    flags += ["--rating-col", "stars", "--min-rating", "4"]
    flags += ["--split", "temporal", "--split-time", "2024-01-08", "--output-dir", str(out)]
    status, printed, err = _run([*flags, *TINY, "--no-export"], capsys)
    assert status == 0, err
    assert "120 rows rated below --min-rating" in printed
    assert "split: temporal at 2024-01-08T00:00:00Z (--split-time 2024-01-08;" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["min_rating"] == 4.0
    assert report["dataset"]["rows_below_min_rating"] == 120
    assert report["dataset"]["num_interactions"] == 280 and report["dataset"]["num_users"] == 40
    split = report["protocol"]["split"]
    assert split["name"] == "temporal" and split["cutoff"] == 1_704_672_000.0
    assert split["cutoff_utc"] == "2024-01-08T00:00:00Z"
    assert split["users_evaluated"] == report["protocol"]["eval_users"] == 40
    assert report["protocol"]["ranking"] == "full"
    for name in ("keras", "popularity"):
        assert 0.0 <= report["metrics"][name]["ndcg@10"] <= 1.0

    from attnrec_tf.export.export_all import export_all
    from attnrec_tf.recommender import history_from_user
    from attnrec_tf.run_dir import RunDir, load_split

    saved = load_split(out / "split.npz")
    assert saved.protocol["name"] == "temporal"
    assert len(saved.histories("test")) == 40
    exported = export_all(RunDir(out), tflite_kinds=["float32"], verbose=False)
    keras, served = exported["metrics"]["keras"], exported["metrics"]["saved_model"]
    assert served["ndcg@10"] == pytest.approx(keras["ndcg@10"], abs=1e-6)
    assert exported["metrics"]["tflite_float32"]["ndcg@10"] == pytest.approx(
        keras["ndcg@10"], abs=1e-4
    )
    row = int(np.flatnonzero(saved.users.astype(str) == "u3")[0])
    expected = [*saved.train[row].tolist(), saved.valid_targets[row], saved.test_targets[row]]
    assert history_from_user(RunDir(out), "u3") == expected


def _one_line_error(argv: list[str], capsys, tmp_path) -> str:
    status, _, err = _run([*argv, "--output-dir", str(tmp_path / "o"), *TINY], capsys)
    assert status == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--split-time", "2024-01-01"], "--split-time needs --split temporal"),
        (["--split", "temporal", "--split-fraction", "1.5"], "--split-fraction must be between"),
        (["--split", "temporal", "--split-time", "soon"], "--split-time 'soon' is neither"),
        (
            ["--split", "temporal", "--split-time", "1", "--split-fraction", "0.5"],
            "give --split-time or --split-fraction, not both",
        ),
        (["--rating-col", "stars"], "--rating-col needs --min-rating"),
        (["--min-rating", "nan"], "--min-rating must be a finite number"),
        (["--min-rating", "4"], "--min-rating: the synthetic data has no ratings"),
    ],
)
def test_bad_flag_values_are_one_line(flags, message, capsys, tmp_path):
    assert message in _one_line_error(flags, capsys, tmp_path)


def test_a_cutoff_with_nobody_to_evaluate(capsys, tmp_path):
    log = write_log(tmp_path)
    flags = ["--data", str(log), "--user-col", "uid", "--item-col", "sku", "--time-col", "ts"]
    err = _one_line_error(
        [*flags, "--split", "temporal", "--split-time", "2030-01-01"], capsys, tmp_path
    )
    assert "--split-time 2030-01-01: no user has an interaction before the cut-off" in err
    assert "the timestamps run from 1704067200 (2024-01-01T00:00:00Z) to 1705190400" in err


@pytest.mark.parametrize(
    ("name", "content", "flags", "expected"),
    [
        ("r.csv", "user_id,item_id,timestamp,rating\n1,2,3,x\n", ["--min-rating", "4"],
         "r.csv line 2: rating 'x' is not a number"),
        ("r.csv", "user_id,item_id,timestamp\n1,2,3\n", ["--min-rating", "4"],
         "no column 'rating' in the header (found: user_id, item_id, timestamp); choose the "
         "column with --rating-col"),
        ("r.inter", "user_id:token\titem_id\ttimestamp:float\n1\t2\t3\n", [],
         "r.inter line 1: header field 'item_id' is not name:type"),
        ("r.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\n", [],
         "r.inter line 2: expected 3 fields"),
        ("r.parquet", "PAR1 not really", [], "r.parquet: not a readable Parquet file ("),
    ],
)  # fmt: skip
def test_bad_files_are_one_line_naming_file_and_line(
    name, content, flags, expected, capsys, tmp_path
):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    path = tmp_path / name
    path.write_text(content)
    assert expected in _one_line_error(["--data", str(path), *flags], capsys, tmp_path)


def test_the_python_api_checks_the_new_options_before_training(tmp_path):
    import attnrec_tf
    from attnrec_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="--split must be one of leave-one-out, temporal"):
        attnrec_tf.fit(output_dir=tmp_path / "o", split="sideways")
    with pytest.raises(ConfigError, match="--split-fraction needs --split temporal"):
        attnrec_tf.fit(output_dir=tmp_path / "o", split_fraction=0.5)

"""Training plots (`attnrec_tf.plots`): written by a training run, optional matplotlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attnrec_tf import plots
from tests.demo_run import demo_run as build_or_reuse_demo_run

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_writes_the_three_pngs(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("matplotlib")
    run = build_or_reuse_demo_run(tmp_path_factory)  # trained through `train.main`
    for name in (plots.CURVES, plots.HEATMAP, plots.BY_LENGTH):
        data = (run / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name


def test_attention_rows_pick_users_with_long_histories() -> None:
    class Uniform:
        max_len = 6

        def serve_outputs(self, windows: np.ndarray) -> tuple[None, np.ndarray]:
            real = (windows > 0).astype(float)
            return None, real / real.sum(axis=1, keepdims=True)

    histories = [np.arange(1, n + 1) for n in (2, 9, 3, 7, 8)]
    rows = plots.attention_rows(Uniform(), histories, count=2, length=4)
    assert [row for row, *_ in rows] == [1, 4]  # evenly spread over users with >= 4 items
    row, items, weights, seen = rows[0]
    assert items.tolist() == [6, 7, 8, 9] and seen == 6
    np.testing.assert_allclose(weights, [1 / 6] * 4)


def test_without_matplotlib_one_line_and_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from attnrec_tf.run_dir import RunDir

    monkeypatch.setattr(plots, "_matplotlib", lambda: None)
    assert plots.write_plots(RunDir(tmp_path), {"history": [{"epoch": 1, "loss": 1.0}]}) == []
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "matplotlib is not installed" in out
    assert not list(tmp_path.iterdir())


def test_a_failing_plot_does_not_fail_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    from attnrec_tf.run_dir import RunDir

    history = [{"epoch": e, "loss": 3.0 / e, "ndcg@10": 0.1 * e, "hr@10": 0.2 * e} for e in (1, 2)]
    written = plots.write_plots(RunDir(tmp_path), {"history": history, "best_epoch": 2})
    assert written == [tmp_path / plots.CURVES]  # no model.keras: the heatmap is skipped
    assert "attention heatmap skipped" in capsys.readouterr().out


def test_curves_get_a_time_to_quality_panel_when_epochs_have_seconds(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import struct

    history = [{"epoch": e, "loss": 3.0 / e, "ndcg@10": 0.1 * e} for e in (1, 2)]
    widths = []
    for name, rows in (
        ("plain", history),
        ("timed", [{**r, "seconds": 9.0 * r["epoch"]} for r in history]),
    ):
        path = plots.plot_curves({"history": rows}, tmp_path / f"{name}.png")
        assert path is not None
        widths.append(struct.unpack(">I", path.read_bytes()[16:20])[0])  # PNG IHDR width
    assert widths[1] == widths[0] * 3 // 2  # a third panel of the same size


BY_LENGTH_REPORT = {
    "dataset": {"name": "synthetic"},
    "metrics": {
        "keras": {"ndcg@10": 0.3},
        "by_history_length": {
            "lengths": [1, 3, 5, 10, 20, 50, "all"],
            "num_users": 40,
            "model": {"hr@10": [0.2] * 7, "ndcg@10": [0.1, 0.15, 0.2, 0.25, 0.3, 0.3, 0.3]},
            "popularity": {"hr@10": [0.1] * 7, "ndcg@10": [0.05] * 7},
            "item_knn": {"hr@10": [0.2] * 7, "ndcg@10": [0.2, 0.2, 0.18, 0.15, 0.1, 0.1, 0.1]},
        },
    },
}


def test_by_history_length_plot_is_written_with_or_without_item_knn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = plots.plot_by_history_length(BY_LENGTH_REPORT, tmp_path / plots.BY_LENGTH)
    assert path == tmp_path / plots.BY_LENGTH
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 10_000
    skipped = {**BY_LENGTH_REPORT["metrics"]["by_history_length"], "item_knn": {"skipped": "big"}}
    report = {"metrics": {"by_history_length": skipped}}
    assert plots.plot_by_history_length(report, tmp_path / "skipped.png") is not None
    assert plots.plot_by_history_length({"metrics": {}}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_write_plots_draws_by_history_length_from_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    from attnrec_tf.run_dir import RunDir

    written = plots.write_plots(RunDir(tmp_path), BY_LENGTH_REPORT)  # no history, no model
    assert written == [tmp_path / plots.BY_LENGTH]
    assert "attention heatmap skipped" in capsys.readouterr().out

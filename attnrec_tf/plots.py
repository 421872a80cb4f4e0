"""PNG plots of a finished run: learning curves, attention, and accuracy by history length.

Written by `python -m attnrec_tf.train` at the end of a run (and by `python -m attnrec_tf.plots
--output-dir RUN` for an existing one). Without matplotlib, training prints one line naming
`pip install matplotlib` and goes on; `python -m attnrec_tf.plots` exits with that error.

```
<output-dir>/training_curves.png     training loss and validation NDCG@10 (and HR@10) per epoch,
                                     the best epoch marked
<output-dir>/attention_heatmap.png   for a few test users: the latest history items (titles)
                                     against the attention weight of each (colour and number)
<output-dir>/by_history_length.png   test NDCG@10 of the model, item-kNN and popularity when
                                     given only the last L history items (report.json's
                                     `metrics.by_history_length`)
```

Example:

```python
from pathlib import Path
from attnrec_tf.plots import write_plots
from attnrec_tf.run_dir import RunDir
write_plots(RunDir(Path("runs/latest")))  # -> [.../training_curves.png, ...]
```
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.errors import MissingDependencyError

CURVES = "training_curves.png"
HEATMAP = "attention_heatmap.png"
BY_LENGTH = "by_history_length.png"
BY_LENGTH_SCORERS = (("model", "model", "o-", "C0"), ("item_knn", "item-kNN", "s--", "C1"),
                     ("popularity", "popularity", "^:", "C2"))  # fmt: skip
HEATMAP_USERS = 4
HEATMAP_ITEMS = 12
TITLE_WIDTH = 40


def _matplotlib() -> Any:
    """The Figure class, or None when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def plot_curves(report: dict[str, Any], path: Path) -> Path | None:
    """Training loss and validation NDCG@10 / HR@10 per epoch, and NDCG@10 against seconds.

    The third panel (time to quality) needs the `seconds` of each history row (wall-clock since
    training started, validation included); without it the figure has two panels.

    Args:
        report: report.json contents (needs `history`: a list of per-epoch dicts).
        path: Where the PNG goes.

    Returns:
        `path`, or None when there is no history to plot or no matplotlib.
    """
    figure_class = _matplotlib()
    history = report.get("history") or []
    if figure_class is None or not history:
        return None
    epochs = [int(row.get("epoch", i + 1)) for i, row in enumerate(history)]
    seconds = [row.get("seconds") for row in history]
    timed = all(value is not None for value in seconds)
    figure = figure_class(figsize=(15 if timed else 10, 4), dpi=110, layout="constrained")
    loss_axes, rank_axes, *time_axes = figure.subplots(1, 3 if timed else 2)
    if timed:
        _plot_time_to_quality(time_axes[0], seconds, history)
    losses = [row.get("loss") for row in history]
    if any(value is not None for value in losses):
        loss_axes.plot(epochs, [np.nan if v is None else v for v in losses], "o-", color="C0")
        loss_axes.set_title("training loss (softmax cross-entropy)")
    val_losses = [row.get("val_loss") for row in history]
    if any(value is not None for value in val_losses):
        loss_axes.plot(epochs, [np.nan if v is None else v for v in val_losses], "s--", color="C1")
        loss_axes.legend(["training", "validation"])
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    for key, style, color in (("ndcg@10", "o-", "C2"), ("hr@10", "s--", "C3")):
        values = [row.get(key, row.get(f"val_{key}")) for row in history]
        if any(value is not None for value in values):
            rank_axes.plot(
                epochs, [np.nan if v is None else v for v in values], style, color=color,
                label=f"validation {key.upper()}",
            )  # fmt: skip
    best = report.get("best_epoch")
    if isinstance(best, int) and best in epochs:
        loss_axes.axvline(best, color="grey", linestyle=":", linewidth=1)
        rank_axes.axvline(
            best, color="grey", linestyle=":", linewidth=1, label=f"best epoch ({best})"
        )
    rank_axes.set_title("validation ranking (full catalog)")
    rank_axes.set_xlabel("epoch")
    rank_axes.set_ylabel("metric")
    rank_axes.legend(loc="lower right")
    for axes in (loss_axes, rank_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    name = report.get("dataset", {}).get("name", "")
    figure.suptitle(f"attnrec_tf training {('on ' + name) if name else ''}".strip())
    figure.savefig(path)
    return path


def _plot_time_to_quality(axes: Any, seconds: list[float], history: list[dict]) -> None:
    """Validation NDCG@10 against wall-clock seconds of training (validation included)."""
    values = [row.get("ndcg@10", row.get("val_ndcg@10")) for row in history]
    axes.plot(seconds, [np.nan if v is None else v for v in values], "o-", color="C2")
    axes.set_title("time to quality")
    axes.set_xlabel("wall-clock seconds of training")
    axes.set_ylabel("validation NDCG@10")
    axes.grid(alpha=0.3)


def attention_rows(
    model: Any, histories: list[np.ndarray], count: int = HEATMAP_USERS, length: int = HEATMAP_ITEMS
) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """`(user row, items, weights, window items)` of the last `length` positions of `count` users.

    Users are taken evenly spaced from those with at least `length` items (else the longest),
    so the picture is reproducible and not just the first users.
    """
    from attnrec_tf.data.pipeline import pad_left

    lengths = np.array([len(h) for h in histories])
    eligible = np.flatnonzero(lengths >= length)
    if len(eligible) < count:
        eligible = np.argsort(-lengths, kind="stable")[:count]
    rows = eligible[np.linspace(0, len(eligible) - 1, num=min(count, len(eligible))).astype(int)]
    windows = pad_left([histories[r] for r in rows], model.max_len)  # (U, L)
    _, attention = model.serve_outputs(windows)
    attention = np.asarray(attention, np.float64)  # (U, L)
    result = []
    for row, window, weights in zip(rows, windows, attention, strict=True):
        real = np.flatnonzero(window > 0)[-length:]
        result.append((int(row), window[real], weights[real], int((window > 0).sum())))
    return result


def plot_attention(
    rows: list[tuple[int, np.ndarray, np.ndarray, int]],
    titles: list[str],
    users: list[str],
    path: Path,
) -> Path | None:
    """One column per user: their latest history items (oldest at the top) coloured by weight.

    Args:
        rows: From `attention_rows`.
        titles: Item title per vocabulary index (index 0 unused).
        users: User id per row of the split.
        path: Where the PNG goes.

    Returns:
        `path`, or None without matplotlib or rows.
    """
    figure_class = _matplotlib()
    if figure_class is None or not rows:
        return None
    length = max(len(items) for _, items, _, _ in rows)
    top = max(float(weights.max()) for _, _, weights, _ in rows)
    figure = figure_class(
        figsize=(3.9 * len(rows) + 1.0, 0.36 * length + 1.8), dpi=110, layout="constrained"
    )
    axes_list = figure.subplots(1, len(rows), squeeze=False)[0]
    image = None
    for axes, (row, items, weights, seen) in zip(axes_list, rows, strict=True):
        grid = np.full((length, 1), np.nan)
        grid[length - len(weights) :, 0] = weights
        image = axes.imshow(grid, cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
        for y in range(length - len(weights), length):
            value = grid[y, 0]
            axes.text(
                0, y, f"{value:.3f}", ha="center", va="center", fontsize=8,
                color="black" if value > 0.6 * top else "white",
            )  # fmt: skip
        labels = [""] * (length - len(items)) + [
            textwrap.shorten(titles[int(i)], TITLE_WIDTH, placeholder="...") for i in items
        ]
        axes.set_yticks(range(length), labels, fontsize=8)
        axes.set_xticks([])
        axes.set_title(
            f"user {users[row]}\n{len(items)} of {seen} items in the window,\n"
            f"{weights.sum():.0%} of the attention",
            fontsize=9,
        )
    figure.suptitle(
        f"Attention over the latest {length} history items (oldest at the top, "
        "most recent at the bottom)",
        fontsize=11,
    )
    if image is not None:
        figure.colorbar(image, ax=list(axes_list), label="attention weight", fraction=0.02)
    figure.savefig(path)
    return path


def plot_by_history_length(report: dict[str, Any], path: Path) -> Path | None:
    """Test NDCG@10 against the number L of latest history items the scorers see (log x).

    The whole history (`"all"`) is drawn one doubling right of the longest L. A scorer that
    was skipped (item-kNN on a huge catalog) is left out and named in the legend's title.

    Args:
        report: report.json contents (needs `metrics.by_history_length`).
        path: Where the PNG goes.

    Returns:
        `path`, or None when the report has no such entry or there is no matplotlib.
    """
    figure_class = _matplotlib()
    entry = report.get("metrics", {}).get("by_history_length")
    if figure_class is None or not entry:
        return None
    numbers = [length for length in entry["lengths"] if length != "all"]
    longest = max(numbers, default=1)
    xs = [2 * longest if length == "all" else length for length in entry["lengths"]]
    figure = figure_class(figsize=(7, 4.5), dpi=110, layout="constrained")
    axes = figure.subplots()
    skipped = []
    for key, label, style, color in BY_LENGTH_SCORERS:
        values = entry.get(key) or {}
        if "ndcg@10" in values:
            axes.plot(xs, values["ndcg@10"], style, color=color, label=label)
        elif "skipped" in values:
            skipped.append(label)
    axes.set_xscale("log")
    axes.set_xticks(xs, [str(length) for length in entry["lengths"]])
    axes.minorticks_off()
    axes.set_xlabel("latest history items the scorer sees (L); the whole history is excluded")
    axes.set_ylabel("test NDCG@10 (full ranking)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(title=f"not drawn: {', '.join(skipped)}" if skipped else None)
    name = report.get("dataset", {}).get("name", "")
    axes.set_title(
        f"Test NDCG@10 by history length{(' on ' + name) if name else ''} "
        f"({entry.get('num_users', '?')} users)"
    )
    figure.savefig(path)
    return path


def write_plots(
    output: Any, report: dict[str, Any] | None = None, *, required: bool = False
) -> list[Path]:
    """Writes the PNGs into a run folder (see the module docstring).

    Args:
        output: The run's `RunDir`.
        report: report.json contents; read from the folder when None.
        required: Raise when matplotlib is missing, instead of printing one line.

    Returns:
        The written paths (empty, after printing one line, when matplotlib is missing). A plot
        that fails prints one line and is skipped: plotting never fails a finished run.

    Raises:
        MissingDependencyError: matplotlib is missing and `required` is set.
    """
    if _matplotlib() is None:
        missing = MissingDependencyError("matplotlib", "matplotlib")
        if required:
            raise missing
        print(f"plots: skipped: {missing}")
        return []
    from attnrec_tf.report import load as load_report

    if report is None:
        report = load_report(output.require(output.report))
    written = []
    for name, draw in (
        ("curves", _draw_curves),
        ("attention heatmap", _draw_heatmap),
        ("NDCG by history length", _draw_by_length),
    ):
        try:
            path = draw(output, report)
        except Exception as error:  # noqa: BLE001 - a plot must never fail a finished run
            print(f"plots: {name} skipped ({type(error).__name__}: {error})")
            continue
        if path is not None:
            written.append(path)
    print(f"plots: {', '.join(str(p) for p in written) or 'nothing to plot'}")
    return written


def _draw_curves(output: Any, report: dict[str, Any]) -> Path | None:
    return plot_curves(report, output.root / CURVES)


def _draw_by_length(output: Any, report: dict[str, Any]) -> Path | None:
    return plot_by_history_length(report, output.root / BY_LENGTH)


def _draw_heatmap(output: Any, report: dict[str, Any]) -> Path | None:
    from attnrec_tf.run_dir import load_items, load_model, load_split

    model = load_model(output.require(output.model))
    split = load_split(output.require(output.split))
    items = load_items(output.require(output.items))
    titles = ["", *(str(item["title"]) for item in items)]
    rows = attention_rows(model, split.histories("test"))
    users = [str(u) for u in np.asarray(split.users).tolist()]
    return plot_attention(rows, titles, users, output.root / HEATMAP)


def main(argv: list[str] | None = None) -> int:
    """`python -m attnrec_tf.plots --output-dir RUN`: (re)draws the plots of a finished run."""
    from attnrec_tf.cli import add_output_dir, command_parser, run_command
    from attnrec_tf.run_dir import RunDir

    parser = command_parser("python -m attnrec_tf.plots", __doc__, doc=True)
    add_output_dir(parser, "a finished training run")
    args = parser.parse_args(argv)

    def draw() -> None:
        write_plots(RunDir(args.output_dir), required=True)

    return run_command(draw)


if __name__ == "__main__":
    sys.exit(main())

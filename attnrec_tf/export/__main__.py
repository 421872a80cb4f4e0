"""`python -m attnrec_tf.export`: re-export a finished run (SavedModel, TFLite, Android assets).

Runs:

    python -m attnrec_tf.export --output-dir runs/latest
    python -m attnrec_tf.export --output-dir runs/ml1m --checkpoint runs/ml1m/checkpoints/best.keras
    python -m attnrec_tf.export --output-dir runs/latest --tflite float32,dynamic_int8 --top-k 20
    python -m attnrec_tf.export --output-dir runs/latest --history-length 1024

Each run adds a new SavedModel version (`saved_model/<model-name>/<n+1>/`), rewrites the TFLite
files and Android assets, and updates report.json. User errors print `error: ...` on one line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from attnrec_tf.cli import (
    add_model_name,
    add_output_dir,
    add_tflite_kinds,
    add_top_k,
    check_top_k,
    command_parser,
    existing_run_dir,
    given,
    release_freed_tensor_memory,
    run_command,
)
from attnrec_tf.peak_memory import peak_rss_mb, reset_peak_rss


def build_parser() -> argparse.ArgumentParser:
    """The CLI of `python -m attnrec_tf.export`."""
    from attnrec_tf.export.tflite import DEFAULT_HISTORY_LENGTH

    parser = command_parser(
        "python -m attnrec_tf.export",
        "Export a trained run as a TF Serving SavedModel, TFLite files and Android "
        "demo assets; evaluate each and record the results in report.json.",
    )
    add_output_dir(parser, "the --output-dir of a finished training run")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a .keras file to export instead of <output-dir>/model.keras",
    )
    add_model_name(parser)
    add_top_k(parser, "K of the exported top-K (default: the run's --top-k, else 10)", default=None)
    add_tflite_kinds(
        parser,
        missing="without LiteRT installed they are skipped with a note, or the export fails if "
        "this flag is given",
    )
    parser.add_argument(
        "--history-length",
        type=int,
        default=None,
        help="width H of the TFLite files' history input: the last H items of a history are "
        "never recommended, the model attends over the last max_len of them (default: "
        f"{DEFAULT_HISTORY_LENGTH}, or max_len if larger; at least max_len)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-artifact lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`).

    An export process trains nothing, so it frees what each step used before the next
    (`cli.release_freed_tensor_memory`, which must come before TensorFlow is imported).
    """
    release_freed_tensor_memory()
    args = build_parser().parse_args(argv)
    return run_command(lambda: _export(args))


def _export(args: argparse.Namespace) -> None:
    from attnrec_tf.export.export_all import export_all
    from attnrec_tf.export.tflite import parse_kinds
    from attnrec_tf.report import format_table
    from attnrec_tf.report import load as load_report
    from attnrec_tf.report import save as save_report

    started = time.perf_counter()
    reset_peak_rss()
    output = existing_run_dir(args.output_dir)
    report = load_report(output.report) if output.report.exists() else {}
    top_k = args.top_k if args.top_k is not None else report.get("config", {}).get("top_k", 10)
    report = export_all(
        output,
        model_name=args.model_name,
        top_k=check_top_k(top_k),
        report=report,
        checkpoint=args.checkpoint,
        tflite_kinds=parse_kinds(args.tflite),
        history_length=args.history_length,
        verbose=not args.quiet,
        litert_optional=not given(args, "tflite"),
    )
    report["export_seconds"] = time.perf_counter() - started
    report.setdefault("peak_rss_mb", {})["export"] = peak_rss_mb()
    save_report(output.report, report)
    print()
    print(format_table(report["metrics"]))
    print(f"\nreport: {output.report}")


if __name__ == "__main__":
    sys.exit(main())

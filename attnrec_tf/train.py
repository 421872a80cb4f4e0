"""`python -m attnrec_tf.train`: interaction log -> trained recommender, report and exports.

Runs (see README for more):

    python -m attnrec_tf.train                                   # embedded synthetic data
    python -m attnrec_tf.train --data ../shared/data/ml-1m --output-dir runs/ml1m
    python -m attnrec_tf.train --data ../shared/data/ml-1m --preset ml-1m
    python -m attnrec_tf.train --data log.csv --user-col uid --item-col sku --time-col ts

Flow (`training.run`): read -> vocabulary -> sequences -> split -> tf.data -> model.fit
(validation NDCG@10 every epoch, early stopping, best checkpoint) -> test metrics (full ranking;
sampled-100 for comparison) -> model, vocabulary, split, report.json -> export (SavedModel,
TFLite, assets).

This module is only the command line: its flags are generated from the fields of
`run_options.RunOptions` (data and run) and `config.Config` (model and training), and the
flags given go through `run_options.resolve`, as the keywords of `attnrec_tf.fit` do.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from attnrec_tf.cli import add_option_flags, command_parser, run_command
from attnrec_tf.config import Config
from attnrec_tf.run_options import RunOptions, resolve


def build_parser() -> argparse.ArgumentParser:
    """The CLI: the data and run flags (`RunOptions`), then one flag per `Config` field.

    Every flag's argparse default is `SUPPRESS`: the parsed namespace holds only the flags
    given, the same mapping `fit(**options)` passes to `resolve`, which knows the defaults.
    `--help` shows them from the fields (a `Config` flag's is the default preset's).
    """
    parser = command_parser(
        "python -m attnrec_tf.train",
        "Train an attention-based next-item recommender and report full-ranking "
        "HR@K / NDCG@K / MRR.",
    )
    add_option_flags(parser, RunOptions, default_label="default")
    add_option_flags(parser, Config, default_label="preset default")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`).

    Args:
        argv: The flags; None = the command line (`sys.argv`). Only the command line itself may
            end a large run by replacing this process with its export (`training.run`,
            `EXEC_EXPORT_FROM_ITEMS`); a call with `argv` from Python exports in process.
    """
    args = build_parser().parse_args(argv)
    return run_command(lambda: _run(vars(args), may_exec_export=argv is None))


def _run(given: dict[str, Any], *, may_exec_export: bool) -> None:
    """Checks the flags given, then runs."""
    from attnrec_tf.training.run import run

    config, options = resolve(given, caller="python -m attnrec_tf.train")
    run(config, options, may_exec_export=may_exec_export)


if __name__ == "__main__":
    sys.exit(main())

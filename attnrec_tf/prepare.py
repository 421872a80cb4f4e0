"""`python -m attnrec_tf.prepare`: an interaction log -> a prepared folder of shards, out of core.

Runs (`attnrec-prepare` is the same command):

    python -m attnrec_tf.prepare --data ../shared/data/ml-1m --output prepared/ml1m
    python -m attnrec_tf.prepare --data 'logs/part-*.parquet' --output prepared/big \\
        --memory-limit 3GB --temp-dir /mnt/scratch --threads 8 --shards 64
    python -m attnrec_tf.prepare --data log.csv --user-col uid --item-col sku --time-col ts \\
        --split temporal --split-fraction 0.9 --output prepared/log

DuckDB reads the log into a database in a temporary folder under `--temp-dir`, filters it,
builds the vocabulary and orders each user's rows in SQL within `--memory-limit` (spilling to
disk beyond it), and the split is written as user-bucketed TFRecord shards with the vocabulary
and a manifest (`data/prepare.py`, `data/shards.py`). The results equal the in-memory path's
(`python -m attnrec_tf.train` on the same flags). The data, filter and split flags are train's
(declared once in `run_options.RunOptions` and `config.Config`); `--output`, `--memory-limit`,
`--temp-dir`, `--threads` and `--shards` are `run_options.PrepareOptions`.

Bad input (a malformed row, a missing column, a bad flag, a memory limit too small for the
data) prints one line naming the file and line or the flag, and exits with status 2; nothing
is half-written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from attnrec_tf.cli import add_option_flags, command_parser, run_command
from attnrec_tf.config import Config, option_fields
from attnrec_tf.errors import ConfigError
from attnrec_tf.run_options import PrepareOptions, RunOptions, resolve

RUN_FIELDS = (
    "data", "cache_dir", "user_col", "item_col", "time_col", "delimiter", "min_rating",
    "rating_col", "split", "split_time", "split_fraction",
)  # fmt: skip
"""The `RunOptions` fields (train's data flags) that `prepare` takes."""
CONFIG_FIELDS = ("min_user_interactions", "min_item_interactions", "seed")
"""The `Config` fields that `prepare` takes (the filters, and the synthetic data's seed)."""


def build_parser() -> argparse.ArgumentParser:
    """The CLI: `PrepareOptions`, then train's data flags and the min-count filters."""
    parser = command_parser(
        "python -m attnrec_tf.prepare",
        "Prepare an interaction log out of core (DuckDB) into user-bucketed TFRecord shards, "
        "the vocabulary and a manifest, with the same filters and split as training.",
        exit_on_error=False,
    )
    add_option_flags(parser, PrepareOptions, default_label="default")
    add_option_flags(parser, RunOptions, default_label="default", names=RUN_FIELDS)
    add_option_flags(parser, Config, default_label="default", names=CONFIG_FIELDS)
    return parser


def resolve_prepare(
    values: Mapping[str, Any], caller: str = "python -m attnrec_tf.prepare"
) -> tuple[Config, RunOptions, PrepareOptions]:
    """The checked options of a prepare run from the flags given.

    Raises:
        ConfigError: A bad value or an unknown name (named as its flag).
    """
    own = {f.name for f in option_fields(PrepareOptions)}
    settings = PrepareOptions(**{k: v for k, v in values.items() if k in own}).validated()
    config, options = resolve({k: v for k, v in values.items() if k not in own}, caller)
    return config, options, settings


def run(config: Config, options: RunOptions, settings: PrepareOptions) -> dict[str, Any]:
    """Prepares the log the options name; prints a line per phase and the summary.

    Returns:
        The manifest written.
    """
    from attnrec_tf.data import prepare as engine

    source = engine.LogSource(
        options.data, user_col=options.user_col, item_col=options.item_col,
        time_col=options.time_col, delimiter=options.delimiter, rating_col=options.rating_col,
        min_rating=options.min_rating, cache_dir=options.cache_dir, seed=config.seed,
    )  # fmt: skip
    filters = engine.Filters(
        config.min_user_interactions, config.min_item_interactions, options.split,
        options.split_time, options.split_fraction,
    )  # fmt: skip
    settings_used = engine.Engine(
        settings.memory_limit, settings.temp_dir, settings.threads, settings.shards
    )
    assert settings.output is not None  # PrepareOptions.validated
    manifest = engine.prepare(
        source, settings.output, filters, settings_used, log=lambda line: print(line, flush=True)
    )
    print(engine.describe(manifest), flush=True)
    print(f"wrote {settings.output}", flush=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`)."""

    def body() -> None:
        run(*resolve_prepare(parse_flags(argv)))

    return run_command(body)


def parse_flags(argv: list[str] | None) -> dict[str, Any]:
    """The flags given, as option name -> value.

    Raises:
        ConfigError: An unknown flag or a value of the wrong type (one line naming it, where
            argparse would print its usage).
    """
    try:
        args, unknown = build_parser().parse_known_args(argv)
    except argparse.ArgumentError as error:
        raise ConfigError(str(error)) from None
    if unknown:
        raise ConfigError(f"unrecognized arguments: {' '.join(unknown)} (see --help)")
    return vars(args)


if __name__ == "__main__":
    sys.exit(main())

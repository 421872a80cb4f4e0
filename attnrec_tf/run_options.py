"""The data and run options of a training run, and the one way options become a run's settings.

`RunOptions` holds everything of a run that is not a hyperparameter (`config.Config` holds
those): where the data comes from and how it is split, where the run goes, what is exported.
Each field is declared once with `config.option`; the train CLI's flags and `attnrec_tf.fit`'s
keywords are generated from `RunOptions` and `Config`, and both go through `resolve`.

Example:

>>> config, options = resolve({"epochs": 3, "eval_users": 100, "tflite": "float32"})
>>> config.epochs, options.eval_users, options.tflite, options.tflite_given
(3, 100, ('float32',), True)
>>> resolve({"max_len": 0})
Traceback (most recent call last):
...
attnrec_tf.errors.ConfigError: --max-len must be a positive integer, got 0
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnrec_tf.cli import DEFAULT_MODEL_NAME
from attnrec_tf.config import (
    AT_LEAST_ZERO,
    POSITIVE_INT,
    PRESETS,
    Config,
    check_fields,
    flag,
    option,
    option_fields,
    option_type,
    preset,
)
from attnrec_tf.data.prepare import DEFAULT_MEMORY_LIMIT, DEFAULT_SHARDS
from attnrec_tf.data.temporal import SPLITS
from attnrec_tf.errors import ConfigError
from attnrec_tf.export.tflite import KINDS as TFLITE_KINDS
from attnrec_tf.training.distribute import MODES as DISTRIBUTE_MODES


@dataclass(frozen=True)
class RunOptions:
    """Everything of a training run that is not a hyperparameter.

    Each field's help is its flag's `--help` text. `tflite_given` (not an option) says whether
    the TFLite kinds were asked for explicitly: a run without LiteRT then fails instead of
    skipping them with a note.
    """

    data: str | None = option(
        None,
        "'synthetic' (the embedded default when omitted), a MovieLens name to download "
        "(movielens-100k, movielens-1m, movielens-20m, movielens-25m, "
        "movielens-latest-small, ...), a MovieLens folder, or an interaction file with a "
        "header: CSV/TSV, RecBole .inter or Parquet (.parquet, needs pyarrow); or a prepared "
        "folder (with manifest.json), whose shards training streams",
        group="data",
    )
    cache_dir: Path | None = option(
        None, "download cache (default $ATTNREC_CACHE or ~/.cache/attnrec_tf)", group="data"
    )
    user_col: str = option("user_id", "user column of a generic file", group="data")
    item_col: str = option("item_id", "item column of a generic file", group="data")
    time_col: str = option("timestamp", "time column of a generic file", group="data")
    feature_cols: tuple[str, ...] = option(
        (), "comma-separated categorical item columns of a generic file", group="data"
    )
    delimiter: str | None = option(
        None, "field separator of a generic file (default: from extension/header)", group="data"
    )
    min_rating: float | None = option(
        None,
        "keep only interactions rated at least this (explicit feedback as positives, e.g. 4 "
        "for MovieLens); default: keep every row",
        group="data",
    )
    rating_col: str | None = option(
        None,
        "rating or weight column of a generic file, read with --min-rating (default: rating)",
        group="data",
    )
    split: str = option(
        "leave-one-out",
        "leave-one-out: each user's last item is the test target, the one before it the "
        "validation target; temporal: train on everything before a global time cut-off, "
        "validate and test on each user's first and second interaction after it",
        choices=SPLITS,
        show_choices=True,
        group="data",
    )
    split_time: str | float | None = option(
        None,
        "the temporal cut-off: a number in the unit of the time column, or an ISO-8601 date "
        "(UTC when no zone is given)",
        group="data",
    )
    split_fraction: float | None = option(
        None,
        "the temporal cut-off as the fraction of interactions, in time order, before it "
        "(default 0.9 when --split-time is not given)",
        group="data",
    )
    output_dir: Path = option(
        Path("runs/latest"), "where the model, report.json and exports go", group="run"
    )
    preset: str = option(
        "default", f"named hyperparameters: {', '.join(PRESETS)}", choices=tuple(PRESETS),
        group="run",
    )  # fmt: skip
    sampled_negatives: int = option(
        100,
        "also report the sampled protocol with this many negatives (0 = off)",
        check=AT_LEAST_ZERO,
        group="run",
    )
    export: bool = option(
        True,
        "write the SavedModel, TFLite files and Android assets after training",
        group="run",
    )
    model_name: str = option(DEFAULT_MODEL_NAME, "TF Serving model name", group="run")
    tflite: tuple[str, ...] = option(
        TFLITE_KINDS,
        f"comma-separated TFLite kinds to write, from {','.join(TFLITE_KINDS)}; without "
        "LiteRT installed a run skips them with a note, or fails if this flag is given",
        group="run",
    )
    stream: bool | None = option(
        None,
        "from a prepared --data folder: stream its shards into training (--stream; memory "
        "does not grow with the log) or read it into memory first (--no-stream; the same "
        "training as from the log itself, context crops included); default: stream above "
        "10,000,000 training interactions",
        group="data",
    )
    eval_users: int = option(
        0,
        "validate and test on this many users drawn at random (0 = every user; from a prepared "
        "--data folder, 0 = a sample of 100,000); for catalogs too large to rank fully for "
        "every user. split.npz then holds those users",
        check=AT_LEAST_ZERO,
        group="run",
    )
    validation_users: int | None = option(
        None,
        "validate after every epoch on a fixed random sample of this many evaluated users "
        "(0 = all); default: all while users x items <= 2.5e8 scores, else at least 5,000 "
        "users within that. With a sample the best model is validated on every user at the end",
        check=AT_LEAST_ZERO,
        group="run",
    )
    resume: bool = option(
        True,
        "continue from the training state left in --output-dir by a killed or interrupted "
        "run of the same command (--no-resume starts afresh)",
        group="run",
    )
    backup_every_steps: int = option(
        0,
        "also save the training state every N batches (0 = at epoch ends only)",
        check=AT_LEAST_ZERO,
        group="run",
    )
    distribute: str = option(
        "auto",
        "tf.distribute strategy: auto = MultiWorkerMirroredStrategy when TF_CONFIG names "
        "several workers, MirroredStrategy with several GPUs, else none",
        choices=DISTRIBUTE_MODES,
        show_choices=True,
        group="run",
    )
    verbose: int = option(
        2, "Keras fit verbosity (1 = progress bar)", choices=(0, 1, 2), show_choices=True,
        group="run",
    )  # fmt: skip
    tflite_given: bool = False

    def validated(self) -> RunOptions:
        """Checks every value (`config.check_fields`, then the rules that join several
        options); raises `ConfigError` naming the flag."""
        from attnrec_tf.data.sources import check_rating_options
        from attnrec_tf.data.temporal import check_split_options

        check_fields(self)
        check_rating_options(self.min_rating, self.rating_col)
        check_split_options(self.split, self.split_time, self.split_fraction)
        if self.export:
            from attnrec_tf.export.tflite import parse_kinds

            parse_kinds(",".join(self.tflite))
        return self


def option_names() -> set[str]:
    """Every option's name: the train CLI's flags with underscores, `fit`'s keywords."""
    return {f.name for cls in (RunOptions, Config) for f in option_fields(cls)}


def resolve(values: Mapping[str, Any], caller: str = "fit()") -> tuple[Config, RunOptions]:
    """The checked `Config` and `RunOptions` of the options a user gave.

    Args:
        values: Option name -> value, only those the user gave: the flags on the command line
            (the CLI's namespace holds nothing else) or `fit`'s keywords. `Config` fields
            override the `preset`'s values; a list option takes a list or a comma-separated
            string; a folder a path or a string.
        caller: The function named in the error for an unknown name.

    Returns:
        `(config, options)`, both validated.

    Raises:
        ConfigError: An unknown name (with the closest known one) or a bad value, named as
            its flag.
    """
    _check_names(values, option_names(), caller)
    run_names = {f.name for f in option_fields(RunOptions)}
    run_values = {name: _normalised(name, value) for name, value in values.items()
                  if name in run_names}  # fmt: skip
    base = preset(run_values.get("preset", RunOptions.preset))
    config = base.replace(**{k: v for k, v in values.items() if k not in run_names})
    options = RunOptions(**run_values, tflite_given="tflite" in run_values)
    return config, options.validated()


def _check_names(values: Mapping[str, Any], known: set[str], caller: str) -> None:
    """Raises ConfigError for an unknown name, with the closest known one."""
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{caller} got an unknown option {name!r}{hint}")


def _normalised(name: str, value: Any) -> Any:
    """A list option as a tuple of names; a folder as a Path."""
    kind = option_type(RunOptions, name)
    if kind is tuple:
        return _names(value, name)
    if kind is Path and value is not None:
        return Path(value)
    return value


def _names(value: str | Iterable[str], name: str) -> tuple[str, ...]:
    """`"a,b"` or `["a", "b"]` -> `("a", "b")`."""
    if isinstance(value, str):
        return tuple(part for part in value.split(",") if part)
    try:
        return tuple(str(part) for part in value)
    except TypeError:
        raise ConfigError(f"{flag(name)} must be a list of names, got {value!r}") from None


@dataclass(frozen=True)
class PrepareOptions:
    """The options of `python -m attnrec_tf.prepare` that a training run does not have.

    Kept apart from `RunOptions`: they size DuckDB's work while preparing, and a run reads a
    prepared folder without them. The data, filter and split flags of `prepare` are
    `RunOptions` and `Config` fields (`prepare.PREPARE_FIELDS`), declared there once.
    """

    output: Path | None = option(
        None, "the prepared folder to write (replaced as a whole when complete)", group="prepare"
    )
    memory_limit: str = option(
        DEFAULT_MEMORY_LIMIT,
        "DuckDB's memory limit (e.g. 4GB, 512MB); beyond it DuckDB spills to --temp-dir",
        group="prepare",
    )
    temp_dir: Path | None = option(
        None,
        "where DuckDB's database and spill files go (a temporary folder inside it, removed "
        "at the end; default: the system's temp folder)",
        group="prepare",
    )
    threads: int | None = option(
        None, "DuckDB's threads (default: one per core)", check=POSITIVE_INT, group="prepare"
    )
    shards: int = option(
        DEFAULT_SHARDS,
        "how many TFRecord shard files (each user in one; give at least the number of "
        "workers that will train from it)",
        check=POSITIVE_INT,
        group="prepare",
    )

    def validated(self) -> PrepareOptions:
        """Checks every value; raises `ConfigError` naming the flag."""
        from attnrec_tf.data.prepare import check_memory_limit

        check_fields(self)
        if self.output is None:
            raise ConfigError("--output is required: the prepared folder to write")
        check_memory_limit(self.memory_limit)
        return self

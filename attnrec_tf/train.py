"""`python -m attnrec_tf.train`: interaction log -> trained recommender, report and exports.

Runs (see README for more):

    python -m attnrec_tf.train                                   # embedded synthetic data
    python -m attnrec_tf.train --data ../shared/data/ml-1m --output-dir runs/ml1m
    python -m attnrec_tf.train --data ../shared/data/ml-1m --preset ml-1m
    python -m attnrec_tf.train --data log.csv --user-col uid --item-col sku --time-col ts

Flow: read -> vocabulary -> sequences -> leave-one-out split -> tf.data -> model.fit (validation
NDCG@10 every epoch, early stopping, best checkpoint) -> test metrics (full ranking; sampled-100
for comparison) -> model, vocabulary, split, report.json -> export (SavedModel, TFLite, assets).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnrec_tf.cli import (
    DEFAULT_MODEL_NAME,
    add_model_name,
    add_output_dir,
    add_tflite_kinds,
    command_parser,
    given,
    quiet_tensorflow,
    run_command,
)
from attnrec_tf.config import PRESETS, Config, flag, preset
from attnrec_tf.errors import ConfigError, DependencyError
from attnrec_tf.export.tflite import KINDS as TFLITE_KINDS

PROTOCOL = {"split": "leave-one-out", "ranking": "full"}


@dataclass(frozen=True)
class RunOptions:
    """Everything of a training run that is not a hyperparameter (`Config` holds those).

    Attributes mirror the CLI flags of the same names (see `build_parser` for their meaning).
    `tflite_given` says whether the TFLite kinds were asked for explicitly: a run without
    LiteRT then fails instead of skipping them with a note.
    """

    data: str | None = None
    cache_dir: Path | None = None
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    feature_cols: tuple[str, ...] = ()
    delimiter: str | None = None
    rating_col: str | None = None
    min_rating: float | None = None
    split: str = "leave-one-out"
    split_time: str | float | None = None
    split_fraction: float | None = None
    output_dir: Path = Path("runs/latest")
    preset: str = "default"
    sampled_negatives: int = 100
    export: bool = True
    model_name: str = DEFAULT_MODEL_NAME
    tflite: tuple[str, ...] = TFLITE_KINDS
    tflite_given: bool = False
    eval_users: int = 0
    validation_users: int | None = None
    resume: bool = True
    backup_every_steps: int = 0
    distribute: str = "auto"
    verbose: int = 2

    def check(self) -> None:
        """Raises ConfigError for a value no run can use (the flag is named)."""
        from attnrec_tf.data.sources import check_rating_options
        from attnrec_tf.data.temporal import check_split_options

        check_rating_options(self.min_rating, self.rating_col)
        check_split_options(self.split, self.split_time, self.split_fraction)
        for name in ("eval_users", "sampled_negatives", "backup_every_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.validation_users is not None and self.validation_users < 0:
            raise ConfigError(f"--validation-users must be >= 0, got {self.validation_users}")
        if self.export:
            from attnrec_tf.export.tflite import parse_kinds

            parse_kinds(",".join(self.tflite))


def build_parser() -> argparse.ArgumentParser:
    """The CLI: data and output flags, then one flag per `Config` field."""
    parser = command_parser(
        "python -m attnrec_tf.train",
        "Train an attention-based next-item recommender and report full-ranking "
        "HR@K / NDCG@K / MRR.",
    )
    _add_data_flags(parser.add_argument_group("data"))
    _add_run_flags(parser.add_argument_group("run"))
    _add_config_flags(parser.add_argument_group("model and training (override the preset)"))
    return parser


def _add_data_flags(data: Any) -> None:
    data.add_argument(
        "--data",
        default=None,
        help="'synthetic' (the embedded default when omitted), a MovieLens name to download "
        "(movielens-100k, movielens-1m, movielens-20m, movielens-25m, "
        "movielens-latest-small, ...), "
        "a MovieLens folder, or an interaction file with a header: CSV/TSV, RecBole .inter "
        "or Parquet (.parquet, needs pyarrow)",
    )
    data.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="download cache (default $ATTNREC_CACHE or ~/.cache/attnrec_tf)",
    )
    data.add_argument("--user-col", default="user_id", help="user column of a generic file")
    data.add_argument("--item-col", default="item_id", help="item column of a generic file")
    data.add_argument("--time-col", default="timestamp", help="time column of a generic file")
    data.add_argument(
        "--feature-cols",
        default="",
        help="comma-separated categorical item columns of a generic file",
    )
    data.add_argument(
        "--delimiter",
        default=None,
        help="field separator of a generic file (default: from extension/header)",
    )
    data.add_argument(
        "--min-rating",
        type=float,
        default=None,
        help="keep only interactions rated at least this (explicit feedback as positives, "
        "e.g. 4 for MovieLens); default: keep every row",
    )
    data.add_argument(
        "--rating-col",
        default=None,
        help="rating or weight column of a generic file, read with --min-rating (default: rating)",
    )
    data.add_argument(
        "--split",
        default="leave-one-out",
        choices=("leave-one-out", "temporal"),
        help="leave-one-out: each user's last item is the test target, the one before it the "
        "validation target; temporal: train on everything before a global time cut-off, "
        "validate and test on each user's first and second interaction after it",
    )
    data.add_argument(
        "--split-time",
        default=None,
        help="the temporal cut-off: a number in the unit of the time column, or an ISO-8601 "
        "date (UTC when no zone is given)",
    )
    data.add_argument(
        "--split-fraction",
        type=float,
        default=None,
        help="the temporal cut-off as the fraction of interactions, in time order, before it "
        "(default 0.9 when --split-time is not given)",
    )


def _add_run_flags(run: Any) -> None:
    add_output_dir(
        run,
        "where the model, report.json and exports go",
        required=False,
        default=Path("runs/latest"),
    )
    run.add_argument(
        "--preset", default="default", help=f"named hyperparameters: {', '.join(PRESETS)}"
    )
    run.add_argument(
        "--sampled-negatives",
        type=int,
        default=100,
        help="also report the sampled protocol with this many negatives (0 = off)",
    )
    run.add_argument(
        "--export",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the SavedModel, TFLite files and Android assets after training",
    )
    add_model_name(run)
    add_tflite_kinds(
        run,
        missing="without LiteRT installed a run skips them with a note, or fails if this "
        "flag is given",
    )
    run.add_argument(
        "--eval-users",
        type=int,
        default=0,
        help="validate and test on this many users drawn at random (0 = every user); for "
        "catalogs too large to rank fully for every user. split.npz then holds those users",
    )
    run.add_argument(
        "--validation-users",
        type=int,
        default=None,
        help="validate after every epoch on a fixed random sample of this many evaluated users "
        "(0 = all); default: all while users x items <= 2.5e8 scores, else at least 5,000 "
        "users within that. With a sample the best model is validated on every user at the end",
    )
    run.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the training state left in --output-dir by a killed or interrupted "
        "run of the same command (--no-resume starts afresh)",
    )
    run.add_argument(
        "--backup-every-steps",
        type=int,
        default=0,
        help="also save the training state every N batches (0 = at epoch ends only)",
    )
    run.add_argument(
        "--distribute",
        default="auto",
        choices=("auto", "none", "mirrored", "multi-worker"),
        help="tf.distribute strategy: auto = MultiWorkerMirroredStrategy when TF_CONFIG names "
        "several workers, MirroredStrategy with several GPUs, else none",
    )
    run.add_argument(
        "--verbose",
        type=int,
        default=2,
        choices=(0, 1, 2),
        help="Keras fit verbosity (1 = progress bar)",
    )


def _add_config_flags(model: Any) -> None:
    """One flag per `Config` field, default None (= the preset's value)."""
    for field in dataclasses.fields(Config):
        if field.name == "extra":
            continue
        kwargs: dict[str, Any] = {"default": None, "help": f"(preset default: {field.default})"}
        if field.type in ("bool", bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}.get(str(field.type), str)
        model.add_argument(flag(field.name), **kwargs)


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset with every flag the user gave applied on top."""
    base = preset(args.preset)
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if f.name != "extra" and getattr(args, f.name, None) is not None
    }
    return base.replace(**overrides)


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The `RunOptions` of parsed flags."""
    names = {f.name for f in dataclasses.fields(RunOptions)} - {
        "feature_cols",
        "tflite",
        "tflite_given",
    }
    return RunOptions(
        **{name: getattr(args, name) for name in names if hasattr(args, name)},
        feature_cols=tuple(c for c in args.feature_cols.split(",") if c),
        tflite=tuple(kind for kind in args.tflite.split(",") if kind),
        tflite_given=given(args, "tflite"),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`)."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _checked_run(args))


def _checked_run(args: argparse.Namespace) -> None:
    """Checks the flags, then runs."""
    config = config_from_args(args)
    options = options_from_args(args)
    options.check()
    run(config, options)


@dataclass
class PreparedData:
    """The data of a run, read and split (`prepare_data`)."""

    loaded: Any
    vocabulary: Any
    stats: Any
    sequences: Any
    split: Any
    evaluation: Any
    features: Any
    feature_names: list[str]
    seconds: float


def run(config: Config, options: RunOptions) -> dict[str, Any]:
    """Trains, evaluates and (optionally) exports; returns the report.

    Steps: choose the strategy -> read and split the data -> write the run's inputs (chief)
    -> fit and evaluate -> the report -> export -> the end of the run (table, plots).
    """
    quiet_tensorflow()
    from attnrec_tf.run_dir import RunDir
    from attnrec_tf.training import distribute
    from attnrec_tf.training.fit import fit_and_evaluate

    # Before TensorFlow runs any op (MultiWorkerMirroredStrategy requires it).
    distribution = distribute.choose(options.distribute)
    output = RunDir(Path(options.output_dir))
    output.root.mkdir(parents=True, exist_ok=True)
    data = prepare_data(config, options)
    config, loss_reason = config.resolved(data.vocabulary.num_items)
    print(f"loss: {config.loss} ({loss_reason})", flush=True)
    if distribution.is_chief:
        _write_inputs(output, data)
    prepare_peak_mb = _peak_rss_mb()
    _start_peak_rss()  # the training phase's own peak from here
    result = fit_and_evaluate(
        config,
        data.split,
        data.vocabulary.size,
        data.features if config.item_features else None,
        output,
        sampled_negatives=options.sampled_negatives,
        eval_split=data.evaluation,
        verbose=options.verbose,
        resume=options.resume,
        backup_every_steps=options.backup_every_steps,
        distribution=distribution,
        catch_sigint=True,
        validation_users=options.validation_users,
    )
    if not distribution.is_chief:  # the chief evaluates and writes the run folder
        print(f"worker {distribution.worker_index}: training done", flush=True)
        distribute.barrier(distribution)  # exit together with the chief
        return {"training": result.training}
    report = training_report(config, options, data, result, output, prepare_peak_mb)
    report["loss_choice"] = {"used": config.loss, "reason": loss_reason}
    _extend_tensorboard(output, result, report)
    # The export reads model.keras; the trained model, its optimizer state and the data would
    # otherwise stay resident beside the exported copy.
    del data, result
    gc.collect()
    return _finish(config, options, output, report, distribution)


def prepare_data(config: Config, options: RunOptions) -> PreparedData:
    """Reads the interactions, builds the vocabulary and sequences, splits them.

    The split is leave-one-out or temporal (`options.split`; `data.temporal.make_split`).
    """
    from attnrec_tf.data import sources, temporal
    from attnrec_tf.data.item_features import item_feature_matrix
    from attnrec_tf.data.sequences import build_sequences

    started = time.perf_counter()
    loaded = sources.load(
        options.data,
        cache_dir=options.cache_dir,
        user_col=options.user_col,
        item_col=options.item_col,
        time_col=options.time_col,
        feature_cols=options.feature_cols,
        delimiter=options.delimiter,
        synthetic_seed=config.seed,
        rating_col=options.rating_col,
        min_rating=options.min_rating,
    )
    vocabulary, sequences, stats = build_sequences(
        loaded.interactions,
        min_user_interactions=config.min_user_interactions,
        min_item_interactions=config.min_item_interactions,
    )
    split = temporal.make_split(
        loaded.interactions,
        vocabulary,
        sequences,
        split=options.split,
        split_time=options.split_time,
        split_fraction=options.split_fraction,
    )
    evaluation = (
        split.sample_users(options.eval_users, seed=config.seed) if options.eval_users else split
    )
    features, feature_names = item_feature_matrix(vocabulary, loaded.items)
    data = PreparedData(
        loaded, vocabulary, stats, sequences, split, evaluation, features, feature_names,
        seconds=time.perf_counter() - started,
    )  # fmt: skip
    below = loaded.row_filters.get("rows_below_min_rating")
    rated = "" if below is None else f", {below} rows rated below --min-rating"
    print(
        f"data: {loaded.name} from {loaded.source}: {stats.users_kept} users, "
        f"{vocabulary.num_items} items, {stats.interactions_kept} interactions "
        f"({stats.users_dropped_too_few} users dropped for too few interactions{rated}); "
        f"{len(feature_names)} item feature values; prepared in {data.seconds:.1f}s",
        flush=True,
    )
    if (line := temporal.describe(split)) is not None:
        print(line, flush=True)
    return data


def _write_inputs(output: Any, data: PreparedData) -> None:
    """vocabulary.json, split.npz, histories.npz and items.json of the run folder."""
    from attnrec_tf.run_dir import item_table, save_histories, save_items, save_split

    data.vocabulary.save(output.vocabulary)
    save_split(output.split, data.evaluation)
    save_histories(output.histories, data.sequences.users, data.sequences.sequences)
    save_items(output.items, item_table(data.vocabulary, data.loaded.items, data.split.train))


def training_report(
    config: Config,
    options: RunOptions,
    data: PreparedData,
    result: Any,
    output: Any,
    prepare_peak_mb: float,
) -> dict[str, Any]:
    """report.json of a trained run (the export adds its entries later)."""
    from attnrec_tf.data.temporal import protocol_entry
    from attnrec_tf.report import machine

    test = result.test or {}
    report: dict[str, Any] = {
        "dataset": _dataset_entry(config, data),
        "config": {**config.to_dict(), "preset": options.preset},
        "prepare_seconds": data.seconds,
        "peak_rss_mb": {"prepare": prepare_peak_mb, "train": _peak_rss_mb()},
        "train_seconds": result.train_seconds,
        "validation_seconds": result.validation_seconds,
        "examples_per_second": result.examples_per_second,
        "examples_per_epoch": result.examples_per_epoch,
        "steps_per_epoch": result.steps_per_epoch,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "history": result.history,
        "validation": {"keras": result.best_validation, "users": result.validation_users},
        "metrics": test["metrics"],
        "training": result.training,
    }
    if "sampled_protocol" in test:
        report["sampled_protocol"] = test["sampled_protocol"]
    report["protocol"] = {
        **PROTOCOL,
        "split": protocol_entry(data.split),
        "exclude_history": config.exclude_history,
        "eval_users": len(data.evaluation.users),
    }
    report["machine"] = machine()
    report["artifacts"] = {"keras": {"path": str(output.model)}}
    return report


def _dataset_entry(config: Config, data: PreparedData) -> dict[str, Any]:
    from attnrec_tf.data import sources
    from attnrec_tf.data.fingerprint import data_sha256

    loaded, stats = data.loaded, data.stats
    synthetic = {"seed": config.seed} if loaded.name == sources.SYNTHETIC else None
    return {
        "name": loaded.name,
        "source": str(loaded.source),
        "num_users": int(stats.users_kept),
        "num_items": int(data.vocabulary.num_items),
        "num_interactions": int(stats.interactions_kept),
        "raw_interactions": int(stats.interactions_in),
        "users_dropped_too_few_interactions": int(stats.users_dropped_too_few),
        "items_dropped": int(stats.items_in - stats.items_kept),
        "item_features": data.feature_names if config.item_features else [],
        **loaded.row_filters,
        **data_sha256(loaded, synthetic_params=synthetic),
    }


def _extend_tensorboard(output: Any, result: Any, report: dict[str, Any]) -> None:
    """The test metrics beside the validation curves, and the items in the projector."""
    from attnrec_tf.run_dir import load_items
    from attnrec_tf.training.tensorboard import log_test_metrics, write_projector

    epoch = result.best_epoch or len(result.history)
    log_test_metrics(output.logs, report["metrics"]["keras"], epoch=epoch)
    write_projector(output.logs, result.model, load_items(output.items))


def _finish(
    config: Config, options: RunOptions, output: Any, report: dict[str, Any], distribution: Any
) -> dict[str, Any]:
    """Saves the report, exports, ends the run (table, plots); raises a deferred error."""
    from attnrec_tf.plots import write_plots
    from attnrec_tf.report import format_table
    from attnrec_tf.report import save as save_report
    from attnrec_tf.training import distribute
    from attnrec_tf.training.fit import training_state_path

    save_report(output.report, report)
    missing = None
    if options.export:
        report, missing = _export(output, config, options, report)
    # The run is complete: the next run in this folder starts afresh.
    training_state_path(output).unlink(missing_ok=True)
    distribute.barrier(distribution)
    print()
    print(format_table(report["metrics"]))
    print(
        f"\ntrained in {report['train_seconds']:.1f}s ({report['epochs_run']} epochs, "
        f"{report['examples_per_second']:.0f} examples/s); report: {output.report}"
    )
    write_plots(output, report)  # PNGs when matplotlib is installed, else a one-line note
    if missing is not None:  # --tflite was given: the run is kept, and the exit status says so
        raise missing
    return report


def _export(
    output: Any, config: Config, options: RunOptions, report: dict[str, Any]
) -> tuple[dict[str, Any], DependencyError | None]:
    """Exports the run (SavedModel, TFLite, Android assets) and adds the timings to the report.

    Returns:
        The saved report, and the error to raise once the run is complete when the TFLite
        kinds were given explicitly but LiteRT is missing (None otherwise; a default run skips
        with a note).
    """
    from attnrec_tf.export.export_all import export_all
    from attnrec_tf.report import load as load_report
    from attnrec_tf.report import save as save_report

    started = time.perf_counter()
    missing = None
    train_peak = max(report["peak_rss_mb"]["train"], _peak_rss_mb())  # training ends here
    _start_peak_rss()  # the export phase's own peak from here
    try:
        report = export_all(
            output,
            model_name=options.model_name,
            top_k=config.top_k,
            report=report,
            tflite_kinds=list(options.tflite),
            litert_optional=not options.tflite_given,
        )
    except DependencyError as error:  # the SavedModel and report are written
        missing, report = error, load_report(output.report)
    report["export_seconds"] = time.perf_counter() - started
    report["peak_rss_mb"].update(train=train_peak, export=_peak_rss_mb())
    save_report(output.report, report)
    return load_report(output.report), missing


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MB, since the last `_start_peak_rss` (if any)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_peak_rss() -> None:
    """Starts a new resident-memory peak, so `_peak_rss_mb` measures the next phase alone.

    Linux resets the high-water mark when `5` is written to `/proc/self/clear_refs`; where that
    file cannot be written, nothing changes and the peaks stay cumulative.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass


class _TrainModule(types.ModuleType):
    """`attnrec_tf.train` is both this module and the Python API's `train` function.

    `import attnrec_tf.train` binds the name `train` of the package to this module, so the
    function `attnrec_tf.train(...)` (`api.train`) is this module called.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from attnrec_tf.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _TrainModule

if __name__ == "__main__":
    sys.exit(main())

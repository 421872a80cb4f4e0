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
import sys
import time
from pathlib import Path
from typing import Any

from attnrec_tf.cli import add_given_flag, add_model_name, given, quiet_tensorflow, run_command
from attnrec_tf.config import PRESETS, Config, flag, preset
from attnrec_tf.errors import ConfigError, DependencyError

PROTOCOL = {"split": "leave-one-out", "ranking": "full"}


def build_parser() -> argparse.ArgumentParser:
    """The CLI: data and output flags, then one flag per `Config` field."""
    parser = argparse.ArgumentParser(
        prog="python -m attnrec_tf.train",
        description="Train an attention-based next-item recommender and report full-ranking "
        "HR@K / NDCG@K / MRR.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default=None,
        help="'synthetic' (the embedded default when omitted), a MovieLens name to download "
        "(movielens-100k, movielens-1m, movielens-20m, movielens-25m, "
        "movielens-latest-small, ...), "
        "a MovieLens folder, or a CSV/TSV interaction file with a header",
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
    run = parser.add_argument_group("run")
    run.add_argument(
        "--output-dir",
        type=Path,
        default=Path("runs/latest"),
        help="where the model, report.json and exports go",
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
    add_given_flag(
        run,
        "--tflite",
        default="float32,float16,dynamic_int8,int8",
        help="comma-separated TFLite kinds to export (float32, float16, dynamic_int8, int8); "
        "without LiteRT installed a run skips them with a note, or fails if this flag is given",
    )
    run.add_argument(
        "--eval-users",
        type=int,
        default=0,
        help="validate and test on this many users drawn at random (0 = every user); for "
        "catalogs too large to rank fully for every user. split.npz then holds those users",
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
    model = parser.add_argument_group("model and training (override the preset)")
    for field in dataclasses.fields(Config):
        if field.name == "extra":
            continue
        kwargs: dict[str, Any] = {"default": None, "help": f"(preset default: {field.default})"}
        if field.type in ("bool", bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}.get(str(field.type), str)
        model.add_argument(flag(field.name), **kwargs)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset with every flag the user gave applied on top."""
    base = preset(args.preset)
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if f.name != "extra" and getattr(args, f.name, None) is not None
    }
    return base.replace(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`)."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _checked_run(args))


def _checked_run(args: argparse.Namespace) -> None:
    """Checks the flags that `Config` does not own, then runs."""
    config = config_from_args(args)
    if args.export:
        from attnrec_tf.export.tflite import parse_kinds

        args.tflite = ",".join(parse_kinds(args.tflite))
    for name in ("eval_users", "sampled_negatives", "backup_every_steps"):
        if getattr(args, name) < 0:
            raise ConfigError(f"{flag(name)} must be >= 0, got {getattr(args, name)}")
    run(config, args)


def run(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Trains, evaluates and (optionally) exports; returns the report."""
    quiet_tensorflow()
    from attnrec_tf.data import sources
    from attnrec_tf.data.fingerprint import data_sha256
    from attnrec_tf.data.item_features import item_feature_matrix
    from attnrec_tf.data.sequences import build_sequences, leave_one_out
    from attnrec_tf.report import format_table, machine
    from attnrec_tf.report import save as save_report
    from attnrec_tf.run_dir import RunDir, item_table, save_items, save_split
    from attnrec_tf.training import distribute
    from attnrec_tf.training.fit import fit_and_evaluate, training_state_path

    # Before TensorFlow runs any op (MultiWorkerMirroredStrategy requires it).
    distribution = distribute.choose(getattr(args, "distribute", "auto"))
    output = RunDir(Path(args.output_dir))
    output.root.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    feature_cols = tuple(c for c in args.feature_cols.split(",") if c)
    loaded = sources.load(
        args.data,
        cache_dir=args.cache_dir,
        user_col=args.user_col,
        item_col=args.item_col,
        time_col=args.time_col,
        feature_cols=feature_cols,
        delimiter=args.delimiter,
        synthetic_seed=config.seed,
    )
    vocabulary, sequences, stats = build_sequences(
        loaded.interactions,
        min_user_interactions=config.min_user_interactions,
        min_item_interactions=config.min_item_interactions,
    )
    split = leave_one_out(sequences)
    evaluation = split.sample_users(args.eval_users, seed=config.seed) if args.eval_users else split
    features, feature_names = item_feature_matrix(vocabulary, loaded.items)
    prepare_seconds = time.perf_counter() - started
    print(
        f"data: {loaded.name} from {loaded.source}: {len(split.users)} users, "
        f"{vocabulary.num_items} items, {stats.interactions_kept} interactions "
        f"({stats.users_dropped_too_few} users dropped for too few interactions); "
        f"{len(feature_names)} item feature values; prepared in {prepare_seconds:.1f}s",
        flush=True,
    )

    if distribution.is_chief:
        vocabulary.save(output.vocabulary)
        save_split(output.split, evaluation)
        save_items(output.items, item_table(vocabulary, loaded.items, split.train))

    prepare_peak_mb = _peak_rss_mb()
    result = fit_and_evaluate(
        config,
        split,
        vocabulary.size,
        features if config.item_features else None,
        output,
        sampled_negatives=args.sampled_negatives,
        eval_split=evaluation,
        verbose=args.verbose,
        resume=getattr(args, "resume", True),
        backup_every_steps=getattr(args, "backup_every_steps", 0),
        distribution=distribution,
        catch_sigint=True,
    )
    if not distribution.is_chief:  # the chief evaluates and writes the run folder
        print(f"worker {distribution.worker_index}: training done", flush=True)
        distribute.barrier(distribution)  # exit together with the chief
        return result
    synthetic = {"seed": config.seed} if loaded.name == sources.SYNTHETIC else None
    report: dict[str, Any] = {
        "dataset": {
            "name": loaded.name,
            "source": str(loaded.source),
            "num_users": int(len(split.users)),
            "num_items": int(vocabulary.num_items),
            "num_interactions": int(stats.interactions_kept),
            "raw_interactions": int(stats.interactions_in),
            "users_dropped_too_few_interactions": int(stats.users_dropped_too_few),
            "items_dropped": int(stats.items_in - stats.items_kept),
            "item_features": feature_names if config.item_features else [],
            **data_sha256(loaded, synthetic_params=synthetic),
        },
        "config": {**config.to_dict(), "preset": args.preset},
        "prepare_seconds": prepare_seconds,
        "peak_rss_mb": {"prepare": prepare_peak_mb, "train": _peak_rss_mb()},
        **result,
        "protocol": {
            **PROTOCOL,
            "exclude_history": config.exclude_history,
            "eval_users": len(evaluation.users),
        },
        "machine": machine(),
        "artifacts": {"keras": {"path": str(output.model)}},
    }
    save_report(output.report, report)

    missing = None
    if args.export:
        report, missing = _export(output, config, args, report)
    # The run is complete: the next run in this folder starts afresh.
    training_state_path(output).unlink(missing_ok=True)
    distribute.barrier(distribution)

    print()
    print(format_table(report["metrics"]))
    print(
        f"\ntrained in {report['train_seconds']:.1f}s ({report['epochs_run']} epochs, "
        f"{report['examples_per_second']:.0f} examples/s); report: {output.report}"
    )
    from attnrec_tf.plots import write_plots

    write_plots(output, report)  # PNGs when matplotlib is installed, else a one-line note
    if missing is not None:  # --tflite was given: the run is kept, and the exit status says so
        raise missing
    return report


def _export(
    output: Any, config: Config, args: argparse.Namespace, report: dict[str, Any]
) -> tuple[dict[str, Any], DependencyError | None]:
    """Exports the run (SavedModel, TFLite, Android assets) and adds the timings to the report.

    Returns:
        The saved report, and the error to raise once the run is complete when `--tflite` was
        given but LiteRT is missing (None otherwise; a default run skips with a note).
    """
    from attnrec_tf.export.export_all import export_all
    from attnrec_tf.report import load as load_report
    from attnrec_tf.report import save as save_report

    started = time.perf_counter()
    missing = None
    try:
        report = export_all(
            output,
            model_name=args.model_name,
            top_k=config.top_k,
            report=report,
            tflite_kinds=[kind for kind in args.tflite.split(",") if kind],
            litert_optional=not given(args, "tflite"),
        )
    except DependencyError as error:  # the SavedModel and report are written
        missing, report = error, load_report(output.report)
    report["export_seconds"] = time.perf_counter() - started
    report["peak_rss_mb"]["export"] = _peak_rss_mb()
    save_report(output.report, report)
    return load_report(output.report), missing


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())

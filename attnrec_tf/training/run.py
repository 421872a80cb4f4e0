"""One training run: data -> fit -> evaluate -> report -> export, for the CLI and the Python API.

`run(config, options)` is what `python -m attnrec_tf.train` and `attnrec_tf.fit` both call
once their options are resolved (`run_options.resolve`):

    read and split the data (`prepare_data`) -> write the run's inputs -> `fit_and_evaluate`
    -> report.json (`training_report`) -> export (SavedModel, TFLite, Android assets)
    -> the printed table and the plots.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from attnrec_tf.cli import quiet_tensorflow
from attnrec_tf.config import Config
from attnrec_tf.errors import DependencyError
from attnrec_tf.peak_memory import peak_rss_mb, reset_peak_rss
from attnrec_tf.run_options import RunOptions

if TYPE_CHECKING:
    from attnrec_tf.data.loaded import LoadedData
    from attnrec_tf.data.sequences import FilterStats, LeaveOneOutSplit, UserSequences
    from attnrec_tf.data.vocabulary import Vocabulary

PROTOCOL = {"split": "leave-one-out", "ranking": "full"}


PREPARED_ITEMS = "items.json"
"""The optional item records of a prepared folder (`data.shards`; the run folder's form)."""
STREAM_FROM_INTERACTIONS = 10_000_000
"""A prepared folder with more training interactions than this streams (unless `--no-stream`);
a smaller one is read into memory, as the log itself would be (about 2.4 GB at 10^7)."""
EXEC_EXPORT_FROM_ITEMS = 100_000
"""Above this many items the command line exports in a fresh process image (`_exec_export`).

Why: TensorFlow's default CPU allocator (oneDNN's, a BFC pool) keeps every region it grew to
during training and never gives one back, about twice the largest working set of a step (2 GB
at 10^6 training interactions and 248,887 items, 2.2 GB at 10^7 and 779,231 items). The
TFLite converter allocates outside that pool, on top of it: the export inside the training
process peaked at 4.8 GB at 10^7, the same export in a process of its own at 3.0 GB. Training
on the system allocator instead (which returns freed memory) made the 10^7 epoch 1.27x
slower. Below this size the pool is small and the in-process export saves the second start
(about 10 s)."""
PREPARED_EVAL_USERS = 100_000
"""The evaluated users of a run on a prepared folder without `--eval-users`: a seeded sample of
this many (all when there are fewer)."""


@dataclass
class PreparedData:
    """The data of a run, read and split (`prepare_data`).

    From a prepared folder (`folder` set; `prepare_from_folder`) there is no log in memory:
    `loaded`, `stats` and `sequences` are None, `split` is the evaluated sample (the same
    object as `evaluation`), and training streams the folder's shards.
    """

    loaded: LoadedData | None
    vocabulary: Vocabulary
    stats: FilterStats | None
    sequences: UserSequences | None
    split: LeaveOneOutSplit
    evaluation: LeaveOneOutSplit  # `split`, or a sample of its users (`--eval-users`)
    features: np.ndarray  # (V, F) multi-hot item features
    feature_names: list[str]
    seconds: float
    folder: Path | None = None  # the prepared folder trained from
    manifest: dict[str, Any] | None = None  # its manifest
    stream: bool = True  # from `folder`: stream its shards (else it was read into memory)


def run(config: Config, options: RunOptions, *, may_exec_export: bool = False) -> dict[str, Any]:
    """Trains, evaluates and (optionally) exports; returns the report.

    Steps: choose the strategy -> read and split the data -> write the run's inputs (chief)
    -> fit and evaluate -> the report -> export -> the end of the run (table, plots).

    Args:
        config: The model and training settings.
        options: The data and run options.
        may_exec_export: The command line's choice: a one-worker run of more than
            `EXEC_EXPORT_FROM_ITEMS` items exports in a fresh process image (`_exec_export`:
            this process is replaced and the call does not return). False (the Python API):
            the export runs in this process.
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
    prepare_peak_mb = peak_rss_mb()
    reset_peak_rss()  # the training phase's own peak from here
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
        prepared=data.folder if data.stream else None,
    )
    if not distribution.is_chief:  # the chief evaluates and writes the run folder
        print(f"worker {distribution.worker_index}: training done", flush=True)
        distribute.barrier(distribution)  # exit together with the chief
        return {"training": result.training}
    report = training_report(config, options, data, result, output, prepare_peak_mb)
    report["loss_choice"] = {"used": config.loss, "reason": loss_reason}
    _extend_tensorboard(output, result, report)
    exec_export = (
        may_exec_export
        and os.name == "posix"  # elsewhere exec starts another process and this one exits
        and options.export
        and distribution.num_workers == 1
        and data.vocabulary.num_items > EXEC_EXPORT_FROM_ITEMS
    )
    # The export reads model.keras; the trained model, its optimizer state and the data would
    # otherwise stay resident beside the exported copy.
    del data, result
    gc.collect()
    return _finish(config, options, output, report, distribution, exec_export=exec_export)


def prepare_data(config: Config, options: RunOptions) -> PreparedData:
    """Reads the interactions, builds the vocabulary and sequences, splits them.

    The split is leave-one-out or temporal (`options.split`; `data.temporal.make_split`).
    A prepared folder (`data.shards.is_prepared`) is not read whole: `prepare_from_folder`.
    """
    from attnrec_tf.data import shards, sources, temporal

    if options.data is not None and shards.is_prepared(options.data):
        folder = Path(options.data)
        manifest = shards.read_manifest(folder)
        if streams(manifest, options.stream):
            return prepare_from_folder(folder, manifest, config, options)
        return read_folder(folder, manifest, config, options)
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


def streams(manifest: dict[str, Any], stream: bool | None) -> bool:
    """Whether a run on a prepared folder streams it: `--stream` / `--no-stream`, else by size."""
    if stream is not None:
        return stream
    return int(manifest["train_items"]) > STREAM_FROM_INTERACTIONS


def read_folder(
    folder: Path, manifest: dict[str, Any], config: Config, options: RunOptions
) -> PreparedData:
    """A prepared folder read whole into memory: the data the in-memory path builds from the log.

    Every user's record (`shards.read_split`), the filter statistics of the manifest, the
    folder's item features; training then runs on the in-memory windows (`--no-stream`), so a
    run on the folder trains and scores exactly as a run on the log it was prepared from.
    histories.npz holds the evaluated users' training parts and targets (a folder keeps no
    interaction after a user's test target, nor the sequences of users trained on only).
    """
    from attnrec_tf.data import shards, temporal
    from attnrec_tf.data.item_features import item_feature_matrix
    from attnrec_tf.data.loaded import ItemMetadata
    from attnrec_tf.data.sequences import FilterStats, UserSequences

    started = time.perf_counter()
    vocabulary = shards.read_vocabulary(folder)
    split = shards.read_split(folder)
    evaluation = (
        split.sample_users(options.eval_users, seed=config.seed) if options.eval_users else split
    )
    tests = zip(split.histories("test"), split.test_targets, strict=True)
    whole = [np.append(history, target) for history, target in tests]  # the evaluated users'
    stored = shards.read_item_features(folder)
    features, names = stored or item_feature_matrix(vocabulary, ItemMetadata())
    data = PreparedData(
        None, vocabulary, FilterStats(**manifest["filters"]), UserSequences(split.users, whole),
        split, evaluation, features, names, seconds=time.perf_counter() - started,
        folder=folder, manifest=manifest, stream=False,
    )  # fmt: skip
    print(
        f"data: prepared folder {folder} read into memory: {len(split.train)} users, "
        f"{vocabulary.num_items} items, {manifest['train_items']} training items; "
        f"{len(names)} item feature values; read in {data.seconds:.1f}s",
        flush=True,
    )
    if (line := temporal.describe(split)) is not None:
        print(line, flush=True)
    return data


def prepare_from_folder(
    folder: Path, manifest: dict[str, Any], config: Config, options: RunOptions
) -> PreparedData:
    """The evaluated users of a prepared folder, its vocabulary and manifest (not the log).

    The evaluated users are a seeded sample of `--eval-users` (default `PREPARED_EVAL_USERS`)
    drawn as `LeaveOneOutSplit.sample_users` draws it (the same users as the in-memory path
    with the same seed and count), read with `shards.read_split(folder, evaluated=...)`:
    memory is the sample. The item features are the folder's (`prepare` keeps the log's).
    """
    from attnrec_tf.data import shards, temporal
    from attnrec_tf.data.item_features import item_feature_matrix
    from attnrec_tf.data.loaded import ItemMetadata

    started = time.perf_counter()
    vocabulary = shards.read_vocabulary(folder)
    evaluated = int(manifest["num_evaluated"])
    wanted = min(options.eval_users or PREPARED_EVAL_USERS, evaluated)
    chosen = np.arange(evaluated)
    if wanted < evaluated:
        rng = np.random.default_rng(config.seed)
        chosen = np.sort(rng.choice(evaluated, size=wanted, replace=False))
    sample = shards.read_split(folder, evaluated=chosen)
    stored = shards.read_item_features(folder)
    features, feature_names = stored or item_feature_matrix(vocabulary, ItemMetadata())
    data = PreparedData(
        None, vocabulary, None, None, sample, sample, features, feature_names,
        seconds=time.perf_counter() - started, folder=folder, manifest=manifest,
    )  # fmt: skip
    print(
        f"data: prepared folder {folder}: {manifest['num_users']} users, "
        f"{vocabulary.num_items} items, {manifest['train_items']} training items in "
        f"{len(manifest['shards'])} shards; evaluating {len(sample.users)} of {evaluated} "
        f"users; read in {data.seconds:.1f}s",
        flush=True,
    )
    if (line := temporal.describe(sample)) is not None:
        print(line, flush=True)
    return data


def _write_inputs(output: Any, data: PreparedData) -> None:
    """vocabulary.json, split.npz, histories.npz and items.json of the run folder.

    From a prepared folder: the evaluated sample's split and whole histories (train part,
    validation and test targets), and the folder's items.json when `prepare` wrote one, else
    items without titles, counted in the training parts.
    """
    from attnrec_tf.data import shards
    from attnrec_tf.data.loaded import ItemMetadata
    from attnrec_tf.run_dir import item_table, load_items, save_histories, save_items, save_split

    data.vocabulary.save(output.vocabulary)
    save_split(output.split, data.evaluation)
    if data.sequences is not None:  # the log, or a prepared folder read into memory
        save_histories(output.histories, data.sequences.users, data.sequences.sequences)
    if data.folder is None:
        assert data.loaded is not None
        items = item_table(data.vocabulary, data.loaded.items, data.split.train)
    else:
        if data.sequences is None:  # streamed: the evaluated sample's histories only
            sample = data.evaluation
            tests = zip(sample.histories("test"), sample.test_targets, strict=True)
            whole = [np.append(history, target) for history, target in tests]
            save_histories(output.histories, sample.users, whole)
        written = data.folder / PREPARED_ITEMS
        if written.is_file():  # prepare wrote the run folder's records (titles, genres, counts)
            items = load_items(written)
        else:
            items = item_table(data.vocabulary, ItemMetadata(), [])
            for record, count in zip(items, shards.read_item_counts(data.folder)[1:], strict=True):
                record["count"] = int(count)
    save_items(output.items, items)


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
        "peak_rss_mb": {"prepare": prepare_peak_mb, "train": peak_rss_mb()},
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

    if data.manifest is not None:
        return _prepared_dataset_entry(data, config)
    loaded, stats = data.loaded, data.stats
    assert loaded is not None and stats is not None
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


def _prepared_dataset_entry(data: PreparedData, config: Config) -> dict[str, Any]:
    """report.json's `dataset` of a run on a prepared folder, from its manifest.

    `num_interactions` is the manifest's `filters.interactions_kept` (what `prepare` kept),
    else the interactions stored in the folder (every training item plus the evaluated users'
    validation and test targets). `manifest` is the folder's manifest without its per-shard
    list (`num_shards` says how many).
    """
    manifest = data.manifest or {}
    named = manifest.get("dataset")
    dataset = named if isinstance(named, dict) else {"name": named}
    stored = int(manifest["train_items"]) + 2 * int(manifest["num_evaluated"])
    filters = manifest.get("filters") or {}
    entry: dict[str, Any] = {
        "name": dataset.get("name") or "prepared",
        "source": str(data.folder),
        "num_users": int(manifest["num_users"]),
        "num_items": int(data.vocabulary.num_items),
        "num_interactions": int(filters.get("interactions_kept", stored)),
        "num_evaluated": int(manifest["num_evaluated"]),
        "num_shards": len(manifest["shards"]),
        "item_features": data.feature_names if config.item_features else [],
        "manifest": {key: value for key, value in manifest.items() if key != "shards"},
    }
    if filters:  # what `prepare` filtered, as the in-memory entry says it
        entry["raw_interactions"] = int(filters.get("interactions_in", 0))
        entry["users_dropped_too_few_interactions"] = int(filters.get("users_dropped_too_few", 0))
        entry["items_dropped"] = int(filters.get("items_in", 0)) - int(filters.get("items_kept", 0))
    for key in ("sha256", "sha256_of"):  # the log's hash, as prepare computed it
        if key in dataset:
            entry[key] = dataset[key]
    return entry


def _extend_tensorboard(output: Any, result: Any, report: dict[str, Any]) -> None:
    """The test metrics beside the validation curves, and the items in the projector."""
    from attnrec_tf.run_dir import load_items
    from attnrec_tf.training.tensorboard import log_test_metrics, write_projector

    epoch = result.best_epoch or len(result.history)
    log_test_metrics(output.logs, report["metrics"]["keras"], epoch=epoch)
    write_projector(output.logs, result.model, load_items(output.items))


def _finish(
    config: Config,
    options: RunOptions,
    output: Any,
    report: dict[str, Any],
    distribution: Any,
    *,
    exec_export: bool = False,
) -> dict[str, Any]:
    """Saves the report, exports, ends the run (table, plots); raises a deferred error.

    With `exec_export`, the plots come first and the export replaces this process
    (`_exec_export`); the exported process prints the table.
    """
    from attnrec_tf.plots import write_plots
    from attnrec_tf.report import format_table
    from attnrec_tf.report import save as save_report
    from attnrec_tf.training import distribute
    from attnrec_tf.training.fit import training_state_path

    save_report(output.report, report)
    if exec_export:
        training_state_path(output).unlink(missing_ok=True)  # training is complete
        _print_trained(report, output)
        write_plots(output, report)
        _exec_export(output, config, options)
    missing = None
    if options.export:
        report, missing = _export(output, config, options, report)
    # The run is complete: the next run in this folder starts afresh.
    training_state_path(output).unlink(missing_ok=True)
    distribute.barrier(distribution)
    print()
    print(format_table(report["metrics"]))
    print()
    _print_trained(report, output)
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
    train_peak = max(report["peak_rss_mb"]["train"], peak_rss_mb())  # training ends here
    reset_peak_rss()  # the export phase's own peak from here
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
    report["peak_rss_mb"].update(train=train_peak, export=peak_rss_mb())
    save_report(output.report, report)
    return load_report(output.report), missing


def _print_trained(report: dict[str, Any], output: Any) -> None:
    """The run's last line: its training time and speed, and where the report is."""
    print(
        f"trained in {report['train_seconds']:.1f}s ({report['epochs_run']} epochs, "
        f"{report['examples_per_second']:.0f} examples/s); report: {output.report}",
        flush=True,
    )


def _exec_export(output: Any, config: Config, options: RunOptions) -> NoReturn:
    """Replaces this process by `python -m attnrec_tf.export` of the run (same process id).

    Why (`EXEC_EXPORT_FROM_ITEMS`): the training allocator's pool is freed only with the
    process image. The export command gets the run's export settings; its exit status is the
    command's, as it would be in process: 2 when `--tflite` was given and LiteRT is missing.
    """
    command = [
        sys.executable,
        "-m",
        "attnrec_tf.export",
        "--output-dir",
        str(output.root),
        "--model-name",
        options.model_name,
        "--top-k",
        str(config.top_k),
    ]
    if options.tflite_given:  # else the export's default kinds, which are train's
        command += ["--tflite", ",".join(options.tflite)]
    print(
        f"export: in a fresh process (more than {EXEC_EXPORT_FROM_ITEMS:,} items: the training "
        "allocator's pool is freed only with this process)",
        flush=True,
    )
    sys.stderr.flush()
    os.execv(sys.executable, command)

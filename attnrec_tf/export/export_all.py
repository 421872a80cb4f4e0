"""Trained run folder -> every deployable artifact, each evaluated, all recorded in report.json.

`export_all` reads `model.keras`, `vocabulary.json`, `items.json` and `split.npz` of a run and
writes (folder layout: `run_dir.py`):

- `saved_model/<model_name>/<version>/` for TF Serving (`saved_model.py`), evaluated through
  its `rerank` signature with every item as a candidate (full ranking, as `metrics.keras`);
- `tflite/<model_name>_<kind>.tflite` for each kind (`tflite.py`), evaluated in LiteRT
  (`litert.py`, one thread, one user per call) from its top-K outputs
  (`metrics.top_k_metrics`): HR@k and NDCG@k (k <= K) exact, MRR truncated at K as `mrr@K`
  (added to `metrics.keras` too); `metrics.keras_window` is the Keras model under the files'
  input rule (`keras_metrics`), which float32 TFLite matches exactly;
- `android_demo_assets/` (`android_assets.py`) with the chosen kind;
- `tflite/<model_name>_explain_float32.tflite` (`explain_tflite.py`), recorded under
  `artifacts.tflite_explain` only (no test metrics).

Without LiteRT the SavedModel is still written and evaluated and the report saved; then
`litert_optional=True` prints one line and records it under `export.skipped`, and
`litert_optional=False` raises `DependencyError`.

report.json gains `metrics.<artifact>`, `artifacts.<artifact>` (`path`, `bytes`,
`latency_ms_p50`: median of 200 single requests after 20 warm-up calls) and `export`. Each step
is a function of an immutable `ExportContext` returning an `Exported`; the report is written
last, so a failed or killed export leaves report.json as it was.

Example:

```python
from pathlib import Path
from attnrec_tf.run_dir import RunDir
report = export_all(RunDir(Path("runs/latest")), top_k=10, history_length=512)
report["artifacts"]["tflite_dynamic_int8"]["latency_ms_p50"]
```
"""

from __future__ import annotations

import gc
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf import atomic
from attnrec_tf.cli import DEFAULT_MODEL_NAME, quiet_tensorflow
from attnrec_tf.errors import DependencyError, ExportError
from attnrec_tf.export import explain_tflite, tflite
from attnrec_tf.export.context import ExportContext, Exported
from attnrec_tf.run_dir import RunDir

AGREEMENT_USERS = 50
"""Test users on which the Android file must recommend what the evaluated file recommends."""
EXPORT_ORDER = (
    "saved_model",
    "keras_window",
    *(tflite.artifact_name(k) for k in tflite.KINDS),
    explain_tflite.ARTIFACT,
)
"""The report keys this export writes to `metrics` and `artifacts`, placed last in this order."""


def export_all(
    output: RunDir,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    top_k: int = 10,
    report: dict[str, Any] | None = None,
    checkpoint: Path | None = None,
    tflite_kinds: Sequence[str] | None = None,
    history_length: int | None = None,
    verbose: bool = True,
    litert_optional: bool = False,
) -> dict[str, Any]:
    """Writes, evaluates and records the SavedModel, the TFLite files and the Android assets.

    Args:
        output: The run folder.
        model_name: TF Serving model name (folder under `saved_model/`, TFLite file prefix).
        top_k: K of the recommendation outputs.
        report: The run's report (read from report.json when None, or started empty); it is
            updated in place once every artifact is written, and returned.
        checkpoint: A `.keras` file to export instead of the run's `model.keras`.
        tflite_kinds: Subset of `tflite.KINDS` to convert. Defaults to all four. Report
            entries of kinds left out are dropped (their old files, if any, stay on disk).
        history_length: `H`, the width of every TFLite file's `history` input (the Android
            file's too): the last `H` items are excluded, the model sees the last `max_len`.
            Defaults to `max(512, max_len)`; a value below `max_len` is an `ExportError`.
        verbose: Print one line per artifact.
        litert_optional: Without LiteRT, skip the TFLite kinds and the Android assets with a
            one-line note (always printed) instead of raising.

    Returns:
        The updated report (also written to report.json atomically).

    Raises:
        ExportError / DataError: a missing or damaged input file, a failed export or check.
        DependencyError: TFLite kinds were asked for, LiteRT is not installed (or does not
            import) and `litert_optional` is False (raised after the SavedModel and report
            are written).
    """
    from attnrec_tf.export.litert import litert_missing
    from attnrec_tf.report import load as load_report

    quiet_tensorflow()
    started = time.perf_counter()
    requested = tuple(tflite.KINDS if tflite_kinds is None else tflite_kinds)
    _check_name(model_name)
    if report is None:
        report = load_report(output.report) if output.report.exists() else {}
    context = read_run(
        output,
        model_name=model_name,
        model_path=Path(checkpoint) if checkpoint is not None else output.model,
        top_k=top_k,
        history_length=history_length,
        exclude_history=bool(report.get("protocol", {}).get("exclude_history", True)),
        log=print if verbose else _silent,
    )
    keras, keras_window = keras_metrics(context, report.get("metrics", {}).get("keras"))
    saved = export_saved_model(context)
    gc.collect()  # the loaded SavedModel and its evaluation's tensors, before the conversions
    missing = litert_missing() if requested else None
    if missing is not None and litert_optional:
        print(f"export: skipped the .tflite files and Android assets: {missing}", flush=True)
    kinds = requested if missing is None else ()
    reference = {"keras": keras, "keras_window": keras_window}
    on_device, android = export_on_device(context, kinds, reference)
    on_device += (
        [explain_tflite.export_explain(context)] if explains_on_device(context, kinds) else []
    )
    window = {"keras_window": keras_window} if kinds else {}
    record = export_record(
        context, saved=saved, kinds=kinds, android=android, started=started, missing=missing
    )
    merge_report(report, keras=keras, window=window, steps=[saved, *on_device], record=record)
    atomic.write_json(output.report, report)
    if missing is not None and not litert_optional:
        raise DependencyError(f"--tflite {','.join(requested)}: {missing}")
    return report


def read_run(
    output: RunDir,
    *,
    model_name: str,
    model_path: Path,
    top_k: int,
    history_length: int | None,
    exclude_history: bool,
    log: Callable[[str], None],
) -> ExportContext:
    """Reads a run folder into the context of an export; user errors name the file at fault.

    Args:
        output: The run folder.
        model_name: See `export_all`.
        model_path: The `.keras` file to export.
        top_k: K; must be in `1..num_items`.
        history_length: `H`, or None for `tflite.resolve_history_length`'s default.
        exclude_history: The run's protocol.
        log: See `ExportContext.log`.

    Returns:
        The `ExportContext`.

    Raises:
        ExportError / DataError: A missing, damaged or mismatched file, a bad K or `H`.
    """
    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.run_dir import load_split

    vocabulary = Vocabulary.load(output.require(output.vocabulary))
    if not 0 < top_k <= vocabulary.num_items:
        raise ExportError(f"--top-k must be in 1..{vocabulary.num_items} (the catalog size)")
    split = _read(load_split, output.require(output.split))
    model = _load_model(model_path)
    if model.vocab_size != vocabulary.size:
        raise ExportError(
            f"{model_path} expects {model.vocab_size} item indices but {output.vocabulary} "
            f"has {vocabulary.size}; were they written by the same run?"
        )
    return ExportContext(
        root=output.root,
        model_name=model_name,
        model_path=model_path,
        model=model,
        vocabulary=vocabulary,
        split=split,
        items_path=output.require(output.items),
        top_k=top_k,
        history_length=tflite.resolve_history_length(model.max_len, history_length),
        exclude=exclude_history,
        histories=split.histories("test"),
        targets=split.targets("test"),
        log=log,
    )


def keras_metrics(
    context: ExportContext, existing: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`metrics.keras` with `mrr@K` added, and `metrics.keras_window`.

    `keras_window` is `evaluate.evaluate_split_windowed` of the Keras model: its own top-K
    lists made the way the TFLite graph makes them (the model sees the last `max_len` items;
    only the last `history_length`, the TFLite input, are left out), scored like the TFLite
    files. A float32 TFLite file matches it exactly; its gap to `keras` comes from items seen
    before the last `history_length`, which the on-device model may recommend again.

    Args:
        context: The export.
        existing: The report's `metrics.keras`, kept (and `mrr@K` set in it, a copy); None
            or empty to compute it with `evaluate.evaluate_split`.

    Returns:
        `(keras, keras_window)`.
    """
    from attnrec_tf import metrics
    from attnrec_tf.evaluate import evaluate_split, evaluate_split_windowed, keras_score_fn

    model, top_k = context.model, context.top_k
    score_fn = keras_score_fn(model, model.max_len)
    if existing:
        keras = dict(existing)
    else:
        keras = evaluate_split(score_fn, context.split, "test", exclude_history=context.exclude)
    windowed = evaluate_split_windowed(
        score_fn,
        context.split,
        "test",
        top_k=top_k,
        history_length=context.history_length,
        exclude_history=context.exclude,
    )
    keras[f"mrr@{top_k}"] = metrics.truncated_mrr(windowed.ranks, top_k)
    return keras, windowed.window


def export_saved_model(context: ExportContext) -> Exported:
    """Writes the next SavedModel version and the REST examples; evaluates and times it.

    Returns:
        `saved_model`: the full-ranking metrics through the `rerank` signature, and the record
        of the version written.
    """
    from attnrec_tf.evaluate import batch_size_for_vocab, evaluate_split
    from attnrec_tf.export import saved_model

    base = RunDir(context.root).saved_model_base(context.model_name)
    folder = base.parent  # saved_model/: the REST examples beside the model base
    vocabulary = context.vocabulary
    start = time.perf_counter()
    path, version = saved_model.write_saved_model(
        context.model, vocabulary, base, top_k=context.top_k
    )
    write_seconds = time.perf_counter() - start
    client = saved_model.SavedModelClient(path, vocabulary)
    values = evaluate_split(
        client.scores,
        context.split,
        "test",
        exclude_history=context.exclude,
        batch_size=batch_size_for_vocab(vocabulary.size),
    )
    first = context.histories[0]
    raw_history = client.raw_batch([first])
    serve = client.loaded.signatures["serving_default"]
    artifact = {
        "path": str(path),
        "bytes": _size(path),
        "latency_ms_p50": _latency(lambda: serve(history=raw_history)),
        "version": version,
        "base_path": str(base),
        "model_name": context.model_name,
        "signatures": list(saved_model.SIGNATURES),
        "history_dtype": vocabulary.id_dtype,
        "padding_value": saved_model.padding_value(vocabulary),
        "export_seconds": write_seconds,
    }
    request = saved_model.example_request(client, first)
    atomic.write_json(folder / "example_request.json", request)
    response = saved_model.example_response(client, request)
    atomic.write_json(folder / "example_response.json", response)
    step = Exported("saved_model", values, artifact)
    context.log(_line(step, f"v{version}"))
    return step


def explains_on_device(context: ExportContext, kinds: Sequence[str]) -> bool:
    """Whether the export writes the explain `.tflite`: with TFLite kinds, up to
    `explain_tflite.MAX_ITEMS` items (else one line says why it is left out)."""
    items = context.model.vocab_size - 1
    if kinds and items > explain_tflite.MAX_ITEMS:
        context.log(
            f"export: no explain .tflite: {items:,} items > {explain_tflite.MAX_ITEMS:,} (its "
            "conversion alone took about 7 GB at 779,000 items; the SavedModel explains)"
        )
        return False
    return bool(kinds)


def export_on_device(
    context: ExportContext, kinds: Sequence[str], reference: Mapping[str, dict[str, Any]]
) -> tuple[list[Exported], dict[str, Any]]:
    """Each TFLite kind (`export_tflite`), then the Android assets of the chosen kind.

    Args:
        context: The export.
        kinds: The TFLite kinds to write, in order; none for no file and no Android assets.
        reference: `keras` and `keras_window` metrics, for the Android choice.

    Returns:
        The `tflite_<kind>` steps, and the `export_android` record (empty without kinds).
    """
    calibration = calibration_windows(context, kinds)
    steps = []
    for kind in kinds:
        steps.append(export_tflite(context, kind, calibration))
        gc.collect()  # the interpreter and the converter's graphs, before the next kind
    if not steps:
        return [], {}
    files = {kind: Path(step.artifact["path"]) for kind, step in zip(kinds, steps, strict=True)}
    metrics = {**reference, **{step.name: step.metrics for step in steps}}
    return steps, export_android(context, files, metrics, calibration)


def calibration_windows(context: ExportContext, kinds: Sequence[str]) -> np.ndarray | None:
    """The int8 calibration rows (`tflite.representative_windows`), or None without `int8`."""
    if "int8" not in kinds:
        return None
    return tflite.representative_windows(context.split.train, context.history_length)


def export_tflite(context: ExportContext, kind: str, calibration: np.ndarray | None) -> Exported:
    """Converts, checks, writes, evaluates (LiteRT, one thread) and times one TFLite kind.

    Args:
        context: The export.
        kind: One of `tflite.KINDS`.
        calibration: The rows of `calibration_windows`; needed for `int8`.

    Returns:
        `tflite_<kind>`: `metrics.top_k_metrics` of the file, and its record (`path` is the
        file written).

    Raises:
        ExportError: The conversion failed or the file has ops that are not builtin.
    """
    from attnrec_tf.export.litert import LiteRTRecommender
    from attnrec_tf.metrics import top_k_metrics

    blob, seconds = context.convert(kind, calibration)
    ops = tflite.list_ops(blob)
    problems = tflite.op_problems(ops)
    if problems:
        raise ExportError(f"TFLite {kind}: " + "; ".join(problems))
    file = RunDir(context.root).tflite(context.model_name, kind)
    atomic.write_bytes(file, blob)
    size = len(blob)
    del blob  # evaluated from the file: LiteRT maps it instead of holding another copy
    runner = LiteRTRecommender(file, num_threads=1)
    values = top_k_metrics(
        runner,
        context.histories,
        context.targets,
        context.vocabulary.size,
        top_k=context.top_k,
        exclude_history=context.exclude,
    )
    artifact = {
        "path": str(file),
        "bytes": size,
        "latency_ms_p50": _latency(partial(runner, np.asarray(context.histories[0]))),
        "conversion_seconds": seconds,
        "ops": ops,
        "num_threads": 1,
    }
    step = Exported(tflite.artifact_name(kind), values, artifact)
    context.log(_line(step, f"{seconds:.1f}s to convert"))
    return step


def export_android(
    context: ExportContext,
    files: Mapping[str, Path],
    metrics: Mapping[str, dict[str, Any]],
    calibration: np.ndarray | None,
) -> dict[str, Any]:
    """Converts the chosen kind without the batch axis and writes the demo's assets.

    Args:
        context: The export.
        files: The evaluated (batched) TFLite files by kind; at least one.
        metrics: Report metrics for `android_assets.choose_kind` (`keras_window`, `tflite_*`).
        calibration: The rows of `calibration_windows`; needed when `int8` is chosen.

    Returns:
        The `export.android` record: the choice, the assets, and the share of the first
        `AGREEMENT_USERS` test users for whom the Android file recommends what the evaluated
        file of its kind recommends.

    Raises:
        ExportError: The file or the written assets fail their checks.
    """
    from attnrec_tf.export import android_assets
    from attnrec_tf.export.litert import LiteRTRecommender
    from attnrec_tf.run_dir import load_items

    folder = RunDir(context.root).android_assets
    choice = android_assets.choose_kind(dict(metrics), list(files))
    kind = choice["kind"]
    blob, seconds = context.convert(kind, calibration, batched=False)
    problems = tflite.op_problems(tflite.list_ops(blob))
    if problems:
        raise ExportError(f"Android {kind}: " + "; ".join(problems))
    model_file = f"{context.model_name}_{kind}.tflite"
    written = android_assets.write_assets(
        folder,
        tflite=blob,
        model_file=model_file,
        items=_read(load_items, context.items_path),
        top_k=context.top_k,
        choice=choice,
    )
    problems = android_assets.check_assets(folder)
    if problems:
        raise ExportError(f"{folder}: " + "; ".join(problems))
    # The unbatched file must recommend what the evaluated batched file recommends.
    batched, unbatched = LiteRTRecommender(files[kind]), LiteRTRecommender(blob)
    users = context.histories[:AGREEMENT_USERS]
    same = [np.array_equal(batched(h)["item_ids"], unbatched(h)["item_ids"]) for h in users]
    context.log(f"export: android_demo_assets with {kind} ({choice['reason']})")
    return {
        **choice,
        "path": str(folder),
        "model_file": model_file,
        "bytes": len(blob),
        "conversion_seconds": seconds,
        "config": {k: v for k, v in written.items() if k != "tensors"},
        "tensors": written["tensors"],
        "top_k_agreement_with_evaluated_file": float(np.mean(same)) if same else None,
    }


def export_record(
    context: ExportContext,
    *,
    saved: Exported,
    kinds: Sequence[str],
    android: dict[str, Any],
    started: float,
    missing: DependencyError | None,
) -> dict[str, Any]:
    """report.json's `export`: the choices, the timing, and notes on what the metrics mean.

    Args:
        context: The export.
        saved: The SavedModel step.
        kinds: The TFLite kinds written (none when LiteRT is missing).
        android: The `export_android` record (empty without TFLite kinds).
        started: `time.perf_counter()` at the start of the export.
        missing: The LiteRT error when the TFLite steps were skipped, else None.

    Returns:
        The `export` dict (`skipped` is present only with `missing`).
    """
    top_k, max_len, width = context.top_k, int(context.model.max_len), context.history_length
    histories = context.histories
    beyond_window = sum(len(h) > max_len for h in histories)
    beyond = sum(len(h) > width for h in histories)
    record: dict[str, Any] = {
        "model_name": context.model_name,
        "top_k": top_k,
        "max_len": max_len,
        "history_length": width,
        "exclude_history": context.exclude,
        "source_model": str(context.model_path),
        "saved_model": saved.artifact["path"],
        "tflite_kinds": list(kinds),
        "android": android,
        "seconds": time.perf_counter() - started,
        "notes": {
            "saved_model": "full ranking through the rerank signature (all items as candidates)",
            "tflite": f"LiteRT, 1 thread, from the top-{top_k} outputs: HR@k/NDCG@k exact for "
            f"k <= {top_k}; mrr@{top_k} is MRR truncated at {top_k} (keras gains it too)",
            "keras_window": "the Keras model's top-K lists made as the TFLite graph makes them "
            f"(the model sees the last {max_len} items, only the last {width} "
            "(history_length, the TFLite input) are left out), scored like the TFLite files; "
            f"float32 TFLite equals it. {beyond_window} of {len(histories)} test users "
            f"have more than {max_len} items, {beyond} more than {width}: for those the "
            "on-device model may re-recommend older items",
            "latency_ms_p50": "median of 200 single-user requests after 20 warm-up requests",
        },
    }
    if missing is not None:
        record["skipped"] = {"tflite": str(missing), "android": str(missing)}
    return record


def merge_report(
    report: dict[str, Any],
    *,
    keras: dict[str, Any],
    window: dict[str, dict[str, Any]],
    steps: Sequence[Exported],
    record: dict[str, Any],
) -> None:
    """Puts an export's results into `report`, in place.

    Entries of an earlier export (`EXPORT_ORDER`) are dropped first, so the report describes
    this export only; `metrics.keras` is replaced where it is. This export's entries go last
    in `metrics` and `artifacts`, in `EXPORT_ORDER`; other entries keep their order.

    Args:
        report: The run's report.
        keras: `metrics.keras` (with `mrr@K`).
        window: `{"keras_window": ...}`, or empty when no TFLite file was written.
        steps: The artifacts written (`saved_model`, `tflite_<kind>`).
        record: report.json's `export`.
    """
    metrics = report.setdefault("metrics", {})
    artifacts = report.setdefault("artifacts", {})
    for name in EXPORT_ORDER:
        metrics.pop(name, None)
        artifacts.pop(name, None)
    metrics["keras"] = keras
    metrics.update(window)
    for step in steps:
        if step.metrics:  # the explain file has none
            metrics[step.name] = step.metrics
        artifacts[step.name] = step.artifact
    report["export"] = record
    for table in (metrics, artifacts):
        for key in EXPORT_ORDER:
            if key in table:
                table[key] = table.pop(key)


def _load_model(model_path: Path) -> Any:
    """The model of `model_path`, with a missing or unreadable file as an `ExportError`."""
    from attnrec_tf.run_dir import load_model

    if not model_path.exists():
        raise ExportError(f"{model_path}: model not found (--checkpoint or a finished run)")
    try:
        return load_model(model_path, with_optimizer=False)  # exported, never trained on
    except Exception as error:  # noqa: BLE001 - Keras raises ValueError, OSError, zip errors
        detail = " ".join(str(error).split())[:300] or type(error).__name__
        raise ExportError(
            f"{model_path}: cannot load the model; was it saved by another version of "
            f"attnrec_tf? ({detail})"
        ) from error


def _read(loader: Callable[[Path], Any], path: Path) -> Any:
    """`loader(path)`, with a damaged file reported as a user error naming it."""
    try:
        return loader(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise ExportError(f"{path}: cannot read it ({type(error).__name__}: {error})") from error


def _check_name(model_name: str) -> None:
    allowed = all(c.isalnum() or c in "-_." for c in model_name)
    if not model_name or not allowed or model_name.startswith("."):
        raise ExportError(
            f"--model-name must be letters, digits, '-', '_' or '.', not starting with '.'; "
            f"got {model_name!r}"
        )


def _silent(line: str) -> None:
    """A `log` that prints nothing (`verbose=False`)."""


def _latency(request: Callable[[], object]) -> float:
    from attnrec_tf.export.latency import median_latency_ms

    return median_latency_ms(request)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _line(step: Exported, extra: str) -> str:
    artifact, values = step.artifact, step.metrics
    return (
        f"export: {step.name:<20} {artifact['bytes'] / 1e6:7.2f} MB  p50 "
        f"{artifact['latency_ms_p50']:6.2f} ms  HR@10 {values.get('hr@10', float('nan')):.4f}  "
        f"NDCG@10 {values.get('ndcg@10', float('nan')):.4f}  ({extra})"
    )

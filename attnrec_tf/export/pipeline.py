"""Trained run folder -> every deployable artifact, each evaluated, all recorded in report.json.

`export_all` reads `model.keras`, `vocabulary.json`, `items.json` and `split.npz` of a run and
writes (see `run_dir.py` for the folder layout):

- `saved_model/<model_name>/<version>/` for TF Serving (`saved_model.py`), evaluated in-process
  through its `rerank` signature with every item as a candidate, so its metrics are the full
  ranking ones, directly comparable with `metrics.keras`;
- `tflite/<model_name>_<kind>.tflite` for each kind (`tflite.py`), evaluated through the LiteRT
  interpreter, one thread, one user per call, from the shipped top-K outputs: HR@k and NDCG@k
  (k <= K) are exact, MRR is truncated at K and named `mrr@K` (`metrics.keras` gains `mrr@K`
  too, for comparison). A TFLite file takes the last `H = history_length` items of a history
  (`--history-length`, default 512, at least `max_len`): the model attends over the last
  `max_len` of them and all `H` are left out of the top-K, so items older than that may be
  recommended again; `metrics.keras_window` is the Keras model under that same rule, which
  float32 TFLite matches exactly (it equals `keras`' HR@k/NDCG@k when no test history is
  longer than `H`);
- `android_demo_assets/` (`android_assets.py`) with the chosen kind.

The `.tflite` steps need LiteRT (`ai-edge-litert`, a dependency of the package). When it is
missing anyway, the SavedModel is still written and evaluated and the report saved; then
`litert_optional=True` prints one line (`export: skipped the .tflite files and Android
assets: LiteRT is not installed (pip install ai-edge-litert)`) and records it under
`export.skipped`, and `litert_optional=False` raises `DependencyError` instead.

report.json gains `metrics.<artifact>`, `artifacts.<artifact>` = `{"path", "bytes",
"latency_ms_p50", ...}` (median of 200 single-request calls after 20 warm-up calls, one
thread for LiteRT) and `export` (choices, timings, notes).

Example:

```python
from pathlib import Path
from attnrec_tf.run_dir import RunDir
report = export_all(RunDir(Path("runs/latest")), top_k=10, history_length=512)
report["artifacts"]["tflite_dynamic_int8"]["latency_ms_p50"]
```
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf import atomic
from attnrec_tf.cli import DEFAULT_MODEL_NAME, quiet_tensorflow
from attnrec_tf.errors import DependencyError, ExportError
from attnrec_tf.run_dir import RunDir

AGREEMENT_USERS = 50


@dataclass
class _Job:
    """What every export step reads, and the report tables they fill in."""

    root: Path
    model_name: str
    model: Any
    vocabulary: Any
    split: Any
    top_k: int
    history_length: int
    exclude: bool
    metrics: dict[str, Any]
    artifacts: dict[str, Any]
    log: Callable[[str], None]

    def convert(
        self, kind: str, calibration: np.ndarray | None, *, batched: bool = True
    ) -> tuple[bytes, float]:
        """Converts the model to a TFLite `kind` with this export's options; (bytes, seconds)."""
        from attnrec_tf.export import tflite

        return tflite.timed_convert(
            self.model,
            kind,
            top_k=self.top_k,
            calibration=calibration,
            history_length=self.history_length,
            batched=batched,
        )

    @property
    def histories(self) -> list[np.ndarray]:
        return self.split.histories("test")


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
        report: The run's report (read from report.json when None, or started empty).
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
    quiet_tensorflow()
    from attnrec_tf.export import tflite
    from attnrec_tf.report import load as load_report

    started = time.perf_counter()
    kinds = tuple(tflite.KINDS if tflite_kinds is None else tflite_kinds)
    _check_name(model_name)
    if report is None:
        report = load_report(output.report) if output.report.exists() else {}
    model_path = Path(checkpoint) if checkpoint is not None else output.model
    model, vocabulary, split, items = _read_run(output, model_path, top_k)
    width = tflite.resolve_history_length(model.max_len, history_length)
    job = _Job(
        root=output.root,
        model_name=model_name,
        model=model,
        vocabulary=vocabulary,
        split=split,
        top_k=top_k,
        history_length=width,
        exclude=bool(report.get("protocol", {}).get("exclude_history", True)),
        metrics=report.setdefault("metrics", {}),
        artifacts=report.setdefault("artifacts", {}),
        log=print if verbose else (lambda line: None),
    )
    for name in ["keras_window", *(tflite.artifact_name(k) for k in tflite.KINDS)]:
        job.metrics.pop(name, None)  # the report describes this export only
        job.artifacts.pop(name, None)
    job.metrics["keras"], keras_window = _keras_metrics(job, job.metrics.get("keras"))

    saved_model_path = _export_saved_model(job)
    requested, missing = kinds, tflite.litert_missing() if kinds else None
    if missing is not None:
        kinds = ()
        if litert_optional:
            print(f"export: skipped the .tflite files and Android assets: {missing}", flush=True)
    if kinds:
        job.metrics["keras_window"] = keras_window
    calibration = tflite.representative_windows(split.train, width) if "int8" in kinds else None
    blobs = _export_tflite(job, kinds, calibration)
    android = _export_android(job, blobs, items, calibration) if blobs else {}

    beyond_window = sum(len(h) > model.max_len for h in job.histories)
    beyond = sum(len(h) > width for h in job.histories)
    report["export"] = {
        "model_name": model_name,
        "top_k": top_k,
        "max_len": int(model.max_len),
        "history_length": width,
        "exclude_history": job.exclude,
        "source_model": str(model_path),
        "saved_model": str(saved_model_path),
        "tflite_kinds": list(kinds),
        "android": android,
        "seconds": time.perf_counter() - started,
        "notes": {
            "saved_model": "full ranking through the rerank signature (all items as candidates)",
            "tflite": f"LiteRT, 1 thread, from the top-{top_k} outputs: HR@k/NDCG@k exact for "
            f"k <= {top_k}; mrr@{top_k} is MRR truncated at {top_k} (keras gains it too)",
            "keras_window": "the Keras model's top-K lists made as the TFLite graph makes them "
            f"(the model sees the last {model.max_len} items, only the last {width} "
            "(history_length, the TFLite input) are left out), scored like the TFLite files; "
            f"float32 TFLite equals it. {beyond_window} of {len(job.histories)} test users "
            f"have more than {model.max_len} items, {beyond} more than {width}: for those the "
            "on-device model may re-recommend older items",
            "latency_ms_p50": "median of 200 single-user requests after 20 warm-up requests",
        },
    }
    if missing is not None:
        report["export"]["skipped"] = {"tflite": str(missing), "android": str(missing)}
    order = ["saved_model", "keras_window", *(tflite.artifact_name(k) for k in tflite.KINDS)]
    for table in (job.metrics, job.artifacts):  # export's entries last, in a fixed order
        for key in order:
            if key in table:
                table[key] = table.pop(key)
    atomic.write_json(output.report, report)
    if missing is not None and not litert_optional:
        raise DependencyError(f"--tflite {','.join(requested)}: {missing}")
    return report


def _read_run(output: RunDir, model_path: Path, top_k: int) -> tuple[Any, Any, Any, Any]:
    """`(model, vocabulary, split, items)` of a run; user errors name the file at fault."""
    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.run_dir import load_items, load_model, load_split

    vocabulary = Vocabulary.load(output.require(output.vocabulary))
    if not 0 < top_k <= vocabulary.num_items:
        raise ExportError(f"--top-k must be in 1..{vocabulary.num_items} (the catalog size)")
    items = _read(load_items, output.require(output.items))
    split = _read(load_split, output.require(output.split))
    if not model_path.exists():
        raise ExportError(f"{model_path}: model not found (--checkpoint or a finished run)")
    try:
        model = load_model(model_path)
    except Exception as error:  # noqa: BLE001 - Keras raises ValueError, OSError, zip errors
        detail = " ".join(str(error).split())[:300] or type(error).__name__
        raise ExportError(
            f"{model_path}: cannot load the model; was it saved by another version of "
            f"attnrec_tf? ({detail})"
        ) from error
    if model.vocab_size != vocabulary.size:
        raise ExportError(
            f"{model_path} expects {model.vocab_size} item indices but {output.vocabulary} "
            f"has {vocabulary.size}; were they written by the same run?"
        )
    return model, vocabulary, split, items


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


def _keras_metrics(
    job: _Job, existing: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`metrics.keras` (from the report, or computed) with `mrr@K`, and `keras_window`.

    `keras_window` scores the Keras model's own top-K lists, made the way the TFLite graph
    makes them (the model sees the last `max_len` items; only the last `history_length`, the
    TFLite input, are left out), with the TFLite metric code. A float32 TFLite file matches it
    exactly; its gap to `keras` comes from items seen before the last `history_length`, which
    the on-device model may recommend again.
    """
    from attnrec_tf import metrics
    from attnrec_tf.evaluate import batch_size_for_vocab, evaluate_split, keras_score_fn
    from attnrec_tf.export.tflite import list_metrics, top_k_result

    model, top_k = job.model, job.top_k
    score_fn = keras_score_fn(model, model.max_len)
    if existing:
        result = dict(existing)
    else:
        result = evaluate_split(score_fn, job.split, "test", exclude_history=job.exclude)
    histories, targets = job.histories, job.split.targets("test")
    ranks, ids, top_scores = [], [], []
    step = batch_size_for_vocab(model.vocab_size)
    for start in range(0, len(targets), step):
        batch, batch_targets = histories[start : start + step], targets[start : start + step]
        scores = np.array(score_fn(batch), dtype=np.float64)  # (B, V)
        exclude = batch if job.exclude else None
        ranks.append(metrics.rank_of_targets(scores, batch_targets, exclude))
        scores[:, 0] = -np.inf
        for row, history in enumerate(batch):
            scores[row, np.asarray(history[-job.history_length :], np.int64)] = -np.inf
        top = _top_k_stable(scores, top_k)  # (B, K)
        ids.append(top)
        top_scores.append(np.take_along_axis(scores, top, axis=1))
    result[f"mrr@{top_k}"] = top_k_result(np.concatenate(ranks), top_k)[f"mrr@{top_k}"]
    window = list_metrics(
        np.concatenate(ids),
        np.concatenate(top_scores),
        histories,
        targets,
        model.vocab_size,
        top_k=top_k,
        exclude_history=job.exclude,
    )
    return result, window


def _top_k_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """`argsort(-scores, stable)[:, :k]` without sorting whole rows (ties: lower index first).

    >>> _top_k_stable(np.array([[0.1, 0.5, 0.5, 0.9, 0.2]]), 3).tolist()
    [[3, 1, 2]]
    """
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]  # (B, 1): the k-th best score
    top = np.empty((len(scores), k), dtype=np.int64)
    for row in range(len(scores)):
        candidates = np.flatnonzero(scores[row] >= kth[row])  # every item tied with the k-th
        order = np.argsort(-scores[row, candidates], kind="stable")[:k]
        top[row] = candidates[order]
    return top


def _export_saved_model(job: _Job) -> Path:
    """Writes the next SavedModel version and the REST examples; evaluates and times it."""
    from attnrec_tf.evaluate import batch_size_for_vocab, evaluate_split
    from attnrec_tf.export import saved_model

    base = RunDir(job.root).saved_model_base(job.model_name)
    folder = base.parent  # saved_model/: the REST examples beside the model base
    start = time.perf_counter()
    path, version = saved_model.write_saved_model(job.model, job.vocabulary, base, top_k=job.top_k)
    write_seconds = time.perf_counter() - start
    client = saved_model.SavedModelClient(path, job.vocabulary)
    job.metrics["saved_model"] = evaluate_split(
        client.scores,
        job.split,
        "test",
        exclude_history=job.exclude,
        batch_size=batch_size_for_vocab(job.vocabulary.size),
    )
    first = job.histories[0]
    raw_history = client.raw_batch([first])
    serve = client.loaded.signatures["serving_default"]
    job.artifacts["saved_model"] = {
        "path": str(path),
        "bytes": _size(path),
        "latency_ms_p50": _latency(lambda: serve(history=raw_history)),
        "version": version,
        "base_path": str(base),
        "model_name": job.model_name,
        "signatures": list(saved_model.SIGNATURES),
        "history_dtype": job.vocabulary.id_dtype,
        "padding_value": saved_model.padding_value(job.vocabulary),
        "export_seconds": write_seconds,
    }
    request = saved_model.example_request(client, first)
    atomic.write_json(folder / "example_request.json", request)
    response = saved_model.example_response(client, request)
    atomic.write_json(folder / "example_response.json", response)
    job.log(_line("saved_model", job, f"v{version}"))
    return path


def _export_tflite(
    job: _Job, kinds: Sequence[str], calibration: np.ndarray | None
) -> dict[str, bytes]:
    """Converts, checks, writes, evaluates (LiteRT, one thread) and times each kind."""
    from attnrec_tf.export import tflite

    histories, targets = job.histories, job.split.targets("test")
    blobs: dict[str, bytes] = {}
    for kind in kinds:
        name = tflite.artifact_name(kind)
        blob, seconds = job.convert(kind, calibration)
        ops = tflite.list_ops(blob)
        problems = tflite.op_problems(ops)
        if problems:
            raise ExportError(f"TFLite {kind}: " + "; ".join(problems))
        file = RunDir(job.root).tflite(job.model_name, kind)
        atomic.write_bytes(file, blob)
        runner = tflite.LiteRTRecommender(file, num_threads=1)
        job.metrics[name] = tflite.top_k_metrics(
            runner,
            histories,
            targets,
            job.vocabulary.size,
            top_k=job.top_k,
            exclude_history=job.exclude,
        )
        first = np.asarray(histories[0])
        job.artifacts[name] = {
            "path": str(file),
            "bytes": len(blob),
            "latency_ms_p50": _latency(partial(runner, first)),
            "conversion_seconds": seconds,
            "ops": ops,
            "num_threads": 1,
        }
        blobs[kind] = blob
        job.log(_line(name, job, f"{seconds:.1f}s to convert"))
    return blobs


def _export_android(
    job: _Job,
    blobs: dict[str, bytes],
    items: list[dict[str, Any]],
    calibration: np.ndarray | None,
) -> dict[str, Any]:
    """Converts the chosen kind without the batch axis and writes the demo's assets."""
    from attnrec_tf.export import android_assets, tflite

    folder = RunDir(job.root).android_assets
    choice = android_assets.choose_kind(job.metrics, list(blobs))
    kind = choice["kind"]
    blob, seconds = job.convert(kind, calibration, batched=False)
    problems = tflite.op_problems(tflite.list_ops(blob))
    if problems:
        raise ExportError(f"Android {kind}: " + "; ".join(problems))
    model_file = f"{job.model_name}_{kind}.tflite"
    written = android_assets.write_assets(
        folder, tflite=blob, model_file=model_file, items=items, top_k=job.top_k, choice=choice
    )
    problems = android_assets.check_assets(folder)
    if problems:
        raise ExportError(f"{folder}: " + "; ".join(problems))
    # The unbatched file must recommend what the evaluated batched file recommends.
    batched, unbatched = tflite.LiteRTRecommender(blobs[kind]), tflite.LiteRTRecommender(blob)
    users = job.histories[:AGREEMENT_USERS]
    same = [np.array_equal(batched(h)["item_ids"], unbatched(h)["item_ids"]) for h in users]
    job.log(f"export: android_demo_assets with {kind} ({choice['reason']})")
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


def _latency(request: Callable[[], object]) -> float:
    from attnrec_tf.export.latency import median_latency_ms

    return median_latency_ms(request)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _line(name: str, job: _Job, extra: str) -> str:
    artifact, values = job.artifacts[name], job.metrics[name]
    return (
        f"export: {name:<20} {artifact['bytes'] / 1e6:7.2f} MB  p50 "
        f"{artifact['latency_ms_p50']:6.2f} ms  HR@10 {values.get('hr@10', float('nan')):.4f}  "
        f"NDCG@10 {values.get('ndcg@10', float('nan')):.4f}  ({extra})"
    )

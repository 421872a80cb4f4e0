"""The explain `.tflite`: the counterfactual reasons of `attnrec_tf.counterfactual`, on device.

`tflite/<model_name>_explain_float32.tflite` (`RunDir.tflite_explain`) is
`serving.explain_verified` as one frozen graph, with one signature, `serving_default`:

- inputs `history` `[1, H]` int32 vocabulary indices, oldest first (0 = padding, on either
  side; `H` = the export's `history_length`, as for the recommendation files) and `candidates`
  `[1, K]` int32, the items to explain (`K` = the export's `top_k`: the top-K output of a
  recommendation file fits as it is; pad unused columns with 0);
- outputs, each tensor named after its key (`tflite.name_tensors`): `removed` `[1, max_len]`
  int32 (the model's window, left-padded with 0), `score_drops` `[1, max_len, K]` float32 (a
  candidate's score with the whole row minus its score without any occurrence of `removed[l]`,
  at the most recent position of each removed item; 0 elsewhere), `ranks_without`
  `[1, max_len, K]` int32 (the rank without `removed[l]`, for each candidate's 3 largest drops;
  0 elsewhere), `scores` `[1, K]` float32, `ranks` `[1, K]` int32 (1-based among the items
  outside the row; 0 for a padding candidate) and `verified` `[1, max_len]` int32 (1 where the
  removal was scored).

Only the likely reasons are removed: the 6 most recent distinct window items and the most
attended others, 16 in all (every item of a window with no more), chosen from one model call
on the whole row and scored in one batched call of 16 rows, whatever the window's length
(`serving.explain_verified`; on the ML-1M preset the best removal is among them in about 97% of
the pairs, docs/explanations.md). A reason is then read as `Counterfactuals.reasons` does
(`LiteRTExplainer.counterfactuals` builds that object from the outputs): the distinct window
items, most recent first, by decreasing positive drop, so every reason shown is a real removal.
Builtin ops, frozen variables, float32 only (why: docs/notes/export-training-serving.md).
`export_explain` is the export step.

Example:

```python
explainer = LiteRTExplainer(Path("runs/latest/tflite/attnrec_explain_float32.tflite"))
found = explainer.counterfactuals(np.array([3, 5, 8]), np.array([12, 40]))
found.reasons(0)  # [Removal(item=5, score_drop=0.41, rank_without=9), ...]
```
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.counterfactual import Counterfactuals
from attnrec_tf.errors import ExportError
from attnrec_tf.export.context import ExportContext, Exported
from attnrec_tf.export.litert import INPUT, SIGNATURE, interpreter

ARTIFACT = "tflite_explain"
"""The report key of the explain file (`artifacts.tflite_explain`; it has no test metrics)."""
CANDIDATES = "candidates"
"""The name of the second input (and of its tensor)."""
AGREEMENT_USERS = 20
"""Test users on which the file must explain as `counterfactual.counterfactuals` does."""
LATENCY_HISTORY = 20
"""Items of the history the latency is measured with."""
MAX_ITEMS = 200_000
"""The largest catalog the export writes an explain file for: the converter's memory grows with
the catalog (about +1.8 GB at 248,000 items, +7 GB at 779,000 on this project's machine), and a
catalog that large is not one a phone holds; the SavedModel's `explain` signature still serves."""
MIN_RANK_AGREEMENT = 0.9
"""Below this share of candidates with equal ranks, the file is broken: the export fails."""


def explain_function(
    model: Any, *, top_k: int, history_length: int, exhaustive: bool = False
) -> Any:
    """The frozen (variables -> constants) concrete explain function, outputs named.

    Args:
        model: The trained `AttentionRecommender`.
        top_k: K, the width of `candidates`.
        history_length: `H`, the width of `history` (at least `model.max_len`).
        exhaustive: `serving.explain_removals` (every window item removed; the file before
            `explain_verified`, kept to measure against) instead of `serving.explain_verified`.
            Defaults to `False`.

    Returns:
        A `tf.types.experimental.ConcreteFunction` without variables, returning a dict.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from attnrec_tf.export import serving

    specs = [
        tf.TensorSpec([1, history_length], tf.int32, name=INPUT),
        tf.TensorSpec([1, top_k], tf.int32, name=CANDIDATES),
    ]

    @tf.function(input_signature=specs)
    def explain(history: tf.Tensor, candidates: tf.Tensor) -> dict[str, tf.Tensor]:
        if exhaustive:
            return serving.explain_removals(model, history, candidates)
        return serving.explain_verified(model, history, candidates)

    concrete = explain.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    @tf.function(input_signature=specs)
    def named(history: tf.Tensor, candidates: tf.Tensor) -> dict[str, tf.Tensor]:
        return tf.nest.pack_sequence_as(structure, frozen(history, candidates))

    return named.get_concrete_function()


def convert(
    model: Any, *, top_k: int, history_length: int | None = None, exhaustive: bool = False
) -> bytes:
    """The explain `.tflite` flatbuffer (float32, builtin ops, tensors named).

    Args:
        model: The trained `AttentionRecommender`.
        top_k: K.
        history_length: `H`; defaults to `tflite.resolve_history_length(model.max_len)`.
        exhaustive: See `explain_function`. Defaults to `False`.

    Returns:
        The flatbuffer bytes.

    Raises:
        ExportError: The conversion failed, or `H` is below `max_len`.
    """
    import tensorflow as tf

    from attnrec_tf.export import tflite

    width = tflite.resolve_history_length(model.max_len, history_length)
    function = explain_function(model, top_k=top_k, history_length=width, exhaustive=exhaustive)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        blob = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises many types
        raise ExportError(f"TFLite explain conversion failed: {error}") from error
    return tflite.name_tensors(bytes(blob))


class LiteRTExplainer:
    """Runs an explain `.tflite` through LiteRT, one history per call.

    `history_length` is the width `H` of the `history` input, `top_k` the width `K` of
    `candidates`, `max_len` the model's window (the width of `removed`).

    Args:
        tflite: Path or bytes of the file.
        num_threads: Interpreter threads. Defaults to `1`.

    Raises:
        DependencyError: LiteRT is missing or broken (`litert.litert`).
        ExportError: The signature's inputs are not `history` and `candidates`.
    """

    def __init__(self, tflite: bytes | Path, num_threads: int = 1) -> None:
        self.interpreter = interpreter(tflite, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        signature = self.interpreter.get_signature_runner(SIGNATURE)
        inputs = signature.get_input_details()
        if sorted(inputs) != sorted([INPUT, CANDIDATES]):
            raise ExportError(f"expected inputs {INPUT!r}, {CANDIDATES!r}, found {sorted(inputs)}")
        self.inputs = {name: inputs[name] for name in (INPUT, CANDIDATES)}
        outputs = signature.get_output_details()
        self.outputs = {name: d for name, d in outputs.items()}
        self.history_length = int(inputs[INPUT]["shape"][-1])
        self.top_k = int(inputs[CANDIDATES]["shape"][-1])
        self.max_len = int(outputs["removed"]["shape"][-1])

    def __call__(self, history: np.ndarray, candidates: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for one history (its last `history_length` items) and its candidates.

        Args:
            history: `(T,)` vocabulary indices, oldest first.
            candidates: `(C,)` vocabulary indices, `C <= top_k` (the rest is padded with 0).

        Returns:
            `{"removed": (L,), "score_drops": (L, C), "ranks_without": (L, C), "scores": (C,),
            "ranks": (C,), "verified": (L,)}` (copies; `L` = `max_len`).

        Raises:
            ValueError: More than `top_k` candidates.
        """
        count = len(candidates)
        if count > self.top_k:
            raise ValueError(f"{count} candidates; this file explains at most {self.top_k}")
        row = np.zeros(self.top_k, np.int32)
        row[:count] = candidates
        window = np.zeros(self.history_length, np.int32)
        tail = np.asarray(history, np.int64)[-self.history_length :]
        if len(tail):
            window[self.history_length - len(tail) :] = tail
        out = self.run(window, row)
        return {
            "removed": out["removed"][0],
            "score_drops": out["score_drops"][0][:, :count],
            "ranks_without": out["ranks_without"][0][:, :count],
            "scores": out["scores"][0][:count],
            "ranks": out["ranks"][0][:count],
            "verified": out["verified"][0]
            if "verified" in out
            else np.ones_like(out["removed"][0]),
        }

    def run(self, window: np.ndarray, candidates: np.ndarray) -> dict[str, np.ndarray]:
        """Runs raw `(history_length,)` and `(top_k,)` int32 rows as given; outputs by name."""
        for name, values in ((INPUT, window), (CANDIDATES, candidates)):
            detail = self.inputs[name]
            self.interpreter.set_tensor(
                detail["index"], np.asarray(values, np.int32).reshape(detail["shape"])
            )
        self.interpreter.invoke()
        return {
            name: self.interpreter.get_tensor(detail["index"]).copy()
            for name, detail in self.outputs.items()
        }

    def counterfactuals(self, history: np.ndarray, candidates: np.ndarray) -> Counterfactuals:
        """The file's answer as `counterfactual.counterfactuals` gives it (`reasons` included).

        The window's positions become its distinct items, most recent first (each read at its
        most recent position); `verified` says which of them were removed and scored.
        """
        out = self(history, candidates)
        positions: dict[int, int] = {}
        for position in range(len(out["removed"]) - 1, -1, -1):
            item = int(out["removed"][position])
            if item > 0:
                positions.setdefault(item, position)
        rows = list(positions.values())
        return Counterfactuals(
            items=np.asarray(list(positions), np.int64),
            candidates=np.asarray(candidates, np.int64),
            scores=out["scores"].astype(np.float64),
            ranks=out["ranks"].astype(np.int64),
            drops=out["score_drops"][rows].astype(np.float64),
            ranks_without=out["ranks_without"][rows].astype(np.int64),
            verified=out["verified"][rows] > 0,
        )


def window_score_fn(model: Any) -> Any:
    """The Keras model's scores of histories left-padded to its whole window, traced once.

    The same scores as `evaluate.keras_score_fn`, without a trace per history width.

    Returns:
        Histories -> `(B, V)` numpy scores.
    """
    import tensorflow as tf

    from attnrec_tf.data.pipeline import pad_left

    spec = tf.TensorSpec([None, model.max_len], tf.int32)
    score = tf.function(model.score, input_signature=[spec])

    def fn(histories: Sequence[np.ndarray]) -> np.ndarray:
        return score(tf.constant(pad_left(histories, model.max_len))).numpy()

    return fn


def top_candidates(score_fn: Any, history: np.ndarray, k: int) -> np.ndarray:
    """The top `k` items outside `history` (`score_fn` over one history), best first; fewer
    when the catalog has fewer items outside it.

    >>> top_candidates(lambda h: np.array([[9.0, 1.0, 3.0, 2.0]]), np.array([2]), k=5).tolist()
    [3, 1]
    """
    scores = np.asarray(score_fn([np.asarray(history, np.int64)])[0], np.float64)
    scores[0] = -np.inf
    scores[np.asarray(history, np.int64)] = -np.inf
    order = np.argsort(-scores, kind="stable")
    return order[np.isfinite(scores[order])][:k]


def keras_explain_fn(model: Any, *, top_k: int, history_length: int) -> Any:
    """`serving.explain_verified` on the Keras model, traced once for `[1, H]` and `[1, K]`.

    Returns:
        `(history (H,), candidates (K,))` int32 -> `explain_verified`'s outputs, batch row 0, numpy.
    """
    import tensorflow as tf

    from attnrec_tf.export import serving

    specs = [tf.TensorSpec([1, history_length], tf.int32), tf.TensorSpec([1, top_k], tf.int32)]
    graph = tf.function(lambda x, c: serving.explain_verified(model, x, c), input_signature=specs)

    def fn(history: np.ndarray, candidates: np.ndarray) -> dict[str, np.ndarray]:
        out = graph(tf.constant(history[None], tf.int32), tf.constant(candidates[None], tf.int32))
        return {name: value.numpy()[0] for name, value in out.items()}

    return fn


def removal_drops_fn(model: Any) -> Any:
    """Every removal of `counterfactual.counterfactuals`, scored on the candidates' rows only.

    Returns:
        `(history, candidates (C,))` -> `(items (n,), drops (n, C))`, as `counterfactuals`
        gives them, with no work that grows with the catalog.
    """
    import tensorflow as tf

    from attnrec_tf.counterfactual import removal_histories
    from attnrec_tf.data.pipeline import pad_left

    spec = tf.TensorSpec([None, model.max_len], tf.int32)
    users = tf.function(
        lambda x: model.encode(x, training=False, last_only=True)[0][:, -1, :],
        input_signature=[spec],
    )

    def fn(history: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items, rows = removal_histories(history, model.max_len)
        vectors = users(tf.constant(pad_left([history, *rows], model.max_len))).numpy()
        columns = model.item_representations(tf.constant(candidates, tf.int32)).numpy()
        scores = vectors.astype(np.float64) @ columns.astype(np.float64).T  # (1 + n, C)
        return items, scores[0][None, :] - scores[1:]

    return fn


def agreement(
    explainer: LiteRTExplainer, model: Any, histories: Sequence[np.ndarray]
) -> dict[str, Any]:
    """How the file's explanations compare with the Keras model's, at no catalog-sized cost.

    Each history's candidates are the model's own top `explainer.top_k`. The file's outputs are
    compared with `serving.explain_verified` on the Keras model (`keras_explain_fn`), its first
    reasons with those of every removal (`removal_drops_fn`, as `counterfactuals` would give).

    Args:
        explainer: The explain file.
        model: The Keras `AttentionRecommender` it was converted from.
        histories: Non-empty histories, each at most `explainer.history_length` long (so the
            file sees all of it).

    Returns:
        `{"users", "pairs", "ranks_equal"` (share of candidates whose rank and ranks without
        equal the Keras graph's, with the same window and removals), `"first_reason_equal"`
        (share whose first reason, or lack of one, is that of every removal: how often the
        likely reasons hold the best one), `"first_reason_scored_equal"` (the same, every
        removal cut to the items the file removed: its own arithmetic, 1.0 when right),
        `"verified"` (mean share of the window's distinct items removed),
        `"max_score_drop_error"` (file against Keras, over the removals scored)}`.
    """
    score_fn = window_score_fn(model)
    keras = keras_explain_fn(model, top_k=explainer.top_k, history_length=explainer.history_length)
    every = removal_drops_fn(model)
    ranks_equal, first_equal, scored_equal, shares, error = [], [], [], [], 0.0
    for history in histories:
        history = np.asarray(history, np.int64)
        candidates = top_candidates(score_fn, history, explainer.top_k)
        found = explainer.counterfactuals(history, candidates)
        raw = explainer(history, candidates)
        row = np.zeros(explainer.top_k, np.int32)
        row[: len(candidates)] = candidates
        window = np.zeros(explainer.history_length, np.int32)
        window[explainer.history_length - len(history) :] = history
        expected = keras(window, row)
        same = all(np.array_equal(raw[n], expected[n]) for n in ("removed", "verified"))
        count = len(candidates)
        for column in range(count):
            ranks_equal.append(
                same
                and raw["ranks"][column] == expected["ranks"][column]
                and bool(
                    np.array_equal(
                        raw["ranks_without"][:, column], expected["ranks_without"][:, column]
                    )
                )
            )
        if same:
            gap = np.abs(raw["score_drops"] - expected["score_drops"][:, :count])
            error = max(error, float(np.max(gap, initial=0.0)))
        items, drops = every(history, candidates)  # the window's items, latest first
        removed = found.items if found.verified is None else found.items[found.verified]
        scored = np.isin(items, removed)
        shares.append(float(np.mean(scored)) if len(scored) else 1.0)
        for column in range(count):
            first = [r.item for r in found.reasons(column)[:1]]
            first_equal.append(first == _first_reason(items, drops[:, column]))
            cut = np.where(scored, drops[:, column], 0.0)
            scored_equal.append(first == _first_reason(items, cut))
    pairs = len(ranks_equal)
    return {
        "users": len(histories),
        "pairs": pairs,
        "ranks_equal": float(np.mean(ranks_equal)) if pairs else None,
        "first_reason_equal": float(np.mean(first_equal)) if pairs else None,
        "first_reason_scored_equal": float(np.mean(scored_equal)) if pairs else None,
        "verified": float(np.mean(shares)) if shares else None,
        "max_score_drop_error": error,
    }


def _first_reason(items: np.ndarray, drops: np.ndarray) -> list[int]:
    """`[item]` with the largest positive drop (the first of equals), or `[]`: the first of
    `Counterfactuals.reasons`."""
    best = int(np.argmax(drops)) if len(drops) else 0
    return [int(items[best])] if len(drops) and drops[best] > 0 else []


def latency_history(histories: Sequence[np.ndarray], length: int = LATENCY_HISTORY) -> np.ndarray:
    """A `length`-item history to time: the last `length` items of the first history that
    long, else the first `length` distinct items of all of them (fewer if there are fewer).

    >>> histories = [np.array([4, 5]), np.array([5, 6, 7])]
    >>> latency_history(histories, length=3).tolist(), latency_history(histories, 4).tolist()
    ([5, 6, 7], [4, 5, 6, 7])
    """
    for history in histories:
        if len(history) >= length:
            return np.asarray(history[-length:], np.int64)
    joined = [int(item) for history in histories for item in history]
    return np.asarray(list(dict.fromkeys(joined))[:length], np.int64)


def latency_ms(explainer: LiteRTExplainer, history: np.ndarray, candidates: np.ndarray) -> float:
    """`latency.median_latency_ms` of one explain call (its inputs prepared once)."""
    from attnrec_tf.export.latency import median_latency_ms

    window = np.zeros(explainer.history_length, np.int32)
    tail = np.asarray(history, np.int64)[-explainer.history_length :]
    window[explainer.history_length - len(tail) :] = tail
    row = np.zeros(explainer.top_k, np.int32)
    row[: len(candidates)] = np.asarray(candidates[: explainer.top_k], np.int32)
    return median_latency_ms(lambda: explainer.run(window, row))


def export_explain(context: ExportContext) -> Exported:
    """The export step: converts, checks, writes, checks through LiteRT and times the file.

    Args:
        context: The export's `ExportContext`.

    Returns:
        An `Exported` named `ARTIFACT`, with no metrics and the record `path`,
        `bytes`, `latency_ms_p50` (one thread), `latency_history_length`, `conversion_seconds`,
        `ops`, `num_threads`, `inputs`, `outputs` and `agreement` (see `agreement`).

    Raises:
        ExportError: The conversion failed, the file has ops that are not builtin, or its ranks
            disagree with the Keras model's on more than `1 - MIN_RANK_AGREEMENT` of the pairs.
    """
    from attnrec_tf import atomic
    from attnrec_tf.export import tflite
    from attnrec_tf.run_dir import RunDir

    model, top_k, width = context.model, context.top_k, context.history_length
    start = time.perf_counter()
    blob = convert(model, top_k=top_k, history_length=width)
    seconds = time.perf_counter() - start
    ops = tflite.list_ops(blob)
    problems = tflite.op_problems(ops)
    if problems:
        raise ExportError("TFLite explain: " + "; ".join(problems))
    file = RunDir(context.root).tflite_explain(context.model_name)
    atomic.write_bytes(file, blob)
    explainer = LiteRTExplainer(file, num_threads=1)
    score_fn = window_score_fn(model)
    users = [h for h in context.histories if 0 < len(h) <= width][:AGREEMENT_USERS]
    agreed = agreement(explainer, model, users)
    if agreed["pairs"] and agreed["ranks_equal"] < MIN_RANK_AGREEMENT:
        raise ExportError(
            f"{file}: the ranks it gives equal the Keras model's for only "
            f"{agreed['ranks_equal']:.0%} of {agreed['pairs']} test recommendations"
        )
    history = latency_history(context.histories)
    artifact = {
        "path": str(file),
        "bytes": len(blob),
        "latency_ms_p50": latency_ms(explainer, history, top_candidates(score_fn, history, top_k)),
        "latency_history_length": len(history),
        "conversion_seconds": seconds,
        "ops": ops,
        "num_threads": 1,
        "inputs": {INPUT: [1, width], CANDIDATES: [1, top_k]},
        "outputs": {name: [int(n) for n in d["shape"]] for name, d in explainer.outputs.items()},
        "agreement": agreed,
    }
    context.log(
        f"export: {ARTIFACT:<20} {len(blob) / 1e6:7.2f} MB  p50 {artifact['latency_ms_p50']:6.2f} "
        f"ms ({len(history)}-item history)  first reasons as the exhaustive method's: "
        f"{agreed['first_reason_equal'] or 0:.0%} of {agreed['pairs']} "
        f"({agreed['verified'] or 0:.0%} of the windows' items removed)"
    )
    return Exported(ARTIFACT, {}, artifact)

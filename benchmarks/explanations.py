"""The `explanations` suite: are the shown reasons true? Faithfulness of each explanation method.

For test users of a run and each of their top-10 recommendations `j`, every method names its
first reason `i` ("because you watched i"). The truth comes from the served model itself: the
user's history and the history without each item of the window are scored through the
SavedModel's `rerank` signature (every item as candidate), independently of the Keras path the
explanations use. Per method:

- (a) `is_best`: the shown reason is the history item whose removal lowers `j`'s score most;
- (b) `lowers`: removing the shown reason lowers `j`'s score at all;
- (c) `rank_without`: the mean rank `j` falls to without its shown reason (`rank` beside it);
- `shown`: the share of pairs that get a reason (a method may show none).

Methods: `counterfactual` (the default, `attnrec_tf.counterfactual`, every window item removed),
`on_device` (the first reason of the run's explain `.tflite` through LiteRT: only the likely
reasons removed, `serving.explain_verified`; not shown without the file or LiteRT), `additive`
(the largest term of the exact split, `attnrec_tf.explain`; none for the `sasrec` variant, which
has no pooling head), `attention` (the most-attended item) and `random` (a random item of the
window). `on_device_removed` is the mean share of the window's distinct items the file removed.

Beside the table, `on_device_explain_ms_p50`: the counterfactual reasons computed on device, the
median latency of one call of the run's explain `.tflite` (`export.explain_tflite`; LiteRT, one
thread, an `explain_tflite.LATENCY_HISTORY`-item test history and its top 10), and
`on_device_explain_ms_p50_full_window` for a history that fills the model's window (the file
cuts its window to the history, so that is its slowest case); None when the run has no such
file or LiteRT is missing.

    python -m benchmarks --suite explanations --explain-runs runs/ml100k,runs/ml1m
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("counterfactual", "on_device", "additive", "attention", "random")
TOP_K = 10
ON_DEVICE = (
    ("on_device_explain_ms_p50", "on_device_explain_history"),
    ("on_device_explain_ms_p50_full_window", "on_device_explain_full_window"),
)
"""The entry's (latency, history length) keys: a short history, then a full window."""


def faithfulness(run: Path, *, users: int = 200, seed: int = 0) -> dict[str, Any]:
    """The faithfulness table of one exported run over `users` random test users.

    Returns:
        `{"run", "users", "pairs", "variant", "methods": {method: {"shown", "is_best",
        "lowers", "rank", "rank_without"}}, "on_device_removed", "on_device_explain_ms_p50",
        "on_device_explain_history", "on_device_explain_ms_p50_full_window",
        "on_device_explain_full_window"}` (rates over the pairs with a shown reason; the
        latencies and their history lengths are None without the run's explain file).
    """
    from attnrec_tf.counterfactual import counterfactuals
    from attnrec_tf.evaluate import keras_score_fn
    from attnrec_tf.recommender import Recommender
    from attnrec_tf.run_dir import load_split

    recommender = Recommender(run)
    model = recommender.model
    split = load_split(recommender.output.require(recommender.output.split))
    histories = split.histories("test")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(histories), size=min(users, len(histories)), replace=False)
    served = recommender.engine.client.scores  # type: ignore[union-attr]
    keras_scores = keras_score_fn(model, model.max_len)
    explainer = _explainer(recommender)
    rows: dict[str, list[tuple[bool, bool, int, int]]] = {m: [] for m in METHODS}
    removed: list[float] = []
    for user in chosen:
        history = np.asarray(histories[user], np.int64)
        top = recommender.engine(history.tolist(), TOP_K)["item_ids"]
        truth = counterfactuals(served, history, top, max_len=model.max_len)
        ours = counterfactuals(keras_scores, history, top, max_len=model.max_len)
        shown = _first_reasons(model, history, top, ours, rng)
        if explainer is not None:
            device = explainer.counterfactuals(history, top)
            shown["on_device"] = [
                r[0].item if (r := device.reasons(c)) else None for c in range(len(top))
            ]
            removed.append(1.0 if device.verified is None else float(np.mean(device.verified)))
        for method, reasons in shown.items():
            for column, item in enumerate(reasons):
                rows[method].append(_judge(truth, column, item))
    return {
        "run": str(run),
        "variant": str(model.variant),
        "users": len(chosen),
        "pairs": len(chosen) * TOP_K,
        "methods": {m: _rates(rows[m], len(chosen) * TOP_K) for m in METHODS},
        "on_device_removed": float(np.mean(removed)) if removed else None,
        **on_device_explain(recommender, histories),
    }


def _explainer(recommender: Any) -> Any:
    """The run's explain `.tflite` in LiteRT (one thread), or None without the file or LiteRT."""
    from attnrec_tf.cli import DEFAULT_MODEL_NAME
    from attnrec_tf.export import explain_tflite
    from attnrec_tf.export.litert import litert_missing

    output = recommender.output
    report = json.loads(output.report.read_text(encoding="utf-8"))
    file = output.tflite_explain(report.get("export", {}).get("model_name", DEFAULT_MODEL_NAME))
    if not file.is_file() or litert_missing() is not None:
        return None
    return explain_tflite.LiteRTExplainer(file, num_threads=1)


def on_device_explain(recommender: Any, histories: list[np.ndarray]) -> dict[str, Any]:
    """The p50 latency (ms) of the run's explain `.tflite`, LiteRT, one thread.

    Args:
        recommender: The run's `Recommender` (its top 10 are the candidates).
        histories: Test histories; the latency history is `explain_tflite.latency_history`.

    Returns:
        `{"on_device_explain_ms_p50", "on_device_explain_history"}` (its length) and the same
        two with `_full_window` for a `max_len`-item history; all None without the file or
        LiteRT.
    """
    from attnrec_tf.export import explain_tflite

    explainer = _explainer(recommender)
    if explainer is None:
        return dict.fromkeys(key for pair in ON_DEVICE for key in pair)
    found: dict[str, Any] = {}
    lengths = (explain_tflite.LATENCY_HISTORY, explainer.max_len)
    for (latency, items), length in zip(ON_DEVICE, lengths, strict=True):
        history = explain_tflite.latency_history(histories, length)
        candidates = recommender.engine(history.tolist(), TOP_K)["item_ids"]
        found[latency] = explain_tflite.latency_ms(explainer, history, candidates)
        found[items] = len(history)
    return found


def _first_reasons(
    model: Any, history: np.ndarray, top: np.ndarray, ours: Any, rng: np.random.Generator
) -> dict[str, list[int | None]]:
    """Each method's first reason (a vocabulary index, or None) for each recommendation."""
    from attnrec_tf.explain import reasons, score_parts

    window = np.zeros(model.max_len, np.int32)
    tail = history[-model.max_len :]
    window[model.max_len - len(tail) :] = tail
    parts = score_parts(model, window)
    weight: dict[int, float] = {}
    for position, index in enumerate(window.tolist()):
        if index > 0:
            weight[index] = weight.get(index, 0.0) + float(parts.attention[position])
    attended = max(weight, key=lambda i: (weight[i], i))
    additive = []
    for item in top:
        found = reasons(parts, int(item)) if model.projection is not None else []
        additive.append(found[0].item if found else None)
    return {
        "counterfactual": [
            found[0].item if (found := ours.reasons(c)) else None for c in range(len(top))
        ],
        "additive": additive,
        "attention": [attended] * len(top),
        "random": [int(rng.choice(ours.items)) for _ in top],
    }


def _judge(truth: Any, column: int, item: int | None) -> tuple[bool, bool, int, int]:
    """(is the best removal, lowers the score, rank without it, rank) of one shown reason."""
    rank = int(truth.ranks[column])
    if item is None:
        return False, False, 0, rank
    row = int(np.flatnonzero(truth.items == item)[0])
    drops = truth.drops[:, column]
    best = bool(drops[row] >= drops.max() and drops.max() > 0)
    return best, bool(drops[row] > 0), int(truth.ranks_without[row, column]), rank


def _rates(rows: list[tuple[bool, bool, int, int]], pairs: int) -> dict[str, float]:
    judged = [r for r in rows if r[2] > 0]  # pairs with a shown reason
    if not judged:
        return {"shown": 0.0}
    return {
        "shown": len(judged) / pairs,
        "is_best": float(np.mean([r[0] for r in judged])),
        "lowers": float(np.mean([r[1] for r in judged])),
        "rank": float(np.mean([r[3] for r in judged])),
        "rank_without": float(np.mean([r[2] for r in judged])),
    }


def explanations_markdown(entries: dict[str, Any]) -> str:
    """The BENCHMARKS.md section of the `explanations` suite (one table row per run x method)."""
    lines = [
        "## Are the explanations true? (faithfulness)",
        "",
        "`python -m benchmarks --suite explanations`: random test users x their top 10; for "
        "each pair the method's first reason is judged by the SavedModel itself (the history, "
        "and the history without each item of the model's window, scored through `rerank`). "
        "(a) the reason is the item whose removal lowers the score most; (b) removing it lowers "
        "the score; (c) the mean rank the recommendation falls to without it (from the mean "
        "rank beside it). Rates are over the pairs that show a reason.",
        "",
        "| run (variant) | users | method | shown | (a) is the best removal | (b) lowers the "
        "score | (c) rank -> rank without |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in entries.items():
        for method, rates in entry["methods"].items():
            cells = (
                [
                    f"{rates['is_best']:.1%}",
                    f"{rates['lowers']:.1%}",
                    f"{rates['rank']:.1f} -> {rates['rank_without']:.1f}",
                ]
                if rates["shown"]
                else ["-", "-", "-"]
            )
            lines.append(
                f"| {name} ({entry['variant']}) | {entry['users']} | {method} | "
                f"{rates['shown']:.0%} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines + _on_device_lines(entries)) + "\n"


def _on_device_lines(entries: dict[str, Any]) -> list[str]:
    """The on-device latency table under the faithfulness table (runs measured only)."""
    measured = {
        name: entry
        for name, entry in entries.items()
        if entry.get("on_device_explain_ms_p50") is not None
    }
    if not measured:
        return []
    lines = [
        "",
        "The counterfactual reasons computed on device (`on_device` above): one call of the "
        "run's `tflite/<model>_explain_float32.tflite` (`export/explain_tflite.py`: the history, "
        "then the history without each of its likely reasons, the 6 most recent distinct items "
        "and the most attended others, 16 in all, scored on the candidates in one graph), "
        "median of 200 calls after 20 warm-up calls, LiteRT, 1 thread, for a test user's "
        "history of the length given and its top 10. The file cuts its window to the history's "
        "length at run time, so a full window is its slowest case.",
        "",
        "| run (variant) | history items | on-device explain, p50 (LiteRT, 1 thread) |",
        "|---|---|---|",
    ]
    for name, entry in measured.items():
        for row, (latency, items) in enumerate(ON_DEVICE):
            if entry.get(latency) is None:
                continue
            window = " (a full window)" if row else ""
            lines.append(
                f"| {name} ({entry['variant']}) | {entry[items]}{window} | "
                f"{entry[latency]:.2f} ms |"
            )
    return lines

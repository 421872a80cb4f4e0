"""Load a run once, then recommend for one history or many: the Python API behind `recommend`.

`load(run_dir)` reads the run's catalog and one exported artifact (the latest SavedModel
version, or a `.tflite` file in LiteRT), and the `Recommender` it returns answers any number of
calls without loading anything again:

- `recommend(history, k)`: the top `k` for one history of raw item ids (oldest first) or of
  titles, each with its id, title, score and the history items it is explained by ("because
  you watched", `attnrec_tf.explain`); the history's own items are never recommended;
- `recommend_batch(histories, k)`: the top `k` of many histories, batched through the artifact
  (no explanations, for throughput);
- `document(history, k)`: the JSON document `python -m attnrec_tf.recommend --json` prints.

Example:

```python
import attnrec_tf

recommender = attnrec_tf.load("runs/latest")
for item in recommender.recommend(["Matrix, The (1999)", "Alien (1979)"], k=5):
    print(item["title"], item["score"], [b["title"] for b in item["because"]])
recommender.recommend_batch([[1193, 661], [914, 3408, 2355]], k=10)
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.cli import DEFAULT_MODEL_NAME, check_top_k, existing_run_dir, quiet_tensorflow
from attnrec_tf.errors import ConfigError, DataError

RUNTIMES = ("saved_model", "tflite")
REASONS = 3
"""History items listed under each recommendation's `because`."""
EXPLANATIONS = ("counterfactual", "additive")
"""How `because` is found (see `Recommender`)."""


@dataclass(frozen=True)
class Catalog:
    """The run's items: vocabulary, records from items.json, and title lookup."""

    vocabulary: Any
    records: list[dict[str, Any]]

    def title(self, index: int) -> str:
        return str(self.records[index - 1]["title"])

    def raw_id(self, index: int) -> Any:
        raw = self.vocabulary.raw_ids[index - 1]
        return raw.item() if hasattr(raw, "item") else raw


def load_catalog(output: Any) -> Catalog:
    """Reads vocabulary.json and items.json of a run (user errors name the missing file)."""
    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.run_dir import load_items

    vocabulary = Vocabulary.load(output.require(output.vocabulary))
    records = load_items(output.require(output.items))
    if len(records) != vocabulary.num_items:
        raise DataError(
            f"{output.items}: {len(records)} items, but vocabulary.json has "
            f"{vocabulary.num_items}; were they written by the same run?"
        )
    return Catalog(vocabulary, records)


def history_from_titles(catalog: Catalog, titles: list[str], name: str = "--history") -> list[int]:
    """Vocabulary indices of typed titles; raises `ConfigError` naming the first bad one."""
    from attnrec_tf.titles import TitleIndex, describe_failure

    index = TitleIndex((r["index"], r["title"]) for r in catalog.records)
    found = []
    for title in titles:
        match = index.match(title)
        if match.index is None:
            message = describe_failure(match, lambda i: f"id {catalog.raw_id(i)}")
            raise ConfigError(f"{name}: {message}")
        found.append(match.index)
    return found


def history_from_ids(catalog: Catalog, ids: list[str], name: str = "--ids") -> list[int]:
    """Vocabulary indices of raw ids given as text (`name` is how messages call them)."""
    vocabulary = catalog.vocabulary
    if vocabulary.id_dtype == "int64":
        try:
            raw: list[Any] = [int(text) for text in ids]
        except ValueError:
            bad = next(t for t in ids if not t.lstrip("-").isdigit())
            raise ConfigError(f"{name}: {bad!r} is not an integer item id") from None
    else:
        raw = list(ids)
    indices = vocabulary.encode(np.asarray(raw)).tolist()
    unknown = [str(r) for r, i in zip(raw, indices, strict=True) if i == 0]
    if unknown:
        raise ConfigError(
            f"{name}: unknown item id(s) {', '.join(unknown)} (not in vocabulary.json)"
        )
    return [int(i) for i in indices]


def history_from_user(output: Any, user: str) -> list[int]:
    """A user's full known history (training items, validation and test target)."""
    from attnrec_tf.run_dir import load_split

    split = load_split(output.require(output.split))
    rows = np.flatnonzero(np.asarray(split.users).astype(str) == str(user))
    if not len(rows):
        raise ConfigError(f"--user: no user {user!r} in {output.split}")
    row = int(rows[0])
    history = [*split.train[row].tolist(), split.valid_targets[row], split.test_targets[row]]
    return [int(i) for i in history]


class SavedModelRuntime:
    """The latest SavedModel version, called with raw ids."""

    def __init__(self, output: Any, model_name: str, catalog: Catalog) -> None:
        from attnrec_tf.export.saved_model import SavedModelClient, versions

        base = output.saved_model_base(model_name)
        found = versions(base)
        if not found:
            raise ConfigError(
                f"--runtime saved_model: no SavedModel version under {base}; export the run "
                f"first (python -m attnrec_tf.export --output-dir {output.root})"
            )
        self.path = base / str(found[-1])
        self.client = SavedModelClient(self.path, catalog.vocabulary)
        self.catalog = catalog

    def __call__(self, history: list[int], top_k: int) -> dict[str, np.ndarray]:
        batch = self.client.raw_batch([np.asarray(history)])
        out = self.client.recommend(batch)
        attention = out["attention"][0].astype(np.float64)
        exported_k = out["item_ids"].shape[1]
        if top_k <= exported_k:
            ids = self.catalog.vocabulary.encode(_plain(out["item_ids"][0][:top_k]))
            return {"item_ids": ids, "scores": out["scores"][0][:top_k], "attention": attention}
        scores = self.client.scores([np.asarray(history)])[0].astype(np.float64)  # (V,)
        scores[np.asarray(history)] = -np.inf
        order = np.argsort(-scores, kind="stable")[:top_k]
        return {"item_ids": order, "scores": scores[order], "attention": attention}

    def batch(self, histories: list[list[int]], top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(item indices (B, K), scores (B, K))` of many histories in one call."""
        arrays = [np.asarray(h) for h in histories]
        out = self.client.recommend(self.client.raw_batch(arrays))
        if top_k <= out["item_ids"].shape[1]:
            raw = out["item_ids"][:, :top_k]
            ids = self.catalog.vocabulary.encode(_plain(raw.ravel())).reshape(raw.shape)
            return ids.astype(np.int64), out["scores"][:, :top_k]
        scores = self.client.scores(arrays).astype(np.float64)  # (B, V), column 0 is -inf
        for row, history in enumerate(arrays):
            scores[row, history] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        return order, np.take_along_axis(scores, order, axis=1)


class TFLiteRuntime:
    """A `.tflite` of the run in the LiteRT interpreter (the last `history_length` items)."""

    def __init__(self, output: Any, model_name: str, kind: str) -> None:
        from attnrec_tf.export.litert import LiteRTRecommender
        from attnrec_tf.export.tflite import KINDS

        if kind not in KINDS:
            raise ConfigError(f"--kind: unknown TFLite kind {kind!r}; choose from {KINDS}")
        self.path = output.tflite(model_name, kind)
        if not self.path.is_file():
            raise ConfigError(
                f"--runtime tflite: {self.path} not found; export it first (python -m "
                f"attnrec_tf.export --output-dir {output.root} --tflite {kind})"
            )
        self.runner = LiteRTRecommender(self.path)

    def __call__(self, history: list[int], top_k: int) -> dict[str, np.ndarray]:
        out = self.runner(np.asarray(history))
        exported_k = len(out["item_ids"])
        if top_k > exported_k:
            raise ConfigError(
                f"--top-k {top_k}: {self.path.name} returns {exported_k} items; use a smaller "
                "--top-k or --runtime saved_model"
            )
        return {
            "item_ids": out["item_ids"][:top_k].astype(np.int64),
            "scores": out["scores"][:top_k],
            "attention": out["attention"].astype(np.float64),
        }

    def batch(self, histories: list[list[int]], top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(item indices (B, K), scores (B, K))`, one interpreter call per history."""
        outs = [self(history, top_k) for history in histories]
        return (
            np.stack([out["item_ids"] for out in outs]),
            np.stack([out["scores"] for out in outs]),
        )


def _plain(values: np.ndarray) -> np.ndarray:
    """String ids come back from TensorFlow as bytes."""
    if values.dtype == object:
        return np.asarray([v.decode() if isinstance(v, bytes) else v for v in values])
    return values


def explained_document(
    catalog: Catalog,
    history: list[int],
    window: np.ndarray,
    out: dict[str, np.ndarray],
    because: Callable[[int, int], dict[str, Any]],
    runtime: str,
    artifact: Path,
) -> dict[str, Any]:
    """The `--json` document: the history with its attention, each recommendation explained.

    Args:
        catalog: The run's items.
        history: Vocabulary indices, oldest first.
        window: `(max_len,)` the left-padded window the model saw.
        out: The runtime's `item_ids`, `scores`, `attention`.
        because: `(column, item) -> {"because": [...], ...}`: the explanation fields of the
            recommendation in that column (the method's).
        runtime: The runtime's name.
        artifact: The artifact's path.
    """
    attention = out["attention"]
    weight_of: dict[int, float] = {}
    for position, index in enumerate(window.tolist()):
        if index > 0:
            weight_of[index] = weight_of.get(index, 0.0) + float(attention[position])
    outside = max(len(history) - len(window), 0)
    described = [
        {
            "id": catalog.raw_id(index),
            "title": catalog.title(index),
            "attention": round(weight_of.get(index, 0.0), 6) if position >= outside else None,
        }
        for position, index in enumerate(history)
    ]
    recommendations = [
        {
            "rank": rank,
            "id": catalog.raw_id(int(item)),
            "title": catalog.title(int(item)),
            "score": round(float(score), 6),
            **because(rank - 1, int(item)),
        }
        for rank, (item, score) in enumerate(zip(out["item_ids"], out["scores"], strict=True), 1)
    ]
    return {
        "runtime": runtime,
        "artifact": str(artifact),
        "history": described,
        "recommendations": recommendations,
    }


class Recommender:
    """A trained, exported run loaded once (see the module docstring; `load` makes one).

    Args:
        run_dir: A finished, exported run folder.
        runtime: `saved_model` (default) or `tflite`.
        kind: The TFLite kind for `runtime="tflite"` (`export.tflite.KINDS`).
        model_name: The exported model name.
        explanation: How `because` is found: `counterfactual` (default: the history items whose
            removal lowers the recommendation's score most, `attnrec_tf.counterfactual`) or
            `additive` (the largest terms of the exact split `c_ij = a_i (p_i . e_j)`,
            `attnrec_tf.explain`).

    Raises:
        AttnRecError: An unknown runtime, a missing folder or catalog; an unknown kind or a
            missing export when it is first used.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        runtime: str = "saved_model",
        kind: str = "float32",
        model_name: str = DEFAULT_MODEL_NAME,
        explanation: str = "counterfactual",
    ) -> None:
        quiet_tensorflow()
        if runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {RUNTIMES}, got {runtime!r}")
        self.explanation = self._checked_method(explanation)
        self._score_fn: Any = None
        self.output = existing_run_dir(Path(run_dir))
        self.catalog = load_catalog(self.output)
        self.runtime, self.kind, self.model_name = runtime, kind, model_name
        self._engine: SavedModelRuntime | TFLiteRuntime | None = None
        self._model: Any = None

    @property
    def engine(self) -> SavedModelRuntime | TFLiteRuntime:
        """The artifact's runtime (loaded on first use).

        Raises:
            ConfigError: The run has no such export.
        """
        if self._engine is None:
            if self.runtime == "saved_model":
                self._engine = SavedModelRuntime(self.output, self.model_name, self.catalog)
            else:
                self._engine = TFLiteRuntime(self.output, self.model_name, self.kind)
        return self._engine

    @property
    def artifact(self) -> Path:
        """The SavedModel version folder or the `.tflite` file in use."""
        return Path(self.engine.path)

    def indices(self, history: Sequence[Any]) -> list[int]:
        """Vocabulary indices of a history of raw ids, or else of titles.

        Raises:
            ConfigError: An empty history, an unknown id or title (named).
        """
        texts = [str(value) for value in history]
        if not texts:
            raise ConfigError("history: it is empty")
        try:
            return history_from_ids(self.catalog, texts, name="history")
        except ConfigError as not_ids:
            if all(isinstance(v, int | np.integer) for v in history):
                raise not_ids from None
            return history_from_titles(self.catalog, texts, name="history")

    def recommend(self, history: Sequence[Any], k: int = 10) -> list[dict[str, Any]]:
        """The top `k` for one history, explained: `rank`, `id`, `title`, `score`, `because`."""
        return self.document(history, k)["recommendations"]

    def document(self, history: Sequence[Any], k: int = 10) -> dict[str, Any]:
        """The `--json` document of `python -m attnrec_tf.recommend` for one history."""
        return self.explain(self.indices(history), k)

    def explain(self, indices: list[int], k: int, method: str | None = None) -> dict[str, Any]:
        """`document` for a history of vocabulary indices.

        Args:
            indices: The history, oldest first.
            k: How many recommendations.
            method: `counterfactual` or `additive` (`EXPLANATIONS`); None = this
                Recommender's `explanation`.
        """
        method = self._checked_method(method or self.explanation)
        self._check_k(k, [indices])
        out = self.engine(indices, k)
        max_len = self.model.max_len
        window = np.zeros(max_len, np.int32)
        tail = np.asarray(indices[-max_len:], np.int32)
        window[max_len - len(tail) :] = tail
        if method == "counterfactual":
            because = self._removal_reasons(indices, out["item_ids"])
        else:
            because = self._additive_reasons(window, out["attention"])
        document = explained_document(
            self.catalog, indices, window, out, because, self.runtime, self.artifact
        )
        return {"explanation": method, **document}

    def _removal_reasons(
        self, indices: list[int], items: np.ndarray
    ) -> Callable[[int, int], dict[str, Any]]:
        """Each recommendation's counterfactual reasons (`attnrec_tf.counterfactual`)."""
        from attnrec_tf.counterfactual import counterfactuals
        from attnrec_tf.evaluate import keras_score_fn

        if self._score_fn is None:
            self._score_fn = keras_score_fn(self.model, self.model.max_len)
        found = counterfactuals(
            self._score_fn, indices, np.asarray(items, np.int64), max_len=self.model.max_len
        )

        def because(column: int, item: int) -> dict[str, Any]:
            return {
                "because": [
                    {
                        "id": self.catalog.raw_id(reason.item),
                        "title": self.catalog.title(reason.item),
                        "score_drop": round(reason.score_drop, 6),
                        "rank_without": reason.rank_without,
                    }
                    for reason in found.reasons(column, top=REASONS)
                ]
            }

        return because

    def _additive_reasons(
        self, window: np.ndarray, attention: np.ndarray
    ) -> Callable[[int, int], dict[str, Any]]:
        """Each recommendation's largest additive terms and its three terms (`explain`)."""
        from attnrec_tf.explain import reasons, score_parts

        parts = score_parts(self.model, window)

        def because(column: int, item: int) -> dict[str, Any]:
            terms = parts.terms(item, attention)
            return {
                "because": [
                    {
                        "id": self.catalog.raw_id(r.item),
                        "title": self.catalog.title(r.item),
                        "attention": round(r.attention, 6),
                        "similarity": round(r.contribution / r.attention, 6),
                        "contribution": round(r.contribution, 6),
                    }
                    for r in reasons(parts, item, attention, top=REASONS)
                ],
                "terms": {name: round(value, 6) for name, value in terms.items()},
            }

        return because

    def recommend_batch(
        self, histories: Sequence[Sequence[Any]], k: int = 10
    ) -> list[list[dict[str, Any]]]:
        """The top `k` of many histories (raw ids or titles): `id`, `title`, `score` each."""
        ids, scores = self.recommend_indices([self.indices(h) for h in histories], k)
        return [
            [
                {"id": self.catalog.raw_id(int(i)), "title": self.catalog.title(int(i)),
                 "score": float(s)}
                for i, s in zip(row_ids, row_scores, strict=True)
            ]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]  # fmt: skip

    def recommend_indices(
        self, histories: list[list[int]], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(item indices (B, k), scores (B, k))` for histories of vocabulary indices."""
        self._check_k(k, histories)
        if not histories:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return self.engine.batch(histories, k)

    @property
    def model(self) -> Any:
        """The run's Keras model (loaded on first use, for the explanations)."""
        if self._model is None:
            from attnrec_tf.run_dir import load_model

            self._model = load_model(self.output.require(self.output.model))
        return self._model

    @staticmethod
    def _checked_method(method: str) -> str:
        if method not in EXPLANATIONS:
            raise ConfigError(f"--explain must be one of {', '.join(EXPLANATIONS)}, got {method!r}")
        return method

    def _check_k(self, k: int, histories: list[list[int]]) -> None:
        check_top_k(k)
        for history in histories:
            room = self.catalog.vocabulary.num_items - len(set(history))
            if k > room:
                raise ConfigError(
                    f"--top-k {k}: the catalog has only {room} items outside the history"
                )


def load(
    run_dir: str | Path,
    runtime: str = "saved_model",
    kind: str = "float32",
    model_name: str = DEFAULT_MODEL_NAME,
    explanation: str = "counterfactual",
) -> Recommender:
    """Loads an exported run once for many recommendations (`Recommender`'s arguments)."""
    return Recommender(
        run_dir, runtime=runtime, kind=kind, model_name=model_name, explanation=explanation
    )

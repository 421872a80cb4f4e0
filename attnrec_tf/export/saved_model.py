"""The TF Serving SavedModel: raw-id signatures, versioned atomic writes, reading it back.

Layout (TF Serving's "base path" is `<output-dir>/saved_model/<model_name>`):

```
<output-dir>/saved_model/
  <model_name>/1/               saved_model.pb, variables/, assets.extra/  (never overwritten)
  <model_name>/2/               the next export
  example_request.json          a REST body for :predict (first test user)
  example_response.json         what this export answered to it
```

A version is written into a hidden sibling (`.<model_name>-export-*`, which TF Serving ignores:
it only loads all-digit folders) and renamed into place, so a server watching the base path
never sees a half-written version. A new export takes the next number.

Signatures (histories are the catalog's raw item ids, oldest first, int64 or string as in
`vocabulary.json`, shape `[batch, any length]`):

- `serving_default`: `history` -> `item_ids` `[B, K]` raw ids, `scores` `[B, K]` float32,
  `attention` `[B, max_len]` float32. Items of the history are not recommended.
- `recommend_including_history`: the same, but history items may be recommended again.
- `rerank`: `history`, `candidates` `[B, C]` raw ids -> `scores` `[B, C]` float32 (history items
  are not excluded; the caller chose the candidates).
- `explain`: `history`, `candidates` `[B, C]` raw ids -> for each of the last `max_len` history
  items (`removed` `[B, max_len]` raw ids, padding where the window is shorter): `score_drops`
  `[B, max_len, C]` (a candidate's score with the whole history minus without that item) and
  `ranks_without` `[B, max_len, C]`, beside `scores` and `ranks` `[B, C]` (1-based among unseen
  items): the counterfactual explanation of `attnrec_tf.counterfactual`, in one call.
- `user_vector`: `history` -> `user_vector` `[B, D]` float32, the vector every item
  representation is scored against (score = `user_vector . e_j`). With the item representations
  in `assets.extra/item_embeddings.npz` (`retrieval.py`) it feeds an approximate-nearest-neighbour
  index when the catalog is too large to score in full.

Each version also holds `assets.extra/tf_serving_warmup_requests` (`warmup.py`): one request per
signature, which TF Serving replays when it loads the version.

Padding and unknown ids: any id that is not in the vocabulary is padding; pad with `0` (integer
catalogs whose ids include 0 pad with `-1`) or `""` (string catalogs), on the left or the
right. Real ids are compacted to the right in the graph and the most recent `max_len` are kept.
An unknown candidate of `rerank` scores `LOWEST_SCORE` (the lowest float32, finite so that it
survives JSON), so it sorts last. `attention` is over the compacted window, left-padded.

Example:

```python
path, version = write_saved_model(model, vocabulary, Path("runs/x/saved_model/attnrec"), top_k=10)
serve = tf.saved_model.load(str(path)).signatures["serving_default"]
serve(history=tf.constant([[0, 0, 1193, 661, 914]], tf.int64))["item_ids"]
```
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.errors import ExportError

SIGNATURES = (
    "serving_default",
    "recommend_including_history",
    "rerank",
    "user_vector",
    "explain",
)
WITH_CANDIDATES = ("rerank", "explain")
"""The signatures that take `candidates` beside `history`."""
LOWEST_SCORE = float(np.finfo(np.float32).min)


def padding_value(vocabulary: Any) -> int | str:
    """The documented padding id: `0` (or `-1` when 0 is a real item id) or `""`."""
    if vocabulary.id_dtype == "string":
        return ""
    return -1 if bool(np.any(vocabulary.raw_ids == 0)) else 0


def build_archive(model: Any, vocabulary: Any, *, top_k: int) -> Any:
    """A `keras.export.ExportArchive` holding the model, the id table and the `SIGNATURES`.

    Args:
        model: The trained `AttentionRecommender`.
        vocabulary: Its `Vocabulary` (raw ids, `id_dtype`).
        top_k: K of the recommendation signatures.

    Returns:
        The archive, ready for `write_out`.
    """
    import keras
    import tensorflow as tf

    from attnrec_tf.export import serving

    if not 0 < top_k <= vocabulary.num_items:
        raise ExportError(
            f"--top-k must be in 1..{vocabulary.num_items} (the catalog size), got {top_k}"
        )
    if vocabulary.size != model.vocab_size:
        raise ExportError(
            f"the vocabulary has {vocabulary.size} indices but the model expects "
            f"{model.vocab_size}; were they written by the same run?"
        )
    id_dtype = tf.string if vocabulary.id_dtype == "string" else tf.int64
    keys = tf.constant(vocabulary.raw_ids, id_dtype)  # from the array, not a Python list
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.range(1, vocabulary.size, dtype=tf.int64)),
        default_value=0,
    )
    # Creating the table eagerly leaves `None` in the global graph's table-initializer
    # collection, and every later TFLite conversion in the process then logs a warning.
    initializers = tf.compat.v1.get_collection_ref(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS)
    initializers[:] = [op for op in initializers if op is not None]
    raw_by_index = tf.constant(vocabulary.decode(np.arange(vocabulary.size)), id_dtype)

    def lookup(raw: tf.Tensor) -> tf.Tensor:
        return tf.cast(table.lookup(raw), tf.int32)  # unknown -> 0 (padding)

    def recommend(history: tf.Tensor, exclude_history: bool) -> dict[str, tf.Tensor]:
        out = serving.recommend(
            model, lookup(history), top_k=top_k, exclude_history=exclude_history
        )
        out["item_ids"] = tf.gather(raw_by_index, out["item_ids"])  # (B, K) raw ids
        return out

    def serving_default(history: tf.Tensor) -> dict[str, tf.Tensor]:
        return recommend(history, exclude_history=True)

    def recommend_including_history(history: tf.Tensor) -> dict[str, tf.Tensor]:
        return recommend(history, exclude_history=False)

    def rerank(history: tf.Tensor, candidates: tf.Tensor) -> dict[str, tf.Tensor]:
        scores = serving.window_scores(model, lookup(history))  # (B, V)
        wanted = lookup(candidates)  # (B, C)
        picked = tf.gather(scores, wanted, batch_dims=1)  # (B, C)
        return {"scores": tf.where(wanted > 0, picked, tf.fill(tf.shape(picked), LOWEST_SCORE))}

    def user_vector(history: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"user_vector": serving.user_vectors(model, lookup(history))}

    def explain(history: tf.Tensor, candidates: tf.Tensor) -> dict[str, tf.Tensor]:
        out = serving.explain_removals(model, lookup(history), lookup(candidates))
        out["removed"] = tf.gather(raw_by_index, out["removed"])  # padding -> padding id
        return out

    history_spec = tf.TensorSpec([None, None], id_dtype, name="history")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)
    archive.add_endpoint("serving_default", serving_default, input_signature=[history_spec])
    archive.add_endpoint(
        "recommend_including_history", recommend_including_history, input_signature=[history_spec]
    )
    archive.add_endpoint(
        "rerank",
        rerank,
        input_signature=[history_spec, tf.TensorSpec([None, None], id_dtype, name="candidates")],
    )
    archive.add_endpoint("user_vector", user_vector, input_signature=[history_spec])
    candidates_spec = tf.TensorSpec([None, None], id_dtype, name="candidates")
    archive.add_endpoint("explain", explain, input_signature=[history_spec, candidates_spec])
    return archive


def versions(base: Path) -> list[int]:
    """The version numbers under a TF Serving base path (all-digit folder names), sorted."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def write_saved_model(model: Any, vocabulary: Any, base: Path, *, top_k: int) -> tuple[Path, int]:
    """Writes the next version under `base` atomically.

    Args:
        model: The trained `AttentionRecommender`.
        vocabulary: Its `Vocabulary`.
        base: TF Serving base path, `<output-dir>/saved_model/<model_name>`.
        top_k: K of the recommendation signatures.

    The version holds the graph with its `SIGNATURES`, the TF Serving warm-up requests and the
    item embeddings (`assets.extra/`), all renamed into place together.

    Returns:
        `(path, version)` of the new version folder.

    Raises:
        ExportError: The export failed (nothing is left under `base` then).
    """
    from attnrec_tf.export.retrieval import write_item_embeddings
    from attnrec_tf.export.warmup import write_warmup_requests

    base.mkdir(parents=True, exist_ok=True)
    archive = build_archive(model, vocabulary, top_k=top_k)
    # Not `atomic.staged_path`: it replaces an existing target, and a version must never be
    # overwritten. `os.rename` of a folder onto an existing, non-empty one fails instead.
    staging = Path(tempfile.mkdtemp(prefix=f".{base.name}-export-", dir=base))
    try:
        staged = staging / "version"
        archive.write_out(str(staged), verbose=False)
        write_warmup_requests(staged, base.name, warmup_requests(vocabulary, model.max_len, top_k))
        write_item_embeddings(staged, model, vocabulary)
        for _ in range(100):  # another exporter may take the same number meanwhile
            version = (versions(base) or [0])[-1] + 1
            final = base / str(version)
            try:
                os.rename(staged, final)
            except OSError:
                if final.exists():
                    continue
                raise
            return final, version
        raise ExportError(f"{base}: could not claim a new version number")
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001 - a failed export is a user-facing error
        raise ExportError(f"{base}: SavedModel export failed ({error})") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def warmup_requests(
    vocabulary: Any, max_len: int, top_k: int
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """One request per signature: a history of `max_len` catalog ids (fewer in a small catalog),
    and `top_k` candidates for those that take them (`WITH_CANDIDATES`)."""
    ids = vocabulary.raw_ids
    if vocabulary.id_dtype == "string":
        ids = np.asarray([str(i).encode() for i in ids], dtype=object)
    history = ids[None, : min(max_len, len(ids))]
    candidates = ids[None, :top_k]
    return [
        (name, {"history": history, "candidates": candidates})
        if name in WITH_CANDIDATES
        else (name, {"history": history})
        for name in SIGNATURES
    ]


def _pad_raw(histories: Sequence[np.ndarray], padding: int | str, id_dtype: str) -> np.ndarray:
    """Right-pads raw-id histories into a `(B, T)` array (the graph compacts them)."""
    width = max([1, *(len(h) for h in histories)])
    dtype = object if id_dtype == "string" else np.int64
    out = np.full((len(histories), width), padding, dtype=dtype)
    for row, history in enumerate(histories):
        out[row, : len(history)] = history
    return out


class SavedModelClient:
    """Calls an exported version in-process, with vocabulary-index or raw-id histories.

    Args:
        path: A version folder written by `write_saved_model`.
        vocabulary: The run's `Vocabulary` (to translate indices to raw ids and back).
    """

    def __init__(self, path: Path, vocabulary: Any) -> None:
        import tensorflow as tf

        self._tf = tf
        self.vocabulary = vocabulary
        self.padding = padding_value(vocabulary)
        self.loaded = tf.saved_model.load(str(path))
        self._dtype = tf.string if vocabulary.id_dtype == "string" else tf.int64
        self._all_items = tf.constant(vocabulary.raw_ids, self._dtype)[None, :]  # (1, V - 1)

    def raw_batch(self, histories: Sequence[np.ndarray]) -> Any:
        """Vocabulary-index histories -> a right-padded raw-id tensor `(B, T)`."""
        raw = [self.vocabulary.decode(np.asarray(h, np.int64)) for h in histories]
        batch = _pad_raw(raw, self.padding, self.vocabulary.id_dtype)
        return self._tf.constant(batch.tolist(), self._dtype)

    def recommend(self, history: Any, signature: str = "serving_default") -> dict[str, np.ndarray]:
        """Runs a recommendation signature on a raw-id tensor or nested list."""
        history = self._tf.constant(history, self._dtype)
        out = self.loaded.signatures[signature](history=history)
        return {name: value.numpy() for name, value in out.items()}

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """`(B, V)` catalog scores through `rerank` with every item as a candidate.

        Column 0 (padding) is `-inf`; this is the score function of the metric code.
        """
        history = self.raw_batch(histories)
        candidates = self._tf.tile(self._all_items, [len(histories), 1])  # (B, V - 1)
        out = self.loaded.signatures["rerank"](history=history, candidates=candidates)
        scores = out["scores"].numpy()  # (B, V - 1)
        return np.concatenate([np.full((len(histories), 1), -np.inf, np.float32), scores], 1)


def example_request(client: SavedModelClient, history: np.ndarray) -> dict[str, Any]:
    """A TF Serving REST `:predict` body (columnar `inputs` form) for one index history."""
    raw = client.vocabulary.decode(np.asarray(history, np.int64)).tolist()
    return {"signature_name": "serving_default", "inputs": {"history": [raw]}}


def example_response(client: SavedModelClient, request: dict[str, Any]) -> dict[str, Any]:
    """What TF Serving answers to `request` (columnar form: `{"outputs": {...}}`)."""
    out = client.recommend(request["inputs"]["history"], request["signature_name"])
    return {"outputs": {name: _json_value(out[name]) for name in sorted(out)}}


def _json_value(array: np.ndarray) -> Any:
    if array.dtype == object:
        return [[v.decode() if isinstance(v, bytes) else v for v in row] for row in array]
    if array.dtype.kind == "f":
        return np.round(array.astype(np.float64), 6).tolist()
    return array.tolist()

"""The item embeddings of a SavedModel version, for an approximate-nearest-neighbour index.

A catalog too large to score in full for every request is served in two stages: the
SavedModel's `user_vector` signature gives a history's `(D,)` vector `u`, and an inner-product
index (ScaNN, Faiss, ...) over the item representations returns the items of largest `u . e_j`,
which is the model's own score (`serving.user_vectors`). The representations are written beside
the graph that makes the user vectors, in the same version folder, so that the two always
belong to the same model:

    <version>/assets.extra/item_embeddings.npz    ids (N,) raw ids, embeddings (N, D) float32

The history's own items are not excluded by an index: filter them from its answer (ask it for
`K + len(history)` items), as `serving_default` does in the graph.

Example (Faiss, exact inner product):

```python
import faiss, numpy as np, tensorflow as tf
ids, embeddings = read_item_embeddings(version)
index = faiss.IndexFlatIP(embeddings.shape[1])
index.add(embeddings)
user = tf.saved_model.load(str(version)).signatures["user_vector"]
u = user(history=tf.constant([[1193, 661, 914]], tf.int64))["user_vector"].numpy()
scores, rows = index.search(u, 10)
ids[rows[0]]                      # the top 10, the history included
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ITEM_EMBEDDINGS_FILE = "assets.extra/item_embeddings.npz"
"""The file's path inside a SavedModel version folder."""


def write_item_embeddings(version: Path, model: Any, vocabulary: Any) -> Path:
    """Writes every item's representation with its raw id into a version folder.

    Args:
        version: The SavedModel version folder.
        model: The trained `AttentionRecommender`.
        vocabulary: Its `Vocabulary`; row `i` of the file is index `i + 1`.

    Returns:
        The file's path.
    """
    embeddings = np.asarray(model.item_representations(), np.float32)[1:]  # without padding
    ids = np.asarray(vocabulary.raw_ids)
    if vocabulary.id_dtype == "string":
        ids = ids.astype(str)  # fixed-width unicode: no pickle needed to read it back
    path = Path(version) / ITEM_EMBEDDINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=ids, embeddings=embeddings)  # into the staged version: atomic with it
    return path


def read_item_embeddings(version: Path) -> tuple[np.ndarray, np.ndarray]:
    """`(ids (N,), embeddings (N, D) float32)` of a version folder."""
    with np.load(Path(version) / ITEM_EMBEDDINGS_FILE, allow_pickle=False) as data:
        return data["ids"], data["embeddings"]

"""The run's TensorBoard logs beyond Keras's curves: the test metrics and the item projector.

Keras's `TensorBoard` callback writes the loss to `logs/train` and the validation metrics to
`logs/validation` (`epoch_ndcg@10`, ...). After training, `log_test_metrics` writes the test
metrics of the chosen model under the same tag names to `logs/test`, at the best epoch, so that
TensorBoard draws the test point on the validation chart. `write_projector` puts the item
representations (the vectors every user vector is scored against) into `logs/items/`, labelled
with their titles, for TensorBoard's embedding projector:

    tensorboard --logdir runs/latest/logs    # Projector tab: the items, by title

Example:

```python
log_test_metrics(output.logs, report["metrics"]["keras"], epoch=report["best_epoch"])
write_projector(output.logs, model, load_items(output.items))
```
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

TEST_METRICS = ("hr@10", "ndcg@10", "mrr")
PROJECTOR_FOLDER = "items"
PROJECTOR_TENSOR = "item_representations/.ATTRIBUTES/VARIABLE_VALUE"
"""The checkpoint key of the item matrix (`tf.train.Checkpoint` naming)."""
METADATA_COLUMNS = ("title", "id", "genres", "count")
PROJECTOR_MAX_ITEMS = 100_000
"""More items than this: the projector gets the most frequent ones (it is slow beyond)."""


def log_test_metrics(logs: Path, metrics: Mapping[str, float], *, epoch: int) -> None:
    """Writes `TEST_METRICS` of `metrics` to `logs/test` as `epoch_<name>` at `epoch`.

    Args:
        logs: The run's TensorBoard folder.
        metrics: The test metrics (`report["metrics"]["keras"]`).
        epoch: The 1-based epoch of the model they belong to (TensorBoard's step is
            `epoch - 1`, as Keras's callback writes it).
    """
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(Path(logs) / "test"))
    with writer.as_default():
        for name in TEST_METRICS:
            if name in metrics:
                tf.summary.scalar(f"epoch_{name}", float(metrics[name]), step=max(epoch - 1, 0))
    writer.flush()
    writer.close()


def write_projector(
    logs: Path, model: Any, items: list[dict[str, Any]], *, max_items: int = PROJECTOR_MAX_ITEMS
) -> Path:
    """Writes the item representations with their labels for TensorBoard's projector.

    The folder holds a checkpoint of the `(num_items, D)` matrix `model.item_representations()`
    without the padding row (row `i` is item index `i + 1`), `metadata.tsv` (a header, then
    `METADATA_COLUMNS` per item in the same order) and `projector_config.pbtxt`. A catalog of
    more than `max_items` keeps its `max_items` most frequent items (in index order).

    Args:
        logs: The run's TensorBoard folder.
        model: The trained `AttentionRecommender`.
        items: items.json's records (index 1..N, in order).
        max_items: The most items to write.

    Returns:
        The projector folder (`logs/items`).
    """
    import tensorflow as tf
    from tensorboard.plugins import projector

    folder = Path(logs) / PROJECTOR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(model.item_representations(), np.float32)[1:]
    if len(matrix) != len(items):
        raise ValueError(f"{len(matrix)} item vectors but {len(items)} item records")
    if len(items) > max_items:
        counts = np.array([item.get("count", 0) for item in items])
        keep = np.sort(np.argsort(-counts, kind="stable")[:max_items])
        matrix, items = matrix[keep], [items[i] for i in keep]
    (folder / "metadata.tsv").write_text(metadata_tsv(items), encoding="utf-8")
    checkpoint = tf.train.Checkpoint(item_representations=tf.Variable(matrix))
    checkpoint.save(str(folder / "items.ckpt"))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = PROJECTOR_TENSOR
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(str(folder), config)
    return folder


def metadata_tsv(items: list[dict[str, Any]]) -> str:
    """The projector's labels: a header line, then one tab-separated line per item.

    >>> print(metadata_tsv([{"id": 7, "title": "Heat\\t(1995)", "genres": ["Action"], "count": 3}]))
    title	id	genres	count
    Heat (1995)	7	Action	3
    <BLANKLINE>
    """
    lines = ["\t".join(METADATA_COLUMNS)]
    for item in items:
        genres = "|".join(item.get("genres", ()))
        cells = (item.get("title", ""), item.get("id", ""), genres, item.get("count", 0))
        lines.append("\t".join(" ".join(str(cell).split()) for cell in cells))
    return "\n".join(lines) + "\n"

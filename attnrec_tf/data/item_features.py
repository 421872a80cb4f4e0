"""Multi-hot item feature matrix aligned with the vocabulary (e.g. MovieLens genres).

Row i describes the item with vocabulary index i; row 0 (padding) is all zeros. A column is one
value of one categorical feature, named "feature=value" (e.g. "genres=Comedy"). Only values held
by at least one vocabulary item get a column; columns are sorted by feature (in the order asked),
then by value.

Example:
    >>> from attnrec_tf.data.loaded import ItemMetadata
    >>> from attnrec_tf.data.vocabulary import Vocabulary
    >>> meta = ItemMetadata(features={"genres": {10: ("Drama",), 20: ("Comedy", "Drama")}})
    >>> matrix, names = item_feature_matrix(Vocabulary([20, 10]), meta)
    >>> names
    ['genres=Comedy', 'genres=Drama']
    >>> matrix.tolist()
    [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnrec_tf.data.loaded import ItemMetadata
from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import ConfigError


def item_feature_matrix(
    vocab: Vocabulary, items: ItemMetadata, names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Builds the multi-hot matrix of categorical item features.

    Args:
        vocab: Vocabulary. Fixes the rows: row i is the item with index i.
        items: ItemMetadata. Holds `features[name][raw_id] -> tuple of values`.
        names: Sequence[str] | None. The features to use; None uses all, sorted by name.
            Defaults to `None`.

    Returns:
        (matrix, column_names): float32 of shape (vocab.size, num_values), and one
        "feature=value" name per column. No features gives shape (vocab.size, 0).

    Raises:
        ConfigError: A requested feature is not in `items.features`.
    """
    if names is None:
        names = sorted(items.features)
    missing = [name for name in names if name not in items.features]
    if missing:
        raise ConfigError(
            f"item feature {missing[0]!r} not in the data; available: "
            f"{', '.join(sorted(items.features)) or 'none'}"
        )
    raw_ids = vocab.raw_ids.tolist()
    rows: list[int] = []
    cols: list[int] = []
    column_names: list[str] = []
    for name in names:
        per_item = items.features[name]
        values_of_row = [(i, per_item.get(raw, ())) for i, raw in enumerate(raw_ids, start=1)]
        distinct = sorted({v for _, values in values_of_row for v in values})
        column_of = {v: len(column_names) + j for j, v in enumerate(distinct)}
        column_names.extend(f"{name}={v}" for v in distinct)
        for row, values in values_of_row:
            for v in values:
                rows.append(row)
                cols.append(column_of[v])
    matrix = np.zeros((vocab.size, len(column_names)), dtype=np.float32)
    matrix[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = 1.0
    return matrix, column_names

"""Every workaround of a Keras bug in this package, each one named, linked and version-guarded.

Each function works around one upstream bug and starts with `require_tested_keras`: on a Keras
outside `TESTED_KERAS` (the range `pyproject.toml` pins, `KERAS_REQUIREMENT`) it raises
`DependencyError` instead of patching code it was never run against. Nothing is installed on
import: `training.fit` calls each one where it is needed. `tests/test_keras_compat.py` reproduces
each bug on the unpatched path and fails once Keras fixes it. The bugs' details and upstream
status: docs/notes/export-training-serving.md.

| function | upstream bug | applied when |
| --- | --- | --- |
| `skip_symbolic_build` | keras-team/keras#20585 | multi-worker `fit` |
| `reduce_scalar_logs_across_workers` | tensorflow/tensorflow#72388 | multi-worker `fit` |
| `sum_duplicate_sparse_gradients` | none found (Adam squares repeated sparse rows) | replicas > 1 |

Example:

```python
from attnrec_tf.training.keras_compat import require_tested_keras

require_tested_keras("multi-worker training")  # on Keras 3.17.0 raises DependencyError:
# multi-worker training patches Keras internals tested on Keras 3.15.x; installed 3.17.0
# (pip install "keras>=3.15,<3.16")
```
"""

from __future__ import annotations

from typing import Any

from attnrec_tf.errors import DependencyError

TESTED_KERAS = ("3.15",)
"""`major.minor` releases of Keras the workarounds were tested with (any patch release of them)."""
KERAS_REQUIREMENT = "keras>=3.15,<3.16"
"""The pip requirement that installs a tested Keras (as in pyproject.toml)."""


def keras_version() -> str:
    """The installed Keras's version string, e.g. `3.15.1`."""
    import keras

    return str(keras.__version__)


def keras_minor(version: str | None = None) -> str:
    """`major.minor` of `version` (the installed Keras's by default).

    >>> keras_minor("3.15.1"), keras_minor("3.16.0.dev2026010103")
    ('3.15', '3.16')
    """
    return ".".join((version or keras_version()).split(".")[:2])


def require_tested_keras(what: str) -> None:
    """Raises unless the installed Keras is one `what` (a patch of Keras internals) was tested on.

    Args:
        what: The feature that patches Keras, as the message should name it.

    Raises:
        DependencyError: The installed Keras's `major.minor` is not in `TESTED_KERAS`.
    """
    version = keras_version()
    if keras_minor(version) in TESTED_KERAS:
        return
    tested = ", ".join(f"{minor}.x" for minor in TESTED_KERAS)
    raise DependencyError(
        f"{what} patches Keras internals tested on Keras {tested}; installed {version} "
        f'(pip install "{KERAS_REQUIREMENT}")'
    )


def skip_symbolic_build(model: Any) -> None:
    """Stops Keras's multi-worker `fit` from building `model` symbolically from its first batch.

    Keras 3.15's multi-worker `fit` builds the model from its first batch and fails reducing the
    batch structure (keras-team/keras#20585). Replaces this one model's private
    `_maybe_symbolic_build` with a no-op; the caller builds the model and its optimizer
    beforehand (`distribute.build_optimizer`).

    Args:
        model: A compiled Keras model whose variables and optimizer are built.

    Raises:
        DependencyError: The installed Keras is not one this was tested on.
    """
    require_tested_keras("multi-worker training")
    model._maybe_symbolic_build = lambda *args, **kwargs: None


def reduce_scalar_logs_across_workers() -> None:
    """Makes Keras 3's per-step log reduction work under `MultiWorkerMirroredStrategy`.

    Keras 3.15 reduces scalar logs with `axis=0` there and fails (tensorflow/tensorflow#72388).
    Rank-0 values are reduced with `axis=None`; everything else goes to Keras unchanged.
    Replaces the private `keras.src.backend.tensorflow.trainer.reduce_per_replica` once per
    process (a second call does nothing).

    Raises:
        DependencyError: The installed Keras is not one this was tested on.
    """
    require_tested_keras("multi-worker training")
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "_attnrec_patched", False):
        return

    def reduce_per_replica(values: Any, strategy: Any, reduction: str = "auto") -> Any:
        import keras

        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return original(values, strategy, reduction)

        def one(value: Any) -> Any:
            local = strategy.experimental_local_results(value)
            if local and getattr(local[0].shape, "rank", None) == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return keras.tree.map_structure(one, values)

    reduce_per_replica._attnrec_patched = True  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


def sum_duplicate_sparse_gradients(optimizer: Any) -> None:
    """Makes `optimizer` merge repeated rows of a sparse gradient before its update.

    Keras 3.15's Adam squares each slice of a `tf.IndexedSlices` gradient before summing
    repeated indices, so `v` gets `(1 - beta_2) * (g_1^2 + g_2^2)` instead of
    `(1 - beta_2) * (g_1 + g_2)^2`. Summing the rows per index first makes the update exact and
    changes nothing when indices are unique. Wraps this one optimizer's `update_step`.
    `training.fit` applies it only under several replicas (one device keeps Keras's update).

    Args:
        optimizer: A Keras optimizer.

    Raises:
        DependencyError: The installed Keras is not one this was tested on.

    Example:

    >>> import keras
    >>> optimizer = keras.optimizers.Adam()
    >>> sum_duplicate_sparse_gradients(optimizer)
    """
    require_tested_keras("training on several replicas")
    import tensorflow as tf

    original = optimizer.update_step

    def update_step(gradient: Any, variable: Any, learning_rate: Any) -> Any:
        if isinstance(gradient, tf.IndexedSlices):
            unique, position = tf.unique(gradient.indices)
            values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(unique)[0])
            gradient = tf.IndexedSlices(values, unique, gradient.dense_shape)
        return original(gradient, variable, learning_rate)

    optimizer.update_step = update_step

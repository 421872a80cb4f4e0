"""The Keras versions whose private internals this package patches, and the check before it does.

`attnrec_tf.training.distribute` works around two Keras 3 bugs of multi-worker training by
reaching into Keras internals (keras-team/keras#20585: `model._maybe_symbolic_build`;
tensorflow/tensorflow#72388: `keras.src.backend.tensorflow.trainer.reduce_per_replica`). Those
are not public API and may change in any release, so each patch first calls
`require_tested_keras`: on a Keras outside `TESTED_KERAS` it raises a clear error instead of
patching code it was never run against. `pyproject.toml` pins Keras to the same range
(`KERAS_REQUIREMENT`).

Example:

```python
from attnrec_tf.training.keras_compat import require_tested_keras

require_tested_keras("multi-worker training")  # on Keras 3.17.0 raises DependencyError:
# multi-worker training patches Keras internals tested on Keras 3.15.x; installed 3.17.0
# (pip install "keras>=3.15,<3.16")
```
"""

from __future__ import annotations

from attnrec_tf.errors import DependencyError

TESTED_KERAS = ("3.15",)
"""`major.minor` releases of Keras the patches were tested with (any patch release of them)."""
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

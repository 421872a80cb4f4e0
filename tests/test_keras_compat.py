"""The Keras version guard of the patches of Keras internals (`training.keras_compat`)."""

from __future__ import annotations

import keras
import pytest

from attnrec_tf.errors import AttnRecError, DependencyError
from attnrec_tf.training import keras_compat


def test_tested_keras_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras, "__version__", "3.15.9")
    keras_compat.require_tested_keras("multi-worker training")


@pytest.mark.parametrize("version", ["3.17.0", "3.14.2", "4.0.0", "3.16.0.dev2026010103"])
def test_untested_keras_is_a_clear_project_error(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(keras, "__version__", version)
    with pytest.raises(DependencyError) as raised:
        keras_compat.require_tested_keras("multi-worker training")
    assert isinstance(raised.value, AttnRecError)
    assert str(raised.value) == (
        "multi-worker training patches Keras internals tested on Keras 3.15.x; "
        f'installed {version} (pip install "keras>=3.15,<3.16")'
    )


def test_the_installed_keras_is_a_tested_one() -> None:
    """pyproject.toml pins Keras to `TESTED_KERAS`; a wider pin would fail here first."""
    assert keras_compat.keras_minor() in keras_compat.TESTED_KERAS


def test_each_patch_checks_the_version_before_patching(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    monkeypatch.setattr(keras, "__version__", "3.17.0")
    with pytest.raises(DependencyError, match="installed 3.17.0"):
        keras_compat.reduce_scalar_logs_across_workers()
    assert trainer.reduce_per_replica is original

    class Model:
        optimizer = None

    model = Model()
    with pytest.raises(DependencyError, match="installed 3.17.0"):
        keras_compat.skip_symbolic_build(model)
    assert not hasattr(model, "_maybe_symbolic_build")

    optimizer = keras.optimizers.Adam()
    update_step = optimizer.update_step
    with pytest.raises(DependencyError, match="installed 3.17.0"):
        keras_compat.sum_duplicate_sparse_gradients(optimizer)
    assert optimizer.update_step == update_step

"""The contract every attnrec_tf Keras layer keeps, as one helper both layer test files call.

`check_layer_contract(make_layer, x, mask)` checks, for a layer taking `(batch, length, dim)`
inputs and a `(batch, length)` mask (its first output when it returns several):

- the output shape of a concrete call equals `compute_output_shape`;
- a row that is all padding gives finite outputs;
- `get_config` -> `from_config` gives the same config, and the registered name serialises;
- a `.keras` file of a model around it reloads with `safe_mode=True` to the same outputs;
- one `fit` step has a finite loss and changes the layer's trainable weights.

The layer's own numbers (against hand-computed references) are the test files' business.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np


def _first(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _first_shape(shape: Any) -> tuple[Any, ...]:
    return tuple(shape[0] if shape and isinstance(shape[0], (tuple, list)) else shape)


def check_layer_contract(
    make_layer: Callable[[], keras.layers.Layer], x: np.ndarray, mask: np.ndarray, tmp_path: Path
) -> None:
    """Asserts the contract above; `x` is `(B, L, D)` float32, `mask` `(B, L)` bool."""
    layer = make_layer()
    out = np.asarray(_first(layer(x, mask=mask)))
    assert _first_shape(layer.compute_output_shape(x.shape)) == out.shape

    padded = np.asarray(_first(layer(x, mask=np.zeros_like(mask))))
    assert np.isfinite(padded).all()

    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"attnrec_tf>{type(layer).__name__}"
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config

    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, keras.layers.Dense(1)(_first(make_layer()(inputs))))
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "contract.keras")
    again = keras.saving.load_model(tmp_path / "contract.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)

    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    tested = model.layers[1]
    before = [np.array(w) for w in tested.trainable_weights]
    history = model.fit(x, np.ones(expected.shape), batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [np.array(w) for w in tested.trainable_weights]
    assert before and any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))

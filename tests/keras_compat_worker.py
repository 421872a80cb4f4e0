"""One worker of a two-worker `MultiWorkerMirroredStrategy` `fit`, for tests/test_keras_compat.py.

`python -m tests.keras_compat_worker [CASE ...]`, with `TF_CONFIG` naming this process's worker,
creates the strategy once and, for each CASE in the order of `CASES` (all by default), builds a
tiny two-input model and its optimizer under it (as `training.fit` does), applies the case's
`keras_compat` workarounds, trains one step on a nested batch `((x1, x2), y)` and prints one line,
`RESULT <case> {json}`:

- `{"loss": <the logged loss>}` if `fit` ran;
- `{"error": "<exception type>", "message": "<str(exception)>", "keras_frames": [...]}` if it
  raised, `keras_frames` naming the functions of the traceback's frames in `keras/src`, outermost
  first (traceback filtering is off, so they are all there).

The cases share one process because a strategy is created once per process and two processes
cost about 5 s; each case fails before any collective op runs (`_maybe_symbolic_build` while
converting the batch, the train step while tracing), and the results are the same as with one
pair of processes per case. `reduce_scalar_logs_across_workers` patches Keras for the whole
process, so `patched` comes last.

The data (one global batch of 4 examples, 2 per worker) and the model (`y_pred = x1 + x2`, a
bias-free Dense of ones on the concatenated inputs) make the loss computable by hand:
`EXPECTED_LOSS`. Nothing happens on import (pytest imports this module for its doctests).
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

CASES = {
    "unpatched": (),
    "skip_symbolic_build": ("skip_symbolic_build",),
    "patched": ("skip_symbolic_build", "reduce_scalar_logs_across_workers"),
}
"""Each case's `keras_compat` workarounds, in the order the cases run."""
X1 = [[1.0], [2.0], [3.0], [4.0]]
X2 = [[0.0], [1.0], [0.0], [1.0]]
Y = [[0.0], [0.0], [0.0], [0.0]]
EXPECTED_LOSS = (1**2 + 3**2 + 3**2 + 5**2) / 4
"""Mean squared error of `y_pred = x1 + x2 = (1, 3, 3, 5)` against `y = 0`: 44 / 4 = 11.

With 2 examples per worker of equal weight, the mean over the workers of their own MSE is the
MSE of the global batch."""


def run(strategy: Any, patches: tuple[str, ...]) -> dict[str, Any]:
    """Trains one step under `strategy` with `patches` applied; the result line's dict."""
    import keras
    import numpy as np
    import tensorflow as tf

    from attnrec_tf.training import keras_compat

    x1, x2, y = (np.array(a, dtype="float32") for a in (X1, X2, Y))
    dataset = tf.data.Dataset.from_tensor_slices(((x1, x2), y)).batch(len(Y))
    with strategy.scope():
        first, second = keras.Input((1,)), keras.Input((1,))
        joined = keras.layers.Concatenate()([first, second])
        output = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(joined)
        model = keras.Model([first, second], output)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
        model.optimizer.build(model.trainable_variables)  # as distribute.build_optimizer
    if "reduce_scalar_logs_across_workers" in patches:
        keras_compat.reduce_scalar_logs_across_workers()
    if "skip_symbolic_build" in patches:
        keras_compat.skip_symbolic_build(model)
    try:
        history = model.fit(dataset, epochs=1, verbose=0)
    except Exception as error:  # the reproduction reports the upstream failure, whatever it is
        traceback.print_exc()
        frames = traceback.extract_tb(error.__traceback__)
        return {
            "error": type(error).__name__,
            "message": str(error),
            "keras_frames": [frame.name for frame in frames if "/keras/src/" in frame.filename],
        }
    return {"loss": float(history.history["loss"][-1])}


def main(argv: list[str]) -> int:
    unknown = sorted(set(argv) - set(CASES))
    if unknown:
        print(f"unknown cases {unknown}; choose from {list(CASES)}", file=sys.stderr)
        return 2
    import keras
    import tensorflow as tf

    keras.config.disable_traceback_filtering()  # keep Keras's frames in the traceback
    tf.debugging.disable_traceback_filtering()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    for case, patches in CASES.items():
        if case in argv or not argv:
            print(f"RESULT {case} " + json.dumps(run(strategy, patches)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The patches of Keras internals (`training.keras_compat`): their version guard, and for each
one the upstream bug reproduced on the unpatched path next to the patched path's right result.

The multi-worker reproductions share one pair of worker processes (9 s of CPU for the two:
9 s wall measured on 2 cores at load 2.3, 13 to 25 s at load 3.5); the Adam ones run in this
process, in well under a second.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import keras
import numpy as np
import pytest

from attnrec_tf.errors import AttnRecError, DependencyError
from attnrec_tf.training import keras_compat
from tests import keras_compat_worker
from tests.reliability.conftest import REPO, child_env
from tests.reliability.test_multi_worker import _free_ports


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


# --- Each workaround's upstream bug, reproduced on the unpatched path ---------------------------
#
# A test named `test_..._bug_is_still_there` runs Keras without the workaround and asserts the
# exact failure. The day it fails, Keras has fixed the bug: remove the workaround and the test.
# The multi-worker ones train two worker processes on 127.0.0.1 (`keras_compat_worker.py`):
# `_collective_all_reduce_multi_worker`, the condition of both bugs, needs
# `strategy.extended._in_multi_worker_mode()`, which is `num_workers > 1`, so a TF_CONFIG of one
# worker does not reach them. One pair of workers runs all three cases (`keras_compat_worker`).

WORKER_TIMEOUT = 120


@pytest.fixture(scope="module")
def two_workers() -> dict[str, list[dict[str, Any]]]:
    """Each case of `keras_compat_worker.CASES`: the `RESULT` of each of its two workers."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.keras_compat_worker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env=child_env(TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            )),
        )
        for index in range(2)
    ]  # fmt: skip
    try:
        outputs = [worker.communicate(timeout=WORKER_TIMEOUT) for worker in workers]
    except subprocess.TimeoutExpired:
        for worker in workers:
            worker.kill()
            worker.communicate()
        raise
    results: dict[str, list[dict[str, Any]]] = {case: [] for case in keras_compat_worker.CASES}
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
        lines = [line.split(" ", 2) for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert [case for _, case, _ in lines] == list(results), stdout + stderr[-3000:]
        for _, case, result in lines:
            results[case].append(json.loads(result))
    return results


def fixed_upstream(link: str, function: str, result: object) -> str:
    """The message of a reproduction that no longer reproduces its bug."""
    return (
        f"Keras fixed {link} (the unpatched path no longer shows the bug as on Keras 3.15.1: "
        f"{result}): remove keras_compat.{function} and this test"
    )


def test_symbolic_build_bug_is_still_there(two_workers: dict[str, list[dict[str, Any]]]) -> None:
    """If this fails, Keras fixed https://github.com/keras-team/keras/issues/20585: remove
    keras_compat.skip_symbolic_build and this test.

    Unpatched, Keras 3.15's multi-worker `fit` reduces its first batch with
    `strategy.reduce("MEAN", ((x1, x2), y), axis=None)` in `_maybe_symbolic_build`, which
    `MultiWorkerMirroredStrategy` cannot do for a structure. Observed on each worker:
    ValueError: Attempt to convert a value (PerReplica:{ 0: <tf.Tensor: shape=(2, 1), ...> })
    with an unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a
    Tensor.
    """
    for result in two_workers["unpatched"]:
        message = result.get("message", "")
        assert (
            result.get("error") == "ValueError"
            and message.startswith("Attempt to convert a value (PerReplica:{")
            and message.endswith(
                "with an unsupported type "
                "(<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor."
            )
            and result["keras_frames"][-2:] == ["fit", "_maybe_symbolic_build"]
        ), fixed_upstream(
            "https://github.com/keras-team/keras/issues/20585", "skip_symbolic_build", result
        )


def test_scalar_logs_bug_is_still_there(two_workers: dict[str, list[dict[str, Any]]]) -> None:
    """If this fails, Keras fixed https://github.com/tensorflow/tensorflow/issues/72388: remove
    keras_compat.reduce_scalar_logs_across_workers and this test.

    With only `skip_symbolic_build` applied, the first step's trace reaches
    `reduce_per_replica`, which under multi-worker reduces the rank-0 loss with
    `strategy.reduce("MEAN", loss, axis=0)`. Observed on each worker: ValueError: Invalid
    reduction dimension 0 for input with 0 dimensions. for '{{node Sum_2}} = Sum[...]' with
    input shapes: [], [] ...
    """
    for result in two_workers["skip_symbolic_build"]:
        message = result.get("message", "")
        assert (
            result.get("error") == "ValueError"
            and message.startswith("Invalid reduction dimension 0 for input with 0 dimensions.")
            and "with input shapes: [], []" in message
            and "reduce_per_replica" in result["keras_frames"]
        ), fixed_upstream(
            "https://github.com/tensorflow/tensorflow/issues/72388",
            "reduce_scalar_logs_across_workers",
            result,
        )


def test_both_multi_worker_patches_train_with_the_hand_computed_loss(
    two_workers: dict[str, list[dict[str, Any]]],
) -> None:
    """Both workarounds, as `training.fit` applies them: `fit` runs, and each worker logs the MSE
    of the global batch at the initial weights, (1 + 9 + 9 + 25) / 4 = 11."""
    assert keras_compat_worker.EXPECTED_LOSS == 11.0
    assert two_workers["patched"] == [{"loss": 11.0}, {"loss": 11.0}]


# Adam's first step on a 3x2 variable whose row 1 gets two slices, [1, 2] and [3, -4]; rows 0 and
# 2 get no gradient. With m = (1 - b1) g, v = (1 - b2) g^2 and alpha = lr sqrt(1 - b2) / (1 - b1),
# the update is alpha m / (sqrt(v) + eps). Summed first, g = [4, -2] and g^2 = [16, 4]: the update
# is about lr * sign(g), row 1 becomes about [2 - 0.1, 3 + 0.1]. Keras puts the sum of the squares
# in v instead, [1 + 9, 4 + 16] = [10, 20], and moves row 1 by lr * [4 / sqrt(10), -2 / sqrt(20)]
# = [0.1265, -0.0447].
LR, BETA_1, BETA_2, EPSILON = 0.1, 0.9, 0.999, 1e-7
START = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
SLICES, ROWS = [[1.0, 2.0], [3.0, -4.0]], [1, 1]
SUM = [1.0 + 3.0, 2.0 - 4.0]  # row 1's gradient: [4, -2]
SQUARE_OF_SUM = [4.0**2, (-2.0) ** 2]  # what v should get: [16, 4]
SUM_OF_SQUARES = [1.0**2 + 3.0**2, 2.0**2 + (-4.0) ** 2]  # what Keras's v gets: [10, 20]


def adam_first_step(start: float, gradient: float, squared: float) -> float:
    """An entry after Adam's first step by hand, with `gradient` in m and `squared` in v."""
    alpha = LR * math.sqrt(1 - BETA_2) / (1 - BETA_1)
    m, v = (1 - BETA_1) * gradient, (1 - BETA_2) * squared
    return start - alpha * m / (math.sqrt(v) + EPSILON)


def after_first_step(squares: list[float]) -> list[list[float]]:
    """START after Adam's first step by hand: row 1 with SUM in m and `squares` in v."""
    row = [adam_first_step(x, g, s) for x, g, s in zip(START[1], SUM, squares, strict=True)]
    return [START[0], row, START[2]]


SUMMED = after_first_step(SQUARE_OF_SUM)  # row 1: [1.9000001, 3.0999998]
SQUARES_SUMMED = after_first_step(SUM_OF_SQUARES)  # row 1: [1.8735090, 3.0447213]


def adam_step(gradient: Any, *, patched: bool) -> np.ndarray:
    """START after Keras's Adam applied `gradient` once (with `sum_duplicate_sparse_gradients`
    if `patched`)."""
    variable = keras.Variable(np.array(START, dtype="float32"))
    optimizer = keras.optimizers.Adam(
        learning_rate=LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON
    )
    if patched:
        keras_compat.sum_duplicate_sparse_gradients(optimizer)
    optimizer.apply_gradients([(gradient, variable)])
    return np.asarray(variable.numpy())


def sparse_gradient(rows: list[int] = ROWS) -> Any:
    import tensorflow as tf

    return tf.IndexedSlices(tf.constant(SLICES), tf.constant(rows), tf.constant([3, 2]))


def test_hand_computed_adam_references() -> None:
    """The references above, to within eps: lr * sign(g), and lr * g / sqrt(sum of squares)."""
    assert SUMMED[1] == pytest.approx([2 - 0.1, 3 + 0.1], abs=1e-6)
    assert SQUARES_SUMMED[1] == pytest.approx(
        [2 - 0.1 * 4 / math.sqrt(10), 3 + 0.1 * 2 / math.sqrt(20)], abs=1e-6
    )
    assert SQUARES_SUMMED[1] == pytest.approx([1.8735090, 3.0447213], abs=1e-7)


def test_adam_duplicate_sparse_rows_bug_is_still_there() -> None:
    """If this fails, Keras fixed Adam's update for repeated rows of a `tf.IndexedSlices`
    gradient (no upstream issue found; see keras_compat.sum_duplicate_sparse_gradients): remove
    keras_compat.sum_duplicate_sparse_gradients and this test.

    Observed: row 1 becomes [1.8735099, 3.0447211] (by hand with the squares summed: [1.8735090,
    3.0447213]), not the summed gradient's [1.9000008, 3.0999992] (by hand: [1.9000001,
    3.0999998]); Keras's Adam on the same gradient made dense gives the latter.
    """
    import tensorflow as tf

    unpatched = adam_step(sparse_gradient(), patched=False)
    dense = adam_step(tf.convert_to_tensor(sparse_gradient()), patched=False)  # sums the rows
    np.testing.assert_allclose(dense, SUMMED, atol=2e-6)
    assert not np.allclose(unpatched, dense, atol=1e-3), fixed_upstream(
        "Adam's update for repeated sparse rows (no upstream issue found)",
        "sum_duplicate_sparse_gradients",
        unpatched.tolist(),
    )
    np.testing.assert_allclose(unpatched, SQUARES_SUMMED, atol=2e-6)


def test_summed_duplicate_sparse_rows_give_the_dense_update() -> None:
    import tensorflow as tf

    patched = adam_step(sparse_gradient(), patched=True)
    np.testing.assert_allclose(patched, SUMMED, atol=2e-6)
    dense = adam_step(tf.convert_to_tensor(sparse_gradient()), patched=False)
    np.testing.assert_allclose(patched, dense, atol=1e-6)


def test_summing_duplicate_sparse_rows_changes_nothing_for_unique_rows() -> None:
    """Rows 2 and 0 get one slice each: patched, unpatched and by hand agree (|update| ~ lr)."""
    expected = [[0.0 - 0.1, 1.0 + 0.1], [2.0, 3.0], [4.0 - 0.1, 5.0 - 0.1]]
    unpatched = adam_step(sparse_gradient([2, 0]), patched=False)
    patched = adam_step(sparse_gradient([2, 0]), patched=True)
    np.testing.assert_allclose(unpatched, expected, atol=2e-6)
    np.testing.assert_array_equal(patched, unpatched)

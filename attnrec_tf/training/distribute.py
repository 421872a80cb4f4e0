"""Which `tf.distribute` strategy a training run uses, and which of its processes writes files.

* `TF_CONFIG` naming more than one task: `tf.distribute.MultiWorkerMirroredStrategy`; the chief
  (task `chief`, else `worker` 0) alone writes the run folder, and every worker resumes from the
  chief's state (`check_same_state` stops them all when they disagree).
* Several local GPUs: `tf.distribute.MirroredStrategy`.
* Otherwise the default strategy (one device).

The batch size is the global batch size. How to run several workers: docs/reliability.md.

Example:

>>> distribution = choose("none")
>>> distribution.mode, distribution.num_replicas, distribution.is_chief
('none', 1, True)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from attnrec_tf.errors import ConfigError

MODES = ("auto", "none", "mirrored", "multi-worker")


@dataclass(frozen=True)
class Distribution:
    """A strategy and this process's place in it.

    Attributes:
        strategy: The `tf.distribute.Strategy` to build and fit the model under.
        mode: `none`, `mirrored` or `multi-worker`.
        num_workers: Processes taking part (1 unless multi-worker).
        worker_index: This process's index among the workers, the chief first.
        is_chief: This process writes the run folder.
    """

    strategy: Any
    mode: str
    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True

    @property
    def num_replicas(self) -> int:
        """Replicas in sync (devices over all workers)."""
        return int(self.strategy.num_replicas_in_sync)

    def describe(self) -> dict[str, Any]:
        """The report entry: mode, workers, replicas."""
        return {
            "mode": self.mode,
            "num_workers": self.num_workers,
            "num_replicas": self.num_replicas,
        }


def tf_config() -> dict[str, Any] | None:
    """The parsed `TF_CONFIG` environment variable, or None when unset or empty.

    Raises:
        ConfigError: It is not valid JSON with a `cluster` and a `task`.
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {error}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ConfigError(
            'TF_CONFIG must hold {"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": i}}'
        )
    return config


def _place(config: dict[str, Any]) -> tuple[int, int, bool]:
    """(number of workers, this worker's index with the chief first, is chief) from TF_CONFIG."""
    cluster = config["cluster"]
    task = config["task"]
    kind, index = task.get("type"), int(task.get("index", 0))
    chiefs = len(cluster.get("chief", []))
    workers = len(cluster.get("worker", []))
    if kind not in ("chief", "worker"):
        raise ConfigError(f"TF_CONFIG task type {kind!r} is not supported; use 'chief' or 'worker'")
    if kind == "chief":
        return chiefs + workers, index, True
    return chiefs + workers, chiefs + index, chiefs == 0 and index == 0


def choose(mode: str = "auto", *, devices: list[str] | None = None) -> Distribution:
    """Creates the strategy for `mode` (call it before TensorFlow runs any op).

    Args:
        mode: `auto` (multi-worker with a multi-task TF_CONFIG, else mirrored with several GPUs,
            else none), `none`, `mirrored` or `multi-worker`.
        devices: Devices for `mirrored`; None uses every GPU, or every logical CPU device when
            there is no GPU (one, unless `tf.config.set_logical_device_configuration` split it).

    Returns:
        The Distribution.

    Raises:
        ConfigError: An unknown mode, or `multi-worker` without a usable TF_CONFIG.
    """
    if mode not in MODES:
        raise ConfigError(f"--distribute must be one of {', '.join(MODES)}, got {mode!r}")
    import tensorflow as tf

    config = tf_config()
    if mode == "auto":
        tasks = 0
        if config is not None:
            tasks = sum(len(v) for k, v in config["cluster"].items() if k in ("chief", "worker"))
        if tasks > 1:
            mode = "multi-worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            mode = "mirrored"
        else:
            mode = "none"
    if mode == "none":
        return Distribution(tf.distribute.get_strategy(), "none")
    if mode == "mirrored":
        if devices is None and not tf.config.list_physical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return Distribution(tf.distribute.MirroredStrategy(devices=devices), "mirrored")
    if config is None:
        raise ConfigError("--distribute multi-worker needs the TF_CONFIG environment variable")
    num_workers, index, chief = _place(config)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Distribution(strategy, "multi-worker", num_workers, index, chief)


def build_optimizer(model: Any, distribution: Distribution) -> None:
    """Builds `model`'s optimizer variables under the strategy, before `fit` would.

    Args:
        model: A compiled, built Keras model created under `distribution.strategy.scope()`.
        distribution: The Distribution.
    """
    with distribution.strategy.scope():
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)


def _replica_sum(distribution: Distribution, fn: Any, dtype: Any = None) -> Any:
    """Sum over all replicas of `fn(replica_id)` (an int64 vector, or of `dtype`), on every
    worker: a list of ints, or with `dtype` a numpy vector."""
    import tensorflow as tf

    strategy = distribution.strategy

    def per_replica() -> Any:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return fn(replica)

    @tf.function
    def reduce() -> Any:  # in a graph: collectives run eagerly are slow and warn
        return strategy.reduce("SUM", strategy.run(per_replica), axis=None)

    if dtype is not None:
        return reduce().numpy().ravel()
    return [int(v) for v in reduce().numpy().ravel()]


def broadcast_from_chief(distribution: Distribution, variables: list[Any]) -> None:
    """Gives every worker the chief's values of the float `variables` (no-op on one worker).

    The values travel as one flat float32 vector in a sum all-reduce to which only the chief
    contributes (collectives are what the strategy offers between workers; the run folder
    need not be shared).
    """
    if distribution.num_workers <= 1:
        return
    import numpy as np
    import tensorflow as tf

    chosen = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
    values = [np.asarray(v, np.float32) for v in chosen]
    flat = tf.constant(np.concatenate([value.ravel() for value in values]))
    summed = _chief_vector(distribution, flat, dtype=tf.float32)
    offset = 0
    for variable, value in zip(chosen, values, strict=True):
        part = np.asarray(summed[offset : offset + value.size], np.float32)
        variable.assign(part.reshape(value.shape).astype(np.dtype(variable.dtype)))
        offset += value.size


def chief_int(distribution: Distribution, value: int) -> int:
    """The chief's `value` on every worker (the same on one worker): a sum all-reduce to
    which only the chief's first replica contributes."""
    if distribution.num_workers <= 1:
        return int(value)
    import tensorflow as tf

    return _chief_vector(distribution, tf.constant([int(value)], tf.int64))[0]


def _chief_vector(distribution: Distribution, vector: Any, dtype: Any = None) -> Any:
    """The chief's `vector` on every worker: `_replica_sum` with only replica 0 (the chief's
    first) contributing; ints, or with `dtype` a numpy vector."""
    import tensorflow as tf

    def only_the_chief(replica: Any) -> Any:
        return tf.where(tf.equal(replica, 0), vector, tf.zeros_like(vector))

    return _replica_sum(distribution, only_the_chief, dtype=dtype)


def gather_worker_values(
    distribution: Distribution, mine: Any, positions: Any, total: int
) -> list[int]:
    """Every worker's non-negative ints `mine`, at its `positions` of a `(total,)` vector.

    The workers' positions must not overlap; the vector is the same on every worker.
    """
    import numpy as np
    import tensorflow as tf

    filled = np.zeros(total, np.int64)
    filled[np.asarray(positions)] = np.asarray(mine, np.int64) + 1  # 0 = another worker's
    vector = tf.constant(filled)
    per_worker = max(distribution.num_replicas // distribution.num_workers, 1)
    summed = _replica_sum(  # one replica of each worker adds its part
        distribution, lambda r: tf.where(tf.equal(r % per_worker, 0), vector, 0 * vector)
    )
    return [value - 1 for value in summed]


def check_same_state(distribution: Distribution, point: tuple[int, ...]) -> None:
    """Raises on every worker unless every worker loaded the chief's resume `point`.

    Args:
        distribution: The Distribution.
        point: What this worker loaded, as integers (e.g. `(has_state, epoch, batch, finished)`).

    Raises:
        ConfigError: A worker saw another state than the chief (no shared `--output-dir`, or
            `--no-resume` given to some workers only); all workers raise together.
    """
    if distribution.num_workers <= 1:
        return
    import tensorflow as tf

    mine = tf.constant(point, tf.int64)
    chief = _replica_sum(distribution, lambda r: tf.where(tf.equal(r, 0), mine, 0 * mine))
    other = tf.reshape(tf.cast(tf.reduce_any(tf.not_equal(mine, chief)), tf.int64), [1])
    differs = _replica_sum(distribution, lambda r: other)
    if differs[0]:
        raise ConfigError(
            f"worker {distribution.worker_index} sees another training state than the chief "
            f"(chief: {chief}, this worker: {list(point)}); put --output-dir on storage that "
            "every worker shares, and give every worker the same --resume/--no-resume"
        )


def barrier(distribution: Distribution) -> None:
    """Waits until every worker gets here (no-op on one worker).

    Non-chief workers wait here for the chief to finish writing, so that none of them exits
    while the others still run (TensorFlow's coordination service reports a worker that stops
    sending heartbeats as crashed).
    """
    if distribution.num_workers <= 1:
        return
    import tensorflow as tf

    _replica_sum(distribution, lambda r: tf.ones([1], tf.int64))

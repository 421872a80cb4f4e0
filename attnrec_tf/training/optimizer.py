"""The optimizer and its learning-rate schedule, from the config.

Example:

>>> from attnrec_tf.config import Config
>>> optimizer = make_optimizer(Config(lr_schedule="cosine"), steps_per_epoch=10)
>>> round(float(optimizer.learning_rate), 6)
0.0003
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from attnrec_tf.config import Config

SPARSE_LOSSES = ("sampled",)
"""Losses whose item-table gradient is sparse (the rows the step scored)."""


def learning_rate(
    config: Config, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """A constant rate, or a linear warm-up over the first epoch then cosine decay to 1%.

    The cosine ends at the last of `config.epochs`; with a `time_budget` it is a
    `BudgetCosineDecay`, whose end `callbacks.TimeBudget` moves to the step at which the
    budget will stop training, when that comes first.

    Args:
        config: `learning_rate`, `lr_schedule`, `epochs` and `time_budget` are used.
        steps_per_epoch: Batches per epoch.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    warmup = max(1, steps_per_epoch)
    kind = BudgetCosineDecay if config.time_budget > 0 else keras.optimizers.schedules.CosineDecay
    return kind(
        initial_learning_rate=config.learning_rate * 0.1,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(1, config.epochs * steps_per_epoch - warmup),
        alpha=0.01,
    )


@keras.saving.register_keras_serializable(package="attnrec_tf")
class BudgetCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Keras's `CosineDecay` with warm-up, whose decay steps can change while training.

    `CosineDecay` fixes `decay_steps` when it is made, but under a time budget the steps that
    fit are known only once epochs have been timed; truncating a longer cosine leaves the
    rate high at the end (budget-aware schedules: Li, Yumer & Ramanan, ICLR 2020). Here the
    end is a variable (`set_decay_steps`), read by the compiled train step. The rate at
    `step` is `CosineDecay`'s: from `initial_learning_rate` linearly to `warmup_target` over
    `warmup_steps`, then `warmup_target * (alpha + (1 - alpha) * (1 + cos(pi * p)) / 2)`
    with `p = min(1, (step - warmup_steps) / decay_steps)`.

    Args:
        initial_learning_rate: The rate at step 0.
        warmup_target: The rate at the end of the warm-up.
        warmup_steps: Steps of the linear warm-up.
        decay_steps: Steps of the cosine after the warm-up (at least 1), until changed.
        alpha: The final rate as a fraction of `warmup_target`.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        warmup_target: float,
        warmup_steps: int,
        decay_steps: int,
        alpha: float = 0.0,
    ) -> None:
        self.initial_learning_rate = float(initial_learning_rate)
        self.warmup_target = float(warmup_target)
        self.warmup_steps = int(warmup_steps)
        self.alpha = float(alpha)
        self.decay_steps = keras.Variable(
            float(max(1, decay_steps)), dtype="float32", trainable=False, name="decay_steps"
        )

    def set_decay_steps(self, steps: float) -> None:
        """Moves the end of the cosine to `steps` after the warm-up (at least 1)."""
        self.decay_steps.assign(max(1.0, float(steps)))

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        rise = (self.warmup_target - self.initial_learning_rate) / max(1, self.warmup_steps)
        warming = self.initial_learning_rate + rise * step
        progress = ops.clip((step - self.warmup_steps) / self.decay_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = self.warmup_target * (self.alpha + (1.0 - self.alpha) * cosine)
        return ops.where(step < self.warmup_steps, warming, decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
            "decay_steps": int(round(float(self.decay_steps.numpy()))),
            "alpha": self.alpha,
        }


def make_optimizer(
    config: Config,
    steps_per_epoch: int,
    rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
) -> keras.optimizers.Optimizer:
    """Adam, or AdamW when `weight_decay` > 0, with the configured schedule.

    With the sampled loss (and no weight decay) it is `FusedAdam`, or with `lazy_adam`
    `LazyAdam`; the full softmax keeps Keras's Adam.

    Args:
        config: The run's config.
        steps_per_epoch: Batches per epoch (for the schedule).
        rate: The rate or schedule to use, when the caller keeps hold of it (a
            `BudgetCosineDecay` that a callback moves); None = `learning_rate(config, ...)`.
    """
    if rate is None:
        rate = learning_rate(config, steps_per_epoch)
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    if config.loss in SPARSE_LOSSES:
        return LazyAdam(rate) if config.lazy_adam else FusedAdam(rate)
    return keras.optimizers.Adam(rate)


@keras.saving.register_keras_serializable(package="attnrec_tf")
class FusedAdam(keras.optimizers.Adam):
    """Keras's Adam, each variable updated by TensorFlow's fused `ApplyAdam` kernel.

    The same update as `keras.optimizers.Adam` (`m <- b1 m + (1 - b1) g`,
    `v <- b2 v + (1 - b2) g^2`, `w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)`),
    in one pass over `w`, `m` and `v`. A sparse gradient is made dense first, its duplicate rows
    summed, so `g` is the row's whole gradient. Without `amsgrad`; TensorFlow backend only.
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=ops.power(ops.cast(self.beta_1, dtype), step),
            beta2_power=ops.power(ops.cast(self.beta_2, dtype), step),
            lr=ops.cast(learning_rate, dtype),
            beta1=ops.cast(self.beta_1, dtype),
            beta2=ops.cast(self.beta_2, dtype),
            epsilon=ops.cast(self.epsilon, dtype),
            grad=_dense(gradient, variable),
        )
        return None


def _dense(gradient: Any, variable: Any) -> tf.Tensor:
    """`gradient` as a dense tensor of `variable`'s shape (a sparse one's rows summed in)."""
    if isinstance(gradient, tf.IndexedSlices):
        rows = tf.shape(variable)[0]
        values = tf.cast(gradient.values, variable.dtype)
        return tf.math.unsorted_segment_sum(values, gradient.indices, rows)
    return tf.cast(gradient, variable.dtype)


def _rows(variable: Any, rows: tf.Tensor) -> tf.Tensor:
    """`variable[rows]`, gathered from the resource itself (reading the whole variable first
    would copy the table when a scatter then writes to it)."""
    return tf.raw_ops.ResourceGather(resource=_handle(variable), indices=rows, dtype=variable.dtype)


def _handle(variable: Any) -> Any:
    """The resource handle of a Keras (or tf) variable, for a raw `ResourceApply*` op."""
    return variable.handle


@keras.saving.register_keras_serializable(package="attnrec_tf")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the rows of a sparse gradient (TF Addons' `LazyAdam`).

    For a `tf.IndexedSlices` gradient (an embedding lookup's), the moments and weights of the
    rows in it are updated with Adam's rule (duplicate rows summed first); other rows keep
    their moments and weights until a step sees them. Dense gradients take Adam's update.
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        rows, where = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            ops.cast(gradient.values, variable.dtype), where, tf.shape(rows)[0]
        )
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), step)
        lr = ops.cast(learning_rate, variable.dtype)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = self.beta_1 * _rows(m, rows) + (1 - self.beta_1) * values
        v_rows = self.beta_2 * _rows(v, rows) + (1 - self.beta_2) * ops.square(values)
        change = m_rows * alpha / (ops.sqrt(v_rows) + self.epsilon)
        # Scatter into the rows only: Keras's `assign` of an IndexedSlices densifies it (a write
        # of the whole table, whose cost grew with the catalog).
        tf.raw_ops.ResourceScatterUpdate(resource=_handle(m), indices=rows, updates=m_rows)
        tf.raw_ops.ResourceScatterUpdate(resource=_handle(v), indices=rows, updates=v_rows)
        tf.raw_ops.ResourceScatterSub(resource=_handle(variable), indices=rows, updates=change)
        return None

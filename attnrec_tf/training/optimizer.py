"""The optimizer and its learning-rate schedule, from the config.

Example:

>>> from attnrec_tf.config import Config
>>> optimizer = make_optimizer(Config(lr_schedule="cosine"), steps_per_epoch=10)
>>> round(float(optimizer.learning_rate), 6)
0.0003
"""

from __future__ import annotations

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

    Args:
        config: `learning_rate`, `lr_schedule` and `epochs` are used.
        steps_per_epoch: Batches per epoch.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    warmup = max(1, steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(1, config.epochs * steps_per_epoch - warmup),
        alpha=0.01,
    )


def make_optimizer(config: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam, or AdamW when `weight_decay` > 0, with the configured schedule.

    With `lazy_adam` (and the sampled loss, no weight decay) it is `LazyAdam`: a step then
    touches only the item rows it saw instead of the whole table.
    """
    rate = learning_rate(config, steps_per_epoch)
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    if config.lazy_adam and config.loss in SPARSE_LOSSES:
        return LazyAdam(rate)
    return keras.optimizers.Adam(rate)


@keras.saving.register_keras_serializable(package="attnrec_tf")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the rows of a sparse gradient (TF Addons' `LazyAdam`).

    For a `tf.IndexedSlices` gradient (an embedding lookup's), the moments and weights of the
    rows in it are updated with Adam's rule (duplicate rows summed first); other rows keep
    their moments and weights until a step sees them. Dense gradients take Adam's update.
    The cost of a step is then proportional to the rows it touched, not to the table.
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
        m_rows = self.beta_1 * ops.take(m, rows, axis=0) + (1 - self.beta_1) * values
        v_rows = self.beta_2 * ops.take(v, rows, axis=0) + (1 - self.beta_2) * ops.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        change = m_rows * alpha / (ops.sqrt(v_rows) + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(change, rows))
        return None

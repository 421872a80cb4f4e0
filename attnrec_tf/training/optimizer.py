"""The optimizer and its learning-rate schedule, from the config.

Example:

>>> from attnrec_tf.config import Config
>>> optimizer = make_optimizer(Config(lr_schedule="cosine"), steps_per_epoch=10)
>>> round(float(optimizer.learning_rate), 6)
0.0003
"""

from __future__ import annotations

import keras

from attnrec_tf.config import Config


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
    """Adam, or AdamW when `weight_decay` > 0, with the configured schedule."""
    rate = learning_rate(config, steps_per_epoch)
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(rate)

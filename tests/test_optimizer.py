import keras
import numpy as np

from attnrec_tf.config import Config
from attnrec_tf.training.optimizer import learning_rate, make_optimizer


def test_constant_schedule_is_the_rate():
    assert learning_rate(Config(learning_rate=0.002), steps_per_epoch=5) == 0.002


def test_cosine_warms_up_then_decays_to_one_percent():
    config = Config(learning_rate=0.01, lr_schedule="cosine", epochs=4)
    schedule = learning_rate(config, steps_per_epoch=10)
    rates = np.array([float(schedule(step)) for step in range(41)])
    np.testing.assert_allclose(rates[0], 0.001, rtol=1e-5)  # warm-up starts at 10%
    np.testing.assert_allclose(rates[10], 0.01, rtol=1e-5)  # peak after one epoch
    assert np.all(np.diff(rates[10:]) <= 1e-9)  # then only decreases
    np.testing.assert_allclose(rates[40], 0.0001, rtol=1e-3)  # 1% at the end


def test_weight_decay_selects_adamw():
    assert isinstance(make_optimizer(Config(weight_decay=0.01), 3), keras.optimizers.AdamW)
    assert type(make_optimizer(Config(), 3)) is keras.optimizers.Adam

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


def test_a_time_budget_gets_the_movable_cosine_with_keras_rates():
    from attnrec_tf.training.optimizer import BudgetCosineDecay

    config = Config(learning_rate=0.01, lr_schedule="cosine", epochs=4)
    keras_schedule = learning_rate(config, steps_per_epoch=10)
    budgeted = learning_rate(config.replace(time_budget=60.0), steps_per_epoch=10)
    assert type(keras_schedule) is keras.optimizers.schedules.CosineDecay
    assert isinstance(budgeted, BudgetCosineDecay)
    steps = range(0, 45)  # past the end too
    np.testing.assert_allclose(
        [float(budgeted(step)) for step in steps],
        [float(keras_schedule(step)) for step in steps],
        rtol=1e-6,
    )


def test_the_movable_cosine_ends_where_it_is_moved():
    from attnrec_tf.training.optimizer import BudgetCosineDecay

    schedule = BudgetCosineDecay(0.001, 0.01, warmup_steps=10, decay_steps=70, alpha=0.01)
    schedule.set_decay_steps(20)  # the cosine now ends at step 30, not 80
    # Halfway (step 20): 0.01 * (0.01 + 0.99 * (1 + cos(pi / 2)) / 2) = 0.00505.
    np.testing.assert_allclose(float(schedule(20)), 0.00505, rtol=1e-5)
    np.testing.assert_allclose(float(schedule(30)), 0.0001, rtol=1e-4)
    np.testing.assert_allclose(float(schedule(50)), 0.0001, rtol=1e-4)
    np.testing.assert_allclose(float(schedule(5)), 0.0055, rtol=1e-5)  # warm-up unchanged
    config = keras.optimizers.Adam(schedule).get_config()
    restored = keras.optimizers.Adam.from_config(config)  # registered: a saved model reloads
    np.testing.assert_allclose(float(restored.learning_rate), 0.001, rtol=1e-5)


def test_weight_decay_selects_adamw():
    assert isinstance(make_optimizer(Config(weight_decay=0.01), 3), keras.optimizers.AdamW)
    assert type(make_optimizer(Config(), 3)) is keras.optimizers.Adam


def test_lazy_adam_is_for_the_sampled_loss_when_asked():
    from attnrec_tf.training.optimizer import LazyAdam

    assert type(make_optimizer(Config(loss="sampled", lazy_adam=True), 3)) is LazyAdam
    assert not isinstance(make_optimizer(Config(loss="sampled"), 3), LazyAdam)
    assert not isinstance(make_optimizer(Config(loss="softmax", lazy_adam=True), 3), LazyAdam)


def test_lazy_adam_moves_only_the_rows_a_step_saw():
    """Two steps on a (4, 2) table, by hand: Adam's first step moves a row by lr * g / |g|
    per coordinate (m = 0.1 g, v = 0.001 g^2, both bias-corrected back to g and g^2)."""
    import tensorflow as tf

    from attnrec_tf.training.optimizer import LazyAdam

    table = keras.Variable(np.zeros((4, 2), "float32"))
    optimizer = LazyAdam(learning_rate=0.1, epsilon=1e-12)
    optimizer.build([table])
    # Row 1 twice (summed to [3, -1]), row 3 once; rows 0 and 2 not seen.
    first = tf.IndexedSlices(
        tf.constant([[1.0, -0.5], [2.0, -0.5], [0.0, 4.0]]), tf.constant([1, 1, 3])
    )
    optimizer.apply([first], [table])
    np.testing.assert_allclose(table.numpy(), [[0, 0], [-0.1, 0.1], [0, 0], [0, -0.1]], atol=1e-5)
    # Step 2 sees row 3 only: row 1 keeps its weights (dense Adam would move it on its
    # momentum). Row 3 at step 2 with g = 4 again: m_hat = 4, v_hat = 16 -> another -0.1.
    second = tf.IndexedSlices(tf.constant([[0.0, 4.0]]), tf.constant([3]))
    optimizer.apply([second], [table])
    np.testing.assert_allclose(table.numpy(), [[0, 0], [-0.1, 0.1], [0, 0], [0, -0.2]], atol=1e-5)


def test_lazy_adam_equals_adam_on_dense_gradients():
    from attnrec_tf.training.optimizer import LazyAdam

    gradients = [np.array([[0.5, -2.0]], "float32"), np.array([[1.0, 0.25]], "float32")]
    results = []
    for optimizer in (LazyAdam(0.01), keras.optimizers.Adam(0.01)):
        weight = keras.Variable(np.ones((1, 2), "float32"))
        for gradient in gradients:
            optimizer.apply([gradient], [weight])
        results.append(weight.numpy())
    np.testing.assert_array_equal(results[0], results[1])


def test_fused_adam_is_keras_adam_with_duplicate_rows_summed():
    import tensorflow as tf

    from attnrec_tf.training.optimizer import FusedAdam

    rng = np.random.default_rng(3)
    start = rng.normal(size=(6, 3)).astype("float32")
    rows = rng.normal(size=(3, 3)).astype("float32")
    sparse = tf.IndexedSlices(tf.constant(rows), tf.constant([4, 1, 4]), [6, 3])
    summed = np.zeros((6, 3), "float32")
    np.add.at(summed, [4, 1, 4], rows)  # row 4's whole gradient
    dense = [rng.normal(size=(6, 3)).astype("float32") for _ in range(2)]
    results = []
    for optimizer, middle in ((FusedAdam(0.05), sparse), (keras.optimizers.Adam(0.05), summed)):
        weight = keras.Variable(start)
        for gradient in (dense[0], middle, dense[1]):
            optimizer.apply([gradient], [weight])
        results.append(weight.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0], start)


def test_the_sampled_loss_gets_fused_adam():
    from attnrec_tf.training.optimizer import FusedAdam

    assert type(make_optimizer(Config(loss="sampled"), 3)) is FusedAdam
    assert type(make_optimizer(Config(loss="softmax"), 3)) is keras.optimizers.Adam


def test_lazy_adam_unset_turns_on_above_the_large_catalog_bound():
    from attnrec_tf.config import LAZY_ADAM_FROM_ITEMS

    small, _ = Config(loss="sampled").resolved(LAZY_ADAM_FROM_ITEMS)
    large, _ = Config(loss="sampled").resolved(LAZY_ADAM_FROM_ITEMS + 1)
    forced_off, _ = Config(loss="sampled", lazy_adam=False).resolved(10 * LAZY_ADAM_FROM_ITEMS)
    assert (small.lazy_adam, large.lazy_adam, forced_off.lazy_adam) == (False, True, False)

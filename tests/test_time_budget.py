from types import SimpleNamespace

import pytest

from attnrec_tf.training import callbacks
from attnrec_tf.training.callbacks import RESERVE, Pace, TimeBudget
from attnrec_tf.training.optimizer import BudgetCosineDecay


def _rows(seconds: list[float], validation: float = 0.0, batches: int = 10) -> list[dict]:
    return [{"seconds": s, "validation_seconds": validation, "batches": batches} for s in seconds]


def test_the_pace_leaves_out_the_first_epoch_and_spreads_each_over_its_batches():
    rows = _rows([30.0, 42.0, 52.0, 62.0, 74.0], validation=2.0)
    rows[-1]["validation_seconds"] = 4.0  # the longest recent validation is kept
    pace = Pace.of(rows, steps_per_epoch=10)
    assert pace is not None
    # Epochs 3-5 took 10, 10, 12 s, validations 2, 2, 4 s: (8 + 8 + 8) / 30 batches.
    assert pace == Pace(used=74.0, step=pytest.approx(0.8), validation=4.0)
    assert Pace.of(_rows([30.0]), steps_per_epoch=10) == Pace(30.0, 3.0, 0.0)  # the only one
    assert Pace.of([], steps_per_epoch=10) is None
    # Rows from before `batches` was recorded count a whole epoch.
    assert Pace.of([{"seconds": 5.0}, {"seconds": 9.0}], steps_per_epoch=4).step == 1.0


@pytest.mark.parametrize(
    ("used", "budget", "fit"),
    [
        # An epoch costs 10 x 1 s + 2 s of validation, and 1 s more is kept for the last one.
        (0.0, 37.0, 30),  # three whole epochs: 36 s + 1 s
        (0.0, 36.9, 29),  # two whole (24 s), then 9 batches, their 2 s and the 1 s kept
        (0.0, 27.0, 20),  # two whole; the 3 s left hold no batch and its validation
        (0.0, 3.0, 0),  # no batch fits
        (40.0, 30.0, 0),  # already past the budget
    ],
)
def test_the_steps_that_fit_reserve_each_validation(used, budget, fit):
    pace = Pace(used=used, step=1.0, validation=2.0)
    assert RESERVE == 1.5
    assert pace.steps_that_fit(budget, steps_per_epoch=10) == fit


class _Model(SimpleNamespace):
    def __init__(self, step: int) -> None:
        super().__init__(stop_training=False)
        self.optimizer = SimpleNamespace(iterations=SimpleNamespace(numpy=lambda: step))


def _budget(rows: list[dict], seconds: float, step: int, **kwargs) -> TimeBudget:
    validation = callbacks.FullRankingValidation.__new__(callbacks.FullRankingValidation)
    validation.history, validation._mark = rows, None
    callback = TimeBudget(validation, seconds, steps_per_epoch=10, **kwargs)
    callback.set_model(_Model(step))
    return callback


@pytest.mark.parametrize(
    ("seconds", "budget", "stops"),
    [
        ([10.0], 25.0, False),  # 10 + 10 <= 25
        ([10.0, 20.0], 25.0, False),  # 5 s left: half an epoch fits
        ([10.0, 20.0], 20.5, True),  # a batch takes 1 s: none fits
        ([10.0, 20.0], 0.0, False),  # no budget
    ],
)
def test_stops_after_an_epoch_when_no_batch_of_the_next_fits(seconds, budget, stops):
    callback = _budget(_rows(seconds), budget, step=10 * len(seconds))
    callback.on_epoch_end(len(seconds) - 1)
    assert callback.model.stop_training is stops


def test_the_plan_stops_the_next_epoch_at_its_last_batch_that_fits():
    callback = _budget(_rows([10.0, 20.0]), 25.0, step=20)
    callback.on_epoch_end(1)
    assert callback.stop_step == 25  # 5 batches of 1 s
    callback.validation._mark = float("inf")  # the clock guard cannot fire: the plan is tested
    callback.on_epoch_begin(2)
    callback.on_train_batch_end(3)
    assert not callback.model.stop_training
    callback.on_train_batch_end(4)  # the 25th step
    assert callback.model.stop_training


def test_on_one_process_a_slow_epoch_stops_at_the_batch_the_clock_says(monkeypatch):
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(callbacks, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    callback = _budget(_rows([10.0, 20.0], validation=1.0), 40.0, step=20)
    callback.on_epoch_end(1)  # pace 0.9 s a batch: one more epoch (10 s), then 9 batches
    callback.validation._mark = 100.0
    callback.on_epoch_begin(2)
    clock.now = 118.0  # 38 s used after 3 slow batches: 38 + 0.9 + 1.5 > 40
    callback.on_train_batch_end(2)
    assert callback.model.stop_training
    assert callback.stop_step == 39  # the plan had not come yet


def test_before_any_epoch_is_timed_the_clock_uses_the_epochs_own_pace(monkeypatch):
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(callbacks, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    callback = _budget([], 10.0, step=0)
    callback.validation._mark = 0.0
    callback.on_epoch_begin(0)
    clock.now = 6.0  # 3 batches in 6 s: a fourth would end at 8 s
    callback.on_train_batch_end(2)
    assert not callback.model.stop_training
    clock.now = 8.0  # 4 in 8 s: a fifth would end at 10 s, not past the budget
    callback.on_train_batch_end(3)
    assert not callback.model.stop_training
    clock.now = 10.5
    callback.on_train_batch_end(4)
    assert callback.model.stop_training


@pytest.mark.parametrize(
    ("seconds", "budget", "epochs", "decay"),
    [
        ([10.0], 100.0, 80, 100 - 10),  # 9 more epochs of 10 s: it ends at step 100
        # The first epoch (traced) took 30 s, the next ones 10 s: 4 more fit.
        ([30.0, 40.0, 50.0, 60.0], 100.0, 80, 80 - 10),
        ([30.0, 40.0, 50.0, 60.0], 100.0, 6, 60 - 10),  # the epoch limit comes first
        ([30.0, 40.0, 50.0, 60.0], 95.0, 80, 75 - 10),  # the last epoch cut after 5 batches
    ],
)
def test_the_cosine_ends_where_the_budget_will_stop_training(seconds, budget, epochs, decay):
    schedule = BudgetCosineDecay(0.001, 0.01, warmup_steps=10, decay_steps=790)
    callback = _budget(_rows(seconds), budget, step=10 * len(seconds), epochs=epochs,
                       schedule=schedule)  # fmt: skip
    callback.on_epoch_end(len(seconds) - 1)
    assert float(schedule.decay_steps.numpy()) == decay


def test_a_resumed_run_plans_from_its_restored_rows_before_its_first_epoch():
    schedule = BudgetCosineDecay(0.001, 0.01, warmup_steps=10, decay_steps=790)
    callback = _budget(_rows([10.0, 20.0]), 50.0, step=20, schedule=schedule)
    callback.validation._mark = float("inf")
    callback.on_epoch_begin(2)
    assert callback.stop_step == 50
    assert float(schedule.decay_steps.numpy()) == 40


def test_a_budgeted_cosine_run_ends_annealed(tmp_path, monkeypatch) -> None:
    """A run the budget stops long before `epochs` still ends at 1% of the peak rate.

    The callbacks' clock is a counter (each reading one second later), so every epoch after
    the first lasts the same "seconds" and the estimate is exact; TensorBoard's per-epoch
    learning rate shows where the schedule stood when each epoch ended.
    """
    import attnrec_tf

    ticks = iter(range(1, 10**6))
    monkeypatch.setattr(callbacks, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    report = attnrec_tf.fit(
        data="synthetic:num_users=200,num_items=60", output_dir=tmp_path, epochs=40,
        patience=40, time_budget=20, lr_schedule="cosine", learning_rate=0.01, max_len=8,
        embedding_dim=8, attention_units=8, batch_size=64, sampled_negatives=0, export=False,
        verbose=0,
    ).report  # fmt: skip
    assert 3 <= report["epochs_run"] < 40  # the budget stopped it
    rates = _epoch_learning_rates(tmp_path / "logs" / "train")
    assert len(rates) == report["epochs_run"]
    assert rates[0] == pytest.approx(0.01, rel=1e-5)  # the peak, after one epoch of warm-up
    assert rates[-1] == pytest.approx(0.0001, rel=1e-3)  # 1% of it: annealed
    assert report["training"]["cosine_end"] == "epochs or time budget"
    assert report["training"]["final_learning_rate"] == pytest.approx(0.0001, rel=1e-3)


def _epoch_learning_rates(folder) -> list[float]:
    import tensorflow as tf

    rates = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            rates += [float(tf.make_ndarray(v.tensor)) for v in event.summary.value
                      if v.tag == "epoch_learning_rate"]  # fmt: skip
    return rates

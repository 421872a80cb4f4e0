from types import SimpleNamespace

import pytest

from attnrec_tf.training.callbacks import CosineToBudget, TimeBudget
from attnrec_tf.training.optimizer import BudgetCosineDecay


def _after(seconds: list[float], budget: float) -> bool:
    validation = SimpleNamespace(history=[{"seconds": s} for s in seconds])
    callback = TimeBudget(validation, budget)  # type: ignore[arg-type]
    callback.set_model(SimpleNamespace(stop_training=False))
    callback.on_epoch_end(len(seconds) - 1)
    return callback.model.stop_training


@pytest.mark.parametrize(
    ("seconds", "budget", "stops"),
    [
        ([10.0], 25.0, False),  # 10 + 10 <= 25
        ([10.0, 20.0], 25.0, True),  # 20 + 10 > 25
        ([10.0, 12.0], 25.0, False),  # the last epoch took 2 s
        ([10.0, 20.0], 0.0, False),  # no budget
    ],
)
def test_stops_before_an_epoch_that_would_overrun(seconds, budget, stops):
    assert _after(seconds, budget) is stops


def _to_budget(seconds: list[float], budget: float, epochs: int = 80) -> CosineToBudget:
    validation = SimpleNamespace(history=[{"seconds": s} for s in seconds])
    schedule = BudgetCosineDecay(0.001, 0.01, warmup_steps=10, decay_steps=790)
    return CosineToBudget(schedule, validation, budget, epochs, steps_per_epoch=10)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "budget", "epochs", "last"),
    [
        ([], 100.0, 80, None),  # nothing timed yet: the schedule keeps its epochs
        ([10.0], 100.0, 80, 10),  # 9 more epochs of 10 s fit
        # The first epoch (traced) took 30 s, the next ones 10 s: 4 more fit, as TimeBudget
        # decides (after epoch 7 at 90 s, 90 + 10 <= 100 goes on; after epoch 8 it stops).
        ([30.0, 40.0, 50.0, 60.0], 100.0, 80, 8),
        ([30.0, 40.0, 50.0, 60.0], 100.0, 6, 6),  # the epoch limit comes first
        ([30.0, 40.0, 50.0, 95.0], 100.0, 80, 4),  # a slow last epoch: none more fits
    ],
)
def test_the_cosine_ends_with_the_epoch_the_budget_stops_after(seconds, budget, epochs, last):
    callback = _to_budget(seconds, budget, epochs)
    assert callback.last_epoch() == last
    callback.on_epoch_begin(len(seconds))
    expected = 790 if last is None else last * 10 - 10
    assert float(callback.schedule.decay_steps.numpy()) == expected


def test_a_budgeted_cosine_run_ends_annealed(tmp_path, monkeypatch) -> None:
    """A run the budget stops long before `epochs` still ends at 1% of the peak rate.

    The callbacks' clock is a counter (each reading one second later), so every epoch after
    the first lasts the same "seconds" and the estimate is exact; TensorBoard's per-epoch
    learning rate shows where the schedule stood when each epoch ended.
    """
    import attnrec_tf
    from attnrec_tf.training import callbacks

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

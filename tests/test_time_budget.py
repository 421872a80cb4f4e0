from types import SimpleNamespace

import pytest

from attnrec_tf.training.callbacks import TimeBudget


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

"""`callbacks.SaveTrainingState` and `resume_state.TrainingState` on a tiny Keras model: what
it saves makes a resumed `fit` equal an uninterrupted one (exactly, on CPU), and what it refuses
to restore."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from attnrec_tf.data.pipeline import training_dataset
from attnrec_tf.errors import ConfigError
from attnrec_tf.training.callbacks import (
    ResumableEarlyStopping,
    SaveTrainingState,
    TrainingInterrupted,
)
from attnrec_tf.training.fit import fit_from
from attnrec_tf.training.resume_state import TrainingState

EPOCHS = 10
ROWS = np.random.default_rng(0).normal(size=(60, 4)).astype("float32")
TARGETS = (ROWS @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32")).astype("float32")


class Crash(keras.callbacks.Callback):
    """Raises at the end of batch `batch` of epoch `epoch` (a crash in the middle of `fit`)."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("crash")


class Losses(keras.callbacks.Callback):
    """Records each epoch's loss; `get_state` / `set_state` make the resume state keep it."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def get_state(self):
        return {"losses": self.losses}

    def set_state(self, state):
        self.losses = list(state["losses"])

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(float(logs["loss"]))


class Run:
    """A model, its data and the callbacks of one process, as `training.fit_and_evaluate` has."""

    def __init__(self, path, *, fingerprint="f", units=8, every_steps=0, interrupt=None):
        keras.utils.set_random_seed(0)
        self.model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(units, "relu"), keras.layers.Dropout(0.3),
             keras.layers.Dense(1)]
        )  # fmt: skip
        self.model.compile(keras.optimizers.Adam(0.01), "mse")
        self.epoch = tf.Variable(0, dtype=tf.int64)
        self.losses = Losses()
        self.stopping = ResumableEarlyStopping(monitor="loss", min_delta=0.2, patience=2)
        self.path, self.fingerprint = path, fingerprint
        self.every_steps, self.interrupt = every_steps, interrupt

    def data(self, start_batch=0):
        return training_dataset(
            ROWS, TARGETS, batch_size=16, seed=1, epoch=self.epoch, start_batch=start_batch
        )

    def fit(self, *extra):
        """The resume protocol of `training.fit_and_evaluate`."""
        saved = TrainingState.read(self.path, self.fingerprint)
        self.state = SaveTrainingState(
            self.path, fingerprint=self.fingerprint, epoch_variable=self.epoch, epochs=EPOCHS,
            tracked={"losses": self.losses, "early_stopping": self.stopping}, saved=saved,
            every_steps=self.every_steps, interrupt=self.interrupt,
        )  # fmt: skip
        callbacks = [self.losses, self.stopping, *extra, self.state]
        fit_from(saved, self.model, self.data, EPOCHS, callbacks=callbacks, verbose=0)

    def variables(self):
        return [v.numpy() for v in self.model.variables + self.model.optimizer.variables]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = Run(tmp_path_factory.mktemp("state") / "state.npz")
    run.fit()
    return run


def assert_same(run: Run, reference: Run) -> None:
    assert run.losses.losses == reference.losses.losses
    assert run.stopping.stopped_epoch == reference.stopping.stopped_epoch
    for got, want in zip(run.variables(), reference.variables(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_reference_stops_early_and_uses_dropout(uninterrupted):
    """The scenario exercises early stopping state and dropout RNG, not only the weights."""
    assert uninterrupted.stopping.stopped_epoch > 0
    assert 7 < len(uninterrupted.losses.losses) < EPOCHS
    states = [v for v in uninterrupted.model.variables if "seed_generator_state" in v.path]
    assert states and all(int(v.numpy()[1]) > 0 for v in states)


@pytest.mark.parametrize("every_steps", [0, 2], ids=["epoch-ends", "every-2-batches"])
def test_crash_then_resume_equals_uninterrupted(uninterrupted, tmp_path, every_steps):
    path = tmp_path / "state.npz"
    crashed = Run(path, every_steps=every_steps)
    with pytest.raises(RuntimeError, match="crash"):
        crashed.fit(Crash(epoch=6, batch=2))  # EarlyStopping is waiting (wait = 1) then
    meta = json.loads(str(np.load(path)["meta"]))
    assert (meta["epoch"], meta["batch"]) == ((6, 2) if every_steps else (6, 0))
    assert meta["callbacks"]["early_stopping"]["wait"] == 1

    resumed = Run(path, every_steps=every_steps)
    resumed.fit()
    assert_same(resumed, uninterrupted)
    assert resumed.state.resumed_from == [{"epoch": 7, "batch": meta["batch"]}]


def test_interrupt_saves_at_the_batch_and_resumes(uninterrupted, tmp_path):
    path = tmp_path / "state.npz"

    class PressCtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if len(interrupted.losses.losses) == 1 and batch == 1:
                interrupted.interrupt.set()

    interrupted = Run(path, interrupt=__import__("threading").Event())
    with pytest.raises(TrainingInterrupted, match=r"saved at epoch 2, batch 2 .*resume"):
        interrupted.fit(PressCtrlC())
    resumed = Run(path)
    resumed.fit()
    assert_same(resumed, uninterrupted)


def test_finished_state_restores_without_training(uninterrupted, tmp_path):
    path = tmp_path / "state.npz"
    Run(path).fit()
    again = Run(path)
    again.fit(Crash(epoch=0, batch=0))  # would raise if any batch ran
    assert_same(again, uninterrupted)


def test_state_of_other_settings_is_refused(tmp_path):
    path = tmp_path / "state.npz"
    with pytest.raises(RuntimeError):
        Run(path).fit(Crash(epoch=1, batch=0))
    with pytest.raises(ConfigError, match="other settings or data.*--no-resume"):
        Run(path, fingerprint="g").fit()
    with pytest.raises(ConfigError, match="has shape"):
        Run(path, units=5).fit()
    whole = path.read_bytes()
    for broken in (b"not a state file", whole[: len(whole) // 2]):  # garbage, cut short
        path.write_bytes(broken)
        with pytest.raises(ConfigError, match="unreadable training state"):
            Run(path).fit()


def test_every_steps_must_not_be_negative(tmp_path):
    with pytest.raises(ValueError, match="every_steps"):
        SaveTrainingState(tmp_path / "s.npz", fingerprint="", epoch_variable=None, epochs=1,
                          every_steps=-1)  # fmt: skip


def test_no_backup_at_an_epochs_last_batch(tmp_path):
    """The epoch-end save follows it; a backup there resumed into an empty epoch (nan loss)."""
    from attnrec_tf.training.callbacks import SaveTrainingState

    state = SaveTrainingState(tmp_path / "s.npz", fingerprint="", epoch_variable=None, epochs=1,
                              every_steps=4)  # fmt: skip
    saved_at = []
    state._save = lambda **_: saved_at.append(state._batches_done)  # type: ignore[method-assign]
    state.params = {"steps": 8}
    for batch in range(8):
        state.on_train_batch_end(batch)
    assert saved_at == [4]

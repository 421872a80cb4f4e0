"""The resume state of a training run: a plain dataclass and its one file.

A killed or interrupted run continues from `checkpoints/training_state.npz` of its run folder.
The file is a numpy `.npz` (replaced atomically, so a kill never leaves half of it) with

* `meta`: a JSON object with the format, the run's fingerprint, where training stands (`epoch`,
  `batch`, `finished`), the training seconds of the processes so far, the earlier restarts
  (`resumed_from`), each tracked callback's state (`callbacks`) and the variables' paths;
* `model_<i>`, `optimizer_<i>`, `metrics_<i>`: every variable of each group, in the order of
  `model.variables`, `model.optimizer.variables` and `model.metrics_variables`.

Nothing here imports Keras: `callbacks.SaveTrainingState` fills the state from a model and puts
it back.

Example:

>>> import numpy as np, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "state.npz"
>>> TrainingState("abc", epoch=3, variables={"model": [np.ones(2)]}).write(path)
>>> state = TrainingState.read(path, fingerprint="abc")
>>> state.epoch, state.batch, state.finished, state.variables["model"][0].tolist()
(3, 0, False, [1.0, 1.0])
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf import atomic
from attnrec_tf.errors import ConfigError

STATE_FORMAT = 1
STATE_FILE = "checkpoints/training_state.npz"
"""The state's path inside a run folder."""
GROUPS = ("model", "optimizer", "metrics")
"""The variable groups a state holds, in file order."""


@dataclass
class TrainingState:
    """Where a training run stands, and everything needed to continue it.

    Attributes:
        fingerprint: sha256 of the configuration and data (`fit.run_fingerprint`); a state is
            only read back by a run with the same one.
        epoch: Index of the epoch to run next (= epochs completed).
        batch: Batches of that epoch already trained (0 = start of the epoch).
        finished: Training is over (last epoch done, or early stopping fired).
        train_seconds: Training wall time of all the processes so far.
        resumed_from: One `{"epoch": 1-based epoch, "batch": batch}` per earlier restart.
        callbacks: Each tracked callback's `get_state()`, by name (JSON values).
        variables: Each group's variable values (`GROUPS`), in the model's order.
        variable_paths: Each group's variable paths, for messages.
    """

    fingerprint: str
    epoch: int = 0
    batch: int = 0
    finished: bool = False
    train_seconds: float = 0.0
    resumed_from: list[dict[str, int]] = field(default_factory=list)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, list[np.ndarray]] = field(default_factory=dict)
    variable_paths: dict[str, list[str]] = field(default_factory=dict)

    @property
    def here(self) -> dict[str, int]:
        """This state's point as a `resumed_from` entry (1-based epoch)."""
        return {"epoch": self.epoch + 1, "batch": self.batch}

    @classmethod
    def read(cls, path: Path, fingerprint: str) -> TrainingState | None:
        """The state in `path`, or None when there is no file.

        Raises:
            ConfigError: The file is unreadable, or belongs to another fingerprint.
        """
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ConfigError(
                f"{path}: unreadable training state ({error}); delete it, or pass "
                "--no-resume to start afresh"
            ) from None
        if meta.get("format") != STATE_FORMAT or meta.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{path}: this training state was written with other settings or data; "
                "rerun with the same command, or pass --no-resume (or another --output-dir) to "
                "start afresh"
            )
        return cls(
            fingerprint=fingerprint,
            epoch=int(meta["epoch"]),
            batch=int(meta["batch"]),
            finished=bool(meta["finished"]),
            train_seconds=float(meta["train_seconds"]),
            resumed_from=list(meta["resumed_from"]),
            callbacks=dict(meta["callbacks"]),
            variables={group: _group(arrays, group) for group in GROUPS},
            variable_paths={group: list(meta.get(f"{group}_paths", [])) for group in GROUPS},
        )

    def write(self, path: Path) -> None:
        """Writes the state to `path` atomically."""
        meta: dict[str, Any] = {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "batch": self.batch,
            "finished": self.finished,
            "train_seconds": self.train_seconds,
            "resumed_from": self.resumed_from,
            "callbacks": self.callbacks,
        }
        arrays: dict[str, np.ndarray] = {}
        for group in GROUPS:
            meta[f"{group}_paths"] = self.variable_paths.get(group, [])
            for i, value in enumerate(self.variables.get(group, [])):
                arrays[f"{group}_{i}"] = np.asarray(value)
        arrays["meta"] = np.array(json.dumps(meta, default=json_value))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        atomic.write_bytes(path, buffer.getvalue())


def _group(arrays: dict[str, np.ndarray], group: str) -> list[np.ndarray]:
    """`<group>_0`, `<group>_1`, ... of a state file, in order."""
    count = sum(key.startswith(f"{group}_") for key in arrays)
    return [arrays[f"{group}_{i}"] for i in range(count)]


def json_value(value: Any) -> Any:
    """A numpy or tensor value as plain JSON (for callback states).

    >>> json_value(np.float32(0.5)), json_value(np.arange(3))
    (0.5, [0, 1, 2])
    """
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy / tensor scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in a training state")

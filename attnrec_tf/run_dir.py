"""The output folder of a training run, and how each of its files is saved and loaded.

```
<output-dir>/
  report.json            metrics, timings, config (see README)
  model.keras            the best model (by validation NDCG@10)
  vocabulary.json        raw item id <-> index (0 = padding)
  items.json             per index: raw id, title, genres, training count
  split.npz              the split (leave-one-out or temporal), so export can evaluate without
                         the data file
  checkpoints/best.keras kept while training
  logs/                  TensorBoard
  saved_model/<name>/<version>/, tflite/, android_demo_assets/   (written by export)
  tflite/<name>_explain_float32.tflite   the explanations on device (written by export)
```

Every file is written atomically (`attnrec_tf.atomic`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf import atomic
from attnrec_tf.data.loaded import ItemMetadata
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import AttnRecError


@dataclass(frozen=True)
class RunDir:
    """Paths inside one output folder."""

    root: Path

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def vocabulary(self) -> Path:
        return self.root / "vocabulary.json"

    @property
    def items(self) -> Path:
        return self.root / "items.json"

    @property
    def split(self) -> Path:
        return self.root / "split.npz"

    @property
    def histories(self) -> Path:
        """Every user's whole sequence (`save_histories`), for recommendations to all users."""
        return self.root / "histories.npz"

    @property
    def best_checkpoint(self) -> Path:
        return self.root / "checkpoints" / "best.keras"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def android_assets(self) -> Path:
        """The folder that drops into the TFLite on-device recommendation demo."""
        return self.root / "android_demo_assets"

    def saved_model_base(self, model_name: str) -> Path:
        """TF Serving's model base path: numbered versions below it."""
        return self.root / "saved_model" / model_name

    def tflite(self, model_name: str, kind: str) -> Path:
        """The `.tflite` file of one kind (`export.tflite.KINDS`)."""
        return self.root / "tflite" / f"{model_name}_{kind}.tflite"

    def tflite_explain(self, model_name: str) -> Path:
        """The explain `.tflite` (`export.explain_tflite`): reasons computed on device."""
        return self.root / "tflite" / f"{model_name}_explain_float32.tflite"

    def require(self, path: Path) -> Path:
        """Returns `path`, or raises a user error naming it when it is missing."""
        if not path.exists():
            raise AttnRecError(
                f"{path}: not found; is {self.root} the --output-dir of a finished training run?"
            )
        return path


def save_split(path: Path, split: LeaveOneOutSplit) -> None:
    """Saves a split as flat arrays plus offsets, and its protocol as JSON (atomic).

    `train` may hold more sequences than there are users (a temporal split's users trained on
    but not evaluated): they are saved after the users' own.
    """
    lengths = np.array([len(s) for s in split.train], dtype=np.int64)
    flat = (
        np.concatenate(split.train).astype(np.int32) if len(split.train) else np.zeros(0, np.int32)
    )
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        users=np.asarray(split.users).astype(str),
        train_flat=flat,
        train_offsets=np.concatenate([[0], np.cumsum(lengths)]),
        valid_targets=np.asarray(split.valid_targets, np.int32),
        test_targets=np.asarray(split.test_targets, np.int32),
        protocol=np.asarray(json.dumps(split.protocol, sort_keys=True)),
    )
    atomic.write_bytes(path, buffer.getvalue())


def load_split(path: Path) -> LeaveOneOutSplit:
    """Loads what `save_split` wrote (a file without a protocol is a leave-one-out split)."""
    with np.load(path, allow_pickle=False) as data:
        offsets = data["train_offsets"]
        flat = data["train_flat"]
        train = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        protocol = json.loads(str(data["protocol"])) if "protocol" in data else None
        return LeaveOneOutSplit(
            users=data["users"],
            train=train,
            valid_targets=data["valid_targets"],
            test_targets=data["test_targets"],
            **({"protocol": protocol} if protocol is not None else {}),
        )


def item_table(
    vocabulary: Vocabulary, metadata: ItemMetadata, train: list[np.ndarray]
) -> list[dict[str, Any]]:
    """One record per item index 1..N: raw id, title, genres and training-set count."""
    counts = np.bincount(
        np.concatenate(train) if train else np.zeros(0, np.int64), minlength=vocabulary.size
    )
    genres = metadata.features.get("genres", {})
    records = []
    for index, raw in enumerate(vocabulary.raw_ids, start=1):
        key = raw.item() if hasattr(raw, "item") else raw
        records.append(
            {
                "index": index,
                "id": key,
                "title": metadata.titles.get(key, str(key)),
                "genres": list(genres.get(key, ())),
                "count": int(counts[index]),
            }
        )
    return records


def save_items(path: Path, records: list[dict[str, Any]]) -> None:
    atomic.write_json(path, records)


def load_items(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_model(path: Path, *, with_optimizer: bool = True) -> Any:
    """Loads a saved `AttentionRecommender` (safe mode on).

    Args:
        path: The `.keras` file.
        with_optimizer: Also restore the compiled state (the optimizer and its moments, two
            more item tables with Adam). False for a model that is only run, never trained on.

    Returns:
        The model.
    """
    import keras

    import attnrec_tf.model  # noqa: F401  (registers the custom objects)

    return keras.saving.load_model(path, safe_mode=True, compile=with_optimizer)


def save_histories(path: Path, users: np.ndarray, sequences: list[np.ndarray]) -> None:
    """Saves each user's whole sequence of vocabulary indices, oldest first (atomic)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    flat = np.concatenate(sequences).astype(np.int32) if sequences else np.zeros(0, np.int32)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        users=np.asarray(users).astype(str),
        flat=flat,
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
    )
    atomic.write_bytes(path, buffer.getvalue())


def load_histories(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """`(users, sequences)` as `save_histories` wrote them."""
    with np.load(path, allow_pickle=False) as data:
        offsets, flat = data["offsets"], data["flat"]
        sequences = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return data["users"], sequences

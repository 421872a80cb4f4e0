"""What every export step reads (`ExportContext`) and returns (`Exported`).

`export_all` builds one immutable `ExportContext` from the run folder and the export's options,
runs each step on it (`export_all`'s SavedModel and TFLite steps, `explain_tflite`'s explain
file) and merges the `Exported` results into report.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.export import tflite


@dataclass(frozen=True)
class ExportContext:
    """What every export step reads: the run's files and the export's options.

    Attributes:
        root: The run folder.
        model_name: TF Serving model name (and TFLite file prefix).
        model_path: The `.keras` file exported.
        model: The loaded `AttentionRecommender`.
        vocabulary: The run's `Vocabulary`.
        split: The run's `LeaveOneOutSplit`.
        items_path: `items.json`, read by the Android step only (the records of a large
            catalog are not held through the rest of the export).
        top_k: K of every artifact's outputs.
        history_length: `H`, the width of the TFLite files' `history` input.
        exclude: Leave the history out of the ranking (the run's protocol).
        histories: The test histories (`split.histories("test")`).
        targets: The test targets.
        log: Where the one-line-per-artifact progress goes.
    """

    root: Path
    model_name: str
    model_path: Path
    model: Any
    vocabulary: Any
    split: Any
    items_path: Path
    top_k: int
    history_length: int
    exclude: bool
    histories: list[np.ndarray]
    targets: np.ndarray
    log: Callable[[str], None]

    def convert(
        self, kind: str, calibration: np.ndarray | None, *, batched: bool = True
    ) -> tuple[bytes, float]:
        """`tflite.timed_convert` of the model with this export's K and `H`: (bytes, seconds)."""
        return tflite.timed_convert(
            self.model,
            kind,
            top_k=self.top_k,
            calibration=calibration,
            history_length=self.history_length,
            batched=batched,
        )


@dataclass(frozen=True)
class Exported:
    """One written and evaluated artifact, as it goes into report.json.

    Attributes:
        name: Its key in `metrics` and `artifacts` (`saved_model`, `tflite_<kind>`).
        metrics: Its test metrics.
        artifact: Its record (`path`, `bytes`, `latency_ms_p50`, ...).
    """

    name: str
    metrics: dict[str, Any]
    artifact: dict[str, Any]

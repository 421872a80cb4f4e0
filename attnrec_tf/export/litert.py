"""The LiteRT runtime: importing `ai_edge_litert`, and running an exported `.tflite` file.

Every `.tflite` of this package (`tflite.py` converts them) has one signature, `SIGNATURE`, with
one input, `INPUT` (`history`, int32 vocabulary indices, `[1, H]` or, for the Android file,
`[H]`), and the outputs `item_ids`, `scores` and `attention`. `LiteRTRecommender` runs such a
file for one user per call, the way the export evaluates it (one interpreter thread) and the
way `python -m attnrec_tf.recommend --runtime tflite` serves it.

LiteRT (`ai-edge-litert`) is a dependency of the package but may be missing (`pip install
--no-deps`): `litert` is the one place it is imported from, so a missing or broken install is
always the same `DependencyError`, and `litert_missing` asks for it without raising.

Example:

```python
runner = LiteRTRecommender(Path("runs/latest/tflite/attnrec_float32.tflite"))
runner(np.array([3, 5, 8]))["item_ids"]  # (K,) int32 vocabulary indices
runner.history_length, runner.max_len  # (512, 50): input width, model window
```
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from attnrec_tf.errors import DependencyError, ExportError, MissingDependencyError

SIGNATURE = "serving_default"
"""The one signature of every exported `.tflite` file."""
INPUT = "history"
"""The name of that signature's one input (and of its tensor)."""


def litert(module: str) -> ModuleType:
    """`ai_edge_litert.<module>`, the one place this package imports LiteRT from.

    Args:
        module: The submodule, e.g. `interpreter` or `tools.flatbuffer_utils`.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: LiteRT (`ai-edge-litert`) is not installed.
        DependencyError: It is installed but the module does not import (a broken install).
    """
    try:
        importlib.import_module("ai_edge_litert")  # first: a missing package names only itself
        return importlib.import_module(f"ai_edge_litert.{module}")
    except ImportError as error:
        if isinstance(error, ModuleNotFoundError) and error.name == "ai_edge_litert":
            raise MissingDependencyError("LiteRT", "ai-edge-litert") from error
        raise DependencyError(
            f"LiteRT is installed but ai_edge_litert.{module} does not import ({error}); "
            "pip install --force-reinstall ai-edge-litert"
        ) from error


def litert_missing() -> DependencyError | None:
    """The error `litert` would raise for the modules the export uses, or None.

    Returns:
        None when `ai_edge_litert.interpreter` and `ai_edge_litert.tools.flatbuffer_utils`
        both import, else the `DependencyError` (or `MissingDependencyError`) `litert` raises.
    """
    try:
        litert("interpreter")
        litert("tools.flatbuffer_utils")
    except DependencyError as error:
        return error
    return None


def interpreter(tflite: bytes | Path, *, num_threads: int | None = None) -> Any:
    """A LiteRT `Interpreter` of a `.tflite` file or flatbuffer (tensors not yet allocated).

    Args:
        tflite: The file's path, or its bytes.
        num_threads: Interpreter threads; None for LiteRT's default.

    Returns:
        An `ai_edge_litert.interpreter.Interpreter`.

    Raises:
        DependencyError: LiteRT is missing or broken (see `litert`).
        ValueError: LiteRT cannot read the model (its own error).
    """
    Interpreter = litert("interpreter").Interpreter  # noqa: N806 - a class
    if isinstance(tflite, Path):
        return Interpreter(model_path=str(tflite), num_threads=num_threads)
    return Interpreter(model_content=tflite, num_threads=num_threads)


class LiteRTRecommender:
    """Runs the `serving_default` signature of a `.tflite` through LiteRT, one user per call.

    `history_length` is the width `H` of the file's `history` input (the last `H` items of a
    history are sent, and all of them are excluded), `max_len` the model's window (the width
    of the `attention` output; `H` for a file without that output).

    Args:
        tflite: Path or bytes of the model.
        num_threads: Interpreter threads. Defaults to `1`.

    Raises:
        DependencyError: LiteRT is missing or broken (see `litert`).
        ExportError: The signature does not have exactly the one input `history`.
    """

    def __init__(self, tflite: bytes | Path, num_threads: int = 1) -> None:
        self.interpreter = interpreter(tflite, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        signature = self.interpreter.get_signature_runner(SIGNATURE)
        inputs = signature.get_input_details()
        if list(inputs) != [INPUT]:
            raise ExportError(f"expected one input {INPUT!r}, found {sorted(inputs)}")
        self.input = inputs[INPUT]
        outputs = signature.get_output_details()
        self.outputs = {name: d["index"] for name, d in outputs.items()}
        self.history_length = int(self.input["shape"][-1])
        attention = outputs.get("attention")
        self.max_len = int(attention["shape"][-1]) if attention else self.history_length

    def __call__(self, history: np.ndarray) -> dict[str, np.ndarray]:
        """Recommends for one history of vocabulary indices, oldest first, of any length.

        The last `history_length` indices are sent, left-padded with 0 (values outside int32
        are clipped into it; the graph treats anything outside `1..V-1` as padding): the model
        attends over their last `max_len` real items, and all of them are excluded.

        Args:
            history: `(L,)` integer vocabulary indices.

        Returns:
            `{"item_ids": (K,), "scores": (K,), "attention": (max_len,)}` (copies).
        """
        window = np.zeros(self.history_length, np.int32)
        tail = np.asarray(history, np.int64)[-self.history_length :]
        if len(tail):
            window[self.history_length - len(tail) :] = np.clip(tail, -(2**31), 2**31 - 1)
        return self.run_window(window)

    def run_window(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """Runs one raw `(history_length,)` int32 row as given (no padding or clipping here).

        Args:
            window: `history_length` int32 values, reshaped to the input's shape.

        Returns:
            Each output of the signature by name, flattened, as a copy.
        """
        self.interpreter.set_tensor(
            self.input["index"], np.asarray(window, np.int32).reshape(self.input["shape"])
        )
        self.interpreter.invoke()
        return {
            name: self.interpreter.get_tensor(index).reshape(-1).copy()
            for name, index in self.outputs.items()
        }

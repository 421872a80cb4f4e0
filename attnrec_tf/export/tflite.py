"""TFLite conversion (float32, float16, dynamic-range int8, full-integer int8), op check, LiteRT.

Each file has one signature, `serving_default`:

- input `history`: `[1, H]` int32 vocabulary indices, 0 = padding, oldest first, with
  `H = history_length` (`DEFAULT_HISTORY_LENGTH` = 512, never less than the model's `max_len`).
  Indices outside `1..V-1` are padding; padding may be on either side (compacted in the graph).
- outputs `item_ids` `[1, K]` int32 vocabulary indices, `scores` `[1, K]` float32 and
  `attention` `[1, max_len]` float32 (over the compacted window). Every real item of the `H`
  inputs, and index 0, is never among the K.

The model attends over the last `max_len` real items of the row only; the wider input is there
for the exclusion. With `H = max_len` (the first version of these files) MovieLens-1M users
(up to 2,000 ratings, `max_len` 50) were recommended movies seen before the window again:
NDCG@10 0.1351 against 0.1400 for Keras with the whole history excluded (-3.5%), int8 0.1335
(-4.7%). With `H = 512` (366 of 6,040 test users are longer): float32 0.1397 (-0.3%), dynamic
int8 0.1396, int8 0.1377 (-1.7%); the graph gains a top-`max_len` over the 512 keys (the
compaction) and a 513-row scatter (the mask): p50 latency 0.071 -> 0.079 ms (float32), 0.053 ->
0.060 ms (int8), files 5.6 KB larger.

The Android demo variant (`batched=False`) drops the batch axis (`[H]` -> `[K]`), because
the demo app feeds `int[inputLength]` and reads `int[outputLength]` arrays.

Conversion freezes the model's variables into constants first
(`convert_variables_to_constants_v2`): converting the serving function with live resource
variables leaves `VAR_HANDLE` / `READ_VARIABLE` ops in the file, which gave NaN scores and a
garbage top-K under the default XNNPACK delegate (no error), and broke full-int8 calibration.
The input and output tensors are renamed after their signature names (`history`, `item_ids`,
`scores`, `attention`), so Java's `Tensor.name()` is meaningful too.

The full-integer `int8` file differs from the float graph in two ways, both measured on
MovieLens-1M with `H = max_len` (NDCG@10 of the Keras model under the same rule: 0.1351):

- Its `DIV` ops stay float32 (`FLOAT_OPS_IN_INT8`, selective quantization with
  `tf.lite.experimental.QuantizationDebugger`). LiteRT's int8 `DIV` kernel returns wrong values
  when the quotient is below about one output step: `(1/255) / 6.93` gives `1.0`, not `0.0006`
  (reference and optimized kernels alike). The attention softmax divides small exponentials by
  their sum, so weights that should be ~0 came out as 1 for long histories: NDCG@10 0.062.
  With `DIV` in float: 0.131. The two DIVs (softmax normalisation, genre mean) are tiny, and
  the rest of the attention is fine in int8 (keeping the whole softmax float gained nothing).
- With causal blocks (`self-attention`, `sasrec`), the LayerNormalization ops stay float32 too
  (`LAYER_NORM_OPS`). Measured on an ML-1M `self-attention` model (`max_len` 200, 1,500 test
  users, float32 file NDCG@10 0.0586): fully quantized 0.0161, with the softmax pieces (SUM,
  EXP, REDUCE_MAX, SELECT_V2, ...) or the attention matmuls in float still 0.016, with the
  LayerNorm family in float 0.0574. The blocks' attention masks like `AttentionPooling`
  (row-minimum fill, no large negative constant), so the softmax itself quantizes well.
- Its scores are clipped at 0 (`serving.recommend(clip_negative=True)`), which doubles the int8
  resolution of the `(1, V)` score tensor where the top-K is decided: 0.1335 (-1.2%).

Calibration (`representative_windows`) mixes whole training sequences with random prefixes;
that keeps the attention output summing to 1, but moves NDCG@10 by 0.0015 at most, as do 1000
windows instead of 300 or whole sequences only.

Evaluation runs the LiteRT interpreter with one thread, one user per call, and reads only the
top-K outputs: HR@k and NDCG@k for k <= K are exact; MRR is truncated at K (`mrr@K`: users
whose target is not in the top-K count 0).

Example:

```python
blob = convert(model, "dynamic_int8", top_k=10)
assert not op_problems(list_ops(blob))
runner = LiteRTRecommender(blob)
runner(np.array([3, 5, 8]))["item_ids"]  # (10,) int32 vocabulary indices
runner.history_length, runner.max_len  # (512, 50): input width, model window
```
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from attnrec_tf.errors import DependencyError, ExportError, MissingDependencyError

KINDS = ("float32", "float16", "dynamic_int8", "int8")
SIGNATURE = "serving_default"
INPUT = "history"
FORBIDDEN_OPS = frozenset(
    {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "DELEGATE"}
)
CALIBRATION_WINDOWS = 300
DEFAULT_HISTORY_LENGTH = 512
"""Width `H` of the `history` input when none is asked for (or `max_len`, if that is larger)."""
FLOAT_OPS_IN_INT8 = ("DIV",)
"""Builtin ops kept in float32 in the full-integer file (LiteRT's int8 DIV is wrong for small
quotients, see the module docstring)."""
LAYER_NORM_OPS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SUB", "MUL", "ADD")
"""The ops of LayerNormalization, also kept in float32 in the int8 file of a model with causal
blocks (`self-attention`, `sasrec`): quantized, the per-position mean and variance of a
64-wide state lose the model (see the module docstring)."""


def float_ops_in_int8(model: Any) -> tuple[str, ...]:
    """The builtin ops that stay float32 in `model`'s full-integer file."""
    return FLOAT_OPS_IN_INT8 + (LAYER_NORM_OPS if getattr(model, "blocks", None) else ())


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
    """The error `litert` would raise, or None when LiteRT can be imported."""
    try:
        litert("interpreter")
        litert("tools.flatbuffer_utils")
    except DependencyError as error:
        return error
    return None


def artifact_name(kind: str) -> str:
    """The report key of a TFLite kind: `tflite_<kind>`."""
    return f"tflite_{kind}"


def parse_kinds(text: str) -> tuple[str, ...]:
    """`"float32,int8"` -> `("float32", "int8")`; raises `ExportError` naming `--tflite`."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ExportError(
            f"--tflite: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}"
        )
    return tuple(dict.fromkeys(kinds))


def resolve_history_length(max_len: int, requested: int | None = None) -> int:
    """The `history` input width `H` for a model of window `max_len`.

    Args:
        max_len: The model's window.
        requested: `--history-length`; `None` for `max(DEFAULT_HISTORY_LENGTH, max_len)`.

    Returns:
        `H`.

    Raises:
        ExportError: `requested` is not an integer of at least `max_len`.

    Example:

    >>> resolve_history_length(50), resolve_history_length(50, 64), resolve_history_length(600)
    (512, 64, 600)
    """
    if requested is None:
        return max(DEFAULT_HISTORY_LENGTH, max_len)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < max_len:
        raise ExportError(
            f"--history-length must be an integer of at least the model's max_len ({max_len}), "
            f"got {requested!r}"
        )
    return requested


def serving_function(
    model: Any,
    *,
    top_k: int,
    history_length: int | None = None,
    batched: bool = True,
    clip_negative: bool = False,
) -> Any:
    """The frozen (variables -> constants) concrete serving function, outputs named.

    Args:
        model: The trained `AttentionRecommender`.
        top_k: K.
        history_length: `H`, the input width (see `resolve_history_length`).
        batched: `[1, H]` input and `[1, K]` outputs if True, else `[H]` / `[K]`.
        clip_negative: Clip the scores at 0 (`serving.recommend`), for the int8 file.

    Returns:
        A `tf.types.experimental.ConcreteFunction` without variables, returning a dict.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from attnrec_tf.export import serving

    width = resolve_history_length(model.max_len, history_length)
    shape = [1, width] if batched else [width]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.int32, name=INPUT)])
    def serve(history: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = history if batched else history[None, :]
        out = serving.recommend(model, batch, top_k=top_k, clip_negative=clip_negative)
        return out if batched else {name: value[0] for name, value in out.items()}

    concrete = serve.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.int32, name=INPUT)])
    def named(history: tf.Tensor) -> dict[str, tf.Tensor]:
        return tf.nest.pack_sequence_as(structure, frozen(history))

    return named.get_concrete_function()


def representative_windows(
    train: Sequence[np.ndarray], length: int, *, count: int = CALIBRATION_WINDOWS, seed: int = 0
) -> np.ndarray:
    """Calibration inputs: `count` left-padded rows `(count, length)` of training prefixes.

    `length` is the input width `H`; the model sees the last `max_len` items of each row.
    Users are drawn at random (seeded). Half of the rows are a user's whole training sequence
    (its last `length` items, what a request of a returning user looks like); the other half
    are cut at a random point, so windows of every length occur too. Random cuts alone
    under-represent full windows, whose attention softmax sums more terms: the int8 file then
    saturated that sum and its attention output summed to up to 1.4 instead of 1.
    """
    from attnrec_tf.data.pipeline import pad_left

    rng = np.random.default_rng(seed)
    usable = [np.asarray(s) for s in train if len(s)]
    if not usable:
        raise ExportError("int8 calibration needs training histories; split.npz has none")
    picks = rng.integers(0, len(usable), size=count)
    whole = rng.random(count) < 0.5
    prefixes = [
        usable[i] if full else usable[i][: rng.integers(1, len(usable[i]) + 1)]
        for i, full in zip(picks, whole, strict=True)
    ]
    return pad_left(prefixes, length)


def convert(
    model: Any,
    kind: str,
    *,
    top_k: int,
    calibration: np.ndarray | None = None,
    history_length: int | None = None,
    batched: bool = True,
) -> bytes:
    """Converts the serving graph to a `.tflite` flatbuffer of the given kind.

    Args:
        model: The trained `AttentionRecommender`.
        kind: One of `KINDS`.
        top_k: K.
        calibration: `(N, H)` int32 rows (`representative_windows`); required for `int8`.
        history_length: `H`, the `history` input width. Defaults to
            `max(DEFAULT_HISTORY_LENGTH, max_len)`.
        batched: See `serving_function`.

    Returns:
        The flatbuffer bytes, with tensors renamed after the signature.
    """
    import tensorflow as tf

    if kind not in KINDS:
        raise ExportError(f"unknown TFLite kind {kind!r}; choose from {', '.join(KINDS)}")
    width = resolve_history_length(model.max_len, history_length)
    function = serving_function(
        model, top_k=top_k, history_length=width, batched=batched, clip_negative=kind == "int8"
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if kind == "int8":
        if calibration is None or not len(calibration):
            raise ExportError("int8 conversion needs calibration windows")
        windows = np.asarray(calibration, np.int32)
        if windows.ndim != 2 or windows.shape[1] != width:
            raise ExportError(
                f"int8 calibration rows must be {width} wide (the history input), got "
                f"shape {windows.shape}"
            )

        def representative() -> Iterator[dict[str, np.ndarray]]:
            for window in windows:
                yield {INPUT: window[None, :] if batched else window}

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        if kind == "int8":
            blob = _quantize_selectively(converter, float_ops_in_int8(model))
        else:
            blob = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises many types
        raise ExportError(f"TFLite {kind} conversion failed: {error}") from error
    return name_tensors(bytes(blob))


def _quantize_selectively(converter: Any, float_ops: Sequence[str]) -> bytes:
    """Full-integer quantization with the `float_ops` left in float32.

    `QuantizationDebugger` calibrates with the converter's representative dataset, then
    quantizes everything but the denylisted ops (DEQUANTIZE / QUANTIZE around them).
    """
    import warnings

    import tensorflow as tf

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
    with warnings.catch_warnings():  # the debugger runs the deprecated tf.lite.Interpreter
        warnings.filterwarnings("ignore", "(?s).*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=converter.representative_dataset,
            debug_options=options,
        )
        return bytes(debugger.get_nondebug_quantized_model())


def name_tensors(blob: bytes) -> bytes:
    """Renames each signature input/output tensor after its signature name."""
    flatbuffer_utils = litert("tools.flatbuffer_utils")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    for signature in model.signatureDefs or []:
        tensors = model.subgraphs[signature.subgraphIndex].tensors
        for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
            tensors[entry.tensorIndex].name = entry.name
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def list_ops(tflite: bytes | Path) -> list[str]:
    """Sorted distinct op names of a `.tflite` (builtin names; custom ops as `CUSTOM:<code>`)."""
    schema = litert("schema_py_generated")
    flatbuffer_utils = litert("tools.flatbuffer_utils")
    data = Path(tflite).read_bytes() if isinstance(tflite, Path) else tflite
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}
    used = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            opcode = model.operatorCodes[op.opcodeIndex]
            code = flatbuffer_utils.get_builtin_code_from_operator_code(opcode)
            if code == schema.BuiltinOperator.CUSTOM:
                custom = opcode.customCode
                used.add(f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}")
            else:
                used.add(names.get(code, f"UNKNOWN:{code}"))
    return sorted(used)


def op_problems(ops: Sequence[str]) -> list[str]:
    """Ops that break "builtin ops only, no resource variables" (Flex ops are custom ops)."""
    return [
        f"op {op} is not allowed (custom/Flex ops and resource variables are not builtin-only)"
        for op in ops
        if op.startswith(("CUSTOM:", "UNKNOWN:")) or op in FORBIDDEN_OPS
    ]


class LiteRTRecommender:
    """Runs the `serving_default` signature of a `.tflite` through LiteRT, one user per call.

    `history_length` is the width `H` of the file's `history` input (the last `H` items of a
    history are sent, and all of them are excluded), `max_len` the model's window (the width
    of the `attention` output).

    Args:
        tflite: Path or bytes of the model.
        num_threads: Interpreter threads. Defaults to `1`.
    """

    def __init__(self, tflite: bytes | Path, num_threads: int = 1) -> None:
        Interpreter = litert("interpreter").Interpreter  # noqa: N806 - a class
        if isinstance(tflite, Path):
            self.interpreter = Interpreter(model_path=str(tflite), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_content=tflite, num_threads=num_threads)
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
        """Recommends for one history of indices (any length; the last `history_length` are
        sent: the model attends over their last `max_len` real items, all are excluded).

        Returns:
            `{"item_ids": (K,), "scores": (K,), "attention": (max_len,)}`.
        """
        window = np.zeros(self.history_length, np.int32)
        tail = np.asarray(history, np.int64)[-self.history_length :]
        if len(tail):
            window[self.history_length - len(tail) :] = np.clip(tail, -(2**31), 2**31 - 1)
        return self.run_window(window)

    def run_window(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """Runs one raw `(history_length,)` int32 row as given (no padding or clipping here)."""
        self.interpreter.set_tensor(
            self.input["index"], np.asarray(window, np.int32).reshape(self.input["shape"])
        )
        self.interpreter.invoke()
        return {
            name: self.interpreter.get_tensor(index).reshape(-1).copy()
            for name, index in self.outputs.items()
        }


def top_k_metrics(
    recommend: Callable[[np.ndarray], dict[str, np.ndarray]],
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    vocab_size: int,
    *,
    top_k: int,
    exclude_history: bool = True,
) -> dict[str, float | int]:
    """HR@k, NDCG@k (k in 1, 5, 10, 20 up to K) and `mrr@K` of a top-K recommender.

    Args:
        recommend: One history of indices -> `{"item_ids": (K,), "scores": (K,)}`.
        histories: Per-user histories (vocabulary indices).
        targets: `(U,)` held-out items.
        vocab_size: V.
        top_k: K.
        exclude_history: As in the Keras evaluation.

    Returns:
        The metric dict, as `metrics.keras` but with `mrr@K` instead of `mrr`.
    """
    outputs = [recommend(history) for history in histories]
    ids = np.stack([out["item_ids"] for out in outputs]).astype(np.int64)  # (U, K)
    scores = np.stack([out["scores"] for out in outputs]).astype(np.float64)
    return list_metrics(
        ids, scores, histories, targets, vocab_size, top_k=top_k, exclude_history=exclude_history
    )


def list_metrics(
    ids: np.ndarray,
    scores: np.ndarray,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    vocab_size: int,
    *,
    top_k: int,
    exclude_history: bool = True,
    batch_size: int = 256,
) -> dict[str, float | int]:
    """The metrics of given top-K lists `ids`, `scores` `(U, K)`.

    The listed items get their scores and every other item `-inf`; the shared metric code
    (`metrics.rank_of_targets`: pessimistic ties, history excluded) ranks the target, and a
    target outside the list gets rank K ("not in the top K").
    """
    from attnrec_tf import metrics

    targets = np.asarray(targets)
    all_ranks = []
    for start in range(0, len(targets), batch_size):
        rows = slice(start, start + batch_size)
        batch_ids, batch_targets = ids[rows], targets[rows]
        dense = np.full((len(batch_ids), vocab_size), -np.inf)
        np.put_along_axis(dense, batch_ids, scores[rows], axis=1)
        listed = (batch_ids == batch_targets[:, None]).any(axis=1)
        exclude = list(histories[rows]) if exclude_history else None
        ranks = metrics.rank_of_targets(dense, batch_targets, exclude)
        all_ranks.append(np.where(listed, np.minimum(ranks, top_k), top_k))
    return top_k_result(np.concatenate(all_ranks), top_k)


def top_k_result(ranks: np.ndarray, top_k: int) -> dict[str, float | int]:
    """The metric dict of ranks known only up to K: HR@k, NDCG@k for k <= K, and `mrr@K`."""
    from attnrec_tf import metrics

    accumulator = metrics.RankingAccumulator()
    accumulator.update(ranks)
    result = accumulator.result([k for k in metrics.DEFAULT_KS if k <= top_k])
    del result["mrr"]
    result[f"mrr@{top_k}"] = float(np.mean(np.where(ranks < top_k, 1.0 / (ranks + 1.0), 0.0)))
    return result


def timed_convert(model: Any, kind: str, **kwargs: Any) -> tuple[bytes, float]:
    """`convert` plus its wall time in seconds."""
    start = time.perf_counter()
    blob = convert(model, kind, **kwargs)
    return blob, time.perf_counter() - start

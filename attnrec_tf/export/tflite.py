"""TFLite conversion (float32, float16, dynamic-range int8, full-integer int8) and op checks.

This module writes and inspects the flatbuffers; `litert.py` runs them. Each file has one
signature, `serving_default` (`litert.SIGNATURE`), the graph of `serving.recommend`:

- input `history` (`litert.INPUT`): `[1, H]` int32 vocabulary indices, 0 = padding, oldest
  first, with `H = history_length` (`DEFAULT_HISTORY_LENGTH` = 512, never less than the model's
  `max_len`). Indices outside `1..V-1` are padding; padding may be on either side (compacted in
  the graph). The model attends over the last `max_len` real items; every real item of the `H`
  inputs, and index 0, is never among the K.
- outputs `item_ids` `[1, K]` int32 vocabulary indices, `scores` `[1, K]` float32 and
  `attention` `[1, max_len]` float32 (over the compacted window).
- `batched=False` (the Android demo) drops the batch axis: `[H]` -> `[K]`.

Every file holds builtin ops only and no resource variables (`op_problems`), with its input and
output tensors named after the signature. The int8 kinds (`QUANTIZED_TABLE_KINDS`) hold the item
table once, as a per-row int8 constant (`quantize_rows`, `int8_table_outputs`); the full-integer
`int8` file keeps `float_ops_in_int8(model)`, the layers of `float_scopes_in_int8(model)` (the
scoring and top-K among them) and the dense layers of `norms_feeding_float_dense(model)` in
float32. Why each of these choices was made, with measurements: docs/tflite-notes.md.

Example:

```python
blob = convert(model, "dynamic_int8", top_k=10)
assert not op_problems(list_ops(blob))
LiteRTRecommender(blob)(np.array([3, 5, 8]))["item_ids"]  # (10,) int32, see litert.py
```
"""

from __future__ import annotations

import gc
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.errors import ExportError
from attnrec_tf.export.litert import INPUT, SIGNATURE, litert

KINDS = ("float32", "float16", "dynamic_int8", "int8")
FORBIDDEN_OPS = frozenset(
    {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "DELEGATE"}
)
QUANTIZED_TABLE_KINDS = ("dynamic_int8", "int8")
"""Kinds whose graph reads the item table as one per-row int8 constant (`quantize_rows`)."""
CALIBRATION_WINDOWS = 300
"""Rows of `representative_windows` used to calibrate the full-integer file."""
DEFAULT_HISTORY_LENGTH = 512
"""Width `H` of the `history` input when none is asked for (or `max_len`, if that is larger)."""
FLOAT_OPS_IN_INT8 = ("DIV", "BATCH_MATMUL", "TOPK_V2")
"""Builtin ops kept in float32 in the full-integer file: `DIV` (LiteRT's int8 DIV is wrong for
small quotients), `BATCH_MATMUL` (the attention's two products of activations, which
XNNPACK runs only in float: in int8 LiteRT's own kernel took 0.9 of the 1.1 ms of the ML-1M
preset's file, BENCHMARKS.md "Op breakdown") and `TOPK_V2` (on the float32 scores of the
ranking scope; its output tensors are named after the signature, not the scope);
docs/tflite-notes.md."""
TFLITE_FILE_IDENTIFIER = b"TFL3"
"""The flatbuffer file identifier of a `.tflite` model (the schema's `file_identifier`)."""
LAYER_NORM_OPS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SUB", "MUL", "ADD")
"""The ops of LayerNormalization, also kept in float32 in the int8 file of a model with causal
blocks (`self-attention`, `sasrec`): quantized, the per-position mean and variance of a
64-wide state lose the model (see docs/tflite-notes.md)."""


def float_ops_in_int8(model: Any) -> tuple[str, ...]:
    """The builtin ops that stay float32 in `model`'s full-integer file."""
    return FLOAT_OPS_IN_INT8 + (LAYER_NORM_OPS if getattr(model, "blocks", None) else ())


def float_scopes_in_int8(model: Any) -> tuple[str, ...]:
    """The name scopes whose every op stays float32 in `model`'s full-integer file.

    Every model's scoring and top-K (`serving.RANKING_SCOPE`): int8 scores had one step over
    the whole catalog's range, so the top items tied (NDCG@10 through LiteRT 0.1726 -> 0.1760 on
    the ML-1M preset, at the same size and latency). A `sasrec` model's serving graph runs its
    last block and final norm on one row (the last position), so in float they cost next to
    nothing, and they are where int8 lost the most: the quantization debugger's largest errors
    (RMSE over the step, ML-1M preset) were the last block's dense layers, 0.65-0.67 against
    about 0.3 elsewhere (docs/tflite-notes.md).
    """
    from attnrec_tf.export.serving import RANKING_SCOPE

    if getattr(model, "variant", None) != "sasrec" or not getattr(model, "blocks", None):
        return (RANKING_SCOPE,)
    return (model.blocks[-1].name, model.final_norm.name, RANKING_SCOPE)


def norms_feeding_float_dense(model: Any) -> tuple[str, ...]:
    """The LayerNormalizations whose outputs the int8 file's dense layers read in float32.

    A dense layer that reads a LayerNorm's output quantized to int8 was the second-largest
    error of the file (debugger RMSE 0.43-0.49 of a step in the ML-1M preset's first block, 0.29
    being rounding alone): one per-tensor scale over 200 positions of a normalised state. Read in
    float32 (int8 weights kept, like the dynamic-range file), NDCG@10 through LiteRT rose
    0.1743 -> 0.1757 (Keras 0.1792) at about 0.02 ms. Empty for models without causal blocks.
    """
    import keras

    norms = []
    for block in getattr(model, "blocks", None) or []:
        for value in vars(block).values():
            if isinstance(value, keras.layers.LayerNormalization):
                norms.append(value.name)
    return tuple(norms)


def artifact_name(kind: str) -> str:
    """The report key of a TFLite kind: `tflite_<kind>`.

    >>> artifact_name("dynamic_int8")
    'tflite_dynamic_int8'
    """
    return f"tflite_{kind}"


def parse_kinds(text: str) -> tuple[str, ...]:
    """The kinds of a `--tflite` value, in the given order, without repeats.

    Args:
        text: Comma-separated kinds; blanks around and between them are ignored.

    Returns:
        The kinds, each one of `KINDS`.

    Raises:
        ExportError: A kind is not one of `KINDS` (the message names `--tflite`).

    >>> parse_kinds("int8, float32,int8")
    ('int8', 'float32')
    """
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


def write_serving_saved_model(
    model: Any,
    folder: Path,
    *,
    top_k: int,
    history_length: int | None = None,
    batched: bool = True,
    quantize_items: bool = False,
) -> Path:
    """Writes the serving graph, with the model's variables, as the converter's SavedModel.

    The SavedModel's one signature, `serving_default`, is the graph of the `.tflite` file
    (`serving.recommend` on the `history` input); the model's weights are saved as variables
    that the saved object tracks. No function assigns them, so the converter freezes them into
    constants itself, reading them from the SavedModel's checkpoint: the export never builds a
    frozen copy of the graph, with the item tables in it, in Python.

    Args:
        model: The trained `AttentionRecommender`.
        folder: An empty or missing folder to write into.
        top_k: K.
        history_length: `H`, the input width (see `resolve_history_length`).
        batched: `[1, H]` input and `[1, K]` outputs if True, else `[H]` / `[K]`.
        quantize_items: Serve from the per-row int8 item table (`quantize_rows` of
            `model.item_representations()`, saved as two more variables) instead of the float
            one, for the int8 kinds.

    Returns:
        `folder`.
    """
    import tensorflow as tf

    from attnrec_tf.export import serving

    width = resolve_history_length(model.max_len, history_length)
    shape = [1, width] if batched else [width]
    holder = tf.Module()
    # The backend variables the graph reads, tracked so that they are saved and frozen (with
    # only the Keras model tracked, the file kept VAR_HANDLE ops and none of the weights).
    holder.weights = [getattr(weight, "value", weight) for weight in model.weights]
    outputs = None
    if quantize_items:
        table, scales = quantize_rows(np.asarray(model.item_representations(), np.float32))
        holder.item_table = tf.Variable(table, trainable=False, name="item_table_int8")
        holder.item_scales = tf.Variable(scales, trainable=False, name="item_scales")
        outputs = partial(int8_table_outputs, model, holder.item_table, holder.item_scales)
        del table, scales

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.int32, name=INPUT)])
    def serve(history: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = history if batched else history[None, :]
        out = serving.recommend(model, batch, top_k=top_k, outputs=outputs)
        return out if batched else {name: value[0] for name, value in out.items()}

    signatures = {SIGNATURE: serve.get_concrete_function()}
    tf.saved_model.save(holder, str(folder), signatures=signatures)
    return Path(folder)


def int8_table_outputs(model: Any, table: Any, scales: Any, window: Any) -> tuple[Any, Any]:
    """`model.serve_outputs(window)` with the item table read from its per-row int8 form.

    The history lookup and the scoring both read the one `(V, D)` int8 `table` (with its
    `(V,)` float32 `scales`, `quantize_rows`), so the file holds the item table once.

    Args:
        model: The `AttentionRecommender`.
        table: `(V, D)` int8, row `r` standing for `table[r] * scales[r]`.
        scales: `(V,)` float32.
        window: `(B, max_len)` int item indices, left-padded.

    Returns:
        `(scores, attention)`: `(B, V)` and `(B, max_len)` float32, as `serve_outputs`.
    """
    import tensorflow as tf
    from keras import ops

    from attnrec_tf.export import serving

    def lookup(indices: Any) -> Any:  # (B, L) -> (B, L, D) dequantized rows
        rows = ops.cast(ops.take(table, indices, axis=0), "float32")
        return rows * ops.expand_dims(ops.take(scales, indices, axis=0), -1)

    user, attention = model.encode(window, training=False, lookup=lookup, last_only=True)
    with tf.name_scope(serving.RANKING_SCOPE):
        last_user = ops.cast(user[:, -1, :], "float32")  # (B, D)
        scores = ops.matmul(last_user, ops.transpose(ops.cast(table, "float32")))  # (B, V)
        scores = scores * ops.expand_dims(scales, 0)  # each column's row scale
    return scores, ops.cast(attention[:, -1, :], "float32")  # (B, V), (B, L)


def quantize_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8 quantization: `matrix[r] ~ table[r] * scales[r]`.

    Args:
        matrix: `(V, D)` float.

    Returns:
        `(table, scales)`: `(V, D)` int8 in `-127..127` and `(V,)` float32 with
        `scales[r] = max |matrix[r]| / 127` (0 for an all-zero row, whose `table` row is 0).

    >>> table, scales = quantize_rows(np.array([[1.0, -0.5], [0.0, 0.0]]))
    >>> table.tolist(), scales.tolist()
    ([[127, -64], [0, 0]], [0.007874015718698502, 0.0])
    """
    matrix = np.asarray(matrix, np.float32)
    scales = (np.abs(matrix).max(axis=1) / 127.0).astype(np.float32)  # (V,)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    table = np.clip(np.rint(matrix / safe[:, None]), -127, 127).astype(np.int8)
    return table, scales


def representative_windows(
    train: Sequence[np.ndarray], length: int, *, count: int = CALIBRATION_WINDOWS, seed: int = 0
) -> np.ndarray:
    """Calibration inputs: `count` left-padded rows `(count, length)` of training prefixes.

    Users are drawn at random (seeded). Half of the rows are a user's whole training sequence
    (its last `length` items, what a request of a returning user looks like); the other half
    are cut at a random point, so windows of every length occur too. Random cuts alone
    under-represent full windows, whose attention softmax sums more terms: the int8 file then
    saturated that sum, and its attention output summed to more than 1.

    Args:
        train: Per-user training sequences (vocabulary indices); empty ones are skipped.
        length: The input width `H`; the model sees the last `max_len` items of each row.
        count: Rows. Defaults to `CALIBRATION_WINDOWS`.
        seed: The same seed gives the same rows.

    Returns:
        `(count, length)` int32 rows, left-padded with 0.

    Raises:
        ExportError: No training sequence has an item.
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
        batched: See `write_serving_saved_model`.

    Returns:
        The flatbuffer bytes, with tensors renamed after the signature.
    """
    import tensorflow as tf

    if kind not in KINDS:
        raise ExportError(f"unknown TFLite kind {kind!r}; choose from {', '.join(KINDS)}")
    width = resolve_history_length(model.max_len, history_length)
    windows = _calibration_rows(calibration, width) if kind == "int8" else None
    with tempfile.TemporaryDirectory(prefix="attnrec-tflite-") as folder:
        write_serving_saved_model(
            model,
            Path(folder),
            top_k=top_k,
            history_length=width,
            batched=batched,
            quantize_items=kind in QUANTIZED_TABLE_KINDS,
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if kind != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if kind == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if windows is not None:
            converter.representative_dataset = partial(_representative, windows, batched)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            if kind == "int8":
                blob = _quantize_selectively(
                    converter,
                    float_ops_in_int8(model),
                    float_scopes_in_int8(model),
                    norms_feeding_float_dense(model),
                )
            else:
                blob = converter.convert()
        except Exception as error:  # noqa: BLE001 - the converter raises many types
            raise ExportError(f"TFLite {kind} conversion failed: {error}") from error
        # The converter holds the SavedModel it loaded and its graphs: free them before the
        # renaming copy of the file rather than at some later collection.
        del converter
        gc.collect()
    return _finish(blob, fold_casts=kind in QUANTIZED_TABLE_KINDS)


def _calibration_rows(calibration: np.ndarray | None, width: int) -> np.ndarray:
    """The int8 calibration rows as `(N, width)` int32, or an `ExportError`."""
    if calibration is None or not len(calibration):
        raise ExportError("int8 conversion needs calibration windows")
    windows = np.asarray(calibration, np.int32)
    if windows.ndim != 2 or windows.shape[1] != width:
        raise ExportError(
            f"int8 calibration rows must be {width} wide (the history input), got "
            f"shape {windows.shape}"
        )
    return windows


def _representative(windows: np.ndarray, batched: bool) -> Iterator[dict[str, np.ndarray]]:
    """The converter's representative dataset: one `history` input per calibration row."""
    for window in windows:
        yield {INPUT: window[None, :] if batched else window}


def _quantize_selectively(
    converter: Any,
    float_ops: Sequence[str],
    float_scopes: Sequence[str] = (),
    float_dense_after: Sequence[str] = (),
) -> bytes:
    """Full-integer quantization with some ops left in float32 (DEQUANTIZE / QUANTIZE around).

    `QuantizationDebugger` calibrates with the converter's representative dataset, then
    quantizes everything but the denylisted ops and nodes. A scope is a layer name; its ops
    are those whose output tensor lies under it (`block_1/...`, or `block_1_1/...` as tracing
    renames it).

    Args:
        converter: The converter, with its representative dataset.
        float_ops: Op types kept in float32 wherever they are.
        float_scopes: Layers whose every op is kept in float32.
        float_dense_after: Layers whose output the `FULLY_CONNECTED` ops that read it read in
            float32 (those ops are kept in float32).
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
        if float_scopes or float_dense_after:  # read when quantizing: set once calibrated
            options.denylisted_nodes = _float_nodes(
                debugger.calibrated_model, float_scopes, float_dense_after
            )
        return bytes(debugger.get_nondebug_quantized_model())


def _float_nodes(blob: bytes, scopes: Sequence[str], dense_after: Sequence[str]) -> list[str]:
    """The output tensor names of the ops of `blob` under `scopes`, and of the
    `FULLY_CONNECTED` ops whose input is made under `dense_after`."""
    schema = litert("schema_py_generated")
    flatbuffer_utils = litert("tools.flatbuffer_utils")
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))

    def pattern(names: Sequence[str]) -> re.Pattern[str] | None:
        alternatives = "|".join(re.escape(name) for name in names)
        return re.compile(rf"(^|/)({alternatives})(_\d+)?/") if names else None

    under, after = pattern(scopes), pattern(dense_after)
    nodes = []
    for subgraph in model.subgraphs:
        names = [
            name.decode() if isinstance(name, bytes) else str(name)
            for name in (tensor.name for tensor in subgraph.tensors)
        ]
        for op in subgraph.operators or []:
            output = names[op.outputs[0]]
            if under is not None and under.match(output):
                nodes.append(output)
            elif (
                after is not None
                and _builtin(model, op) == schema.BuiltinOperator.FULLY_CONNECTED
                and after.search(names[op.inputs[0]])
            ):
                nodes.append(output)
    return nodes


def name_tensors(blob: bytes) -> bytes:
    """Renames each signature input/output tensor after its signature name.

    The flatbuffer is read in place (its constant buffers are views of `blob`, not copies) and
    packed once into a builder sized for the result (`pack_model`), so the builder is never copied
    while it grows. The bytes are those of LiteRT's `flatbuffer_utils` round trip.

    Args:
        blob: A `.tflite` flatbuffer.

    Returns:
        The same model with the tensors renamed (nothing else changes).

    Raises:
        DependencyError: LiteRT is missing or broken (`litert.litert`).
    """
    return _finish(blob, fold_casts=False)


def _finish(blob: bytes, *, fold_casts: bool) -> bytes:
    """`name_tensors(blob)`, with `fold_table_casts` first if `fold_casts` (one round trip)."""
    flatbuffer_utils = litert("tools.flatbuffer_utils")
    model = flatbuffer_utils.read_model_from_bytearray(blob)
    if fold_casts:
        fold_table_casts(model)
    for signature in model.signatureDefs or []:
        tensors = model.subgraphs[signature.subgraphIndex].tensors
        for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
            tensors[entry.tensorIndex].name = entry.name
    return pack_model(model, size_hint=len(blob))


def fold_table_casts(model: Any) -> int:
    """Lets the scoring matmuls read the int8 item table itself, without a cast at run time.

    The converter keeps `cast(table)` of the int8 table (`quantize_rows`) as an op that runs on
    every request: a `CAST` to a float32 activation of the table's size, in the full-integer
    file followed by a `QUANTIZE` back to int8. Where such a chain only feeds the weights of
    `FULLY_CONNECTED` ops, they read the constant instead, as int8 weights of scale 1 and zero
    point 0 (their real values are the integers, as the cast's were), and the chain's ops are
    removed. The history lookup (`GATHER`) reads the same constant as before. Nothing else
    changes; a file without the pattern is left as it is.

    Args:
        model: A `.tflite` model object (LiteRT's `flatbuffer_utils`), changed in place.

    Returns:
        The number of chains folded.
    """
    schema = litert("schema_py_generated")
    folded = 0
    for subgraph in model.subgraphs:
        dropped: set[int] = set()
        for index, op in enumerate(subgraph.operators or []):
            chain = _table_cast_chain(model, subgraph, index)
            if chain is None:
                continue
            steps, weights = chain
            table = int(op.inputs[0])
            for consumer in weights:
                subgraph.operators[consumer].inputs[1] = table
            quantization = schema.QuantizationParametersT()
            quantization.scale, quantization.zeroPoint = [1.0], [0]
            subgraph.tensors[table].quantization = quantization
            dropped.update(steps)
            folded += 1
        subgraph.operators = [
            op for index, op in enumerate(subgraph.operators or []) if index not in dropped
        ]
    return folded


def _table_cast_chain(model: Any, subgraph: Any, index: int) -> tuple[list[int], list[int]] | None:
    """`(ops of the chain, FULLY_CONNECTED ops fed)` if op `index` starts a foldable
    `CAST(int8 2-D constant) [-> QUANTIZE] -> FULLY_CONNECTED weights` chain, else None."""
    schema = litert("schema_py_generated")
    operators = subgraph.operators
    op = operators[index]
    if _builtin(model, op) != schema.BuiltinOperator.CAST:
        return None
    source = subgraph.tensors[int(op.inputs[0])]
    if source.type != schema.TensorType.INT8 or len(source.shape) != 2:
        return None
    quantized = source.quantization is not None and source.quantization.scale is not None
    if model.buffers[source.buffer].data is None or quantized:  # a raw int8 constant only
        return None
    steps, value = [index], int(op.outputs[0])
    users = _consumers(subgraph, value)
    if len(users) == 1 and _builtin(model, operators[users[0]]) == schema.BuiltinOperator.QUANTIZE:
        steps.append(users[0])
        value = int(operators[users[0]].outputs[0])
        users = _consumers(subgraph, value)
    if not users or value in {int(t) for t in subgraph.outputs}:
        return None
    fully_connected = schema.BuiltinOperator.FULLY_CONNECTED
    for user in users:
        inputs = [int(t) for t in operators[user].inputs]
        if _builtin(model, operators[user]) != fully_connected or inputs.count(value) != 1:
            return None
        if inputs.index(value) != 1:  # the weights, not the activations
            return None
    return steps, users


def _builtin(model: Any, op: Any) -> int:
    """The builtin operator code of `op`."""
    flatbuffer_utils = litert("tools.flatbuffer_utils")
    return int(
        flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
    )


def _consumers(subgraph: Any, tensor: int) -> list[int]:
    """Indices of the ops of `subgraph` that read `tensor`."""
    return [
        index
        for index, op in enumerate(subgraph.operators or [])
        if tensor in {int(t) for t in op.inputs if t >= 0}
    ]


def pack_model(model: Any, *, size_hint: int) -> bytes:
    """`flatbuffer_utils.convert_object_to_bytearray(model)` as `bytes`, built in one buffer.

    The builder starts at `size_hint` plus some room (it still grows if that is too small), so
    it is not copied while it grows; the result is copied out once. A flatbuffer's bytes do not
    depend on the builder's starting size.
    """
    import flatbuffers  # LiteRT's flatbuffer_utils builds with it

    builder = flatbuffers.Builder(size_hint + 2**16)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return bytes(memoryview(builder.Bytes)[builder.Head() :])


def list_ops(tflite: bytes | Path) -> list[str]:
    """The distinct ops of a `.tflite`, over all its subgraphs.

    Args:
        tflite: The file's path, or its bytes.

    Returns:
        Sorted op names: builtin ops by their LiteRT name (`ADD`, `TOPK_V2`), custom (and
        Flex) ops as `CUSTOM:<code>`, builtin codes this LiteRT does not name as
        `UNKNOWN:<code>`.

    Raises:
        DependencyError: LiteRT is missing or broken (`litert.litert`).
    """
    flatbuffer_utils = litert("tools.flatbuffer_utils")
    data = Path(tflite).read_bytes() if isinstance(tflite, Path) else tflite
    model = flatbuffer_utils.convert_bytearray_to_object(data)  # buffers are views of `data`
    return sorted(
        {name for index in range(len(model.subgraphs)) for name in op_names(model, index)}
    )


def op_names(model: Any, subgraph: int = 0) -> list[str]:
    """The op names of one subgraph of a flatbuffer model object, in execution order.

    Names as `list_ops` gives them (`ADD`, `CUSTOM:<code>`, `UNKNOWN:<code>`).
    """
    schema = litert("schema_py_generated")
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}
    out = []
    for op in model.subgraphs[subgraph].operators or []:
        code = _builtin(model, op)
        if code == schema.BuiltinOperator.CUSTOM:
            custom = model.operatorCodes[op.opcodeIndex].customCode
            out.append(f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}")
        else:
            out.append(names.get(code, f"UNKNOWN:{code}"))
    return out


def op_problems(ops: Sequence[str]) -> list[str]:
    """Ops that break "builtin ops only, no resource variables" (Flex ops are custom ops).

    Args:
        ops: Op names as `list_ops` returns them.

    Returns:
        One message per forbidden op (custom, unknown or in `FORBIDDEN_OPS`); empty if fine.

    >>> op_problems(["ADD", "TOPK_V2"]), len(op_problems(["ADD", "CUSTOM:FlexTopKV2"]))
    ([], 1)
    """
    return [
        f"op {op} is not allowed (custom/Flex ops and resource variables are not builtin-only)"
        for op in ops
        if op.startswith(("CUSTOM:", "UNKNOWN:")) or op in FORBIDDEN_OPS
    ]


def timed_convert(model: Any, kind: str, **kwargs: Any) -> tuple[bytes, float]:
    """`convert(model, kind, **kwargs)` and its wall time.

    Returns:
        `(flatbuffer bytes, seconds)`.
    """
    start = time.perf_counter()
    blob = convert(model, kind, **kwargs)
    return blob, time.perf_counter() - start

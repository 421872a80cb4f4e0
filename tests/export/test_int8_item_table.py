"""The int8 files hold one per-row int8 copy of the item table, so they shrink on big catalogs.

A built, untrained model over a synthetic 24,000-item catalog (`embedding_dim` 64, as the
real runs): its `(V, D)` item table makes up almost all of the float32 file, as on a real
catalog. The rows get log-normal norms (a trained table's popular items have the larger
rows), so per-row scales are not all alike. Every kind is written to disk and sized there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.export import litert, tflite

NUM_ITEMS = 24_000
DIM = 64
MAX_LEN = 20
WIDTH = 32  # the `history` input of the test files (narrow: faster to calibrate and run)
TOP_K = 10


@pytest.fixture(scope="module")
def model():
    import keras

    from attnrec_tf.model import AttentionRecommender

    keras.utils.set_random_seed(7)
    model = AttentionRecommender(
        vocab_size=NUM_ITEMS + 1, max_len=MAX_LEN, embedding_dim=DIM, attention_units=DIM
    )
    model.build()
    table = np.asarray(model.item_embedding.embeddings)
    norms = np.random.default_rng(7).lognormal(0.0, 0.5, size=(NUM_ITEMS + 1, 1))
    model.item_embedding.embeddings.assign((table * norms).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def histories() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.integers(1, NUM_ITEMS + 1, size=rng.integers(3, 2 * MAX_LEN)) for _ in range(60)]


@pytest.fixture(scope="module")
def files(model, histories, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("int8-table")
    calibration = tflite.representative_windows(histories, WIDTH, count=40)
    paths = {}
    for kind in tflite.KINDS:
        blob = tflite.convert(
            model, kind, top_k=TOP_K, history_length=WIDTH, calibration=calibration
        )
        paths[kind] = str(folder / f"{kind}.tflite")
        with open(paths[kind], "wb") as file:
            file.write(blob)
    return paths


def _table_sized_tensors(path: str) -> list[tuple[list[int], int]]:
    """`(shape, LiteRT tensor type)` of each constant of at least half the int8 table's bytes."""
    from ai_edge_litert.tools import flatbuffer_utils

    with open(path, "rb") as file:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(file.read()))
    found = []
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            if data is not None and len(data) >= NUM_ITEMS * DIM // 2:
                found.append(([int(n) for n in tensor.shape], int(tensor.type)))
    return found


def _table_readers(path: str) -> tuple[list[str], tuple[float, int]]:
    """The ops reading any `(V, D)` tensor of the file, and the first such tensor's
    `(scale, zero point)`, as the interpreter sees them."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=path,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    tables = {
        t["index"]: t["quantization"]
        for t in interpreter.get_tensor_details()
        if t["shape"].tolist() == [NUM_ITEMS + 1, DIM]
    }
    ops = interpreter._get_ops_details()
    readers = sorted(op["op_name"] for op in ops for i in op["inputs"] if i in tables)
    read = [i for op in ops for i in op["inputs"] if i in tables]
    return readers, tables[read[0]]


def test_int8_files_are_at_most_30_percent_of_float32_and_below_float16(files):
    sizes = {kind: os.path.getsize(path) for kind, path in files.items()}
    assert sizes["float32"] > 4 * NUM_ITEMS * DIM  # the float table dominates the file
    for kind in tflite.QUANTIZED_TABLE_KINDS:
        assert sizes[kind] <= 0.30 * sizes["float32"], sizes
        assert sizes[kind] < sizes["float16"], sizes


@pytest.mark.parametrize("kind", tflite.QUANTIZED_TABLE_KINDS)
def test_one_int8_copy_of_the_item_table_and_builtin_ops_only(files, kind):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    int8 = schema.TensorType.INT8
    assert _table_sized_tensors(files[kind]) == [([NUM_ITEMS + 1, DIM], int8)]
    # the lookup and the scoring read that tensor itself: nothing casts the table at run time
    readers, quantization = _table_readers(files[kind])
    assert readers == ["FULLY_CONNECTED", "GATHER"]
    assert quantization == (1.0, 0)  # its real values are the integers
    assert tflite.op_problems(tflite.list_ops(open(files[kind], "rb").read())) == []
    with open(files[kind], "rb") as file:
        assert flatbuffer_utils.count_resource_variables(file.read()) == 0


def test_float_files_keep_a_float_table(files):
    from ai_edge_litert import schema_py_generated as schema

    float32, float16 = schema.TensorType.FLOAT32, schema.TensorType.FLOAT16
    assert _table_sized_tensors(files["float32"]) == [([NUM_ITEMS + 1, DIM], float32)]
    assert _table_sized_tensors(files["float16"]) == [([NUM_ITEMS + 1, DIM], float16)]
    from ai_edge_litert.tools import flatbuffer_utils

    with open(files["float32"], "rb") as file:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(file.read()))
    assert tflite.fold_table_casts(model) == 0  # no int8 table: nothing to fold


@pytest.mark.parametrize("kind", tflite.QUANTIZED_TABLE_KINDS)
def test_int8_top_k_agrees_with_the_float32_file(files, histories, kind):
    reference = litert.LiteRTRecommender(Path(files["float32"]))
    runner = litert.LiteRTRecommender(Path(files[kind]))
    overlap, first = [], []
    for history in histories:
        expected, got = reference(history)["item_ids"], runner(history)["item_ids"]
        assert not set(got.tolist()) & set(history[-WIDTH:].tolist())
        overlap.append(len(set(expected.tolist()) & set(got.tolist())) / TOP_K)
        first.append(expected[0] == got[0])
    # measured: dynamic_int8 0.977 overlap / 1.0 top-1, int8 0.938 / 0.883
    least_overlap, least_first = {"dynamic_int8": (0.95, 0.95), "int8": (0.9, 0.8)}[kind]
    assert np.mean(overlap) >= least_overlap and np.mean(first) >= least_first, (
        np.mean(overlap),
        np.mean(first),
    )


def test_quantize_rows_round_trips_each_row_within_half_a_step():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 8)) * rng.lognormal(size=(50, 1))
    matrix[3] = 0.0
    table, scales = tflite.quantize_rows(matrix)
    assert table.dtype == np.int8 and scales.dtype == np.float32
    assert np.abs(table).max(axis=1)[np.arange(50) != 3].min() == 127 and not table[3].any()
    error = np.abs(table * scales[:, None] - matrix)
    assert np.all(error <= scales[:, None] / 2 + 1e-6)

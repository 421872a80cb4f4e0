"""The op breakdown cuts a real `.tflite` after each op and turns prefix timings into shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.litert_ops import breakdown_markdown, op_breakdown

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def three_ops(tmp_path_factory) -> Path:
    """A file of three float ops: `((x + 1) * 3) - 2`, with a `serving_default` signature."""
    import tensorflow as tf

    module = tf.Module()
    module.serve = tf.function(
        lambda history: {"out": (history + 1.0) * 3.0 - 2.0},
        input_signature=[tf.TensorSpec([1, 4], tf.float32, name="history")],
    )
    folder = tmp_path_factory.mktemp("ops")
    tf.saved_model.save(module, str(folder / "saved"), signatures={"serving_default": module.serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved"))
    path = folder / "three.tflite"
    path.write_bytes(converter.convert())
    return path


def test_each_cut_is_a_runnable_prefix_and_each_op_gets_its_step(three_ops: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    outputs = []

    def p50_ms(path: Path) -> float:  # runs the cut for real; "costs" 0.1 ms an op, one spike
        runner = Interpreter(model_path=str(path)).get_signature_runner()
        (value,) = runner(history=np.ones((1, 4), np.float32)).values()
        outputs.append(float(value[0, 0]))
        count = len(outputs) // 2 + (len(outputs) % 2)  # two timings per cut
        return 0.1 * count + (5.0 if len(outputs) == 2 else 0.0)

    result = op_breakdown(three_ops, p50_ms)
    assert [row["op"] for row in result["ops"]] == ["ADD", "MUL", "SUB"]
    assert outputs[::2] == [2.0, 6.0, 4.0]  # (1 + 1), * 3, - 2: each cut ends at its op
    assert np.allclose([row["ms"] for row in result["ops"]], 0.1)  # the spike is the min'd away
    assert result["total_ms"] == pytest.approx(0.3)
    assert result["by_op"] == pytest.approx({"ADD": 0.1, "MUL": 0.1, "SUB": 0.1})


def test_a_slower_short_cut_never_gives_a_negative_share(three_ops: Path) -> None:
    timings = iter([0.5, 0.5, 0.2, 0.2, 0.4, 0.4])  # the first cut measured slower than the second
    result = op_breakdown(three_ops, lambda path: next(timings))
    assert [round(row["ms"], 3) for row in result["ops"]] == [0.2, 0.0, 0.2]
    assert "| ADD | " in breakdown_markdown("x/three.tflite", result)


def test_a_cut_the_runtime_refuses_gives_its_time_to_the_next_op(three_ops: Path) -> None:
    def p50_ms(path: Path) -> float:
        if path.name == "cut2.tflite":
            raise RuntimeError("CompiledModel error: code=3")
        return {"cut1.tflite": 0.1, "cut3.tflite": 0.5}[path.name]

    result = op_breakdown(three_ops, p50_ms)
    assert [round(row["ms"], 3) for row in result["ops"]] == [0.1, 0.0, 0.4]
    assert result["refused"] == [1]
    assert "1 cuts LiteRT would not run" in breakdown_markdown("x", result)

"""The litert suite feeds LiteRT's benchmark tool real histories instead of random ids."""

from __future__ import annotations

import types

import numpy as np
import pytest

from benchmarks.litert_tool import history_of_length, litert_markdown, tool_inputs


class _Buffer:
    def write(self, data: np.ndarray) -> None:
        self.data = data


def test_the_tool_gets_our_inputs_by_shape_and_its_filler_back_after() -> None:
    original = object()
    tool = types.SimpleNamespace(fill_random_input=original)
    history, candidates = np.arange(6).reshape(1, 6), np.array([[7, 8]])
    with tool_inputs(tool, {(1, 6): history, (1, 2): candidates}):
        first, second = _Buffer(), _Buffer()
        tool.fill_random_input(first, {"shape": [1, 6], "dtype": "int32"})
        tool.fill_random_input(second, {"shape": [1, 2], "dtype": "int32"})
        with pytest.raises(ValueError, match=r"no input of shape \(1, 3\)"):
            tool.fill_random_input(_Buffer(), {"shape": [1, 3]})
    assert first.data.tolist() == [[0, 1, 2, 3, 4, 5]] and first.data.dtype == np.int32
    assert second.data.tolist() == [[7, 8]]
    assert tool.fill_random_input is original


def test_a_history_of_length_is_a_real_tail_left_padded() -> None:
    histories = [np.array([1, 2]), np.array([3, 4, 5, 6])]
    assert history_of_length(histories, 3, 5).tolist() == [[0, 0, 4, 5, 6]]
    with pytest.raises(ValueError, match="no test history has 9 items"):
        history_of_length(histories, 9, 10)


def test_the_table_has_a_row_per_file_and_a_column_per_length() -> None:
    rows = {
        f"a@{n}": {"file": "a.tflite", "kb": 10.0, "history": n, "median_ms": n / 10,
                   "p95_ms": n / 5, "init_ms": 1.0}
        for n in (20, 50, 200)
    }  # fmt: skip
    text = litert_markdown({"run": "runs/x", "rows": rows})
    assert "| a.tflite | 10 | 2.00 / 4.00 | 5.00 / 10.00 | 20.00 / 40.00 |" in text


def test_several_runs_share_one_table_with_a_run_column() -> None:
    def rows(ms):
        return {
            f"a@{n}": {"file": "a.tflite", "kb": 10.0, "history": n, "median_ms": ms,
                       "p95_ms": ms, "init_ms": 1.0}
            for n in (20, 50, 200)
        }  # fmt: skip

    text = litert_markdown({"runs": [{"run": "r/old", "rows": rows(2.0)},
                                     {"run": "r/new", "rows": rows(1.0)}]})  # fmt: skip
    assert "| old | a.tflite | 10 | 2.00 / 2.00 |" in text
    assert "| new | a.tflite | 10 | 1.00 / 1.00 |" in text

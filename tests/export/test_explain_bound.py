"""The explain .tflite is left out above `explain_tflite.MAX_ITEMS` items, with one line."""

from __future__ import annotations

from types import SimpleNamespace

from attnrec_tf.export import explain_tflite
from attnrec_tf.export.export_all import explains_on_device


def test_the_explain_file_is_written_up_to_the_bound_only(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(explain_tflite, "MAX_ITEMS", 100)

    def context(items: int) -> SimpleNamespace:
        return SimpleNamespace(model=SimpleNamespace(vocab_size=items + 1), log=lines.append)

    assert explains_on_device(context(100), ["float32"])
    assert not explains_on_device(context(100), [])  # no TFLite kinds, no explain file
    assert lines == []
    assert not explains_on_device(context(101), ["float32"])
    assert lines == [
        "export: no explain .tflite: 101 items > 100 (its conversion alone took about 7 GB at "
        "779,000 items; the SavedModel explains)"
    ]

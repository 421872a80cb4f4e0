"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests` of a SavedModel version.

TF Serving replays the records of this file when it loads a version, before the version takes
traffic (TF Serving's "SavedModel Warmup" guide). The file is a TFRecord file of
`tensorflow.serving.PredictionLog` protos, each holding a `PredictRequest` (model name,
signature, inputs as `TensorProto`s), written with the protobuf wire format by hand (no
`tensorflow-serving-api` needed). The fields written, with their numbers in
`tensorflow_serving/apis/*.proto`:

    PredictionLog { PredictLog predict_log = 6; }
    PredictLog    { PredictRequest request = 1; }
    PredictRequest{ ModelSpec model_spec = 1; map<string, TensorProto> inputs = 2; }
    ModelSpec     { string name = 1; string signature_name = 3; }

Example:

>>> record = predict_log("attnrec", "serving_default", {"history": b"<TensorProto bytes>"})
>>> record[0] == 6 << 3 | 2, record[1] == len(record) - 2  # field 6, its length, the PredictLog
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
"""The warm-up file's path inside a SavedModel version folder (TF Serving's name)."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, length, bytes."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_log(model_name: str, signature: str, inputs: Mapping[str, bytes]) -> bytes:
    """One serialized `PredictionLog` holding a `PredictRequest`.

    Args:
        model_name: TF Serving's model name.
        signature: The signature to call.
        inputs: Serialized `TensorProto`s by input name.
    """
    spec = _field(1, model_name.encode()) + _field(3, signature.encode())
    request = _field(1, spec)
    for name, tensor in inputs.items():
        request += _field(2, _field(1, name.encode()) + _field(2, tensor))
    return _field(6, _field(1, request))


def write_warmup_requests(
    version: Path, model_name: str, requests: Sequence[tuple[str, Mapping[str, Any]]]
) -> Path:
    """Writes the warm-up file into a SavedModel `version` folder.

    Args:
        version: The version folder (before it is renamed into place).
        model_name: TF Serving's model name.
        requests: `(signature, {input name: array-like})` per record.

    Returns:
        The file's path.
    """
    import tensorflow as tf

    path = Path(version) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            tensors = {k: tf.make_tensor_proto(v).SerializeToString() for k, v in inputs.items()}
            writer.write(predict_log(model_name, signature, tensors))
    return path

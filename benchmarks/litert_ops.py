"""A per-op breakdown of a `.tflite` file, timed by LiteRT's own benchmark tool.

The `litert-benchmark` of the `ai-edge-litert` wheel has no per-op profiler (the C++
`benchmark_model` binary's `--enable_op_profiling` is not shipped, and the Python interpreter
exposes no op timings). So the breakdown is measured by prefixes: the file is cut after op `n`
(ops `0..n` kept, op `n`'s first output made the signature's output) and each cut is timed by
the tool (`litert_tool.benchmark`, 1 thread, XNNPACK, a real 200-item history). Ops run in
file order, so the cut after op `n` costs what the first `n + 1` ops of the full file cost, and
op `n`'s share is the step from cut `n - 1` to cut `n`.

A cumulative curve measured this way is noisy (a cut can be slower than a longer one), so it is
first made non-decreasing by taking, at each `n`, the fastest of the cuts `n..N` (a longer
prefix can only cost more); each op's share is then the step of that curve. Shares under the
tool's resolution (about 0.01 ms) are noise; what the breakdown is for is the few ops that cost
a tenth of a millisecond or more.
"""

from __future__ import annotations

import copy
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPEATS = 2
"""Timings of each cut; the fastest is kept."""
SHOWN = 8
"""Ops listed in the markdown table, most expensive first."""


def op_breakdown(model: Path, p50_ms: Callable[[Path], float]) -> dict[str, Any]:
    """Each op's share of `model`'s p50 latency, from the tool's timings of its prefixes.

    Args:
        model: A `.tflite` file with one subgraph.
        p50_ms: Times a file with the tool (`litert_tool.benchmark`'s median, the model's
            inputs filled in), in ms.

    Returns:
        `{"total_ms", "ops": [{"index", "op", "tensor", "ms"}], "by_op": {op: ms},
        "refused": [indices of cuts LiteRT would not run]}`.
    """
    from attnrec_tf.export.litert import litert
    from attnrec_tf.export.tflite import op_names

    flatbuffer_utils = litert("tools.flatbuffer_utils")
    blob = model.read_bytes()
    full = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    names = op_names(full)
    count = len(full.subgraphs[0].operators)
    cumulative = []
    with tempfile.TemporaryDirectory(prefix="attnrec-ops-") as folder:
        for cut in range(1, count + 1):
            path = Path(folder) / f"cut{cut}.tflite"
            path.write_bytes(_prefix(full, cut, size_hint=len(blob)))
            cumulative.append(_fastest(p50_ms, path))
    if np.isnan(cumulative[-1]):
        raise RuntimeError(f"LiteRT could not run {model}")
    # a cut the runtime refused (NaN) counts as the cut before it: its op's time goes to the
    # next op's share
    filled = np.asarray(cumulative)
    for gap in np.flatnonzero(np.isnan(filled)).tolist():
        filled[gap] = filled[gap - 1] if gap else 0.0
    curve = np.minimum.accumulate(filled[::-1])[::-1]
    shares = np.diff(np.concatenate([[0.0], curve]))
    tensors = full.subgraphs[0].tensors
    ops: list[dict[str, Any]] = []
    by_op: defaultdict[str, float] = defaultdict(float)
    for index, (op, share) in enumerate(zip(names, shares, strict=True)):
        output = full.subgraphs[0].operators[index].outputs[0]
        name = tensors[output].name
        tensor = name.decode() if isinstance(name, bytes) else str(name)
        ops.append({"index": index, "op": op, "tensor": tensor, "ms": float(share)})
        by_op[op] += float(share)
    refused = [index for index, value in enumerate(cumulative) if np.isnan(value)]
    return {"total_ms": float(curve[-1]), "ops": ops, "by_op": dict(by_op), "refused": refused}


def _fastest(p50_ms: Callable[[Path], float], path: Path) -> float:
    """The fastest of `REPEATS` timings of a cut, or NaN if LiteRT will not run it (a cut
    whose output the compiled model cannot hand back, e.g. a hybrid op's internal tensor)."""
    try:
        return min(p50_ms(path) for _ in range(REPEATS))
    except RuntimeError:
        return float("nan")


def _prefix(model: Any, cut: int, *, size_hint: int) -> bytes:
    """`model` with only its first `cut` ops; the last one's first output is the output."""
    from attnrec_tf.export.tflite import pack_model

    prefix = copy.deepcopy(model)
    subgraph = prefix.subgraphs[0]
    subgraph.operators = subgraph.operators[:cut]
    output = int(subgraph.operators[-1].outputs[0])
    subgraph.outputs = np.array([output], dtype=np.int32)
    signature = prefix.signatureDefs[0]
    signature.outputs = signature.outputs[:1]
    signature.outputs[0].tensorIndex = output
    return pack_model(prefix, size_hint=size_hint)


def breakdown_markdown(name: str, result: dict[str, Any]) -> str:
    """The `SHOWN` most expensive ops and the time by op type, as markdown lines."""
    top = sorted(result["ops"], key=lambda row: -row["ms"])[:SHOWN]
    lines = [
        f"`{name}`: {result['total_ms']:.2f} ms in all; the {SHOWN} most expensive ops:",
        "",
        "| op | output tensor | ms |",
        "|---|---|---|",
    ]
    lines += [f"| {row['op']} | `{row['tensor'][:60]}` | {row['ms']:.3f} |" for row in top]
    by_op = sorted(result["by_op"].items(), key=lambda item: -item[1])
    lines += ["", "By op type: " + ", ".join(f"{op} {ms:.2f}" for op, ms in by_op if ms >= 0.005)]
    if result.get("refused"):
        lines.append(
            f"({len(result['refused'])} cuts LiteRT would not run; each of their ops' time is "
            "in the next op's share.)"
        )
    return "\n".join(lines) + "\n"

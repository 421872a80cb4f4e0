"""The `litert` suite: every `.tflite` of a run timed by LiteRT's benchmark tool, by history length.

`litert-benchmark` (`ai_edge_litert.tools.benchmark_litert_model`, in the `ai-edge-litert` wheel)
is what mobile developers run, but it fills every input with random values: random ids in
[-128, 127] are no history (half of them padding, the rest the first 127 items). So this suite
runs the tool's own `run_benchmark` (its CompiledModel, accelerators, warm-up and timing loop)
and replaces only its input filler, `fill_random_input`, by a real history: the last L items of
a test user with at least L, left-padded to the file's input width, and for the explain file
the first items of the catalog as candidates. One thread, CPU (XNNPACK), as the tool sets up.

    python -m benchmarks --suite litert --litert-run runs/ml1m-preset
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.litert_ops import breakdown_markdown, op_breakdown

HISTORY_LENGTHS = (20, 50, 200)
RUNS, WARMUP = 100, 10
BREAKDOWN_SUFFIX = "int8"
"""Files whose op breakdown is measured (`litert_ops`): the two int8 kinds a phone takes."""
BREAKDOWN_AT = 200
"""History length of the op breakdown."""


@contextlib.contextmanager
def tool_inputs(tool: Any, by_shape: dict[tuple[int, ...], np.ndarray]) -> Iterator[None]:
    """The tool's `fill_random_input` writes `by_shape[shape]` instead of random data.

    The tool calls it once per input buffer with that input's details (dtype, shape); inputs
    are told apart by shape (`history` `[1, H]`, `candidates` `[1, K]`).
    """
    original = tool.fill_random_input

    def fill(buffer: Any, details: dict[str, Any]) -> None:
        shape = tuple(int(n) for n in details.get("shape", ()))
        if shape not in by_shape:
            raise ValueError(f"no input of shape {shape} (have {sorted(by_shape)})")
        buffer.write(by_shape[shape].astype(np.int32).reshape(shape))

    tool.fill_random_input = fill
    try:
        yield
    finally:
        tool.fill_random_input = original


def benchmark(model: Path, by_shape: dict[tuple[int, ...], np.ndarray]) -> dict[str, Any]:
    """The tool's results for `model` with these inputs: 1 thread, `WARMUP` + `RUNS` runs."""
    from ai_edge_litert.tools import benchmark_litert_model as tool

    argv = [
        "litert-benchmark", "--model", str(model), "--num_threads", "1",
        "--num_runs", str(RUNS), "--warmup_runs", str(WARMUP),
    ]  # fmt: skip
    saved, sys.argv = sys.argv, argv
    try:
        args = tool.parse_args()
    finally:
        sys.argv = saved
    with tool_inputs(tool, by_shape), contextlib.redirect_stdout(io.StringIO()):
        return dict(tool.run_benchmark(args))


def _p50_ms(model: Path, by_shape: dict[tuple[int, ...], np.ndarray]) -> float:
    """The tool's median latency of `model` with these inputs (`benchmark`)."""
    return float(benchmark(model, by_shape)["latency"]["median_ms"])


def history_of_length(split_histories: list[np.ndarray], length: int, width: int) -> np.ndarray:
    """The last `length` items of the first history that has that many, left-padded to `width`."""
    for history in split_histories:
        if len(history) >= length:
            row = np.zeros((1, width), np.int32)
            row[0, width - length :] = history[-length:]
            return row
    raise ValueError(f"no test history has {length} items")


def litert_suite(run: Path) -> dict[str, Any]:
    """Median and p95 ms of every `.tflite` of `run` at each of `HISTORY_LENGTHS`."""
    from ai_edge_litert.interpreter import Interpreter

    from attnrec_tf.run_dir import RunDir, load_split

    split = load_split(RunDir(run).split)
    histories = split.histories("test")
    rows: dict[str, Any] = {}
    breakdowns: dict[str, Any] = {}
    for model in sorted((run / "tflite").glob("*.tflite")):
        inputs = Interpreter(model_path=str(model)).get_input_details()
        shapes = {d["name"]: tuple(int(n) for n in d["shape"]) for d in inputs}
        width = shapes["history"][-1]
        for length in HISTORY_LENGTHS:
            by_shape = {shapes["history"]: history_of_length(histories, length, width)}
            if "candidates" in shapes:
                count = shapes["candidates"][-1]
                by_shape[shapes["candidates"]] = np.arange(1, count + 1)[None, :]
            result = benchmark(model, by_shape)
            rows[f"{model.stem}@{length}"] = {
                "file": model.name,
                "kb": model.stat().st_size / 1024,
                "history": length,
                "median_ms": result["latency"]["median_ms"],
                "p95_ms": result["latency"]["p95_ms"],
                "init_ms": result["latency"]["init_ms"],
            }
        if model.stem.endswith(BREAKDOWN_SUFFIX) and "candidates" not in shapes:
            by_shape = {shapes["history"]: history_of_length(histories, BREAKDOWN_AT, width)}
            breakdowns[model.name] = op_breakdown(model, partial(_p50_ms, by_shape=by_shape))
    return {"run": str(run), "rows": rows, "breakdowns": breakdowns}


def litert_markdown(entry: dict[str, Any]) -> str:
    """A table: one row per file (per run, when several were timed one after the other),
    median / p95 ms per history length.

    Args:
        entry: `litert_suite`'s result, or `{"runs": [result, ...]}` for several runs.
    """
    entries = entry.get("runs", [entry])
    head = " | ".join(f"{n} items: p50 / p95 ms" for n in HISTORY_LENGTHS)
    several = len(entries) > 1
    names = ", ".join(f"`{e['run']}`" for e in entries)
    lines = [
        "## On-device latency: LiteRT's benchmark tool",
        "",
        f"{names}"
        f"{' (timed one after the other in one bench run)' if several else ''}. LiteRT's "
        f"`litert-benchmark` timing loop (1 thread, CPU/XNNPACK, {WARMUP} warm-up and {RUNS} "
        "timed runs) fed a real test history of each length instead of its random ids "
        "(benchmarks/litert_tool.py says why).",
        "",
        f"| {'run | ' if several else ''}file | KB | {head} |",
        "|---|---|" + ("---|" if several else "") + "---|" * len(HISTORY_LENGTHS),
    ]
    for one in entries:
        run = f"{Path(one['run']).name} | " if several else ""
        for name in sorted({r["file"] for r in one["rows"].values()}):
            rows = {r["history"]: r for r in one["rows"].values() if r["file"] == name}
            cells = " | ".join(
                f"{rows[n]['median_ms']:.2f} / {rows[n]['p95_ms']:.2f}" for n in HISTORY_LENGTHS
            )
            lines.append(f"| {run}{name} | {rows[HISTORY_LENGTHS[0]]['kb']:.0f} | {cells} |")
    lines += _breakdown_lines(entries)
    return "\n".join(lines) + "\n"


def _breakdown_lines(entries: list[dict[str, Any]]) -> list[str]:
    """The op breakdown of each run's int8 files (`litert_ops.breakdown_markdown`)."""
    if not any(entry.get("breakdowns") for entry in entries):
        return []
    lines = [
        "",
        f"### Op breakdown at a {BREAKDOWN_AT}-item history",
        "",
        "Each op's share of the p50, from the tool's timings of the file cut after each op "
        "(benchmarks/litert_ops.py says how).",
    ]
    for entry in entries:
        for name, result in sorted(entry.get("breakdowns", {}).items()):
            lines += ["", breakdown_markdown(f"{Path(entry['run']).name}/{name}", result)]
    return lines

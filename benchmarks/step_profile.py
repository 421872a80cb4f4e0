"""Where a train step's time goes: cumulative forward+backward timings by part, and the machine.

`profile_step` times, on the same real batches of the training pipeline and interleaved so that
machine noise hits every part alike:

* `tf.data`: producing one batch of the training pipeline;
* `input/embedding`: item representations, positions, dropout (forward and backward);
* `self-attention blocks`: the causal blocks and final norm, on top of the embedding;
* `head`: the pooling head and user projection (the rest of `model(x)`);
* `logits and loss`: the full softmax over the catalog at the real positions;
* `optimizer update`: the rest of Keras's `train_on_batch`.

Each part is the difference between two cumulative gradient computations (`embed` alone, then
`embed + blocks`, ...), so the parts add up to the measured step. `matmul_gflops` measures this
machine's fp32 matmul rate in the same process, and `useful_gflop` counts the step's matmul work
on real positions only, so the step's achieved rate is a fraction of what the machine can do.
`python -m benchmarks --suite step` runs it and writes its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.cli import command_parser, quiet_tensorflow, run_command

PARTS = (
    "tf.data",
    "input/embedding",
    "self-attention blocks",
    "head",
    "logits and loss",
    "optimizer update",
)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul rate (GFLOP/s): median of `repeats` `size`-square products."""
    import tensorflow as tf

    a = tf.random.stateless_normal([size, size], seed=[1, 2])
    b = tf.random.stateless_normal([size, size], seed=[3, 4])
    product = tf.function(tf.matmul)
    product(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def useful_gflop(model: Any, targets: np.ndarray) -> float:
    """Matmul GFLOP of one train step on the real positions of `targets` (forward + backward).

    Counts the products that a step cannot avoid: per real position the block projections
    (`3D^2` query/key/value, `D^2` output, `2 m D^2` feed-forward), attention over its real past
    (`2 D` per key for scores and for values), the pooling scorer and projection, and the logits
    against the whole catalog (`D V`); each multiply-add is 2 FLOP and backward costs twice the
    forward. Padding positions count for nothing.
    """
    targets = np.asarray(targets)
    real = targets > 0
    positions = int(real.sum())
    past = int(np.cumsum(real, axis=1)[real].sum())  # keys each real query attends to
    dim, vocab = model.embedding_dim, model.vocab_size
    per_block = positions * (4 + 2 * 1) * dim * dim + 2 * past * dim
    flops = len(model.blocks) * per_block
    if model.pooling is not None:
        flops += positions * dim * model.attention_units + past * dim
    if model.projection is not None:
        flops += positions * dim * dim * (2 if model.concat_last else 1)
    flops += positions * dim * vocab
    return 2 * 3 * flops / 1e9


def _cumulative_steps(model: Any) -> dict[str, Callable[[Any, Any], Any]]:
    """Gradient computations that stop after each part (names of `PARTS[1:5]`)."""
    import tensorflow as tf
    from keras import ops

    def embedded(x: Any) -> tuple[Any, Any]:
        history = model._clean(x)
        mask = history > 0
        return model.embed(history, mask, training=True), mask

    def blocks(x: Any) -> tuple[Any, Any, Any]:
        h, mask = embedded(x)
        h, weights = model.contextualize(h, mask, training=True)
        return h, mask, weights

    def probe(value: Any) -> Any:  # a scalar whose gradient reaches every element
        return ops.sum(value * ops.cos(ops.cast(ops.arange(ops.shape(value)[-1]), value.dtype)))

    stops: dict[str, Callable[[Any, Any], Any]] = {
        "input/embedding": lambda x, y: probe(embedded(x)[0]),
        "self-attention blocks": lambda x, y: probe(blocks(x)[0]),
        "head": lambda x, y: probe(model(x, training=True)),
        "logits and loss": lambda x, y: model.compute_loss(x, y, model(x, training=True)),
    }
    variables = model.trainable_variables

    def gradient_of(stop: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        @tf.function(reduce_retracing=True)
        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                value = stop(x, y)
            grads = [g for g in tape.gradient(value, variables) if g is not None]
            # One scalar that depends on every gradient, so that fetching it waits for all.
            return tf.add_n([tf.reduce_sum(getattr(g, "values", g)) for g in grads])

        return step

    return {name: gradient_of(stop) for name, stop in stops.items()}


def profile_step(model: Any, dataset: Any, *, steps: int = 8) -> dict[str, Any]:
    """Times the parts of `model`'s train step on the first `steps` batches of `dataset`.

    Args:
        model: A compiled `AttentionRecommender` (its optimizer is stepped by `train_on_batch`).
        dataset: The training `tf.data.Dataset` (as `training.fit_and_evaluate` builds it).
        steps: Batches measured (each part runs on each). A first round over the same batches
            traces every batch shape and is left out.

    Returns:
        `seconds` per part (medians, `PARTS` order), `step_seconds` (their sum), the measured
        `train_on_batch_seconds`, `real_positions` and `positions` per batch (mean),
        `useful_gflop` per batch (mean).
    """
    batches = []
    iterator = iter(dataset)
    data_times = []
    for _ in range(steps):
        start = time.perf_counter()
        x, y = next(iterator)
        data_times.append(time.perf_counter() - start)
        batches.append((x, y))
    cumulative = _cumulative_steps(model)
    times: dict[str, list[float]] = {name: [] for name in [*cumulative, "train_on_batch"]}
    warmup = steps
    for round_ in range(warmup + steps):
        x, y = batches[round_ % steps]
        for name, step in cumulative.items():
            times[name].append(_timed(lambda: step(x, y).numpy()))  # noqa: B023 - called now
        times["train_on_batch"].append(_timed(lambda: model.train_on_batch(x, y)))  # noqa: B023
    median = {name: statistics.median(values[warmup:]) for name, values in times.items()}
    order = [*cumulative, "train_on_batch"]
    seconds = {"tf.data": statistics.median(data_times)}
    previous = 0.0
    for part, name in zip(PARTS[1:], order, strict=True):
        seconds[part] = max(median[name] - previous, 0.0)
        previous = median[name]
    targets = [np.asarray(y) for _, y in batches]
    return {
        "seconds": seconds,
        "step_seconds": sum(seconds.values()),
        "train_on_batch_seconds": median["train_on_batch"],
        "real_positions": float(np.mean([int((t > 0).sum()) for t in targets])),
        "positions": float(np.mean([t.size for t in targets])),
        "useful_gflop": float(np.mean([useful_gflop(model, t) for t in targets])),
    }


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def describe(profile: dict[str, Any], machine_gflops: float) -> list[str]:
    """Markdown rows `| part | ms | share |` and the achieved-rate summary of a profile."""
    step = profile["step_seconds"]
    rows = [
        f"| {part} | {seconds * 1000:.0f} | {seconds / step * 100:.0f}% |"
        for part, seconds in profile["seconds"].items()
    ]
    achieved = profile["useful_gflop"] / profile["train_on_batch_seconds"]
    rows.append(
        f"| step (train_on_batch) | {profile['train_on_batch_seconds'] * 1000:.0f} | "
        f"{achieved:.0f} GFLOP/s useful = {achieved / machine_gflops * 100:.0f}% of the "
        f"machine's {machine_gflops:.0f} GFLOP/s matmul |"
    )
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The CLI of `python -m benchmarks.step_profile`."""
    parser = command_parser("python -m benchmarks.step_profile", __doc__, doc=True)
    parser.add_argument("--data", required=True, help="a MovieLens folder (or any --data value)")
    parser.add_argument("--preset", default="ml-1m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the result")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.step_profile --data DIR --preset P --out FILE.json`.

    Returns:
        The exit status (`cli.run_command`).
    """
    args = build_parser().parse_args(argv)
    return run_command(lambda: _profile_and_save(args))


def _profile_and_save(args: argparse.Namespace) -> None:
    import json

    from attnrec_tf import atomic

    quiet_tensorflow()
    result = run(args.data, args.preset, steps=args.steps)
    atomic.write_json(args.out, result)
    print(json.dumps(result, indent=1))


def run(data: str, preset_name: str, *, steps: int = 8) -> dict[str, Any]:
    """Profiles the preset's train step with and without length bucketing, plus the machine."""
    import tensorflow as tf

    from attnrec_tf.config import preset
    from attnrec_tf.data import sources
    from attnrec_tf.data.item_features import item_feature_matrix
    from attnrec_tf.data.pipeline import training_arrays, training_dataset
    from attnrec_tf.data.sequences import build_sequences, leave_one_out
    from attnrec_tf.model import build_model
    from attnrec_tf.training.optimizer import make_optimizer

    tf.config.experimental.enable_op_determinism()  # as training runs
    config = preset(preset_name)
    loaded = sources.load(data, synthetic_seed=config.seed)
    vocabulary, sequences, _ = build_sequences(
        loaded.interactions,
        min_user_interactions=config.min_user_interactions,
        min_item_interactions=config.min_item_interactions,
    )
    split = leave_one_out(sequences)
    features, _ = item_feature_matrix(vocabulary, loaded.items)
    inputs, targets = training_arrays(split.train, config.max_len, all_windows=config.all_windows)
    model = build_model(config, vocabulary.size, features if config.item_features else None)
    model.compile(optimizer=make_optimizer(config, -(-len(inputs) // config.batch_size)))
    gflops = matmul_gflops()
    profiles = {}
    for bucket in (False, True):
        dataset = training_dataset(
            inputs, targets, batch_size=config.batch_size, seed=config.seed, bucket=bucket
        )
        profiles["bucketed" if bucket else "full width"] = profile_step(model, dataset, steps=steps)
    return {
        "preset": preset_name,
        "data": str(data),
        "matmul_gflops": gflops,
        "epoch_real_positions": int((targets > 0).sum()),
        "epoch_positions": int(targets.size),
        "profiles": profiles,
    }


if __name__ == "__main__":
    sys.exit(main())

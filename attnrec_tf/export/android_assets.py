"""Assets for the TensorFlow Lite on-device recommendation Android demo.

The folder drops into the demo (tensorflow/examples, `lite/examples/recommendation/android`):
`config.json` (read with Gson into its `Config`) names the `model` file, the `movieList`
(`{"id", "title", "genres", "count"}`, most-counted first; `id` is the model's input index),
the `inputs` (`{"name", "index", "inputLength"}`; `movieFeature` = the selected ids,
right-padded with 0) and `outputIdsIndex` / `outputScoresIndex`; each index is the tensor's
position in the interpreter's input or output list, read from the converted file
(`demo_config`). The model is the unbatched variant (`[H]` -> `[K]`, `inputLength` = `H` = the
export's `history_length`) of the chosen TFLite kind. How the app uses these fields:
docs/notes/export-training-serving.md.

Example:

```python
write_assets(folder, tflite=blob, model_file="attnrec_dynamic_int8.tflite", items=items,
             top_k=10, choice={"kind": "dynamic_int8", "reason": "..."})
assert check_assets(folder) == []
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf import atomic
from attnrec_tf.errors import DependencyError

CONFIG = "config.json"
MOVIE_LIST = "sorted_movie_vocab.json"
README = "README.md"
MOVIE_FEATURE = "movieFeature"
GENRE_FEATURE = "genreFeature"
NDCG_TOLERANCE = 0.02
PREFERRED_KIND = "dynamic_int8"
FALLBACK_KIND = "float32"


def choose_kind(metrics: dict[str, dict[str, Any]], available: list[str]) -> dict[str, Any]:
    """Picks the TFLite kind for the app: dynamic int8 if its NDCG@10 is within 2% of Keras.

    The reference is `keras_window` when present (Keras under the `.tflite`'s input rule), else
    `keras`.

    Args:
        metrics: report.json `metrics` (needs `keras` or `keras_window`, and `tflite_<kind>`).
        available: The TFLite kinds that were converted.

    Returns:
        `{"kind", "reason"}`.
    """
    reference = "keras_window" if "keras_window" in metrics else "keras"
    keras_ndcg = metrics.get(reference, {}).get("ndcg@10")
    candidate = metrics.get(f"tflite_{PREFERRED_KIND}", {}).get("ndcg@10")
    if PREFERRED_KIND in available and keras_ndcg is not None and candidate is not None:
        bound = (1.0 - NDCG_TOLERANCE) * keras_ndcg
        if candidate >= bound:
            return {
                "kind": PREFERRED_KIND,
                "reason": f"its NDCG@10 {candidate:.4f} is within {NDCG_TOLERANCE:.0%} of "
                f"{reference} ({keras_ndcg:.4f})",
            }
        reason = (
            f"{PREFERRED_KIND} NDCG@10 {candidate:.4f} is more than {NDCG_TOLERANCE:.0%} below "
            f"{reference} ({keras_ndcg:.4f})"
        )
    else:
        reason = f"{PREFERRED_KIND} was not converted or evaluated"
    kind = FALLBACK_KIND if FALLBACK_KIND in available else available[0]
    return {"kind": kind, "reason": reason}


def movie_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """items.json records -> the demo's movie list, most-counted first (ties by id)."""
    movies = [
        {
            "id": int(item["index"]),
            "title": str(item.get("title") or item.get("id")),
            "genres": [str(g) for g in item.get("genres") or []],
            "count": int(item.get("count") or 0),
        }
        for item in items
    ]
    return sorted(movies, key=lambda m: (-m["count"], m["id"]))


def tensor_positions(tflite: bytes | Path) -> dict[str, Any]:
    """Input/output positions, tensor indices and shapes of the `serving_default` tensors."""
    from attnrec_tf.export.litert import interpreter as load_interpreter

    interpreter = load_interpreter(tflite)
    signature = interpreter.get_signature_runner("serving_default")
    result: dict[str, Any] = {}
    for kind, details, listed in (
        ("inputs", signature.get_input_details(), interpreter.get_input_details()),
        ("outputs", signature.get_output_details(), interpreter.get_output_details()),
    ):
        order = [d["index"] for d in listed]
        result[kind] = {
            name: {
                "position": order.index(d["index"]),
                "tensor_index": int(d["index"]),
                "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
            }
            for name, d in details.items()
        }
    return result


def demo_config(tflite: bytes | Path, model_file: str, top_k: int) -> dict[str, Any]:
    """The demo's `config.json`, with indices and lengths read from the converted file."""
    tensors = tensor_positions(tflite)
    history = tensors["inputs"]["history"]
    ids, scores = tensors["outputs"]["item_ids"], tensors["outputs"]["scores"]
    return {
        "model": model_file,
        "inputs": [
            {
                "name": MOVIE_FEATURE,
                "index": history["position"],
                "inputLength": history["shape"][-1],
            }
        ],
        "movieList": MOVIE_LIST,
        "topK": top_k,
        "outputLength": ids["shape"][-1],
        "outputIdsIndex": ids["position"],
        "outputScoresIndex": scores["position"],
    }


def write_assets(
    folder: Path,
    *,
    tflite: bytes,
    model_file: str,
    items: list[dict[str, Any]],
    top_k: int,
    choice: dict[str, Any],
) -> dict[str, Any]:
    """Writes config.json, the movie list, the model and README.md into `folder` (atomically).

    Returns:
        The config dict plus `tensors` (positions, tensor indices, shapes).
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = demo_config(tflite, model_file, top_k)
    tensors = tensor_positions(tflite)
    atomic.write_bytes(folder / model_file, tflite)
    atomic.write_json(folder / MOVIE_LIST, movie_list(items))
    atomic.write_json(folder / CONFIG, config)
    atomic.write_text(folder / README, readme_text(config, tensors, choice))
    return {**config, "tensors": tensors}


def readme_text(config: dict[str, Any], tensors: dict[str, Any], choice: dict[str, Any]) -> str:
    """The README of the asset folder, with this export's tensor positions and choice."""
    rows = []
    width = tensors["inputs"]["history"]["shape"][-1]
    window = tensors["outputs"]["attention"]["shape"][-1]
    meaning = {
        "history": f"up to {width} selected movie ids (vocabulary indices 1..V-1), oldest "
        "first, 0 = padding on either side; other values count as padding",
        "item_ids": f"recommended movie ids, best first; never one of the {width} selected "
        "movies, never 0",
        "scores": "scores of `item_ids`, same order (dot products: higher is better, not "
        "probabilities)",
        "attention": f"weight of each of the last {window} selected movies in the user "
        "vector, packed to the right (left-padded with 0)",
    }
    for kind in ("inputs", "outputs"):
        for name, t in sorted(tensors[kind].items(), key=lambda kv: kv[1]["position"]):
            rows.append(
                f"| {kind[:-1]} {t['position']} | `{name}` | {t['tensor_index']} | "
                f"`{t['dtype']}{t['shape']}` | {meaning.get(name, '')} |"
            )
    table = "\n".join(rows)
    files = "\n".join(
        [
            f"| `{CONFIG}` | the demo's `Config` (read with Gson) |",
            f'| `{MOVIE_LIST}` | `[{{"id", "title", "genres", "count"}}]`, most-counted first; '
            "`id` is the model's input index |",
            f"| `{config['model']}` | the model ({choice['kind']}; no batch axis, for the "
            "demo's `int[]` arrays) |",
        ]
    )
    return f"""# Android demo assets

Generated by `python -m attnrec_tf.export` (or at the end of `python -m attnrec_tf.train`) for
the TensorFlow Lite on-device recommendation demo,
[tensorflow/examples `lite/examples/recommendation/android`](https://github.com/tensorflow/examples/tree/master/lite/examples/recommendation/android).

| file | what |
|---|---|
{files}

Model choice: **{choice["kind"]}**: {choice["reason"]}.
The rule: dynamic-range int8 when its test NDCG@10 is within {NDCG_TOLERANCE:.0%} of the Keras
model's, else float32 (`report.json` -> `export.android`). `count` in the movie list is the
number of training interactions of the item.

## Drop into the app

1. Copy every file of this folder into `app/src/main/assets/` of the demo, replacing its
   `{CONFIG}` and `{MOVIE_LIST}`.
2. The demo's `app/download.gradle` downloads its own `{CONFIG}` and `{MOVIE_LIST}` with
   `overwrite true`; if your checkout runs the `downloadLiteModel` task during the build, remove
   that dependency (or the `apply from: 'download.gradle'` line) so it does not overwrite them.
3. Build and run. The app shows the first 100 movies of `{MOVIE_LIST}`; pick a few and it
   shows the top {config["topK"]}.

## Tensors

`index`, `outputIdsIndex` and `outputScoresIndex` in `{CONFIG}` are positions in the
interpreter's input/output lists (what Java's `runForMultipleInputsOutputs` expects), read from
the converted file, not tensor indices. The signature is `serving_default`.

| position | name | tensor index | dtype/shape | meaning |
|---|---|---|---|---|
{table}

`inputLength` is {width}: the model attends over the last {window} real ids of the input, and
none of the {width} is ever recommended (a history longer than that may get its older movies
back). The app right-pads the selected ids (`preprocessIds`; past {width} selections it keeps
the first {width}); the graph packs real ids to the right before the model, so left or right
padding give the same result. Out-of-range ids (negative or >= V) are treated as padding.
Selected movies are never recommended (the app's own filter of selected movies finds nothing to
remove), so `outputLength` = `topK` is enough.

Check a folder: `python -c "from attnrec_tf.export.android_assets import check_assets;
print(check_assets('android_demo_assets'))"` prints `[]` when the config matches the model.
"""


def check_assets(folder: str | Path) -> list[str]:
    """Problems that would break the demo app with this folder's assets (empty = fine).

    Checks the config fields and types, the movie list, and that the config's indices and
    lengths match the `.tflite` tensors (rank 1, int32 ids, float32 scores), that the model
    uses builtin ops only, and runs it once the way the app does (right-padded selection).
    """
    from attnrec_tf.export import tflite as tflite_module
    from attnrec_tf.export.litert import interpreter as load_interpreter

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [f"{folder / CONFIG}: cannot read ({error})"]
    problems = _config_field_problems(config)
    if problems:
        return problems
    movies, movie_problems = _movie_list_problems(folder / config["movieList"])
    problems += movie_problems
    model_path = folder / config["model"]
    if not model_path.is_file():
        return [*problems, f"{model_path}: model file not found"]
    problems += tflite_module.op_problems(tflite_module.list_ops(model_path))
    try:
        interpreter = load_interpreter(model_path, num_threads=1)
        interpreter.allocate_tensors()
    except DependencyError:  # LiteRT itself is missing or broken: not a problem of the folder
        raise
    except Exception as error:  # noqa: BLE001 - any load failure is a problem to report
        return [*problems, f"{model_path}: LiteRT cannot load it ({error})"]
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    problems += _tensor_problems(config, inputs, outputs)
    if problems or not movies:
        return problems
    return _smoke_run(interpreter, config, inputs, outputs, movies)


def _config_field_problems(config: Any) -> list[str]:
    if not isinstance(config, dict):
        return [f"{CONFIG}: expected a JSON object"]
    expected = {
        "model": str,
        "inputs": list,
        "movieList": str,
        "topK": int,
        "outputLength": int,
        "outputIdsIndex": int,
        "outputScoresIndex": int,
    }
    problems = [
        f"{CONFIG}: field {name!r} missing or not {kind.__name__}"
        for name, kind in expected.items()
        if not isinstance(config.get(name), kind) or isinstance(config.get(name), bool)
    ]
    for i, feature in enumerate(config.get("inputs") or []):
        if not (
            isinstance(feature, dict)
            and feature.get("name") in (MOVIE_FEATURE, GENRE_FEATURE)
            and isinstance(feature.get("index"), int)
            and isinstance(feature.get("inputLength"), int)
        ):
            problems.append(
                f"{CONFIG}: inputs[{i}] must be {{name: {MOVIE_FEATURE}|{GENRE_FEATURE}, "
                "index: int, inputLength: int}"
            )
    if not problems and not config["inputs"]:
        problems.append(f"{CONFIG}: inputs is empty")
    if not problems and not 0 < config["topK"] <= config["outputLength"]:
        problems.append(f"{CONFIG}: topK must be in 1..outputLength ({config['outputLength']})")
    return problems


def _movie_list_problems(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        movies = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [], [f"{path}: cannot read ({error})"]
    if not isinstance(movies, list) or not movies:
        return [], [f"{path}: expected a non-empty JSON list"]
    for i, movie in enumerate(movies):
        if not (
            isinstance(movie, dict)
            and isinstance(movie.get("id"), int)
            and movie["id"] > 0
            and isinstance(movie.get("title"), str)
            and isinstance(movie.get("genres"), list)
            and isinstance(movie.get("count"), int)
        ):
            return [], [f"{path}: entry {i} must be {{id: int > 0, title, genres: [], count: int}}"]
    problems = []
    if len({m["id"] for m in movies}) != len(movies):
        problems.append(f"{path}: duplicate ids")
    counts = [m["count"] for m in movies]
    if counts != sorted(counts, reverse=True):
        problems.append(f"{path}: not sorted by count, descending")
    return movies, problems


def _tensor_problems(
    config: dict[str, Any], inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]
) -> list[str]:
    problems = []
    if len(config["inputs"]) != len(inputs):
        problems.append(f"{CONFIG}: {len(config['inputs'])} inputs, the model has {len(inputs)}")
    for feature in config["inputs"]:
        index = feature["index"]
        if not 0 <= index < len(inputs):
            problems.append(f"{CONFIG}: input index {index} out of range ({len(inputs)} inputs)")
            continue
        detail = inputs[index]
        if list(detail["shape"]) != [feature["inputLength"]] or detail["dtype"] != np.int32:
            problems.append(
                f"{CONFIG}: input {index} is {np.dtype(detail['dtype']).name}"
                f"{list(detail['shape'])}, the app feeds int32[{feature['inputLength']}]"
            )
    for field, dtype in (("outputIdsIndex", np.int32), ("outputScoresIndex", np.float32)):
        index = config[field]
        if not 0 <= index < len(outputs):
            problems.append(f"{CONFIG}: {field} {index} out of range ({len(outputs)} outputs)")
            continue
        detail = outputs[index]
        if list(detail["shape"]) != [config["outputLength"]] or detail["dtype"] != dtype:
            problems.append(
                f"{CONFIG}: output {index} ({field}) is {np.dtype(detail['dtype']).name}"
                f"{list(detail['shape'])}, the app reads "
                f"{np.dtype(dtype).name}[{config['outputLength']}]"
            )
    if config["outputIdsIndex"] == config["outputScoresIndex"]:
        problems.append(f"{CONFIG}: outputIdsIndex and outputScoresIndex are equal")
    return problems


def _smoke_run(
    interpreter: Any,
    config: dict[str, Any],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    movies: list[dict[str, Any]],
) -> list[str]:
    """Runs the model as the app does: the first three movies, right-padded."""
    selected = [m["id"] for m in movies[:3]]
    for feature in config["inputs"]:
        ids = np.zeros(feature["inputLength"], np.int32)
        ids[: len(selected)] = selected[: feature["inputLength"]]
        interpreter.set_tensor(inputs[feature["index"]]["index"], ids)
    interpreter.invoke()
    ids = interpreter.get_tensor(outputs[config["outputIdsIndex"]]["index"])
    scores = interpreter.get_tensor(outputs[config["outputScoresIndex"]]["index"])
    known = {m["id"] for m in movies}
    problems = []
    if not set(ids.tolist()) <= known:
        problems.append(
            f"model output ids {sorted(set(ids.tolist()) - known)} are not in the movie list"
        )
    if set(ids.tolist()) & set(selected):
        problems.append("model recommends movies that were selected")
    if not np.all(np.isfinite(scores)) or np.any(np.diff(scores) > 0):
        problems.append("model scores are not finite and non-increasing")
    return problems

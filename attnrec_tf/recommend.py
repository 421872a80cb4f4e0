"""`python -m attnrec_tf.recommend`: top-K for a history, through an exported artifact, explained.

Runs:

    python -m attnrec_tf.recommend --output-dir runs/latest --history "Matrix, The" "Alien" "Heat"
    python -m attnrec_tf.recommend --output-dir runs/latest --ids 2571 1214 6 --top-k 5
    python -m attnrec_tf.recommend --output-dir runs/latest --user 42 --runtime tflite --json

The history is given one of three ways:

- `--history TITLE ...`: titles, matched against `items.json` (`attnrec_tf.titles`: "The
  Matrix" finds "Matrix, The (1999)"; typos are forgiven; an ambiguous title lists its
  candidates and exits with status 2);
- `--ids ID ...`: the catalog's raw item ids, oldest first;
- `--user ID`: that user's full known history from `split.npz`: the training items, then the
  validation and the test item, i.e. everything the user did, so the answer is what they would
  be recommended next today.

The recommendations come from the chosen runtime (`--runtime`):

- `saved_model` (default): the latest version under `saved_model/<model-name>/`, loaded with
  `tf.saved_model.load` and called through `serving_default` with raw ids (every history item
  is excluded). A `--top-k` above the exported K ranks the whole catalog through `rerank`.
- `tflite`: `tflite/<model-name>_<kind>.tflite` (`--kind`, default float32) in the LiteRT
  interpreter; it takes the last `history_length` items (the file's input width, 512 by
  default), attends over the last `max_len` of them and excludes all of them, so it agrees with
  `saved_model` unless the history is longer than `history_length`.

Each recommendation is explained by the history items with the largest contribution
`c_ij = a_i * (p_i . e_j)`: the runtime's attention weight of history item i times its
similarity to the recommended item j in the model's score space, an exact share of the score
(see `attnrec_tf.explain`). `--json` prints one JSON document. Errors (unknown or ambiguous
titles, unknown ids or users, a run without exports) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnrec_tf.cli import (
    DEFAULT_MODEL_NAME,
    add_model_name,
    add_output_dir,
    add_top_k,
    check_top_k,
    command_parser,
    existing_run_dir,
    quiet_tensorflow,
    run_command,
)
from attnrec_tf.errors import ConfigError, DataError

RUNTIMES = ("saved_model", "tflite")
REASONS = 3


def build_parser() -> argparse.ArgumentParser:
    """The CLI of `python -m attnrec_tf.recommend`."""
    from attnrec_tf.export.tflite import KINDS

    parser = command_parser(
        "python -m attnrec_tf.recommend",
        "Recommend the next items for a history through an exported model, with "
        "the history items that drove each recommendation.",
    )
    add_output_dir(parser, "a finished, exported training run")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--history", nargs="+", metavar="TITLE", help="titles, oldest first")
    given.add_argument("--ids", nargs="+", metavar="ID", help="raw item ids, oldest first")
    given.add_argument("--user", metavar="ID", help="a user of the training data")
    parser.add_argument("--runtime", choices=RUNTIMES, default="saved_model")
    parser.add_argument(
        "--kind",
        default="float32",
        help=f"the .tflite kind for --runtime tflite ({', '.join(KINDS)})",
    )
    add_model_name(parser, help="the exported model name")
    add_top_k(parser, "how many recommendations")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


@dataclass(frozen=True)
class Catalog:
    """The run's items: vocabulary, records from items.json, and title lookup."""

    vocabulary: Any
    records: list[dict[str, Any]]

    def title(self, index: int) -> str:
        return str(self.records[index - 1]["title"])

    def raw_id(self, index: int) -> Any:
        raw = self.vocabulary.raw_ids[index - 1]
        return raw.item() if hasattr(raw, "item") else raw


def load_catalog(output: Any) -> Catalog:
    """Reads vocabulary.json and items.json of a run (user errors name the missing file)."""
    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.run_dir import load_items

    vocabulary = Vocabulary.load(output.require(output.vocabulary))
    records = load_items(output.require(output.items))
    if len(records) != vocabulary.num_items:
        raise DataError(
            f"{output.items}: {len(records)} items, but vocabulary.json has "
            f"{vocabulary.num_items}; were they written by the same run?"
        )
    return Catalog(vocabulary, records)


def history_from_titles(catalog: Catalog, titles: list[str]) -> list[int]:
    """Vocabulary indices of typed titles; raises `ConfigError` naming the first bad one."""
    from attnrec_tf.titles import TitleIndex, describe_failure

    index = TitleIndex((r["index"], r["title"]) for r in catalog.records)
    found = []
    for title in titles:
        match = index.match(title)
        if match.index is None:
            message = describe_failure(match, lambda i: f"id {catalog.raw_id(i)}")
            raise ConfigError(f"--history: {message}")
        found.append(match.index)
    return found


def history_from_ids(catalog: Catalog, ids: list[str]) -> list[int]:
    """Vocabulary indices of raw ids given on the command line."""
    vocabulary = catalog.vocabulary
    if vocabulary.id_dtype == "int64":
        try:
            raw: list[Any] = [int(text) for text in ids]
        except ValueError:
            bad = next(t for t in ids if not t.lstrip("-").isdigit())
            raise ConfigError(f"--ids: {bad!r} is not an integer item id") from None
    else:
        raw = list(ids)
    indices = vocabulary.encode(np.asarray(raw)).tolist()
    unknown = [str(r) for r, i in zip(raw, indices, strict=True) if i == 0]
    if unknown:
        raise ConfigError(
            f"--ids: unknown item id(s) {', '.join(unknown)} (not in vocabulary.json)"
        )
    return [int(i) for i in indices]


def history_from_user(output: Any, user: str) -> list[int]:
    """A user's full known history (training items, validation and test target)."""
    from attnrec_tf.run_dir import load_split

    split = load_split(output.require(output.split))
    rows = np.flatnonzero(np.asarray(split.users).astype(str) == str(user))
    if not len(rows):
        raise ConfigError(f"--user: no user {user!r} in {output.split}")
    row = int(rows[0])
    history = [*split.train[row].tolist(), split.valid_targets[row], split.test_targets[row]]
    return [int(i) for i in history]


class SavedModelRuntime:
    """The latest SavedModel version, called with raw ids."""

    def __init__(self, output: Any, model_name: str, catalog: Catalog) -> None:
        from attnrec_tf.export.saved_model import SavedModelClient, versions

        base = output.saved_model_base(model_name)
        found = versions(base)
        if not found:
            raise ConfigError(
                f"--runtime saved_model: no SavedModel version under {base}; export the run "
                f"first (python -m attnrec_tf.export --output-dir {output.root})"
            )
        self.path = base / str(found[-1])
        self.client = SavedModelClient(self.path, catalog.vocabulary)
        self.catalog = catalog

    def __call__(self, history: list[int], top_k: int) -> dict[str, np.ndarray]:
        batch = self.client.raw_batch([np.asarray(history)])
        out = self.client.recommend(batch)
        attention = out["attention"][0].astype(np.float64)
        exported_k = out["item_ids"].shape[1]
        if top_k <= exported_k:
            ids = self.catalog.vocabulary.encode(_plain(out["item_ids"][0][:top_k]))
            return {"item_ids": ids, "scores": out["scores"][0][:top_k], "attention": attention}
        scores = self.client.scores([np.asarray(history)])[0].astype(np.float64)  # (V,)
        scores[np.asarray(history)] = -np.inf
        order = np.argsort(-scores, kind="stable")[:top_k]
        return {"item_ids": order, "scores": scores[order], "attention": attention}


class TFLiteRuntime:
    """A `.tflite` of the run in the LiteRT interpreter (the last `history_length` items)."""

    def __init__(self, output: Any, model_name: str, kind: str) -> None:
        from attnrec_tf.export.litert import LiteRTRecommender
        from attnrec_tf.export.tflite import KINDS

        if kind not in KINDS:
            raise ConfigError(f"--kind: unknown TFLite kind {kind!r}; choose from {KINDS}")
        self.path = output.tflite(model_name, kind)
        if not self.path.is_file():
            raise ConfigError(
                f"--runtime tflite: {self.path} not found; export it first (python -m "
                f"attnrec_tf.export --output-dir {output.root} --tflite {kind})"
            )
        self.runner = LiteRTRecommender(self.path)

    def __call__(self, history: list[int], top_k: int) -> dict[str, np.ndarray]:
        out = self.runner(np.asarray(history))
        exported_k = len(out["item_ids"])
        if top_k > exported_k:
            raise ConfigError(
                f"--top-k {top_k}: {self.path.name} returns {exported_k} items; use a smaller "
                "--top-k or --runtime saved_model"
            )
        return {
            "item_ids": out["item_ids"][:top_k].astype(np.int64),
            "scores": out["scores"][:top_k],
            "attention": out["attention"].astype(np.float64),
        }


def _plain(values: np.ndarray) -> np.ndarray:
    """String ids come back from TensorFlow as bytes."""
    if values.dtype == object:
        return np.asarray([v.decode() if isinstance(v, bytes) else v for v in values])
    return values


def recommend(
    output_dir: Path,
    *,
    history: list[int] | None = None,
    titles: list[str] | None = None,
    ids: list[str] | None = None,
    user: str | None = None,
    runtime: str = "saved_model",
    kind: str = "float32",
    model_name: str = DEFAULT_MODEL_NAME,
    top_k: int = 10,
) -> dict[str, Any]:
    """Recommendations with explanations, as the JSON document the CLI prints.

    Args:
        output_dir: A finished, exported run.
        history: Vocabulary indices (instead of `titles`, `ids` or `user`).
        titles: Typed titles.
        ids: Raw ids as text.
        user: A user id of `split.npz`.
        runtime: `saved_model` or `tflite`.
        kind: The TFLite kind.
        model_name: The exported model name.
        top_k: How many recommendations.

    Returns:
        `{"runtime", "artifact", "history": [...], "recommendations": [...]}`; see the README.

    Raises:
        AttnRecError: A user error (bad flag value, unknown title/id/user, missing files).
    """
    quiet_tensorflow()
    from attnrec_tf.explain import score_parts
    from attnrec_tf.run_dir import load_model

    output = existing_run_dir(output_dir)
    check_top_k(top_k)
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime must be one of {RUNTIMES}, got {runtime!r}")
    catalog = load_catalog(output)
    if titles is not None:
        history = history_from_titles(catalog, titles)
    elif ids is not None:
        history = history_from_ids(catalog, ids)
    elif user is not None:
        history = history_from_user(output, user)
    if not history:
        raise ConfigError("the history is empty: give --history, --ids or --user")
    if top_k > catalog.vocabulary.num_items - len(set(history)):
        raise ConfigError(
            f"--top-k {top_k}: the catalog has only "
            f"{catalog.vocabulary.num_items - len(set(history))} items outside the history"
        )

    engine: SavedModelRuntime | TFLiteRuntime
    if runtime == "saved_model":
        engine = SavedModelRuntime(output, model_name, catalog)
    else:
        engine = TFLiteRuntime(output, model_name, kind)
    out = engine(history, top_k)

    model = load_model(output.require(output.model))
    window = np.zeros(model.max_len, np.int32)
    tail = np.asarray(history[-model.max_len :], np.int32)
    window[model.max_len - len(tail) :] = tail
    parts = score_parts(model, window)
    return _document(catalog, history, window, parts, out, runtime, engine.path)


def _document(
    catalog: Catalog,
    history: list[int],
    window: np.ndarray,
    parts: Any,
    out: dict[str, np.ndarray],
    runtime: str,
    artifact: Path,
) -> dict[str, Any]:
    from attnrec_tf.explain import reasons

    attention = out["attention"]
    weight_of: dict[int, float] = {}
    for position, index in enumerate(window.tolist()):
        if index > 0:
            weight_of[index] = weight_of.get(index, 0.0) + float(attention[position])
    outside = max(len(history) - len(window), 0)
    described = [
        {
            "id": catalog.raw_id(index),
            "title": catalog.title(index),
            "attention": round(weight_of.get(index, 0.0), 6) if position >= outside else None,
        }
        for position, index in enumerate(history)
    ]
    recommendations = []
    for rank, (item, score) in enumerate(zip(out["item_ids"], out["scores"], strict=True), 1):
        item = int(item)
        terms = parts.terms(item, attention)
        recommendations.append(
            {
                "rank": rank,
                "id": catalog.raw_id(item),
                "title": catalog.title(item),
                "score": round(float(score), 6),
                "because": [
                    {
                        "id": catalog.raw_id(r.item),
                        "title": catalog.title(r.item),
                        "attention": round(r.attention, 6),
                        "similarity": round(r.contribution / r.attention, 6),
                        "contribution": round(r.contribution, 6),
                    }
                    for r in reasons(parts, item, attention, top=REASONS)
                ],
                "terms": {name: round(value, 6) for name, value in terms.items()},
            }
        )
    return {
        "runtime": runtime,
        "artifact": str(artifact),
        "history": described,
        "recommendations": recommendations,
    }


def format_text(document: dict[str, Any]) -> str:
    """The human-readable form of a `recommend` document."""
    lines = [f"History ({len(document['history'])} items; attention weight of each):"]
    width = max(len(h["title"]) for h in document["history"])
    for item in document["history"]:
        weight = item["attention"]
        bar = "" if weight is None else "#" * max(1, round(weight * 40))
        shown = "outside the window" if weight is None else f"{weight:5.3f} {bar}"
        lines.append(f"  {item['title']:<{width}}  {shown}")
    lines.append("")
    lines.append(
        f"Top {len(document['recommendations'])} ({document['runtime']}: {document['artifact']}):"
    )
    for rec in document["recommendations"]:
        lines.append(
            f"  {rec['rank']:>2}. {rec['title']}  (id {rec['id']}, score {rec['score']:.3f})"
        )
        if rec["because"]:
            because = ", ".join(f"{r['title']} (+{r['contribution']:.2f})" for r in rec["because"])
            lines.append(f"      because you watched {because}")
        else:
            lines.append("      not driven by the history (recent and popularity terms)")
    lines.append("")
    lines.append(
        "(+c) = attention weight x similarity to the recommendation, its share of the score "
        "(attnrec_tf.explain)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`)."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _print_recommendations(args))


def _print_recommendations(args: argparse.Namespace) -> None:
    document = recommend(
        args.output_dir,
        titles=args.history,
        ids=args.ids,
        user=args.user,
        runtime=args.runtime,
        kind=args.kind,
        model_name=args.model_name,
        top_k=args.top_k,
    )
    print(
        json.dumps(document, indent=2, ensure_ascii=False) if args.json else format_text(document)
    )


if __name__ == "__main__":
    sys.exit(main())

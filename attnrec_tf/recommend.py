"""`python -m attnrec_tf.recommend`: top-K for a history, through an exported artifact, explained.

Runs:

    python -m attnrec_tf.recommend --output-dir runs/latest --history "Matrix, The" "Alien" "Heat"
    python -m attnrec_tf.recommend --output-dir runs/latest --ids 2571 1214 6 --top-k 5
    python -m attnrec_tf.recommend --output-dir runs/latest --user 42 --runtime tflite --json
    python -m attnrec_tf.recommend --output-dir runs/latest --all-users --out recs.jsonl

The history is `--history TITLE ...` (matched loosely against `items.json`, `attnrec_tf.titles`),
`--ids ID ...` (raw item ids, oldest first) or `--user ID` (that user's whole known history in
`split.npz`); `--all-users` / `--users-file` write every user's top-K to `--out`
(`recommend_all.py`). `--runtime saved_model` (default: the latest version, every history item
excluded; a `--top-k` above the exported K ranks the catalog through `rerank`) or `tflite`
(`--kind`; the last `history_length` items). Each recommendation is explained (`--explain`):
`counterfactual` (default, `attnrec_tf.counterfactual`) or `additive` (`attnrec_tf.explain`).
`--json` prints one JSON document. Errors (unknown or ambiguous titles, unknown ids or users, a
run without exports) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from attnrec_tf.cli import (
    DEFAULT_MODEL_NAME,
    add_model_name,
    add_output_dir,
    add_top_k,
    check_top_k,
    command_parser,
    run_command,
)
from attnrec_tf.errors import ConfigError
from attnrec_tf.recommender import EXPLANATIONS, RUNTIMES, history_from_ids, history_from_titles


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
    given.add_argument(
        "--all-users",
        action="store_true",
        help="every user of the run's data, to --out (batched, no explanations)",
    )
    given.add_argument(
        "--users-file", type=Path, metavar="FILE", help="the users listed (one id a line), to --out"
    )
    parser.add_argument("--runtime", choices=RUNTIMES, default="saved_model")
    parser.add_argument(
        "--kind",
        default="float32",
        help=f"the .tflite kind for --runtime tflite ({', '.join(KINDS)})",
    )
    add_model_name(parser, help="the exported model name")
    add_top_k(parser, "how many recommendations")
    parser.add_argument(
        "--explain",
        choices=EXPLANATIONS,
        default="counterfactual",
        help="counterfactual: the history items whose removal lowers each recommendation's "
        "score most, with the rank it would fall to; additive: the largest terms of the exact "
        "split of the score (attention x similarity)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--out", type=Path, help="with --all-users / --users-file: recs.jsonl or recs.parquet"
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="with --out: users a call of the model"
    )
    return parser


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
    explanation: str = "counterfactual",
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
        explanation: `counterfactual` or `additive` (`recommender.Recommender`).

    Returns:
        `{"runtime", "artifact", "history": [...], "recommendations": [...]}`; see the README.

    Raises:
        AttnRecError: A user error (bad flag value, unknown title/id/user, missing files).
    """
    from attnrec_tf.recommender import Recommender, history_from_user

    check_top_k(top_k)
    recommender = Recommender(
        output_dir, runtime=runtime, kind=kind, model_name=model_name, explanation=explanation
    )
    if titles is not None:
        history = history_from_titles(recommender.catalog, titles)
    elif ids is not None:
        history = history_from_ids(recommender.catalog, ids)
    elif user is not None:
        history = history_from_user(recommender.output, user)
    if not history:
        raise ConfigError("the history is empty: give --history, --ids or --user")
    return recommender.explain(history, top_k)


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
        lines.append(f"      {_because_line(document['explanation'], rec)}")
    lines.append("")
    lines.append(FOOTNOTES[document["explanation"]])
    return "\n".join(lines)


FOOTNOTES = {
    "counterfactual": "(#a -> #b) = the recommendation's rank with the whole history -> without "
    "that item (attnrec_tf.counterfactual)",
    "additive": "(+c) = attention weight x similarity to the recommendation, its share of the "
    "score (attnrec_tf.explain)",
}


def _because_line(method: str, rec: dict[str, Any]) -> str:
    """ "because you watched ..." of one recommendation, or why there is no reason."""
    if not rec["because"]:
        if method == "counterfactual":
            return "no single history item raises it (removing any one leaves it as high)"
        return "not driven by the history (recent and popularity terms)"
    if method == "counterfactual":
        parts = [f"{r['title']} (#{rec['rank']} -> #{r['rank_without']})" for r in rec["because"]]
    else:
        parts = [f"{r['title']} (+{r['contribution']:.2f})" for r in rec["because"]]
    return "because you watched " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`)."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _print_recommendations(args))


def _print_recommendations(args: argparse.Namespace) -> None:
    if args.all_users or args.users_file is not None:
        _write_recommendations(args)
        return
    if args.out is not None:
        raise ConfigError("--out needs --all-users or --users-file")
    document = recommend(
        args.output_dir,
        titles=args.history,
        ids=args.ids,
        user=args.user,
        runtime=args.runtime,
        kind=args.kind,
        model_name=args.model_name,
        top_k=args.top_k,
        explanation=args.explain,
    )
    print(
        json.dumps(document, indent=2, ensure_ascii=False) if args.json else format_text(document)
    )


def _write_recommendations(args: argparse.Namespace) -> None:
    """`--all-users` / `--users-file` to `--out`, with the users per second on stdout."""
    from attnrec_tf.recommend_all import recommend_all, select_users, user_histories
    from attnrec_tf.recommender import Recommender

    if args.out is None:
        raise ConfigError("--all-users and --users-file write to a file: give --out recs.jsonl")
    check_top_k(args.top_k)
    recommender = Recommender(
        args.output_dir, runtime=args.runtime, kind=args.kind, model_name=args.model_name
    )
    users, histories, source = user_histories(recommender)
    users, histories = select_users(users, histories, args.users_file)
    result = recommend_all(
        recommender, users, histories, args.out, k=args.top_k, batch_size=args.batch_size
    )
    print(
        f"wrote the top {args.top_k} of {result['users']:,} users (histories from {source}) "
        f"to {result['path']} in {result['seconds']:.1f}s, {result['users_per_second']:,.0f} "
        f"users/s ({args.runtime}: {recommender.artifact})"
    )


if __name__ == "__main__":
    sys.exit(main())

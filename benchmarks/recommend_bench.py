"""The `recommend` suite: batch recommendations for every user of a run, users per second.

`python -m benchmarks --suite recommend --run runs/bench/ml-1m-preset` writes the top 10
of every user of the run (`recommend --all-users`) to Parquet through each runtime (the
SavedModel; the dynamic-int8 `.tflite` in LiteRT), times it, and checks a sample of users
against the SavedModel's `serving_default` called one user at a time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

RUNTIMES = (("saved_model", "float32"), ("tflite", "dynamic_int8"))
SAMPLE_USERS = 50
TOP_K = 10


def recommend_suite(run: Path, out: Path) -> dict[str, Any]:
    """Batch recommendations of every user of `run` through each of `RUNTIMES`.

    Returns:
        The results.json entry: the run, the users, and per runtime the seconds, users per
        second, and the share of the sampled users whose top 10 equals `serving_default`'s.
    """
    from attnrec_tf.recommend_all import recommend_all, user_histories
    from attnrec_tf.recommender import Recommender

    entry: dict[str, Any] = {"run": str(run), "top_k": TOP_K, "runtimes": {}}
    reference = _serving_reference(run)
    for runtime, kind in RUNTIMES:
        recommender = Recommender(run, runtime=runtime, kind=kind)
        users, histories, source = user_histories(recommender)
        recommender.recommend_indices([h.tolist() for h in histories[:8]], TOP_K)  # warm up
        path = out / f"recs-{runtime}.parquet"
        started = time.perf_counter()
        result = recommend_all(recommender, users, histories, path, k=TOP_K)
        seconds = time.perf_counter() - started
        entry["users"], entry["histories"] = len(users), source
        entry["runtimes"][f"{runtime} {kind}" if runtime == "tflite" else runtime] = {
            "seconds": seconds,
            "users_per_second": len(users) / seconds,
            "rows": result["users"],
            **_agreement(path, reference),
        }
    return entry


def _serving_reference(run: Path) -> dict[str, list[Any]]:
    """`serving_default`'s top 10, one call per user, for `SAMPLE_USERS` users spread evenly."""
    from attnrec_tf.recommend_all import user_histories
    from attnrec_tf.recommender import Recommender

    recommender = Recommender(run)
    users, histories, _ = user_histories(recommender)
    rows = np.linspace(0, len(users) - 1, SAMPLE_USERS).astype(int)
    client = recommender.engine.client  # type: ignore[union-attr]
    reference = {}
    for row in rows:
        out = client.recommend(client.raw_batch([histories[row]]))
        reference[str(users[row])] = [_plain(v) for v in out["item_ids"][0][:TOP_K].tolist()]
    return reference


def _agreement(path: Path, reference: dict[str, list[Any]]) -> dict[str, float]:
    """The share of sampled users with the same list, and the mean share of common items."""
    import pyarrow.parquet as pq

    rows = {row["user"]: row["item_ids"] for row in pq.read_table(path).to_pylist()}
    same = [rows[user] == items for user, items in reference.items()]
    common = [len(set(rows[user]) & set(items)) / len(items) for user, items in reference.items()]
    return {"sample_agreement": float(np.mean(same)), "sample_overlap": float(np.mean(common))}


def _plain(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def recommend_markdown(entry: dict[str, Any]) -> str:
    """The BENCHMARKS.md section of the `recommend` suite."""
    lines = [
        "## Batch recommendations for every user",
        "",
        f"`python -m benchmarks --suite recommend --run {entry['run']}`: the top "
        f"{entry['top_k']} of each of the {entry['users']:,} users of the run (histories from "
        f"`{Path(entry['histories'].split()[0]).name}`, each user's whole history excluded) "
        "written to Parquet in batches of 256 (`recommend --all-users --out recs.parquet`), after "
        f"the model is loaded; agreement = share of {SAMPLE_USERS} users spread over the file "
        "whose top 10 equals `serving_default` called for that user alone; overlap = mean share "
        "of their 10 items in common. Users go through in order of history length (batches of "
        "similar length), and the rows are written in the run's user order.",
        "",
        "| runtime | seconds | users/s | rows | same top 10 as serving_default | overlap |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in entry["runtimes"].items():
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['users_per_second']:,.0f} | "
            f"{row['rows']:,} | {row['sample_agreement']:.2f} | "
            f"{row.get('sample_overlap', float('nan')):.2f} |"
        )
    return "\n".join(lines) + "\n"

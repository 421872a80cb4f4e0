"""The few-picks case of `tests/test_few_picks.py`, beside what its data allows.

`tests/test_few_picks.py` trains the default recipe on a 4-genre synthetic catalog and asks five
picks of one genre to bring that genre into the top 10. How many of ten can a next-item
recommender put there at best? This script answers with an oracle: it generates the same
generator's users by the hundred thousand (same catalog: the clusters are drawn first), counts
what follows each item after five picks of its genre, and ranks the test's picks' last item's
followers. Beside it: popularity (training counts, which ignore the picks) and the model of
each variant, trained as the test trains it.

    python -m benchmarks.few_picks --variants sasrec,pooling --oracle-users 400000

Not part of `python -m benchmarks`: it writes nothing, it prints one line a row.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

TEST_DATA = {"num_users": 400, "num_items": 120, "num_interests": 4, "mean_length": 20}
PICKS = 5
TOP = 10


def genre(title: str) -> str:
    """`"Item 17 (Sci-Fi)"` -> `"Sci-Fi"`: the synthetic titles name the primary genre."""
    return title.rsplit("(", 1)[-1].rstrip(")")


def followers_after_runs(
    sequences: Sequence[Sequence[int]], genre_of: dict[int, str], run: int = PICKS
) -> dict[int, collections.Counter]:
    """For each item x: the counts of the next item after `run` items of one genre ending in x.

    Example:
        >>> seqs = [[1, 2, 3], [1, 2, 4], [5, 2, 3]]
        >>> g = {1: "A", 2: "A", 3: "B", 4: "A", 5: "B"}
        >>> dict(followers_after_runs(seqs, g, run=2)[2])
        {3: 1, 4: 1}
    """
    followers: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for seq in sequences:
        for t in range(run, len(seq)):
            last = seq[t - 1]
            if all(genre_of[x] == genre_of[last] for x in seq[t - run : t]):
                followers[last][seq[t]] += 1
    return followers


def same_genre_in_top(ranked: Sequence[int], picks: Sequence[int], genre_of: dict, g: str) -> int:
    """How many of the first `TOP` items of `ranked`, the picks left out, are of genre `g`."""
    top = [item for item in ranked if item not in picks][:TOP]
    return sum(genre_of[item] == g for item in top)


def oracle_counts(picks_by_genre: dict[str, list[int]], users: int) -> list[int]:
    """The oracle's same-genre count per genre (sorted by name), from `users` generated users."""
    from attnrec_tf.data import synthetic

    data = synthetic.generate(**{**TEST_DATA, "num_users": users})
    genre_of = {item: genre(title) for item, title in data.items.titles.items()}
    users_col, items = data.interactions.users, data.interactions.items
    bounds = np.r_[0, np.flatnonzero(np.diff(users_col)) + 1, len(users_col)]
    sequences = [items[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    followers = followers_after_runs(sequences, genre_of)
    return [
        same_genre_in_top([i for i, _ in followers[picks[-1]].most_common()], picks, genre_of, g)
        for g, picks in sorted(picks_by_genre.items())
    ]


def model_counts(variant: str, out: Path) -> tuple[dict[str, list[int]], list[int], list[int]]:
    """Trains `variant` as the test does; returns the picks by genre, the model's same-genre
    counts and popularity's (training counts from the run's catalog), per genre by name."""
    import attnrec_tf

    spec = "synthetic:" + ",".join(f"{k}={v}" for k, v in TEST_DATA.items())
    run = attnrec_tf.fit(
        data=spec, output_dir=out / variant, variant=variant, epochs=5, max_len=20,
        context_crops=3, tflite=["float32"], sampled_negatives=0, verbose=0,
    )  # fmt: skip
    recommender = attnrec_tf.load(run.output_dir)
    records = recommender.catalog.records
    genre_of = {r["id"]: genre(r["title"]) for r in records}
    picks_by_genre: dict[str, list[int]] = collections.defaultdict(list)
    for r in records:
        picks_by_genre[genre_of[r["id"]]].append(r["id"])
    picks_by_genre = {g: ids[:PICKS] for g, ids in picks_by_genre.items()}
    popular = [r["id"] for r in sorted(records, key=lambda r: -r["count"])]
    model, popularity = [], []
    for g, picks in sorted(picks_by_genre.items()):
        model.append(sum(genre(i["title"]) == g for i in recommender.recommend(picks, k=TOP)))
        popularity.append(same_genre_in_top(popular, picks, genre_of, g))
    return picks_by_genre, model, popularity


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="sasrec,pooling")
    parser.add_argument("--oracle-users", type=int, default=400_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            picks, model, popularity = model_counts(variant, Path(tmp))
            print(f"genres {sorted(picks)}; picks {dict(sorted(picks.items()))}")
            print(f"{variant}: {model}  popularity: {popularity}")
    print(f"oracle ({args.oracle_users} users): {oracle_counts(picks, args.oracle_users)}")


if __name__ == "__main__":
    main()

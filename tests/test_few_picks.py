"""A few picks are enough: five items of one genre bring that genre's items to the top 10.

The on-device case (issue 24): a client sends only the handful of items a user just picked. On a
tiny synthetic catalog of four genres whose users walk mostly within a genre, a model trained
as `make train` trains (the default recipe, with context crops) and loaded as a deployment
loads it (`attnrec_tf.load`, the SavedModel) must answer five picks of one genre with mostly
that genre. The browser demo shows the same with five Disney picks on the ML-1M preset
(docs/explanations.md); its own test checks that the page recommends what `load` does.
"""

from __future__ import annotations

import collections
from pathlib import Path

import attnrec_tf

DATA = "synthetic:num_users=400,num_items=120,num_interests=4,mean_length=20"


def _genre(record: dict) -> str:
    return record["title"].rsplit("(", 1)[-1].rstrip(")")  # "Item 17 (Sci-Fi)" -> "Sci-Fi"


def test_five_picks_of_a_genre_bring_mostly_that_genre(tmp_path: Path) -> None:
    run = attnrec_tf.fit(
        data=DATA, output_dir=tmp_path / "run", epochs=5, max_len=20, context_crops=3,
        tflite=["float32"], sampled_negatives=0, verbose=0,
    )  # fmt: skip
    recommender = attnrec_tf.load(run.output_dir)
    by_genre = collections.defaultdict(list)
    for record in recommender.catalog.records:
        by_genre[_genre(record)].append(record["id"])
    assert len(by_genre) == 4
    for genre, ids in sorted(by_genre.items()):
        top = recommender.recommend(ids[:5], k=10)
        same = sum(_genre(item) == genre for item in top)
        assert same >= 7, (genre, [item["title"] for item in top])
        assert not set(item["id"] for item in top) & set(ids[:5])  # picks never come back

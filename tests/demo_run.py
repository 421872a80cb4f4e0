"""A tiny trained and exported run for the recommend, plots and browser-demo tests.

`demo_run(tmp_path_factory)` writes a small MovieLens-1M-layout folder of invented movies
(titles in MovieLens style, including the article and remake cases the title matcher must
handle), trains on it through `python -m attnrec_tf.train` (2 epochs, tiny model, plots on),
and exports the SavedModel and the float32 and dynamic-int8 `.tflite` files with the Android
assets. It is built once per test session (about 20 s on 2 cores) and shared by every module
that asks for it: the folder is keyed on the session's base temp dir.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# (title, genres): invented movies; a few take the shapes of real titles that the matcher must
# handle ("Matrix, The (1999)" for "The Matrix", remakes with equal titles, an a.k.a.).
MOVIES = [
    ("Matrix, The (1999)", "Action|Sci-Fi"),
    ("Matrix Reloaded, The (2003)", "Action|Sci-Fi"),
    ("Hamlet (1990)", "Drama"),
    ("Hamlet (1996)", "Drama"),
    ("Seven (a.k.a. Se7en) (1995)", "Crime|Thriller"),
    ("Toy Story (1995)", "Animation|Children's|Comedy"),
    ("Toy Story 2 (1999)", "Animation|Children's|Comedy"),
    ("Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy|Romance"),
    ("Godfather, The (1972)", "Crime|Drama"),
    ("Godfather: Part II, The (1974)", "Crime|Drama"),
] + [
    (f"{adjective} {noun} ({1930 + (7 * i) % 90})", genre)
    for i, (adjective, genre, noun) in enumerate(
        (a, g, n)
        for a, g in (
            ("Silent", "Drama"), ("Crimson", "Thriller"), ("Lonely", "Romance"),
            ("Laughing", "Comedy"), ("Iron", "Action"), ("Distant", "Sci-Fi"),
        )
        for n in ("River", "Harbor", "Mountain", "Station", "Garden")
    )
]  # fmt: skip
NUM_USERS = 160
SEED = 11
TRAIN_FLAGS = [
    "--max-len", "12", "--embedding-dim", "16", "--attention-units", "16", "--epochs", "2",
    "--batch-size", "64", "--sampled-negatives", "0", "--verbose", "0", "--no-export",
]  # fmt: skip


def write_movielens(folder: Path) -> Path:
    """A MovieLens-1M-layout folder (`movies.dat`, `ratings.dat`) of invented data."""
    rng = np.random.default_rng(SEED)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{i}::{title}::{genres}" for i, (title, genres) in enumerate(MOVIES, start=1)]
    (folder / "movies.dat").write_text("\n".join(lines) + "\n", encoding="utf-8")
    genre_of = [genres.split("|")[0] for _, genres in MOVIES]
    by_genre: dict[str, list[int]] = {}
    for movie, genre in enumerate(genre_of, start=1):
        by_genre.setdefault(genre, []).append(movie)
    genres = sorted(by_genre)
    rows = []
    for user in range(1, NUM_USERS + 1):
        liked = rng.choice(len(genres), size=2, replace=False)
        pool = [m for g in liked for m in by_genre[genres[g]]]
        others = rng.choice(len(MOVIES), size=4, replace=False) + 1
        movies = list(dict.fromkeys([*rng.permutation(pool).tolist(), *others.tolist()]))
        length = int(rng.integers(6, min(16, len(movies)) + 1))
        for step, movie in enumerate(movies[:length]):
            rows.append(f"{user}::{movie}::{int(rng.integers(1, 6))}::{1_000_000 + 60 * step}")
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def build_demo_run(root: Path) -> Path:
    """Trains and exports the tiny run into `root / "run"` (see the module docstring)."""
    from attnrec_tf.cli import quiet_tensorflow

    quiet_tensorflow()  # before the imports below, which may load TensorFlow
    from attnrec_tf import train
    from attnrec_tf.export.export_all import export_all
    from attnrec_tf.run_dir import RunDir

    data = write_movielens(root / "ml-tiny")
    output = root / "run"
    status = train.main(["--data", str(data), "--output-dir", str(output), *TRAIN_FLAGS])
    assert status == 0, "training the demo run failed"
    export_all(RunDir(output), top_k=10, tflite_kinds=("float32", "dynamic_int8"), verbose=False)
    (output / ".demo-ready").touch()
    return output


def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's demo run folder, built on first use."""
    root = tmp_path_factory.getbasetemp() / "attnrec-demo-run"
    output = root / "run"
    if not (output / ".demo-ready").exists():
        root.mkdir(parents=True, exist_ok=True)
        build_demo_run(root)
    return output

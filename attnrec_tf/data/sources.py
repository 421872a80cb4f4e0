"""The one entry point from a `--data` value to a `LoadedData`.

`--data` may be:

* absent or "synthetic": the embedded generator (`synthetic.generate`);
* a known name such as "movielens-1m": downloaded once into the cache, then read;
* a folder: a MovieLens folder in any GroupLens layout;
* a file: a CSV/TSV file with a header, a RecBole `.inter` file or a Parquet file
  (`interactions.read_interaction_file`).

`min_rating` keeps only rows rated at least that much (MovieLens folders and names, and
generic files with a rating column); the synthetic data has no ratings.

Example:
    >>> data = load(None, synthetic_seed=1)
    >>> data.name
    'synthetic'
    >>> data = load("../shared/data/ml-1m")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from attnrec_tf.data import synthetic
from attnrec_tf.data.download import DEFAULT_BASE_URL, KNOWN_DATASETS, default_cache_dir, fetch
from attnrec_tf.data.interactions import read_interaction_file
from attnrec_tf.data.loaded import LoadedData
from attnrec_tf.data.movielens import read_movielens
from attnrec_tf.errors import ConfigError, DataError

SYNTHETIC = "synthetic"


SYNTHETIC_OPTIONS = ("num_users", "num_items", "num_interests", "mean_length")
DEFAULT_RATING_COL = "rating"


def check_rating_options(min_rating: float | None, rating_col: str | None) -> None:
    """Raises ConfigError for `--min-rating` / `--rating-col` values no run can use.

    Example:
        >>> check_rating_options(None, "stars")
        Traceback (most recent call last):
        ...
        attnrec_tf.errors.ConfigError: --rating-col needs --min-rating (ratings are read only \
to keep the rows at or above it)
    """
    if min_rating is not None and not (
        isinstance(min_rating, (int, float)) and math.isfinite(min_rating)
    ):
        raise ConfigError(f"--min-rating must be a finite number, got {min_rating!r}")
    if rating_col is not None and min_rating is None:
        raise ConfigError(
            "--rating-col needs --min-rating (ratings are read only to keep the rows at or "
            "above it)"
        )


def _synthetic_options(spec: str) -> dict[str, int]:
    """Parses `synthetic:num_users=250000,num_items=1000000` into generator arguments."""
    options: dict[str, int] = {}
    for part in spec.split(":", 1)[1].split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SYNTHETIC_OPTIONS or not value.strip().isdigit():
            raise DataError(
                f"--data {spec!r}: expected synthetic:KEY=INT,... with keys "
                f"{', '.join(SYNTHETIC_OPTIONS)}; got {part!r}"
            )
        options[key] = int(value)
    return options


def load(
    spec: str | None,
    *,
    cache_dir: Path | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    feature_cols: Sequence[str] = (),
    delimiter: str | None = None,
    synthetic_seed: int = 0,
    base_url: str | None = None,
    rating_col: str | None = None,
    min_rating: float | None = None,
) -> LoadedData:
    """Loads the data named by a `--data` value.

    Args:
        spec: str | None. None or "synthetic" (or "synthetic:num_users=N,num_items=M,..." to
            size the generator), a name in `KNOWN_DATASETS`, a folder or a file.
        cache_dir: Path | None. Download cache; None uses `default_cache_dir()`.
            Defaults to `None`.
        user_col: str. User column of a generic file. Defaults to `"user_id"`.
        item_col: str. Item column of a generic file. Defaults to `"item_id"`.
        time_col: str. Timestamp column of a generic file. Defaults to `"timestamp"`.
        feature_cols: Sequence[str]. Item feature columns of a generic file. Defaults to `()`.
        delimiter: str | None. Field separator of a generic file; None detects it.
            Defaults to `None`.
        synthetic_seed: int. Seed of the synthetic data. Defaults to `0`.
        base_url: str | None. Download location; None uses GroupLens. Defaults to `None`.
        rating_col: str | None. Rating (or weight) column of a generic file, read with
            `min_rating`; None is "rating". Defaults to `None`.
        min_rating: float | None. Keep only rows rated >= this; None keeps every row.
            Defaults to `None`.

    Returns:
        The LoadedData.

    Raises:
        DataError: `spec` names nothing loadable, or loading fails.
        ConfigError: `min_rating` for the synthetic data, or `rating_col` for MovieLens.
    """
    check_rating_options(min_rating, rating_col)
    if spec is None or spec == SYNTHETIC or spec.startswith(SYNTHETIC + ":"):
        if min_rating is not None:
            raise ConfigError("--min-rating: the synthetic data has no ratings")
        options = _synthetic_options(spec) if spec and spec != SYNTHETIC else {}
        return synthetic.generate(seed=synthetic_seed, **options)
    if spec in KNOWN_DATASETS:
        folder = fetch(
            spec, cache_dir or default_cache_dir(), base_url=base_url or DEFAULT_BASE_URL
        )
        return _movielens(folder, rating_col, min_rating)
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # "~name" of an unknown user (found by tests/fuzz)
        path = Path(spec)
    if path.is_dir():
        return _movielens(path, rating_col, min_rating)
    if path.is_file():
        return read_interaction_file(
            path,
            user_col=user_col,
            item_col=item_col,
            time_col=time_col,
            feature_cols=feature_cols,
            delimiter=delimiter,
            rating_col=rating_col or DEFAULT_RATING_COL,
            min_rating=min_rating,
        )
    known = ", ".join([SYNTHETIC, *KNOWN_DATASETS])
    raise DataError(
        f"--data {spec!r}: no such file or folder, and not one of the known names: {known}"
    )


def _movielens(folder: Path, rating_col: str | None, min_rating: float | None) -> LoadedData:
    if rating_col is not None:
        raise ConfigError(
            f"--rating-col {rating_col!r}: a MovieLens folder's ratings are its rating column; "
            "pass --min-rating alone"
        )
    return read_movielens(folder, min_rating=min_rating)

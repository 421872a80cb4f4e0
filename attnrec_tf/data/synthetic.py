"""The embedded default data set: synthetic users with clustered, sequential tastes.

* Items fall into `num_interests` clusters named as genres, of uneven size and popularity. Inside
  a cluster the items form a chain whose first items are the popular entry points (drawn with
  Zipf-like density 1 / (1 + rank)), so popularity falls along the chain.
* Each user holds 2 or 3 interests (popular clusters more often), their weights drifting
  linearly from a start mix to an end mix over the user's history.
* At each step a user re-draws the interest from the current weights with probability 0.25.
  Within it they move 1 to 3 places along the chain from where they last were in that cluster;
  or, with probability 0.15, restart at a popular entry point; or, with probability 0.15, take a
  popular item of any cluster without moving their chains.
* Nobody consumes an item twice (repeats are dropped and the walk goes on). Timestamps increase
  per user: a start in 2020, then gaps of at least a minute.

With the defaults (2,000 users, 600 items, about 78,000 interactions) a "next item after the
last one" count model beats popularity, which beats random (the tests check the ratios; figures
in docs/notes/data-evaluation.md). Item ids are 1..num_items in random order over the clusters;
titles read "Item 17 (Sci-Fi)"; `features["genres"]` holds the cluster name (plus a second genre
for about 15% of items).

Example:
    >>> data = generate(num_users=50, num_items=100, seed=1)
    >>> data.name, data.source, len(data.interactions) > 1000
    ('synthetic', 'synthetic(seed=1)', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnrec_tf.data.loaded import Interactions, ItemMetadata, LoadedData
from attnrec_tf.errors import ConfigError

CLUSTER_NAMES = (
    "Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller", "Animation", "Documentary",
    "Horror", "Fantasy", "Crime", "Western", "Musical", "Mystery", "War", "Adventure",
)  # fmt: skip
SWITCH_PROBABILITY = 0.25
IMPULSE_PROBABILITY = 0.15
RESTART_PROBABILITY = 0.15
CHAIN_STEPS = np.array([1, 2, 3])
CHAIN_STEP_PROBABILITIES = np.array([0.6, 0.25, 0.15])
SECOND_GENRE_PROBABILITY = 0.15
MIN_LENGTH = 5
_EXTRA_STEPS = 0.6  # walk 60% longer than wanted; repeats are dropped, then cut to length
_START_TIME = 1_577_836_800  # 2020-01-01T00:00:00Z


@dataclass(frozen=True)
class _Clusters:
    chain: np.ndarray  # (num_items,) raw ids, cluster blocks one after another, popular first
    offsets: np.ndarray  # (K,) start of each block in `chain`
    sizes: np.ndarray  # (K,)
    popularity: np.ndarray  # (K,) probability that a user picks each cluster as an interest


def _check(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")


def _cluster_names(k: int) -> list[str]:
    return [CLUSTER_NAMES[c] if c < len(CLUSTER_NAMES) else f"Genre {c + 1}" for c in range(k)]


def _make_clusters(rng: np.random.Generator, num_items: int, k: int) -> _Clusters:
    share = rng.dirichlet(np.full(k, 8.0))
    spare = num_items - 2 * k  # every cluster gets at least 2 items
    sizes = 2 + np.floor(share * spare).astype(np.int64)
    remainder = num_items - sizes.sum()
    sizes[np.argsort(-(share * spare - np.floor(share * spare)), kind="stable")[:remainder]] += 1
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    popularity = 1.0 / np.sqrt(1.0 + rng.permutation(k))
    chain = rng.permutation(num_items).astype(np.int64) + 1
    return _Clusters(chain, offsets, sizes, popularity / popularity.sum())


def _entry_ranks(rng: np.random.Generator, sizes: np.ndarray) -> np.ndarray:
    """Draws a popular entry point, a rank in 0..size-1, for each cluster size in `sizes`.

    P(rank >= r) = 1 - ln(1 + r) / ln(1 + size): a continuous Zipf law (density ~ 1 / (1 + r)).
    """
    ranks = np.floor((sizes + 1.0) ** rng.random(len(sizes)) - 1.0).astype(np.int64)
    return np.minimum(ranks, sizes - 1)


def _walk(
    rng: np.random.Generator, clusters: _Clusters, steps: np.ndarray, interests: np.ndarray,
    w_start: np.ndarray, w_end: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Returns the chain positions visited, user after user, `steps[u]` for user u."""
    num_users, slots = interests.shape
    order = np.argsort(-steps, kind="stable")  # longest first: active users are a prefix
    steps_sorted = steps[order]
    interests, w_start, w_end = interests[order], w_start[order], w_end[order]
    starts = np.r_[0, np.cumsum(steps)[:-1]][order]
    pointer = np.stack(  # (U, slots) rank inside each interest's chain; first step advances
        [_entry_ranks(rng, clusters.sizes[interests[:, s]]) - 1 for s in range(slots)], axis=1
    )
    slot = np.zeros(num_users, dtype=np.int64)
    cluster_cdf = np.cumsum(clusters.popularity)
    cluster_cdf[-1] = 1.0
    out = np.empty(int(steps.sum()), dtype=np.int64)
    active_counts = np.searchsorted(-steps_sorted, -np.arange(steps_sorted[0]), side="left")
    for t, n in enumerate(active_counts.tolist()):
        users = np.arange(n)
        fraction = (t / steps_sorted[:n])[:, None]
        weights = w_start[:n] * (1.0 - fraction) + w_end[:n] * fraction  # (n, slots)
        redraw = rng.random(n) < (1.0 if t == 0 else SWITCH_PROBABILITY)
        cumulative = np.cumsum(weights, axis=1)
        drawn = (rng.random(n)[:, None] * cumulative[:, -1:] > cumulative).sum(axis=1)
        slot[:n] = np.where(redraw, np.minimum(drawn, slots - 1), slot[:n])
        c = interests[users, slot[:n]]
        action = rng.random(n)
        impulse = action < IMPULSE_PROBABILITY
        restart = ~impulse & (action < IMPULSE_PROBABILITY + RESTART_PROBABILITY)
        advance = rng.choice(CHAIN_STEPS, size=n, p=CHAIN_STEP_PROBABILITIES)
        current = pointer[users, slot[:n]]
        moved = np.where(restart, _entry_ranks(rng, clusters.sizes[c]), current + advance)
        moved %= clusters.sizes[c]
        pointer[users, slot[:n]] = np.where(impulse, current, moved)
        other = np.searchsorted(cluster_cdf, rng.random(n), side="right")  # impulse: any cluster
        anywhere = clusters.offsets[other] + _entry_ranks(rng, clusters.sizes[other])
        out[starts[:n] + t] = np.where(impulse, anywhere, clusters.offsets[c] + moved)
    return out


def generate(
    *,
    num_users: int = 2000,
    num_items: int = 600,
    num_interests: int = 12,
    mean_length: int = 40,
    seed: int = 0,
) -> LoadedData:
    """Generates the synthetic data set (deterministic given the arguments).

    Args:
        num_users: int. Users (ids 1..num_users). Defaults to `2000`.
        num_items: int. Items (ids 1..num_items); at least 2 per interest. Defaults to `600`.
        num_interests: int. Clusters of items, each named as a genre. Defaults to `12`.
        mean_length: int. Mean number of interactions per user (log-normal, at least 5).
            Defaults to `40`.
        seed: int. Seed of `np.random.default_rng`. Defaults to `0`.

    Returns:
        LoadedData named "synthetic", rows grouped by user in time order.

    Raises:
        ConfigError: An argument is out of range.

    Example:
        >>> a, b = generate(seed=3), generate(seed=3)
        >>> bool((a.interactions.items == b.interactions.items).all())
        True
    """
    _check("num_interests", num_interests, 1)
    _check("num_users", num_users, 1)
    _check("num_items", num_items, 2 * num_interests)
    _check("mean_length", mean_length, MIN_LENGTH)
    rng = np.random.default_rng(seed)  # every step below draws from it, in this order
    clusters = _make_clusters(rng, num_items, num_interests)
    interests, w_start, w_end = _tastes(rng, clusters, num_users)
    lengths, steps = _lengths(rng, num_users, mean_length)
    positions = _walk(rng, clusters, steps, interests, w_start, w_end)
    items, user_index = _first_visits(clusters.chain[positions], steps, lengths, num_items)
    timestamps = _timestamps(rng, user_index, num_users)
    titles, genres = _item_names(rng, clusters, num_items)
    interactions = Interactions(user_index.astype(np.int64) + 1, items, timestamps)
    return LoadedData(
        "synthetic",
        f"synthetic(seed={seed})",
        interactions,
        ItemMetadata(titles, {"genres": genres}),
    )


def _tastes(
    rng: np.random.Generator, clusters: _Clusters, num_users: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user: up to 3 distinct interests (popular clusters more often; 2 or 3 of them
    weighted), and their start and end weights `(U, slots)`, 0 for an interest not held."""
    num_interests = len(clusters.sizes)
    slots = min(3, num_interests)
    gumbel = np.log(clusters.popularity) + rng.gumbel(size=(num_users, num_interests))
    interests = np.argsort(-gumbel, axis=1)[:, :slots]  # (U, slots) distinct clusters
    held = np.arange(slots) < rng.integers(min(2, slots), slots + 1, size=num_users)[:, None]
    w_start = rng.dirichlet(np.ones(slots), size=num_users) * held
    w_end = rng.dirichlet(np.ones(slots), size=num_users) * held
    return interests, w_start, w_end


def _lengths(
    rng: np.random.Generator, num_users: int, mean_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per user: the sequence length (log-normal around `mean_length`, clipped to
    `[MIN_LENGTH, 10 * mean_length]`) and the walk's steps, enough to cover repeats."""
    sigma = 0.5
    lengths = np.exp(np.log(mean_length) - sigma**2 / 2 + sigma * rng.standard_normal(num_users))
    lengths = np.clip(np.round(lengths), MIN_LENGTH, 10 * mean_length).astype(np.int64)
    steps = np.ceil(lengths * (1 + _EXTRA_STEPS)).astype(np.int64) + 2
    return lengths, steps


def _first_visits(
    items: np.ndarray, steps: np.ndarray, lengths: np.ndarray, num_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """The walk's items (user after user, `steps[u]` each) without repeats, cut to `lengths`:
    `(items, user_index)`, still grouped by user in walk order."""
    num_users = len(steps)
    user_index = np.repeat(np.arange(num_users), steps)
    _, first = np.unique(user_index * (num_items + 1) + items, return_index=True)
    kept = np.zeros(len(items), dtype=bool)
    kept[first] = True  # first time each user meets each item
    items, user_index = items[kept], user_index[kept]
    kept_per_user = np.bincount(user_index, minlength=num_users)
    rank = np.arange(len(items)) - np.r_[0, np.cumsum(kept_per_user)[:-1]][user_index]
    cut = rank < lengths[user_index]
    return items[cut], user_index[cut]


def _timestamps(rng: np.random.Generator, user_index: np.ndarray, num_users: int) -> np.ndarray:
    """Increasing seconds per user: a start within a year of `_START_TIME`, then gaps of at
    least a minute (60 s plus an exponential of mean 6 hours)."""
    gaps = 60 + np.floor(rng.exponential(6 * 3600.0, size=len(user_index))).astype(np.int64)
    elapsed = np.cumsum(gaps)
    user_start = np.r_[0, np.flatnonzero(np.diff(user_index)) + 1]
    before = np.repeat(
        elapsed[user_start] - gaps[user_start], np.diff(np.r_[user_start, len(user_index)])
    )
    first_time = _START_TIME + rng.integers(0, 365 * 86400, size=num_users)
    return (first_time[user_index] + elapsed - before).astype(np.float64)


def _item_names(
    rng: np.random.Generator, clusters: _Clusters, num_items: int
) -> tuple[dict[int, str], dict[int, tuple[str, ...]]]:
    """Titles `Item <id> (<genre>)` and genres: the cluster's name, sometimes a second one."""
    num_interests = len(clusters.sizes)
    names = _cluster_names(num_interests)
    cluster_of_id = np.zeros(num_items + 1, dtype=np.int64)  # [0] unused
    cluster_of_id[clusters.chain] = np.repeat(np.arange(num_interests), clusters.sizes)
    second = rng.integers(0, num_interests, size=num_items + 1)
    has_second = (rng.random(num_items + 1) < SECOND_GENRE_PROBABILITY) & (second != cluster_of_id)
    primary = [names[c] for c in cluster_of_id.tolist()]
    secondary = [
        names[c] if flag else None
        for c, flag in zip(second.tolist(), has_second.tolist(), strict=True)
    ]
    titles = {i: f"Item {i} ({primary[i]})" for i in range(1, num_items + 1)}
    genres: dict[int, tuple[str, ...]] = {}
    for i in range(1, num_items + 1):
        extra = secondary[i]
        genres[i] = (primary[i],) if extra is None else (primary[i], extra)
    return titles, genres

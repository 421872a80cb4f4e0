"""Per-user chronological item sequences, filtering, and the leave-one-out split.

Filtering follows SASRec's `DataProcessing.py` (Kang & McAuley, 2018): users and items are
counted once on the raw rows, items with fewer than `min_item_interactions` and users with fewer
than `min_user_interactions` are dropped in one pass (no iteration to a fixed point, so a kept
user may end with fewer interactions than the threshold). Users left with fewer than 3 are then
dropped, because leave-one-out needs at least one training item, a validation and a test target.
The vocabulary is fitted on the kept interactions only.

Each user's rows are sorted by timestamp; equal timestamps keep their file order (stable sort).
Users are ordered by raw id.

Leave-one-out: for a sequence s, the model trains on s[:-2], is validated on predicting s[-2]
from s[:-2], and tested on predicting s[-1] from s[:-1]. The temporal split
(`data/temporal.py`) gives the same `LeaveOneOutSplit` form from a global time cut-off.

Example:
    >>> import numpy as np
    >>> from attnrec_tf.data.loaded import Interactions
    >>> rows = Interactions(np.array([1, 1, 1, 2]), np.array([7, 8, 9, 7]),
    ...                     np.array([3.0, 1.0, 2.0, 1.0]))
    >>> vocab, seqs, stats = build_sequences(rows, min_user_interactions=1,
    ...                                      min_item_interactions=1)
    >>> vocab.decode(seqs.sequences[0]).tolist(), stats.users_dropped_too_few
    ([8, 9, 7], 1)
    >>> split = leave_one_out(seqs)
    >>> vocab.decode(split.histories("test")[0]).tolist(), vocab.decode(split.test_targets).tolist()
    ([8, 9], [7])

References:
    Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnrec_tf.data._ids import factorize
from attnrec_tf.data.loaded import Interactions
from attnrec_tf.data.vocabulary import VOCABULARY_ORDERS, Vocabulary, item_ranking
from attnrec_tf.errors import ConfigError, DataError

MIN_SEQUENCE_LENGTH = 3  # one training item, the validation target and the test target
_STAGES = ("valid", "test")


@dataclass(frozen=True)
class FilterStats:
    """What filtering kept.

    Attributes:
        users_in: int. Distinct users in the raw rows.
        users_kept: int. Users with a sequence.
        items_in: int. Distinct items in the raw rows.
        items_kept: int. Items in the vocabulary.
        interactions_in: int. Raw rows.
        interactions_kept: int. Rows in the sequences.
        users_dropped_too_few: int. Users that passed `min_user_interactions` but were left
            with fewer than 3 interactions (after item filtering and de-duplication).
        consecutive_duplicates_dropped: int. Rows removed by `dedupe_consecutive`.
    """

    users_in: int
    users_kept: int
    items_in: int
    items_kept: int
    interactions_in: int
    interactions_kept: int
    users_dropped_too_few: int
    consecutive_duplicates_dropped: int = 0


@dataclass(frozen=True, eq=False)
class UserSequences:
    """One chronological sequence of vocabulary indices per user.

    Attributes:
        users: np.ndarray. Raw user ids, one per sequence, in raw id order.
        sequences: list[np.ndarray]. Read-only int32 vocabulary indices (1..num_items),
            oldest first.
    """

    users: np.ndarray
    sequences: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        """Total length of all sequences."""
        return int(sum(len(s) for s in self.sequences))


def _check_min(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def build_sequences(
    interactions: Interactions,
    *,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    vocabulary_order: str = "frequency",
    dedupe_consecutive: bool = False,
) -> tuple[Vocabulary, UserSequences, FilterStats]:
    """Filters the rows, fits the vocabulary and builds per-user chronological sequences.

    Args:
        interactions: Interactions. The raw rows.
        min_user_interactions: int. Drop users with fewer raw rows. Defaults to `5`.
        min_item_interactions: int. Drop items with fewer raw rows. Defaults to `5`.
        vocabulary_order: str. "frequency" or "appearance" (first appearance in file order);
            see `Vocabulary.fit`. Defaults to `"frequency"`.
        dedupe_consecutive: bool. Drop a row when the user's previous kept row has the same
            item. Defaults to `False`.

    Returns:
        (vocabulary, sequences, stats).

    Raises:
        ConfigError: A threshold is not a positive integer.
        DataError: No user is left after filtering.
    """
    _check_min("min_user_interactions", min_user_interactions)
    _check_min("min_item_interactions", min_item_interactions)
    if vocabulary_order not in VOCABULARY_ORDERS:
        raise ValueError(
            f"`vocabulary_order` must be one of {VOCABULARY_ORDERS}. "
            f"Received: vocabulary_order={vocabulary_order!r}"
        )
    n = len(interactions)
    user_ids, user_code, user_counts, _ = factorize(interactions.users)
    item_ids, item_code, item_counts, _ = factorize(interactions.items)

    keep = (user_counts[user_code] >= min_user_interactions) & (
        item_counts[item_code] >= min_item_interactions
    )
    rows = _chronological(np.flatnonzero(keep), user_code, interactions.timestamps)  # (m,)
    duplicates = 0
    if dedupe_consecutive:
        rows, duplicates = _drop_consecutive_repeats(rows, user_code, item_code)
    rows, lengths = _long_enough(rows, user_code)
    if not len(rows):
        raise DataError(
            f"no user has {MIN_SEQUENCE_LENGTH} or more interactions after filtering "
            f"(min_user_interactions={min_user_interactions}, "
            f"min_item_interactions={min_item_interactions}, {n} rows in)"
        )

    vocab, index_of_code = _fit_vocabulary(item_ids, item_code, rows, vocabulary_order)
    encoded = index_of_code[item_code[rows]]  # (m,) int32
    encoded.flags.writeable = False
    boundaries = np.cumsum(lengths)[:-1]
    sequences = np.split(encoded, boundaries)
    users = user_ids[user_code[rows[np.r_[0, boundaries]]]]

    passed_user_filter = int((user_counts >= min_user_interactions).sum())
    stats = FilterStats(
        users_in=len(user_ids),
        users_kept=len(sequences),
        items_in=len(item_ids),
        items_kept=vocab.num_items,
        interactions_in=n,
        interactions_kept=len(rows),
        users_dropped_too_few=passed_user_filter - len(sequences),
        consecutive_duplicates_dropped=duplicates,
    )
    return vocab, UserSequences(users, sequences), stats


def _drop_consecutive_repeats(
    rows: np.ndarray, user_code: np.ndarray, item_code: np.ndarray
) -> tuple[np.ndarray, int]:
    """`rows` (chronological) without a row whose user's previous row has the same item; with
    how many were dropped."""
    if len(rows) <= 1:
        return rows, 0
    u, it = user_code[rows], item_code[rows]
    repeat = np.r_[False, (u[1:] == u[:-1]) & (it[1:] == it[:-1])]
    return rows[~repeat], int(repeat.sum())


def _long_enough(rows: np.ndarray, user_code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows (grouped by user) of users with `MIN_SEQUENCE_LENGTH` or more rows, and the
    length of each kept user's run."""
    u = user_code[rows]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(rows) else np.zeros(0, int)
    lengths = np.diff(np.r_[starts, len(rows)])
    long_enough = lengths >= MIN_SEQUENCE_LENGTH
    return rows[np.repeat(long_enough, lengths)], lengths[long_enough]


def _fit_vocabulary(
    item_ids: np.ndarray, item_code: np.ndarray, rows: np.ndarray, order: str
) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary of the kept rows' items, and the vocabulary index of every item code.

    Kept items are counted in file order, so count ties go to the first in the file (`order`
    is `Vocabulary.fit`'s). Codes of items not kept map to 0.
    """
    n = len(item_code)
    in_file_order = np.zeros(n, dtype=bool)
    in_file_order[rows] = True
    codes = item_code[in_file_order]
    counts = np.bincount(codes, minlength=len(item_ids))
    first = np.full(len(item_ids), n, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    present = np.flatnonzero(counts)
    ranked = present[item_ranking(counts[present], first[present], order)]
    index_of_code = np.zeros(len(item_ids), dtype=np.int32)
    index_of_code[ranked] = np.arange(1, len(ranked) + 1, dtype=np.int32)
    return Vocabulary(item_ids[ranked]), index_of_code


def _chronological(rows: np.ndarray, user_code: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """`rows` sorted by (user, timestamp), ties in row order (stable)."""
    users, times = user_code[rows], timestamps[rows]
    if len(rows) and np.array_equal(times, np.floor(times)):
        low, span = times.min(), times.max() - times.min() + 1
        if span < 2**53 and (int(users.max()) + 1) * int(span) < 2**63:
            # integer times: one stable sort of user * span + time (several times faster)
            key = users * np.int64(span) + (times - low).astype(np.int64)
            return rows[np.argsort(key, kind="stable")]
    return rows[np.lexsort((times, users))]  # lexsort is stable


LEAVE_ONE_OUT = "leave-one-out"


def _leave_one_out_protocol() -> dict[str, Any]:
    return {"name": LEAVE_ONE_OUT}


@dataclass(frozen=True, eq=False)
class LeaveOneOutSplit:
    """A next-item split: training sequences, and one validation and one test target per user.

    Both protocols give this form (`protocol["name"]`): leave-one-out (`leave_one_out`: every
    user, s[:-2] / s[-2] / s[-1]) and the temporal split (`data.temporal.temporal_split`: the
    part of each sequence before a global cut-off / the first / the second interaction at or
    after it). Evaluated user `i` is validated on predicting `valid_targets[i]` from `train[i]`
    and tested on predicting `test_targets[i]` from `train[i] + [valid_targets[i]]`.

    Attributes:
        users: np.ndarray. Raw ids of the n evaluated users.
        train: list[np.ndarray]. The training input. `train[i]` for i < n is user i's training
            part and validation history; entries after the first n (a temporal split only) are
            users trained on but not evaluated. Leave-one-out: exactly n entries.
        valid_targets: np.ndarray. int32 validation target per evaluated user, shape (n,).
        test_targets: np.ndarray. int32 test target per evaluated user, shape (n,).
        protocol: dict. What made the split: `{"name": "leave-one-out"}`, or the temporal
            split's name, cut-off and counts (report.json's `protocol.split`). Defaults to
            leave-one-out.
    """

    users: np.ndarray
    train: list[np.ndarray]
    valid_targets: np.ndarray
    test_targets: np.ndarray
    protocol: dict[str, Any] = field(default_factory=_leave_one_out_protocol)

    def __post_init__(self) -> None:
        n = len(self.users)
        if not (len(self.valid_targets) == len(self.test_targets) == n <= len(self.train)):
            raise ValueError(
                "users, valid_targets and test_targets need one entry per evaluated user and "
                f"train at least as many. Received: {n}, {len(self.valid_targets)}, "
                f"{len(self.test_targets)}, {len(self.train)}"
            )

    def histories(self, stage: str) -> list[np.ndarray]:
        """The model input per evaluated user (built on each call).

        "valid" -> `train[i]`; "test" -> `train[i]` followed by the validation target.
        """
        _check_stage(stage)
        valid = self.train if len(self.train) == len(self.users) else self.train[: len(self.users)]
        if stage == "valid":
            return valid
        return [
            np.append(history, target)
            for history, target in zip(valid, self.valid_targets, strict=True)
        ]

    def targets(self, stage: str) -> np.ndarray:
        """The item to predict per evaluated user: `valid_targets` or `test_targets`."""
        _check_stage(stage)
        return self.valid_targets if stage == "valid" else self.test_targets

    def sample_users(self, count: int, seed: int = 0) -> LeaveOneOutSplit:
        """A split of `count` evaluated users drawn without replacement (all when count >= n).

        The users keep their order in the split, and the sample's `train` holds theirs only
        (the protocol is kept).
        """
        if count >= len(self.users):
            return self
        rng = np.random.default_rng(seed)
        return self.users_at(np.sort(rng.choice(len(self.users), size=count, replace=False)))

    def users_at(self, positions: np.ndarray) -> LeaveOneOutSplit:
        """The split of the evaluated users at `positions` (in that order; protocol kept)."""
        return LeaveOneOutSplit(
            users=self.users[positions],
            train=[self.train[i] for i in positions],
            valid_targets=self.valid_targets[positions],
            test_targets=self.test_targets[positions],
            protocol=self.protocol,
        )


def _check_stage(stage: str) -> None:
    if stage not in _STAGES:
        raise ValueError(f"`stage` must be one of {_STAGES}. Received: stage={stage!r}")


def leave_one_out(seqs: UserSequences) -> LeaveOneOutSplit:
    """Splits every sequence into s[:-2] (train), s[-2] (valid) and s[-1] (test).

    Raises:
        ValueError: A sequence is shorter than 3 (build_sequences never returns one).
    """
    lengths = np.fromiter(map(len, seqs.sequences), np.int64, len(seqs.sequences))
    if lengths.size and lengths.min() < MIN_SEQUENCE_LENGTH:
        raise ValueError(f"every sequence needs at least {MIN_SEQUENCE_LENGTH} items")
    ends = np.cumsum(lengths)
    flat = np.concatenate(seqs.sequences) if len(seqs) else np.zeros(0, np.int32)
    return LeaveOneOutSplit(
        users=seqs.users,
        train=[s[:-2] for s in seqs.sequences],
        valid_targets=flat[ends - 2].astype(np.int32),
        test_targets=flat[ends - 1].astype(np.int32),
    )

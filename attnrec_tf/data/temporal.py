"""The temporal split: one global time cut-off, as a model retrained in production sees the data.

A model retrained at time T has seen only what happened before T; from then on it serves every
user with the history it has. So (`--split temporal`):

* the cut-off T is `--split-time` (a number in the unit of the timestamp column, or an ISO-8601
  date, UTC when no zone is given) or comes from `--split-fraction f` (default 0.9): T is the
  timestamp of the interaction at position floor(f * m) in time order of the m interactions the
  filters kept, so at most a fraction f lies before T (interactions at T count as after it);
* training (`split.train`) is every user's interactions strictly before T, and nothing else:
  the model never trains on anything at or after the cut-off;
* the validation target of a user is their first interaction at or after T, predicted from their
  history before T; the test target is their second, predicted from that history followed by
  the validation target (what the model trained at T is asked next);
* evaluated users need one interaction before T and two at or after it. Users with none before
  T (new users: there is no history to recommend from) are dropped, and users with only one at
  or after T are trained on but not evaluated; report.json's `protocol.split` counts both.
  Interactions after a user's test target are used by neither training nor evaluation.

The filters of `build_sequences` (minimum counts, at least 3 interactions per user) run on the
whole log before the split, as for leave-one-out.
Why this design and why 0.9: docs/notes/data-evaluation.md ("The temporal split").

Example:
    >>> import numpy as np
    >>> from attnrec_tf.data.sequences import UserSequences
    >>> seqs = UserSequences(np.array([1, 2]), [np.array([1, 2, 3, 4]), np.array([5, 6, 7])])
    >>> times = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 6.0])]
    >>> split = temporal_split(seqs, times, cutoff=3.0)  # user 2: one interaction after it
    >>> split.users.tolist(), split.valid_targets.tolist(), split.test_targets.tolist()
    ([1], [3], [4])
    >>> [t.tolist() for t in split.train]  # user 1's part before the cut-off, then user 2's
    [[1, 2], [5, 6]]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

from attnrec_tf.data._ids import factorize
from attnrec_tf.data._text import parse_iso_date
from attnrec_tf.data.loaded import Interactions
from attnrec_tf.data.sequences import (
    LEAVE_ONE_OUT,
    LeaveOneOutSplit,
    UserSequences,
    _chronological,
    leave_one_out,
)
from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import ConfigError

TEMPORAL = "temporal"
SPLITS = (LEAVE_ONE_OUT, TEMPORAL)
DEFAULT_SPLIT_FRACTION = 0.9
_EPOCH_RANGE = (1e8, 1e10)  # 1973 .. 2286 in epoch seconds: the cut-off is shown as a date


def parse_split_time(value: str | float) -> float:
    """A `--split-time` value (a number, or an ISO-8601 date, UTC when no zone is given).

    Raises:
        ConfigError: Neither a finite number nor an ISO-8601 date.

    Example:
        >>> parse_split_time("1970-01-02"), parse_split_time("86400"), parse_split_time(5)
        (86400.0, 86400.0, 5.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = parse_iso_date(text) if text else math.nan
            except ValueError:
                seconds = math.nan
    if not math.isfinite(seconds):
        raise ConfigError(f"--split-time {value!r} is neither a finite number nor an ISO-8601 date")
    return seconds


def check_split_options(
    split: str, split_time: str | float | None, split_fraction: float | None
) -> None:
    """Raises ConfigError for `--split`, `--split-time`, `--split-fraction` values no run uses."""
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    values = {"--split-time": split_time, "--split-fraction": split_fraction}
    given = [flag for flag, value in values.items() if value is not None]
    if given and split != TEMPORAL:
        raise ConfigError(f"{given[0]} needs --split temporal")
    if len(given) == 2:
        raise ConfigError("give --split-time or --split-fraction, not both")
    if split_fraction is not None and not (
        isinstance(split_fraction, (int, float)) and 0 < split_fraction < 1
    ):
        raise ConfigError(f"--split-fraction must be between 0 and 1, got {split_fraction!r}")
    if split_time is not None:
        parse_split_time(split_time)


def cutoff_at_fraction(timestamps: np.ndarray, fraction: float) -> float:
    """The timestamp at position floor(fraction * m) in time order: at most `fraction` is before.

    Example:
        >>> cutoff_at_fraction(np.array([5.0, 1.0, 3.0, 2.0, 4.0]), 0.6)
        4.0
    """
    ordered = np.sort(np.asarray(timestamps, dtype=np.float64))
    if not len(ordered):
        raise ValueError("no timestamps")
    return float(ordered[fraction_position(fraction, len(ordered))])


def sequence_timestamps(
    interactions: Interactions, vocabulary: Vocabulary, sequences: UserSequences
) -> list[np.ndarray]:
    """The timestamp of every item of every sequence that `build_sequences` made of the rows.

    The rows of a kept user whose item is in the vocabulary are exactly the rows of that user's
    sequence; sorted the way `build_sequences` sorts them (by user, then time, ties in file
    order) they line up with the sequences.

    Raises:
        ValueError: The sequences were not built from these rows without `dedupe_consecutive`.
    """
    user_ids, user_code, _, _ = factorize(interactions.users)
    kept_user = np.isin(user_ids, sequences.users)
    item_index = vocabulary.encode(interactions.items)
    rows = np.flatnonzero(kept_user[user_code] & (item_index > 0))
    rows = _chronological(rows, user_code, interactions.timestamps)
    flat = np.concatenate(sequences.sequences) if len(sequences) else np.zeros(0, np.int32)
    if not np.array_equal(item_index[rows], flat):
        raise ValueError(
            "the sequences were not built from these interactions (or with dedupe_consecutive)"
        )
    lengths = np.fromiter(map(len, sequences.sequences), np.int64, len(sequences))
    return np.split(interactions.timestamps[rows], np.cumsum(lengths)[:-1])


def partition_users(
    lengths: np.ndarray, flat_times: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's count before `cutoff`, and who is evaluated or trained on only.

    Args:
        lengths: np.ndarray. The length of every user's sequence, shape (u,).
        flat_times: np.ndarray. Every sequence's timestamps, concatenated, shape (sum(lengths),).
        cutoff: float. The cut-off.

    Returns:
        (before, evaluated, trained_only): the count of interactions before the cut-off per
        user, and the positions of the evaluated users (one before, two at or after) and of
        the users trained on but not evaluated, each in sequence order.
    """
    starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    before = (
        np.add.reduceat((flat_times < cutoff).astype(np.int64), starts)
        if len(starts)
        else np.zeros(0, np.int64)
    )
    after = lengths - before
    evaluated = np.flatnonzero((before >= 1) & (after >= 2))
    trained_only = np.flatnonzero((before >= 1) & (after < 2))
    return before, evaluated, trained_only


def no_user_evaluated(cutoff: float, cutoff_from: str, low: float, high: float) -> ConfigError:
    """The error of a cut-off that leaves no user to evaluate (names the flag and time range)."""
    return ConfigError(
        f"{cutoff_from}: no user has an interaction before the cut-off {_show(cutoff)} and "
        f"two at or after it; the timestamps run from {_show(low)} to {_show(high)}"
    )


def temporal_split(
    sequences: UserSequences,
    times: list[np.ndarray],
    cutoff: float,
    *,
    cutoff_from: str = "--split-time",
    require_evaluated: bool = True,
) -> LeaveOneOutSplit:
    """Splits chronological sequences at a global time `cutoff` (see the module docstring).

    Args:
        sequences: UserSequences. Chronological per-user sequences.
        times: list[np.ndarray]. The non-decreasing timestamp of every item of every sequence.
        cutoff: float. Interactions at or after it are never trained on.
        cutoff_from: str. The flag and value that chose `cutoff`, for the report and errors.
            Defaults to `"--split-time"`.
        require_evaluated: bool. Raise when no user is evaluated. False for one batch of the
            users of a larger log (`data/prepare.py` checks the whole log once). Defaults to
            `True`.

    Returns:
        The split: the evaluated users first in `train` (their part before the cut-off), then
        the users trained on but not evaluated; `protocol` names the cut-off and the counts
        (of these sequences).

    Raises:
        ConfigError: No user has an interaction before the cut-off and two at or after it
            (names `cutoff_from` and the time range of the data), with `require_evaluated`.
    """
    lengths = np.fromiter(map(len, sequences.sequences), np.int64, len(sequences))
    flat_times = np.concatenate(times) if len(times) else np.zeros(0)
    if len(flat_times) != lengths.sum():
        raise ValueError("`times` must give one timestamp per item of every sequence")
    starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    steps = np.diff(flat_times)
    steps[starts[1:] - 1] = 0.0  # from one user's last item to the next user's first
    if np.any(steps < 0):
        raise ValueError("`times` must be non-decreasing within every sequence")
    before, evaluated, trained_only = partition_users(lengths, flat_times, cutoff)
    after = lengths - before
    if not len(evaluated) and require_evaluated:
        low, high = (flat_times.min(), flat_times.max()) if len(flat_times) else (0.0, 0.0)
        raise no_user_evaluated(cutoff, cutoff_from, low, high)
    flat = np.concatenate(sequences.sequences) if len(sequences) else np.zeros(0, np.int32)
    cut = starts + before
    train = [sequences.sequences[i][: before[i]] for i in (*evaluated, *trained_only)]
    protocol: dict[str, Any] = {
        "name": TEMPORAL,
        "cutoff": float(cutoff),
        **_as_date(cutoff),
        "cutoff_from": cutoff_from,
        "fraction_before_cutoff": float(before.sum() / max(1, lengths.sum())),
        "valid_target": "each user's first interaction at or after the cut-off",
        "test_target": "each user's second interaction at or after the cut-off",
        "users_evaluated": int(len(evaluated)),
        "users_dropped_no_interaction_before_cutoff": int(((before == 0) & (after > 0)).sum()),
        "users_trained_not_evaluated_one_after_cutoff": int(((before >= 1) & (after == 1)).sum()),
        "users_trained_not_evaluated_none_after_cutoff": int(((before >= 1) & (after == 0)).sum()),
        "train_interactions": int(before.sum()),
    }
    return LeaveOneOutSplit(
        users=sequences.users[evaluated],
        train=train,
        valid_targets=flat[cut[evaluated]].astype(np.int32),
        test_targets=flat[cut[evaluated] + 1].astype(np.int32),
        protocol=protocol,
    )


def _as_date(seconds: float) -> dict[str, str]:
    """`{"cutoff_utc": ISO date}` when `seconds` reads as epoch seconds of 1973..2286."""
    if not _EPOCH_RANGE[0] <= seconds <= _EPOCH_RANGE[1]:
        return {}
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return {"cutoff_utc": moment.isoformat().replace("+00:00", "Z")}


def _show(seconds: float) -> str:
    date = _as_date(float(seconds)).get("cutoff_utc")
    return f"{seconds:.15g}" + (f" ({date})" if date else "")


def make_split(
    interactions: Interactions,
    vocabulary: Vocabulary,
    sequences: UserSequences,
    *,
    split: str = LEAVE_ONE_OUT,
    split_time: str | float | None = None,
    split_fraction: float | None = None,
) -> LeaveOneOutSplit:
    """The split a run asked for: leave-one-out, or temporal at `split_time` / `split_fraction`.

    Args:
        interactions: Interactions. The rows `sequences` were built from (their timestamps).
        vocabulary: Vocabulary. The vocabulary of `sequences`.
        sequences: UserSequences. From `build_sequences` (without `dedupe_consecutive`).
        split: str. "leave-one-out" or "temporal". Defaults to `"leave-one-out"`.
        split_time: str | float | None. The temporal cut-off (a number or an ISO-8601 date).
            Defaults to `None`.
        split_fraction: float | None. The share of interactions before the temporal cut-off;
            None with no `split_time` is `DEFAULT_SPLIT_FRACTION`. Defaults to `None`.

    Returns:
        The LeaveOneOutSplit (both protocols have its form).

    Raises:
        ConfigError: Bad options, or a cut-off that leaves no user to evaluate.
    """
    check_split_options(split, split_time, split_fraction)
    if split == LEAVE_ONE_OUT:
        return leave_one_out(sequences)
    times = sequence_timestamps(interactions, vocabulary, sequences)
    cutoff, cutoff_from = choose_cutoff(
        split_time, split_fraction, lambda f: cutoff_at_fraction(np.concatenate(times), f)
    )
    return temporal_split(sequences, times, cutoff, cutoff_from=cutoff_from)


def choose_cutoff(
    split_time: str | float | None,
    split_fraction: float | None,
    at_fraction: Callable[[float], float],
) -> tuple[float, str]:
    """The temporal cut-off and the flag that chose it (`--split-time`, else the fraction).

    Args:
        split_time: str | float | None. `--split-time`.
        split_fraction: float | None. `--split-fraction`; None with no `split_time` is
            `DEFAULT_SPLIT_FRACTION`.
        at_fraction: Callable. The cut-off of a fraction of the kept interactions
            (`cutoff_at_fraction` of their timestamps, or the same query in SQL).

    Returns:
        (cutoff, cutoff_from), e.g. (9.0, "--split-fraction 0.9 (default)").
    """
    if split_time is not None:
        return parse_split_time(split_time), f"--split-time {split_time}"
    fraction = split_fraction or DEFAULT_SPLIT_FRACTION
    cutoff_from = f"--split-fraction {fraction:g}" + ("" if split_fraction else " (default)")
    return at_fraction(fraction), cutoff_from


def fraction_position(fraction: float, count: int) -> int:
    """The position floor(fraction * count) in time order of the cut-off (at most count - 1)."""
    return min(int(math.floor(fraction * count + 1e-9)), count - 1)


def protocol_entry(split: LeaveOneOutSplit) -> str | dict[str, Any]:
    """report.json's `protocol.split`: "leave-one-out", or the temporal split's description."""
    if split.protocol.get("name") == LEAVE_ONE_OUT and len(split.protocol) == 1:
        return LEAVE_ONE_OUT
    return dict(split.protocol)


def describe(split: LeaveOneOutSplit) -> str | None:
    """One console line about a temporal split (None for leave-one-out)."""
    p = split.protocol
    if p.get("name") != TEMPORAL:
        return None
    at = p.get("cutoff_utc", f"{p['cutoff']:.15g}")
    return (
        f"split: temporal at {at} ({p['cutoff_from']}; {p['fraction_before_cutoff']:.1%} of "
        f"the interactions before it, {p['train_interactions']} trained on): "
        f"{p['users_evaluated']} users evaluated on their first and second interaction after "
        f"it; {p['users_dropped_no_interaction_before_cutoff']} users dropped (nothing before "
        f"the cut-off); trained on but not evaluated: "
        f"{p['users_trained_not_evaluated_one_after_cutoff']} users with one interaction after "
        f"it, {p['users_trained_not_evaluated_none_after_cutoff']} with none"
    )

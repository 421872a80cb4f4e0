"""The prepared-data folder: user-bucketed TFRecord shards, the vocabulary and a manifest.

What `python -m attnrec_tf.prepare` writes and what training streams (`data/stream.py`):

    PREPARED/manifest.json       format, counts, filter statistics, split protocol, shards (each
                                 with its users by training-part length: `train_lengths`)
    PREPARED/vocabulary.json     `Vocabulary.save` (raw item id <-> index)
    PREPARED/item_counts.npy     int64 (vocab_size,): each index's count in the training parts
    PREPARED/item_features.npz   the items' multi-hot features and names (when the log has any)
    PREPARED/items.json          optional: the run folder's items.json records (raw id, title,
                                 genres, training count per index), when the log has titles
    PREPARED/shards/part-00000-of-00016.tfrecord, ...

One record per user, a `tf.train.Example` (the form tf.data parses in C++ and any TensorFlow
user can inspect):

    "user"   bytes        the raw user id, as text
    "index"  int64        the user's position in the split: evaluated users 0..n-1 in raw-id
                          order, then (temporal split only) the users trained on but not evaluated
    "train"  int64 list   vocabulary indices of the user's training part, oldest first
    "valid"  int64        the validation target (0: not evaluated)
    "test"   int64        the test target (0: not evaluated)

User `index` goes to shard `index % num_shards`, so every shard holds about the same number of
users and each user lives in one shard only (a worker reading its own files sees whole
histories); records in a shard are in index order. Reading every record back and ordering it by
`index` gives exactly the `LeaveOneOutSplit` the in-memory path builds (`read_split`).

The folder is written under a temporary sibling and renamed when complete (`atomic.staged_path`):
a reader never sees half a prepared folder.

Example:
    >>> import tempfile, numpy as np
    >>> from attnrec_tf.data.vocabulary import Vocabulary
    >>> folder = Path(tempfile.mkdtemp()) / "prepared"
    >>> with ShardWriter(folder, num_shards=2) as writer:
    ...     writer.add(np.array(["u1", "u2"]), np.array([0, 1]),
    ...                [np.array([1, 2]), np.array([2])], np.array([2, 1]), np.array([1, 2]))
    ...     writer.finish({"protocol": {"name": "leave-one-out"}}, Vocabulary([7, 8]))
    >>> manifest = read_manifest(folder)
    >>> manifest["num_users"], manifest["num_evaluated"], len(manifest["shards"])
    (2, 2, 2)
    >>> split = read_split(folder)
    >>> split.users.tolist(), [t.tolist() for t in split.train], split.test_targets.tolist()
    (['u1', 'u2'], [[1, 2], [2]], [1, 2])
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from attnrec_tf import atomic
from attnrec_tf.data.sequences import LeaveOneOutSplit
from attnrec_tf.data.vocabulary import Vocabulary
from attnrec_tf.errors import DataError

FORMAT = "attnrec_tf.prepared"
VERSION = 1
MANIFEST = "manifest.json"
VOCABULARY = "vocabulary.json"
ITEM_COUNTS = "item_counts.npy"
ITEM_FEATURES = "item_features.npz"
ITEMS = "items.json"
SHARD_FOLDER = "shards"


def shard_name(shard: int, num_shards: int) -> str:
    """`shards/part-00003-of-00016.tfrecord`: the path of a shard inside the folder."""
    return f"{SHARD_FOLDER}/part-{shard:05d}-of-{num_shards:05d}.tfrecord"


def is_prepared(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a folder with a prepared-data manifest."""
    return (Path(path) / MANIFEST).is_file()


def record_spec() -> dict[str, Any]:
    """The `tf.io.parse_example` features of a record (see the module docstring)."""
    import tensorflow as tf

    return {
        "user": tf.io.FixedLenFeature([], tf.string),
        "index": tf.io.FixedLenFeature([], tf.int64),
        "train": tf.io.RaggedFeature(tf.int64),
        "valid": tf.io.FixedLenFeature([], tf.int64),
        "test": tf.io.FixedLenFeature([], tf.int64),
    }


def _example(user: str, index: int, train: np.ndarray, valid: int, test: int) -> bytes:
    """One record through protobuf's own API (the reference `encode_records` is tested against)."""
    import tensorflow as tf

    def ints(values: Iterable[int]) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    features = {
        "user": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode("utf-8")])),
        "index": ints([index]),
        "train": ints(train.tolist()),
        "valid": ints([valid]),
        "test": ints([test]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString()


def varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of non-negative integers, vectorised: `(bytes, bytes per value)`.

    Example:
        >>> data, sizes = varints(np.array([1, 300]))
        >>> data.tolist(), sizes.tolist()
        ([1, 172, 2], [1, 2])
    """
    v = np.asarray(values, np.uint64)
    sizes = np.ones(len(v), np.int64)
    for shift in range(7, 64, 7):
        sizes += v >= np.uint64(1) << np.uint64(shift)
    out = np.empty(int(sizes.sum()), np.uint8)
    starts = np.cumsum(sizes) - sizes
    for k in range(int(sizes.max()) if len(v) else 0):
        has = sizes > k
        low = (v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (sizes[has] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[has] + k] = (low | more).astype(np.uint8)
    return out, sizes


def _varint(value: int) -> bytes:
    """One varint, in plain Python (numpy's call overhead is larger for one value)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _entry(key: bytes, feature: bytes) -> bytes:
    """A `Features.feature` map entry (field 1): key (field 1) and the Feature (field 2)."""
    body = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(feature)) + feature
    return b"\x0a" + _varint(len(body)) + body


def _int64_feature(packed: bytes) -> bytes:
    """A Feature with an `int64_list` (field 3) of packed varints (`Int64List.value`, field 1)."""
    values = b"\x0a" + _varint(len(packed)) + packed if packed else b""
    return b"\x1a" + _varint(len(values)) + values


def _bytes_feature(value: bytes) -> bytes:
    """A Feature with a `bytes_list` (field 1) of one value."""
    values = b"\x0a" + _varint(len(value)) + value
    return b"\x0a" + _varint(len(values)) + values


def encode_records(
    users: np.ndarray, index: np.ndarray, train: list[np.ndarray], valid: np.ndarray,
    test: np.ndarray,
) -> list[bytes]:  # fmt: skip
    """The serialized `tf.train.Example` of every user of a batch (see the module docstring).

    Written by hand from protobuf's wire format because building a message per user through
    protobuf's Python API cost about 280 microseconds a user here (a 10^8-row log has 10^6
    users): the item lists of the whole batch are varint-encoded at once with numpy, so a user
    costs a few byte concatenations. `tf.io.parse_example` reads the result as it reads
    protobuf's own (tested against `_example`).
    """
    lengths = np.fromiter(map(len, train), np.int64, len(train))
    flat = np.concatenate(train) if len(train) else np.zeros(0, np.int64)
    data, sizes = varints(flat)
    ends = np.r_[0, np.cumsum(sizes)][np.cumsum(lengths)]  # byte end of each user's items
    blob = data.tobytes()
    records = []
    start = 0
    for user, i, end, v, t in zip(users, index.tolist(), ends.tolist(), valid.tolist(),
                                  test.tolist(), strict=True):  # fmt: skip
        features = (
            _entry(b"user", _bytes_feature(str(user).encode("utf-8")))
            + _entry(b"index", _int64_feature(_varint(i)))
            + _entry(b"train", _int64_feature(blob[start:end]))
            + _entry(b"valid", _int64_feature(_varint(v)))
            + _entry(b"test", _int64_feature(_varint(t)))
        )
        records.append(b"\x0a" + _varint(len(features)) + features)
        start = end
    return records


class ShardWriter:
    """Writes a prepared folder: records in batches of users, then the manifest (atomic).

    Args:
        folder: The prepared folder to write (replaced as a whole when complete).
        num_shards: How many shard files (at least 1).

    Use it as a context manager; `finish` must be called inside it, else nothing is written.
    """

    def __init__(self, folder: str | os.PathLike[str], num_shards: int) -> None:
        if num_shards < 1:
            raise ValueError(f"`num_shards` must be at least 1. Received: {num_shards}")
        self.folder, self.num_shards = Path(folder), num_shards
        self._stage: Any = None
        self._writers: list[Any] = []
        self._stats = np.zeros((num_shards, 3), np.int64)  # records, evaluated, train items
        self._lengths = np.zeros((num_shards, 1), np.int64)  # users by training-part length
        self._item_counts = np.zeros(1, np.int64)
        self._integer_users = True  # every raw user id so far is an integer
        self._finished = False

    def __enter__(self) -> ShardWriter:
        import tensorflow as tf

        self._stage = atomic.staged_path(self.folder)
        root = self._stage.__enter__()
        (root / SHARD_FOLDER).mkdir(parents=True)
        self._root = root
        self._writers = [
            tf.io.TFRecordWriter(str(root / shard_name(s, self.num_shards)))
            for s in range(self.num_shards)
        ]
        return self

    def add(
        self,
        users: np.ndarray,
        index: np.ndarray,
        train: list[np.ndarray],
        valid: np.ndarray,
        test: np.ndarray,
    ) -> None:
        """Writes one batch of users (any order; each user once over all batches).

        Args:
            users: Raw user ids, shape (b,).
            index: Each user's position in the split, shape (b,).
            train: Each user's training part (vocabulary indices, oldest first).
            valid: Validation targets, 0 for a user not evaluated, shape (b,).
            test: Test targets, 0 for a user not evaluated, shape (b,).
        """
        self._integer_users &= np.asarray(users).dtype.kind in "iu"
        index = np.asarray(index, np.int64)
        records = encode_records(users, index, train, np.asarray(valid), np.asarray(test))
        shards = index % self.num_shards
        for shard, record in zip(shards.tolist(), records, strict=True):
            self._writers[shard].write(record)
        lengths = np.fromiter(map(len, train), np.int64, len(train))
        np.add.at(self._stats, shards, np.stack([np.ones_like(lengths), valid > 0, lengths], 1))
        if len(lengths) and lengths.max() >= self._lengths.shape[1]:
            grow = int(lengths.max()) + 1 - self._lengths.shape[1]
            self._lengths = np.pad(self._lengths, ((0, 0), (0, grow)))
        np.add.at(self._lengths, (shards, lengths), 1)
        if lengths.sum():
            counts = np.bincount(np.concatenate(train))
            if len(counts) > len(self._item_counts):
                self._item_counts = np.pad(
                    self._item_counts, (0, len(counts) - len(self._item_counts))
                )
            self._item_counts[: len(counts)] += counts

    def write_item_features(self, matrix: np.ndarray, names: list[str]) -> None:
        """Writes the items' multi-hot features `(vocab_size, F)` and names (`ITEM_FEATURES`)."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, matrix=matrix, names=np.array(names, dtype=str))
        atomic.write_bytes(self._root / ITEM_FEATURES, buffer.getvalue())

    def write_json(self, name: str, body: Any) -> None:
        """Writes one more JSON file into the folder (e.g. `ITEMS`), inside the `with` block."""
        atomic.write_json(self._root / name, body)

    def finish(self, manifest: dict[str, Any], vocabulary: Vocabulary) -> None:
        """Closes the shards and writes the vocabulary, item counts and manifest.

        Args:
            manifest: What the manifest says besides the counts and shards (dataset, filters,
                protocol, options, timings).
            vocabulary: The items' vocabulary.
        """
        for writer in self._writers:
            writer.close()
        counts = np.zeros(vocabulary.size, np.int64)
        counts[: len(self._item_counts)] = self._item_counts[: vocabulary.size]
        np.save(self._root / ITEM_COUNTS, counts)
        vocabulary.save(self._root / VOCABULARY)
        shards = [
            {
                "file": shard_name(s, self.num_shards),
                "users": int(records),
                "evaluated": int(evaluated),
                "train_items": int(items),
                "bytes": (self._root / shard_name(s, self.num_shards)).stat().st_size,
                "train_lengths": [[int(n), int(c)] for n, c in _nonzero(self._lengths[s])],
            }
            for s, (records, evaluated, items) in enumerate(self._stats)
        ]
        body = {
            "format": FORMAT,
            "version": VERSION,
            **manifest,
            "num_users": int(self._stats[:, 0].sum()),
            "num_evaluated": int(self._stats[:, 1].sum()),
            "num_items": vocabulary.num_items,
            "user_id_dtype": "int64" if self._integer_users else "string",
            "train_items": int(self._stats[:, 2].sum()),
            "shards": shards,
        }
        atomic.write_json(self._root / MANIFEST, body)
        self._finished = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for writer in self._writers:
            writer.close()
        if kind is None and not self._finished:
            error = RuntimeError("ShardWriter: finish() was not called; nothing was written")
            kind = RuntimeError
        self._stage.__exit__(kind, error, trace)
        if kind is RuntimeError and error is not None and not self._finished:
            raise error


def _nonzero(counts: np.ndarray) -> list[tuple[int, int]]:
    at = np.flatnonzero(counts)
    return list(zip(at.tolist(), counts[at].tolist(), strict=True))


def train_lengths(manifest: dict[str, Any]) -> np.ndarray | None:
    """Users by training-part length over every shard (`counts[n]` users have `n` items), or
    None for a folder written before the manifest kept them."""
    pairs = [pair for shard in manifest["shards"] for pair in shard.get("train_lengths", [])]
    if any("train_lengths" not in shard for shard in manifest["shards"]):
        return None
    counts = np.zeros(max((n for n, _ in pairs), default=0) + 1, np.int64)
    for n, c in pairs:
        counts[n] += c
    return counts


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a prepared folder.

    Raises:
        DataError: No manifest, or one of another format or version (names the file).
    """
    path = Path(folder) / MANIFEST
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{folder}: not a prepared folder (no {MANIFEST})") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not an {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise DataError(
            f"{path}: version {manifest.get('version')!r}; this attnrec_tf reads version "
            f"{VERSION} (prepare the data again)"
        )
    return manifest


def shard_files(
    folder: str | os.PathLike[str], manifest: dict[str, Any] | None = None
) -> list[str]:
    """The shard paths of a prepared folder, in shard order.

    Raises:
        DataError: A shard the manifest lists is missing.
    """
    manifest = manifest or read_manifest(folder)
    files = [str(Path(folder) / shard["file"]) for shard in manifest["shards"]]
    for file in files:
        if not os.path.isfile(file):
            raise DataError(f"{file}: missing (the prepared folder is incomplete)")
    return files


def iter_records(
    folder: str | os.PathLike[str], batch_size: int = 4096
) -> Iterator[dict[str, Any]]:
    """Every record of a prepared folder as numpy batches (shard by shard, bounded memory).

    Yields:
        dicts with "user" (str array), "index", "valid", "test" (int64 arrays) and "train"
        (a list of int32 arrays), at most `batch_size` records each.
    """
    import tensorflow as tf

    spec = record_spec()
    dataset = tf.data.TFRecordDataset(shard_files(folder)).batch(batch_size)
    for serialized in dataset:
        parsed = tf.io.parse_example(serialized, spec)
        train = parsed["train"]
        lengths = train.row_lengths().numpy()
        flat = train.flat_values.numpy().astype(np.int32)
        yield {
            "user": np.char.decode(parsed["user"].numpy().astype(bytes), "utf-8"),
            "index": parsed["index"].numpy(),
            "train": np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else [],
            "valid": parsed["valid"].numpy(),
            "test": parsed["test"].numpy(),
        }


def read_split(
    folder: str | os.PathLike[str], evaluated: np.ndarray | None = None
) -> LeaveOneOutSplit:
    """The split stored in a prepared folder, in memory.

    Args:
        folder: The prepared folder.
        evaluated: Split indices of the evaluated users to keep (e.g. a seeded sample); None
            keeps every record, the users trained on only included. With a selection, `train`
            holds the selected users' parts only.

    Returns:
        The LeaveOneOutSplit the in-memory path builds for the same data (user ids as str).
    """
    manifest = read_manifest(folder)
    wanted = None if evaluated is None else np.unique(np.asarray(evaluated, np.int64))
    index_parts, users, train, valid, test = [], [], [], [], []
    for batch in iter_records(folder):
        keep = np.ones(len(batch["index"]), bool)
        if wanted is not None:
            keep = np.isin(batch["index"], wanted)
        rows = np.flatnonzero(keep)
        index_parts.append(batch["index"][rows])
        users.append(batch["user"][rows])
        valid.append(batch["valid"][rows])
        test.append(batch["test"][rows])
        train += [batch["train"][r] for r in rows]
    index = np.concatenate(index_parts) if index_parts else np.zeros(0, np.int64)
    order = np.argsort(index, kind="stable")
    is_evaluated = np.concatenate(valid)[order] > 0 if valid else np.zeros(0, bool)
    n = int(is_evaluated.sum())
    user_ids = np.concatenate(users)[order][:n] if users else np.zeros(0, str)
    if manifest.get("user_id_dtype") == "int64":
        user_ids = user_ids.astype(np.int64)
    return LeaveOneOutSplit(
        users=user_ids,
        train=[train[i] for i in order],
        valid_targets=np.concatenate(valid)[order][:n].astype(np.int32),
        test_targets=np.concatenate(test)[order][:n].astype(np.int32),
        protocol=manifest.get("protocol", {"name": "leave-one-out"}),
    )


def read_vocabulary(folder: str | os.PathLike[str]) -> Vocabulary:
    """The vocabulary of a prepared folder."""
    return Vocabulary.load(Path(folder) / VOCABULARY)


def read_item_counts(folder: str | os.PathLike[str]) -> np.ndarray:
    """int64 (vocab_size,): each item's count in the training parts (index 0 is 0)."""
    return np.load(Path(folder) / ITEM_COUNTS)


def read_item_features(folder: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]] | None:
    """The items' multi-hot features `(vocab_size, F)` and names, or None when none were kept."""
    path = Path(folder) / ITEM_FEATURES
    if not path.is_file():
        return None
    with np.load(path) as stored:
        return stored["matrix"], [str(name) for name in stored["names"]]

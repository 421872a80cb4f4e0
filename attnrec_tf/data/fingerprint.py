"""A sha256 of the input data, for report.json: which bytes a run was trained on.

* a file: the sha256 of its bytes;
* a folder (MovieLens): the sha256 of the sorted lines "<relative path>  <sha256 of the file>",
  over every file below it (names starting with "." are left out: caches' marker files);
* the synthetic generator: the sha256 of its parameters as canonical JSON, since the generator
  is deterministic given them.

Example:
    >>> from attnrec_tf.data.synthetic import generate
    >>> data = generate(num_users=20, num_items=40, seed=1)
    >>> entry = data_sha256(data, synthetic_params={"num_users": 20, "num_items": 40, "seed": 1})
    >>> entry["sha256_of"], len(entry["sha256"])
    ('generator parameters', 64)
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnrec_tf.data import synthetic
from attnrec_tf.data.loaded import LoadedData

_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """The sha256 of the sorted "<relative path>  <file sha256>" lines of every file below."""
    lines = sorted(
        f"{path.relative_to(folder).as_posix()}  {file_sha256(path)}\n"
        for path in folder.rglob("*")
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(folder).parts)
    )
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def synthetic_sha256(params: Mapping[str, Any]) -> str:
    """The sha256 of the synthetic generator's full parameters (defaults filled in)."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(synthetic.generate).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    full = {"generator": "attnrec_tf.data.synthetic.generate", **defaults, **params}
    return hashlib.sha256(json.dumps(full, sort_keys=True).encode("utf-8")).hexdigest()


def data_sha256(
    loaded: LoadedData, *, synthetic_params: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The report entry `{"sha256": ..., "sha256_of": ...}` for a loaded data set.

    Args:
        loaded: LoadedData. Its `source` is the file or folder read (or "synthetic(...)").
        synthetic_params: Mapping | None. The generator's arguments when the data is synthetic.
            Defaults to `None`.

    Returns:
        `sha256` (hex) and `sha256_of`: "file bytes", "files in folder" or
        "generator parameters".
    """
    source = Path(loaded.source)
    if synthetic_params is not None or loaded.name == "synthetic":
        return {
            "sha256": synthetic_sha256(synthetic_params or {}),
            "sha256_of": "generator parameters",
        }
    if source.is_file():
        return {"sha256": file_sha256(source), "sha256_of": "file bytes"}
    if source.is_dir():
        return {"sha256": folder_sha256(source), "sha256_of": "files in folder"}
    return {"sha256": "", "sha256_of": f"unavailable: {loaded.source} is not a file or folder"}

"""The Python API: train a run from Python, as `python -m attnrec_tf.train` does.

`train` takes the CLI's flags as keyword arguments (underscores for dashes: `--eval-users 500`
is `eval_users=500`, `--max-len 50` is `max_len=50`), validates them the same way (an
`AttnRecError` naming the flag) and returns a `Run`: the report and the paths of the artifacts.

Example (the embedded synthetic data, about a minute on 2 cores):

```python
import attnrec_tf

run = attnrec_tf.train(output_dir="runs/notebook", epochs=3)
run.metrics["keras"]["ndcg@10"], run.saved_model, run.tflite["dynamic_int8"]
```
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnrec_tf.config import Config
from attnrec_tf.config import preset as preset_config
from attnrec_tf.errors import ConfigError
from attnrec_tf.run_dir import RunDir


@dataclass(frozen=True)
class Run:
    """A finished training run: its folder, report and artifacts.

    Attributes:
        output_dir: The run folder.
        report: report.json's content.
    """

    output_dir: Path
    report: dict[str, Any]

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Test metrics by model or artifact (`keras`, `popularity`, `saved_model`, ...)."""
        return dict(self.report.get("metrics", {}))

    @property
    def model(self) -> Path:
        """The trained Keras model (`model.keras`)."""
        return RunDir(self.output_dir).model

    @property
    def saved_model(self) -> Path | None:
        """The SavedModel version folder, None without an export."""
        path = self.report.get("artifacts", {}).get("saved_model", {}).get("path")
        return Path(path) if path else None

    @property
    def tflite(self) -> dict[str, Path]:
        """The exported recommendation `.tflite` file of each kind (`float32`, ..., `int8`)."""
        from attnrec_tf.export.explain_tflite import ARTIFACT

        artifacts = self.report.get("artifacts", {})
        return {
            name.removeprefix("tflite_"): Path(entry["path"])
            for name, entry in artifacts.items()
            if name.startswith("tflite_") and name != ARTIFACT
        }

    @property
    def tflite_explain(self) -> Path | None:
        """The explain `.tflite` (`export.explain_tflite`), None without one."""
        from attnrec_tf.export.explain_tflite import ARTIFACT

        path = self.report.get("artifacts", {}).get(ARTIFACT, {}).get("path")
        return Path(path) if path else None


def train(
    data: str | Path | None = None,
    output_dir: str | Path = "runs/latest",
    preset: str = "default",
    **options: Any,
) -> Run:
    """Trains, evaluates and (by default) exports a run; the Python form of the train CLI.

    Args:
        data: As `--data`: None or `synthetic` (the embedded data), a MovieLens name or folder,
            or an interaction file.
        output_dir: As `--output-dir`.
        preset: As `--preset`: the named hyperparameters the other options override.
        **options: Any other flag of `python -m attnrec_tf.train` with underscores: the run
            flags (`export`, `tflite` as a list of kinds, `eval_users`, `feature_cols` as a
            list, ...) and every `Config` field (`epochs`, `max_len`, `variant`, ...), which
            override the preset.

    Returns:
        The Run.

    Raises:
        AttnRecError: A bad value (named as its flag), a bad input file, a missing package.
    """
    from attnrec_tf import train as train_cli

    run_fields = {f.name for f in dataclasses.fields(train_cli.RunOptions)}
    config_fields = {f.name for f in dataclasses.fields(Config)} - {"extra"}
    _check_names(options, (run_fields | config_fields) - {"tflite_given", "preset"})
    run_values = {k: v for k, v in options.items() if k in run_fields}
    config = preset_config(preset).replace(
        **{k: v for k, v in options.items() if k in config_fields}
    )
    run_options = train_cli.RunOptions(
        data=None if data is None else str(data),
        output_dir=Path(output_dir),
        preset=preset,
        **_normalised(run_values),
        tflite_given="tflite" in run_values,
    )
    run_options.check()
    report = train_cli.run(config, run_options)
    return Run(Path(output_dir), report)


def _check_names(options: dict[str, Any], known: set[str]) -> None:
    """Raises ConfigError for an unknown keyword, with the closest known one."""
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"train() got an unknown option {name!r}{hint}")


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """Lists of kinds and columns as the tuples `RunOptions` holds; paths as Paths."""
    out = dict(values)
    for name in ("tflite", "feature_cols"):
        if name in out:
            out[name] = _names(out[name], name)
    if out.get("cache_dir") is not None:
        out["cache_dir"] = Path(out["cache_dir"])
    return out


def _names(value: str | Iterable[str], name: str) -> tuple[str, ...]:
    """`"a,b"` or `["a", "b"]` -> `("a", "b")`."""
    if isinstance(value, str):
        return tuple(part for part in value.split(",") if part)
    try:
        return tuple(str(part) for part in value)
    except TypeError:
        raise ConfigError(f"{name} must be a list of names, got {value!r}") from None

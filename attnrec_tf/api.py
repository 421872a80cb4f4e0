"""The Python API: train a run from Python, as `python -m attnrec_tf.train` does.

`fit` takes the CLI's flags as keyword arguments (underscores for dashes: `--eval-users 500`
is `eval_users=500`, `--max-len 50` is `max_len=50`), validates them the same way (an
`AttnRecError` naming the flag) and returns a `Run`: the report and the paths of the artifacts.

Example (the embedded synthetic data, about a minute on 2 cores):

```python
import attnrec_tf

run = attnrec_tf.fit(output_dir="runs/notebook", epochs=3)
run.metrics["keras"]["ndcg@10"], run.saved_model, run.tflite["dynamic_int8"]
```
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnrec_tf.config import Config, option_fields
from attnrec_tf.run_dir import RunDir
from attnrec_tf.run_options import RunOptions, resolve


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
        """Test metrics by model or artifact (`keras`, `popularity`, `saved_model`, ...).

        report.json's summaries across artifacts (`metrics.by_history_length`) are left out:
        read them from `report["metrics"]`.
        """
        from attnrec_tf.report import artifact_metrics

        return artifact_metrics(self.report.get("metrics", {}))

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


def fit(
    data: str | Path | None = None,
    output_dir: str | Path | None = None,
    preset: str | None = None,
    **options: Any,
) -> Run:
    """Trains, evaluates and (by default) exports a run; the Python form of the train CLI.

    Every keyword is a field of `run_options.RunOptions` (data and run) or `config.Config`
    (model and training), with the same default, help and validation as its flag;
    `help(attnrec_tf.fit)` and `inspect.signature` list them all (`fit.__signature__` is made
    from the fields).

    Args:
        data: As `--data`: None or `synthetic` (the embedded data), a MovieLens name or folder,
            or an interaction file.
        output_dir: As `--output-dir`. Defaults to `runs/latest`.
        preset: As `--preset`: the named hyperparameters the other options override. Defaults
            to `default`.
        **options: Any other flag of `python -m attnrec_tf.train` with underscores: the data
            and run options (`export`, `tflite` as a list of kinds, `eval_users`,
            `feature_cols` as a list, ...) and every `Config` field (`epochs`, `max_len`,
            `variant`, ...), which override the preset.

    Returns:
        The Run.

    Raises:
        AttnRecError: An unknown option, a bad value (named as its flag), a bad input file, a
            missing package.
    """
    from attnrec_tf.training.run import run

    given = {"data": data, "output_dir": output_dir, "preset": preset}
    given = {name: value for name, value in given.items() if value is not None}
    config, run_options = resolve({**given, **options})
    report = run(config, run_options)
    return Run(Path(run_options.output_dir), report)


class _PresetValue:
    """The default shown for a `Config` keyword of `fit`: the chosen preset's value."""

    def __repr__(self) -> str:
        return "<the preset's>"


def _signature() -> inspect.Signature:
    """`fit`'s signature with every option as a keyword (`data`, `output_dir`, `preset` first)."""
    first = ("data", "output_dir", "preset")
    hints = {**typing.get_type_hints(RunOptions), **typing.get_type_hints(Config)}
    fields = {f.name: f for cls in (RunOptions, Config) for f in option_fields(cls)}
    run_names = {f.name for f in option_fields(RunOptions)}

    def parameter(name: str, kind: Any) -> inspect.Parameter:
        default = fields[name].default if name in run_names else _PresetValue()
        return inspect.Parameter(name, kind, default=default, annotation=hints[name])

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [parameter(name, positional) for name in first]
    parameters += [parameter(name, keyword) for name in fields if name not in first]
    return inspect.Signature(parameters, return_annotation=Run)


fit.__signature__ = _signature()  # type: ignore[attr-defined]

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnrec_tf.run_dir import RunDir
from attnrec_tf.run_options import resolve


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
        **options: Any other flag of `python -m attnrec_tf.train` with underscores: the data
            and run options (`run_options.RunOptions`: `export`, `tflite` as a list of kinds,
            `eval_users`, `feature_cols` as a list, ...) and every `Config` field (`epochs`,
            `max_len`, `variant`, ...), which override the preset.

    Returns:
        The Run.

    Raises:
        AttnRecError: An unknown option, a bad value (named as its flag), a bad input file, a
            missing package.
    """
    from attnrec_tf.training.run import run

    given = {"data": None if data is None else str(data), "output_dir": output_dir}
    config, run_options = resolve({**given, "preset": preset, **options})
    report = run(config, run_options)
    return Run(Path(output_dir), report)

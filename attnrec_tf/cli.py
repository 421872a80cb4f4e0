"""Small helpers shared by the command-line entry points.

Example:

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> _ = add_given_flag(parser, "--tflite", default="float32")
>>> given(parser.parse_args([]), "tflite"), given(parser.parse_args(["--tflite=int8"]), "tflite")
(False, True)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from attnrec_tf.errors import AttnRecError

DEFAULT_MODEL_NAME = "attnrec"
"""The TF Serving model name of every export and the folder name under `saved_model/`."""


def run_command(body: Callable[[], int | None]) -> int:
    """Runs a command's body under the one error contract of every entry point.

    A user error (`AttnRecError`: bad flag value, bad input file, missing package) prints one
    line `error: ...` on stderr and gives exit status 2; Ctrl-C (or training stopped after
    saving its state, a `KeyboardInterrupt` whose message says where) prints `interrupted`
    with that message and gives 130. No traceback in either case.

    Args:
        body: The command; returns its exit status (None means 0).

    Returns:
        The exit status.
    """
    try:
        status = body()
    except AttnRecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"interrupted{': ' + str(interrupt) if str(interrupt) else ''}", file=sys.stderr)
        return 130
    return 0 if status is None else status


def add_model_name(container: Any, help: str = "TF Serving model name") -> None:
    """Adds `--model-name` (default `DEFAULT_MODEL_NAME`)."""
    container.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help=help)


def quiet_tensorflow() -> None:
    """Hides TensorFlow's C++ info lines unless the user set `TF_CPP_MIN_LOG_LEVEL`.

    Takes effect only if called before TensorFlow is imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class StoreGiven(argparse.Action):
    """`store`, and sets `<dest>_given` when the flag is on the command line."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def add_given_flag(container: Any, flag: str, **kwargs: Any) -> argparse.Action:
    """Adds a flag whose namespace also tells whether the user gave it (see `given`).

    A default run can then skip a step whose optional package is missing with a note, while
    the same flag given explicitly makes that case an error.

    Args:
        container: The parser or argument group.
        flag: The option string, e.g. `--tflite`.
        **kwargs: `add_argument` keywords other than `action`.

    Returns:
        The added action.
    """
    action = container.add_argument(flag, action=StoreGiven, **kwargs)
    container.set_defaults(**{f"{action.dest}_given": False})
    return action


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the flag of `dest` (added by `add_given_flag`) was on the command line.

    A namespace built by hand, without the marker, counts as given (the strict reading).
    """
    return bool(getattr(args, f"{dest}_given", True))

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
from typing import Any


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

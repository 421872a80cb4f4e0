"""Small helpers shared by the command-line entry points.

Every entry point builds its parser with `command_parser`, adds the flags several commands
share through the `add_*` helpers below (one spelling, default and help for each), and runs
its body under `run_command`, the one error contract.

Example:

>>> parser = command_parser("demo", "A demo.")
>>> _ = add_given_flag(parser, "--tflite", default="float32")
>>> given(parser.parse_args([]), "tflite"), given(parser.parse_args(["--tflite=int8"]), "tflite")
(False, True)
>>> check_top_k(5)
5
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnrec_tf.config import flag, option_fields, option_type
from attnrec_tf.errors import AttnRecError, ConfigError

if TYPE_CHECKING:
    from attnrec_tf.run_dir import RunDir

DEFAULT_MODEL_NAME = "attnrec"
"""The TF Serving model name of every export and the folder name under `saved_model/`."""


def run_command(body: Callable[[], int | None]) -> int:
    """Runs a command's body under the one error contract of every entry point.

    A user error (`AttnRecError`: bad flag value, bad input file, missing package) prints one
    line `error: ...` on stderr and gives exit status 2; Ctrl-C (or training stopped after
    saving its state, a `KeyboardInterrupt` whose message says where) prints `interrupted`
    with that message and gives 130. TensorFlow missing (the package leaves its build to the
    user: `NO_TENSORFLOW`) is a user error too. No traceback in any of these cases.

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
    except ModuleNotFoundError as error:
        if error.name != "tensorflow":
            raise
        print(f"error: {NO_TENSORFLOW}", file=sys.stderr)
        return 2
    return 0 if status is None else status


NO_TENSORFLOW = (
    'TensorFlow is not installed: pip install "attnrec_tf[cpu]" (or attnrec_tf[and-cuda] for '
    "NVIDIA GPUs, or the tensorflow build of your choice, 2.21)"
)
"""What a command says when TensorFlow cannot be imported (it is an extra, not a dependency)."""


def command_parser(
    prog: str, description: str | None, *, doc: bool = False, **kwargs: Any
) -> argparse.ArgumentParser:
    """The argument parser of an entry point.

    Args:
        prog: The command as the user types it, e.g. `python -m attnrec_tf.export`.
        description: A sentence for `--help`, or (with `doc`) the module docstring.
        doc: The description is a module docstring: printed as written
            (`RawDescriptionHelpFormatter`) and the flags' help as written too. Without it,
            the description is rewrapped and every flag's help ends with its default
            (`ArgumentDefaultsHelpFormatter`).
        **kwargs: More `argparse.ArgumentParser` keywords (e.g. `allow_abbrev=False`).

    Returns:
        The parser, without flags.
    """
    formatter = (
        argparse.RawDescriptionHelpFormatter if doc else argparse.ArgumentDefaultsHelpFormatter
    )
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=formatter, **kwargs
    )


def add_output_dir(
    container: Any, help: str, *, required: bool = True, default: Path | None = None
) -> None:
    """Adds `--output-dir`, a run folder (`run_dir.RunDir`), as a `Path`.

    Args:
        container: The parser or argument group.
        help: What the folder must hold for this command.
        required: The user must give it. Defaults to `True`.
        default: The folder when not required (e.g. `runs/latest`).
    """
    container.add_argument("--output-dir", type=Path, required=required, default=default, help=help)


def existing_run_dir(path: Path) -> RunDir:
    """The `RunDir` of an `--output-dir` that must exist already.

    Raises:
        ConfigError: `path` is not a folder (the message names `--output-dir`).
    """
    from attnrec_tf.run_dir import RunDir

    output = RunDir(Path(path))
    if not output.root.is_dir():
        raise ConfigError(f"--output-dir {output.root}: no such folder")
    return output


def add_model_name(container: Any, help: str = "TF Serving model name") -> None:
    """Adds `--model-name` (default `DEFAULT_MODEL_NAME`)."""
    container.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help=help)


def add_top_k(container: Any, help: str, *, default: int | None = 10) -> None:
    """Adds `--top-k`, an int; check its value with `check_top_k` (after any fallback)."""
    container.add_argument("--top-k", type=int, default=default, help=help)


def check_top_k(top_k: Any) -> int:
    """Returns `top_k` when it is a positive int.

    Raises:
        ConfigError: It is not (the message names `--top-k` and the value).
    """
    if not isinstance(top_k, int) or top_k <= 0:
        raise ConfigError(f"--top-k must be a positive integer, got {top_k!r}")
    return top_k


def add_tflite_kinds(container: Any, *, missing: str) -> argparse.Action:
    """Adds `--tflite`, comma-separated kinds of `export.tflite.KINDS` (default: all of them).

    A given-flag (`add_given_flag`): a default run may skip the TFLite files when LiteRT is
    missing, an explicit `--tflite` makes that an error. Parse the value with
    `export.tflite.parse_kinds`.

    Args:
        container: The parser or argument group.
        missing: The end of the help: what happens without LiteRT installed.

    Returns:
        The added action.
    """
    from attnrec_tf.export.tflite import KINDS

    return add_given_flag(
        container,
        "--tflite",
        default=",".join(KINDS),
        help=f"comma-separated TFLite kinds to write, from {','.join(KINDS)}; {missing}",
    )


def quiet_tensorflow() -> None:
    """Hides TensorFlow's C++ info lines unless the user set `TF_CPP_MIN_LOG_LEVEL`.

    Takes effect only if called before TensorFlow is imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def release_freed_tensor_memory() -> None:
    """Puts TensorFlow's CPU tensors on the system allocator, unless the user chose one.

    Sets `TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1` when it is not set, so freed CPU tensor memory
    goes back to the system; the computed values are the same. Only `python -m
    attnrec_tf.export` calls it (why: docs/notes/data-evaluation.md). Takes effect only if
    called before TensorFlow is imported.
    """
    os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")


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


def add_option_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    default_label: str,
    names: Collection[str] | None = None,
) -> None:
    """Adds one flag per `option` field of `cls`, in argument groups named by the fields.

    The type comes from the field's annotation (a bool is `--x / --no-x`, a tuple is a
    comma-separated string), the help from its metadata, ending with its default. `names`
    keeps only those fields (another command sharing some of train's options).
    """
    groups: dict[str, Any] = {}
    for field in option_fields(cls):
        if names is not None and field.name not in names:
            continue
        name = field.metadata["group"]
        if name not in groups:
            groups[name] = parser.add_argument_group(name)
        kind = option_type(cls, field.name)
        default: Any = field.default
        shown = ",".join(default) if kind is tuple else default
        help_text = f"{field.metadata['help']} ({default_label}: {shown})".replace("%", "%%")
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = str if kind is tuple else kind
        if field.metadata["show_choices"]:
            kwargs["choices"] = field.metadata["choices"]
        groups[name].add_argument(flag(field.name), **kwargs)

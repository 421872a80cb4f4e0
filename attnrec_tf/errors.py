"""User-facing errors.

Anything a user can cause (a bad file, a bad flag, a folder without a known dataset) raises a
subclass of `AttnRecError` whose message names the file and line, or the flag. The command-line
entry points print `error: <message>` on one line and exit with status 2, without a traceback.
Programming errors keep raising the usual Python exceptions.
"""

from __future__ import annotations


class AttnRecError(Exception):
    """Base class of every error a user can cause."""


class DataError(AttnRecError):
    """A data file or folder is missing, empty or malformed (the message names file and line)."""


class ConfigError(AttnRecError):
    """A flag or configuration value is invalid (the message names the flag)."""


class ExportError(AttnRecError):
    """An export cannot be written or an exported artifact fails its checks."""


class DependencyError(AttnRecError):
    """An installed package is missing, or at a version a step was not tested with.

    The message names the package and the `pip install` command that fixes it.
    """


class MissingDependencyError(DependencyError):
    """A package a step needs is not installed.

    Args:
        package: What the user knows it as (`LiteRT`, `matplotlib`).
        install: The `pip install` argument that brings it (`ai-edge-litert`).
        what: An optional prefix naming what needed it (a flag, a step).

    Example:

    >>> str(MissingDependencyError("LiteRT", "ai-edge-litert"))
    'LiteRT is not installed (pip install ai-edge-litert)'
    """

    def __init__(self, package: str, install: str, what: str = "") -> None:
        self.package, self.install = package, install
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}{package} is not installed (pip install {install})")

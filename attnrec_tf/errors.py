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

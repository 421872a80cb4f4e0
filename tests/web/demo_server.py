"""`web_demo/server.py`, the browser demo's server, imported by path for the tests.

It lives beside the page, outside the package, so it is no importable module name; `load()`
imports it once under `attnrec_web_demo_server`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "web_demo" / "server.py"
NAME = "attnrec_web_demo_server"


def load() -> ModuleType:
    """The server module (imported on the first call)."""
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, SERVER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[NAME]

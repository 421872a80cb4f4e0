"""`python web_demo/server.py`: serves the browser demo and a run's on-device model locally.

Runs, from a source checkout (the page and this server live together in `web_demo/`, outside
the installed package; the server imports `attnrec_tf` for the rest):

    (cd web_demo && npm ci)                   # once: LiteRT.js (@litertjs/core) into node_modules
    python web_demo/server.py --output-dir runs/latest            # http://127.0.0.1:8000/
    python web_demo/server.py --output-dir runs/latest --port 0   # any free port (printed)

The page runs the model in the browser (LiteRT.js, WebAssembly); this server only hands out
files, from these URLs and nowhere else:

```
/                 web_demo/ (index.html, app.js, style.css)
/vendor/<pkg>/    web_demo/node_modules/<pkg>/ for @litertjs/core and @litertjs/wasm-utils
                  (the library and its .wasm files, served from here, never from a CDN)
/run/             <output-dir>/android_demo_assets/ (config.json, sorted_movie_vocab.json and
                  the .tflite without batch axis that the Android demo uses)
/explain/<file>   <output-dir>/tflite/<model_name>_explain_float32.tflite, that one file
/explain/config.json   what the page needs to run it (`explain_config`), made from report.json
```

The explain file (`attnrec_tf.export.explain_tflite`) stays in the run's `tflite/` folder, so
`android_demo_assets/` is exactly what the Android demo expects; the page finds it through
`/explain/config.json`. A run exported without it (no LiteRT, or an older export) has no
`/explain/` URLs (404), and the page shows its recommendations without reasons.

It listens on 127.0.0.1 only. The first line it prints is `serving http://127.0.0.1:<port>/`.

`--demo-dir` defaults to this file's folder. A folder without the page, or without `npm ci`
run in it, is a one-line error naming `--demo-dir` and the step to take (exit status 2).

Run as a script (from the checkout's root or from inside `web_demo/`), it imports the
`attnrec_tf` of the checkout it sits in, the version the page was written for; a copy of this
folder outside a checkout uses the installed package.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DEMO_DIR = Path(__file__).resolve().parent
"""The default `--demo-dir`: the page's folder, this file's."""
CHECKOUT = DEMO_DIR.parent
if (CHECKOUT / "attnrec_tf" / "__init__.py").is_file() and CHECKOUT not in {
    Path(entry or ".").resolve() for entry in sys.path
}:
    sys.path.insert(0, str(CHECKOUT))  # run as a script: sys.path[0] is web_demo/, not the root

from attnrec_tf.cli import (  # noqa: E402 - after the checkout is on sys.path
    DEFAULT_MODEL_NAME,
    add_output_dir,
    command_parser,
    run_command,
)
from attnrec_tf.errors import ConfigError  # noqa: E402
from attnrec_tf.run_dir import RunDir  # noqa: E402

VENDOR_PACKAGES = ("@litertjs/core", "@litertjs/wasm-utils")
EXPLAIN_URL = "/explain/"
"""Where the page finds the explain file and `config.json` describing it."""
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".tflite": "application/octet-stream",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
    ".map": "application/json",
}


def roots(demo_dir: Path, output_dir: Path) -> dict[str, Path]:
    """URL prefix -> folder, checked; raises `ConfigError` naming what is missing."""
    assets = RunDir(output_dir).android_assets
    if not (assets / "config.json").is_file():
        raise ConfigError(
            f"--output-dir {output_dir}: no {assets.name}/config.json; export the run first "
            f"(python -m attnrec_tf.export --output-dir {output_dir})"
        )
    if not (demo_dir / "index.html").is_file():
        raise ConfigError(
            f"--demo-dir {demo_dir}: no index.html; pass the web_demo/ folder of an attnrec_tf "
            "checkout (the default: this script's folder), after running npm ci there"
        )
    mapping = {"/run/": assets}
    for package in VENDOR_PACKAGES:
        folder = demo_dir / "node_modules" / package
        if not (folder / "package.json").is_file():
            raise ConfigError(
                f"--demo-dir {demo_dir}: {folder} missing; install the page's libraries first: "
                f"cd {demo_dir} && npm ci"
            )
        mapping[f"/vendor/{package}/"] = folder
    mapping["/"] = demo_dir
    return mapping


def explain_config(output_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """The page's config of the run's explain `.tflite`, and the file; None without one.

    Args:
        output_dir: An exported run.

    Returns:
        `({"model": the file's name under `EXPLAIN_URL`, "historyLength": H, "topK": K,
        "maxLen", "latencyMsP50": the export's LiteRT measurement}, path)`, or None when the
        report has no `artifacts.tflite_explain` or the file is missing.
    """
    from attnrec_tf.export.explain_tflite import ARTIFACT

    output = RunDir(output_dir)
    try:
        report = json.loads(output.report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    artifact = report.get("artifacts", {}).get(ARTIFACT)
    file = output.tflite_explain(report.get("export", {}).get("model_name", DEFAULT_MODEL_NAME))
    if not artifact or not file.is_file():
        return None
    try:
        config = {
            "model": file.name,
            "historyLength": artifact["inputs"]["history"][-1],
            "topK": artifact["inputs"]["candidates"][-1],
            "maxLen": artifact["outputs"]["removed"][-1],
            "latencyMsP50": artifact["latency_ms_p50"],
        }
    except (KeyError, IndexError, TypeError):  # a record this version did not write
        return None
    return config, file


class DemoHandler(SimpleHTTPRequestHandler):
    """Serves files from the `roots` mapping and the single `files` only (no listings, no
    `..`, no node_modules), and the `documents` made at start."""

    mapping: dict[str, Path] = {}
    files: dict[str, Path] = {}
    documents: dict[str, bytes] = {}
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def translate_path(self, path: str) -> str:
        url_path = unquote(urlsplit(path).path)
        if url_path in self.files:
            return str(self.files[url_path])
        if url_path.endswith("/"):
            url_path += "index.html"
        for prefix, folder in sorted(self.mapping.items(), key=lambda kv: -len(kv[0])):
            if url_path.startswith(prefix):
                relative = url_path[len(prefix) :]
                target = (folder / relative).resolve()
                inside = target == folder.resolve() or folder.resolve() in target.parents
                if not inside or (prefix == "/" and "node_modules" in Path(relative).parts):
                    return ""
                return str(target)
        return ""

    def send_head(self) -> Any:
        body = self.documents.get(unquote(urlsplit(self.path).path))
        if body is not None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", TYPES[".json"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        path = self.translate_path(self.path)
        if not path or not Path(path).is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return None
        return super().send_head()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


def make_server(
    output_dir: Path, *, port: int = 8000, demo_dir: Path = DEMO_DIR, verbose: bool = False
) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (port 0 = any free port), not yet serving.

    Args:
        output_dir: An exported run.
        port: TCP port; 0 picks a free one (read it from `server.server_address[1]`).
        demo_dir: The page's folder (with node_modules after `npm ci`).
        verbose: Log every request to stderr.

    Returns:
        The server; call `serve_forever()` (e.g. in a thread) and `shutdown()`.
    """
    mapping = roots(Path(demo_dir).resolve(), Path(output_dir).resolve())
    files, documents = {}, {}
    explain = explain_config(Path(output_dir).resolve())
    if explain is not None:
        config, file = explain
        files[f"{EXPLAIN_URL}{file.name}"] = file
        documents[f"{EXPLAIN_URL}config.json"] = json.dumps(config).encode()
    bound = {"mapping": mapping, "files": files, "documents": documents}
    handler = type("BoundDemoHandler", (DemoHandler,), bound)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.verbose = verbose  # type: ignore[attr-defined]
    server.daemon_threads = True
    return server


def serve_in_thread(output_dir: Path, **kwargs: Any) -> tuple[ThreadingHTTPServer, str]:
    """Starts `make_server` in a daemon thread; returns it and its base URL."""
    server = make_server(output_dir, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def build_parser() -> argparse.ArgumentParser:
    """The CLI of `python web_demo/server.py`."""
    parser = command_parser(
        "python web_demo/server.py",
        "Serve the browser demo (LiteRT.js) with a run's on-device model.",
    )
    add_output_dir(parser, "an exported run")
    parser.add_argument("--port", type=int, default=8000, help="0 = any free port")
    parser.add_argument(
        "--demo-dir",
        type=Path,
        default=DEMO_DIR,
        help="the page's folder (this script's), after `npm ci` in it",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (`cli.run_command`).

    Ctrl-C stops the server with status 0 (serving until interrupted is its normal life).
    """
    args = build_parser().parse_args(argv)
    return run_command(lambda: _serve(args))


def _serve(args: argparse.Namespace) -> None:
    try:
        server = make_server(
            args.output_dir, port=args.port, demo_dir=args.demo_dir, verbose=args.verbose
        )
    except OSError as error:  # e.g. the port is taken: a user error like a bad flag
        raise ConfigError(str(error)) from error
    print(f"serving http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())

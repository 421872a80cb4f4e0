"""The demo's static server (`attnrec_tf.web_demo`): what it serves, and what it refuses."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from attnrec_tf.errors import ConfigError
from attnrec_tf.web_demo import make_server, serve_in_thread


def _fake_demo(root: Path) -> tuple[Path, Path]:
    """A page folder with stand-in vendor packages and a run with stand-in assets."""
    demo = root / "web_demo"
    (demo / "node_modules" / "secret").mkdir(parents=True)
    (demo / "node_modules" / "secret" / "package.json").write_text("{}")
    (demo / "index.html").write_text("<!doctype html><title>demo</title>")
    for package in ("@litertjs/core", "@litertjs/wasm-utils"):
        folder = demo / "node_modules" / package
        (folder / "wasm").mkdir(parents=True)
        (folder / "package.json").write_text(json.dumps({"name": package}))
        (folder / "wasm" / "runtime.wasm").write_bytes(b"\0asm\1\0\0\0")
    run = root / "run"
    (run / "android_demo_assets").mkdir(parents=True)
    (run / "android_demo_assets" / "config.json").write_text('{"model": "m.tflite"}')
    (run / "report.json").write_text("{}")
    return demo, run


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, "", b""


def test_serves_the_three_roots_and_nothing_else(tmp_path: Path) -> None:
    demo, run = _fake_demo(tmp_path)
    server, url = serve_in_thread(run, port=0, demo_dir=demo)
    try:
        assert url.startswith("http://127.0.0.1:")
        status, kind, body = _get(url)
        assert (status, kind) == (200, "text/html; charset=utf-8") and b"demo" in body
        status, kind, _ = _get(url + "vendor/@litertjs/core/wasm/runtime.wasm")
        assert (status, kind) == (200, "application/wasm")
        status, _, body = _get(url + "run/config.json")
        assert status == 200 and json.loads(body) == {"model": "m.tflite"}
        for path in (
            "run/../report.json",
            "run/%2e%2e/report.json",
            "node_modules/secret/package.json",
            "vendor/@litertjs/core/../../secret/package.json",
            "vendor/secret/package.json",
            "missing.js",
        ):
            assert _get(url + path)[0] == 404, path
    finally:
        server.shutdown()
        server.server_close()


def test_missing_assets_or_libraries_are_user_errors(tmp_path: Path) -> None:
    demo, run = _fake_demo(tmp_path)
    with pytest.raises(ConfigError, match="no android_demo_assets/config.json"):
        make_server(tmp_path / "elsewhere", port=0, demo_dir=demo)
    (demo / "node_modules" / "@litertjs" / "core" / "package.json").unlink()
    with pytest.raises(ConfigError, match="npm ci"):
        make_server(run, port=0, demo_dir=demo)


def test_a_folder_without_the_page_names_demo_dir_and_npm_ci(tmp_path: Path) -> None:
    """An installed package has no web_demo/ beside it: the error says where the page is."""
    _, run = _fake_demo(tmp_path)
    with pytest.raises(ConfigError, match="--demo-dir .*no index.html.*npm ci"):
        make_server(run, port=0, demo_dir=tmp_path / "nowhere")


def test_serves_the_explain_file_and_its_config_and_no_other_tflite(tmp_path: Path) -> None:
    demo, run = _fake_demo(tmp_path)
    (run / "tflite").mkdir()
    (run / "tflite" / "mine_explain_float32.tflite").write_bytes(b"TFL3 explain")
    (run / "tflite" / "mine_float32.tflite").write_bytes(b"TFL3 recommend")
    artifact = {
        "latency_ms_p50": 1.5,
        "inputs": {"history": [1, 512], "candidates": [1, 10]},
        "outputs": {"removed": [1, 50]},
    }
    report = {"export": {"model_name": "mine"}, "artifacts": {"tflite_explain": artifact}}
    (run / "report.json").write_text(json.dumps(report))
    server, url = serve_in_thread(run, port=0, demo_dir=demo)
    try:
        status, kind, body = _get(url + "explain/config.json")
        assert (status, kind) == (200, "application/json")
        assert json.loads(body) == {
            "model": "mine_explain_float32.tflite",
            "historyLength": 512,
            "topK": 10,
            "maxLen": 50,
            "latencyMsP50": 1.5,
        }
        status, kind, body = _get(url + "explain/mine_explain_float32.tflite")
        assert (status, kind, body) == (200, "application/octet-stream", b"TFL3 explain")
        for path in ("explain/mine_float32.tflite", "explain/", "explain/../report.json"):
            assert _get(url + path)[0] == 404, path
    finally:
        server.shutdown()
        server.server_close()


def test_a_run_without_the_explain_file_has_no_explain_urls(tmp_path: Path) -> None:
    demo, run = _fake_demo(tmp_path)  # report.json without artifacts.tflite_explain
    server, url = serve_in_thread(run, port=0, demo_dir=demo)
    try:
        assert _get(url + "explain/config.json")[0] == 404
        assert _get(url + "run/config.json")[0] == 200  # the recommendations still work
    finally:
        server.shutdown()
        server.server_close()

"""The demo's static server (`web_demo/server.py`): what it serves, and what it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from attnrec_tf.errors import ConfigError
from tests.web.demo_server import REPO, SERVER, load

make_server = load().make_server
serve_in_thread = load().serve_in_thread


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
    """A folder that is not the page: the error says which flag and what to run."""
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


def _run_script(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python <checkout>/web_demo/server.py ARGS` run from `cwd`, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(SERVER), *map(str, args)],
        cwd=cwd,
        env={**env, "CUDA_VISIBLE_DEVICES": "-1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("missing", ["page", "node_modules"])
def test_the_script_refuses_a_demo_dir_without_the_page_in_one_line(
    tmp_path: Path, missing: str
) -> None:
    """Exit 2 and one line naming --demo-dir and npm ci: no traceback, nothing served."""
    demo, run = _fake_demo(tmp_path)
    if missing == "page":
        demo = tmp_path / "nowhere"
    else:
        (demo / "node_modules" / "@litertjs" / "wasm-utils" / "package.json").unlink()
    said = _run_script(REPO, "--output-dir", run, "--port", "0", "--demo-dir", demo)
    assert said.returncode == 2, said.stderr
    lines = (said.stdout + said.stderr).strip().splitlines()
    assert len(lines) == 1 and "serving" not in lines[0], lines
    assert "--demo-dir" in lines[0] and "npm ci" in lines[0], lines[0]


@pytest.mark.parametrize("where", ["root", "web_demo"])
def test_the_script_runs_from_the_root_and_from_its_folder(where: str) -> None:
    """Without PYTHONPATH, the script finds the checkout's attnrec_tf from either folder."""
    cwd = REPO if where == "root" else SERVER.parent
    said = _run_script(cwd, "--help")
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("usage: python web_demo/server.py")
    assert "--demo-dir" in said.stdout

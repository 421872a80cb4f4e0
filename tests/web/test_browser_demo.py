"""End to end: the browser demo in headless Chromium equals the Python LiteRT interpreter, and
its reasons equal the Python API's.

Serves `web_demo/` and the tiny demo run's Android assets with `web_demo/server.py` on
127.0.0.1, drives the page with playwright-core (`drive_demo.mjs`: search and pick
`max_len + 2` movies, read the recommendations, their reasons and the attention bars, take a
screenshot into the test's tmp dir), and checks the page's top-K ids, scores and attention
against `LiteRTRecommender` on the same `.tflite` and history: the page feeds `inputLength`
(from config.json, the export's `history_length`) ids, none of the picks is recommended, and
the two oldest picks, outside the model's window, get no attention bar.

The reasons ("because you picked X (#r -> #r')", computed in the page by the run's explain
`.tflite` through LiteRT.js) are checked twice. Against `LiteRTExplainer` on the same file for
every recommendation the page shows (the same float32 graph: the page's JavaScript must read
the outputs as `Counterfactuals.reasons` does). And against
`attnrec_tf.load(run).recommend(...)` (the SavedModel's top-K explained by
`attnrec_tf.counterfactual` with the Keras model) for the same picks: the page recommends with
the Android file (dynamic int8 or float32, the export's choice), so its list may differ from
the SavedModel's at near-ties; for every item both lists show, the reasons (titles and the rank
without each) are the same, and where the item has the same rank in both, the page's line is
the recommend command's `because` line with "picked" for "watched".

Needs Debian's `chromium` (or `$CHROMIUM`), Node.js and `npm ci` in `web_demo/` (LiteRT.js and
playwright-core); skips naming what is missing otherwise. `.ci/run` installs all three.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.demo_run import demo_run as build_or_reuse_demo_run

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "web_demo"
DRIVER = Path(__file__).with_name("drive_demo.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} not found (apt-get install chromium chromium-driver, or set $CHROMIUM)"
    if shutil.which("node") is None:
        return "node not found (Node.js runs the playwright-core driver)"
    for package in ("@litertjs/core", "playwright-core"):
        if not (DEMO_DIR / "node_modules" / package / "package.json").is_file():
            return f"web_demo/node_modules/{package} missing (run: cd web_demo && npm ci)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def test_page_recommendations_equal_python_litert(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from attnrec_tf.export.litert import LiteRTRecommender
    from tests.web.demo_server import load

    run = build_or_reuse_demo_run(tmp_path_factory)
    assets = run / "android_demo_assets"
    config = json.loads((assets / "config.json").read_text())
    export = json.loads((run / "report.json").read_text())["export"]
    assert config["inputs"][0]["inputLength"] == export["history_length"] > export["max_len"]
    movies = json.loads((assets / config["movieList"]).read_text())
    chosen = movies[::2][: export["max_len"] + 2]  # popular to rare, two beyond the window

    server, url = load().serve_in_thread(run, port=0)
    screenshot = tmp_path / "web_demo.png"
    try:
        driven = subprocess.run(
            ["node", str(DRIVER), str(DEMO_DIR), url, str(screenshot)]
            + [m["title"] for m in chosen],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "CHROMIUM": CHROMIUM},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert driven.returncode == 0, driven.stderr[-3000:]
    page = json.loads(driven.stdout.strip().splitlines()[-1])

    assert page["picked"] == [m["id"] for m in chosen]
    runner = LiteRTRecommender(assets / config["model"])
    expected = runner(np.array(page["picked"]))
    top_k = config["topK"]
    assert [r["id"] for r in page["recommendations"]] == expected["item_ids"][:top_k].tolist()
    np.testing.assert_allclose(
        [r["score"] for r in page["recommendations"]],
        expected["scores"][:top_k],
        rtol=1e-5,
        atol=1e-5,
    )
    titles = {m["id"]: m["title"] for m in movies}
    assert [r["title"] for r in page["recommendations"]] == [
        titles[int(i)] for i in expected["item_ids"][:top_k]
    ]
    assert not set(page["picked"]) & {r["id"] for r in page["recommendations"]}
    # the last max_len picks fill the model's window; the two before it have no weight
    attention = [a["attention"] for a in page["attention"]]
    assert attention[:2] == [None, None] and len(expected["attention"]) == export["max_len"]
    np.testing.assert_allclose(attention[2:], expected["attention"], atol=1e-5)
    assert f"history input {config['inputs'][0]['inputLength']}" in page["status"]
    _check_reasons(run, page, top_k)
    assert not any(str(line).startswith("pageerror") for line in page["logs"])
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def _check_reasons(run: Path, page: dict, top_k: int) -> None:
    """The page's reasons equal the explain file's in Python, and the Python API's."""
    import attnrec_tf
    from attnrec_tf.export.explain_tflite import LiteRTExplainer
    from attnrec_tf.recommend import _because_line

    report = json.loads((run / "report.json").read_text())
    explainer = LiteRTExplainer(Path(report["artifacts"]["tflite_explain"]["path"]))
    shown = page["recommendations"]
    found = explainer.counterfactuals(np.array(page["picked"]), np.array([r["id"] for r in shown]))
    for column, recommendation in enumerate(shown):
        expected = found.reasons(column, top=3)
        assert [(r["item"], r["rankWithout"]) for r in recommendation["reasons"]] == [
            (r.item, r.rank_without) for r in expected
        ]
        np.testing.assert_allclose(
            [r["scoreDrop"] for r in recommendation["reasons"]],
            [r.score_drop for r in expected],
            rtol=1e-5,
        )
    assert any(r["reasons"] for r in shown), "no recommendation has a reason"
    assert float(page["explainMs"]) > 0 and "reasons" in page["timing"]

    recommender = attnrec_tf.load(run)
    picked_raw = [recommender.catalog.raw_id(i) for i in page["picked"]]
    python = {rec["title"]: rec for rec in recommender.recommend(picked_raw, k=top_k)}
    both = [r for r in shown if r["title"] in python]
    assert len(both) >= top_k - 2, "the page and the Python API recommend different items"
    lines = 0
    for rank, recommendation in enumerate(shown, start=1):
        rec = python.get(recommendation["title"])
        if rec is None:
            continue
        titles = {i: recommender.catalog.title(i) for i in page["picked"]}
        assert [(titles[r["item"]], r["rankWithout"]) for r in recommendation["reasons"]] == [
            (b["title"], b["rank_without"]) for b in rec["because"]
        ]
        if rec["rank"] == rank:
            line = _because_line("counterfactual", rec)
            assert recommendation["because"] == line.replace("you watched", "you picked")
            lines += 1
    print(
        f"page: {page['timing']}; reasons as the Python API's for {len(both)} of {len(shown)} "
        f"recommendations ({lines} at the same rank: the same line)"
    )

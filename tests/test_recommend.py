"""`python -m attnrec_tf.recommend`, title matching (`titles.py`) and explanations (`explain.py`).

The CLI tests share one tiny trained and exported run (`tests/demo_run.py`, built once per
session) and call `recommend.main` in-process; one test runs the real command in a subprocess
to check the exit status and that no traceback leaks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnrec_tf.explain import ScoreParts, contributions, reasons
from attnrec_tf.titles import TitleIndex, describe_failure, title_key
from tests.demo_run import MOVIES
from tests.demo_run import demo_run as build_or_reuse_demo_run

CATALOG = [(i, title) for i, (title, _) in enumerate(MOVIES, start=1)]
INDEX_OF = {title: i for i, title in CATALOG}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_or_reuse_demo_run(tmp_path_factory)


# -- titles -------------------------------------------------------------------------------------


def test_title_key_normalises_articles_years_and_alternatives() -> None:
    assert title_key("Matrix, The (1999)").names == ("matrix",)
    assert title_key("Matrix, The (1999)").year == 1999
    assert title_key("The Matrix").names == ("matrix",)
    assert title_key("Seven (a.k.a. Se7en) (1995)").names == ("seven", "se7en")
    assert title_key("Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)").names == (
        "amelie",
        "fabuleux destin damelie poulain",
    )
    assert title_key("Godfather: Part II, The (1974)").names == ("godfather part 2",)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("The Matrix", "Matrix, The (1999)"),
        ("matrix", "Matrix, The (1999)"),
        ("Matrix, The (1999)", "Matrix, The (1999)"),
        ("matrix 1999", "Matrix, The (1999)"),
        ("Matrix Relaoded", "Matrix Reloaded, The (2003)"),  # typo
        ("Hamlet (1996)", "Hamlet (1996)"),
        ("se7en", "Seven (a.k.a. Se7en) (1995)"),
        ("AMELIE", "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"),
        ("toy story 2", "Toy Story 2 (1999)"),
        ("Toy Story", "Toy Story (1995)"),
        ("godfather 2", "Godfather: Part II, The (1974)"),
        ("Crimson Harbor", "Crimson Harbor (1972)"),
    ],
)
def test_match_finds_the_one_title(query: str, expected: str) -> None:
    match = TitleIndex(CATALOG).match(query)
    assert match.index == INDEX_OF[expected], (query, match)
    assert match.title == expected


def test_remakes_are_ambiguous_and_listed() -> None:
    match = TitleIndex(CATALOG).match("Hamlet")
    assert match.index is None and match.ambiguous
    assert {c.title for c in match.candidates} == {"Hamlet (1990)", "Hamlet (1996)"}
    message = describe_failure(match)
    assert "ambiguous" in message and "Hamlet (1990)" in message and "Hamlet (1996)" in message


def test_close_fuzzy_candidates_are_ambiguous() -> None:
    match = TitleIndex(CATALOG).match("Silent")  # in five titles
    assert match.ambiguous
    assert all("Silent" in c.title for c in match.candidates)


def test_unknown_title_has_no_candidates() -> None:
    match = TitleIndex(CATALOG).match("Completely Unrelated Words")
    assert match.index is None and not match.candidates
    assert describe_failure(match) == "no title matches 'Completely Unrelated Words'"


# -- explanation math ---------------------------------------------------------------------------


def test_contributions_by_hand() -> None:
    a = np.array([0.2, 0.5, 0.3])
    p = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    e = np.array([[2.0, 1.0], [-1.0, 3.0]])
    # c_ij = a_i (p_i . e_j): item 0: 0.2*2, 0.2*-1; item 1: 0.5*1, 0.5*3; item 2: 0.3*3, 0.3*2
    expected = np.array([[0.4, -0.2], [0.5, 1.5], [0.9, 0.6]])
    np.testing.assert_allclose(contributions(a, p, e), expected)


def test_reasons_sum_repeated_items_and_drop_negative_ones() -> None:
    parts = ScoreParts(
        window=np.array([0, 7, 3, 7]),  # item 7 twice, padding first
        attention=np.array([0.0, 0.1, 0.6, 0.3]),
        projected=np.array([[9.0, 9.0], [1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]]),
        recent=np.array([0.5, 0.0]),
        bias=np.array([0.0, 1.0]),
        items=np.array([[0.0, 0.0], [3.0, 2.0]]),
    )
    found = reasons(parts, item=1)
    # item 7: 0.1 * 3 + 0.3 * 6 = 2.1 (weight 0.4); item 3: 0.6 * -3 < 0 -> not a reason
    assert [(r.item, round(r.attention, 6), round(r.contribution, 6)) for r in found] == [
        (7, 0.4, 2.1)
    ]
    terms = parts.terms(1)
    assert terms == pytest.approx(
        {"attention": 2.1 - 1.8, "recent": 1.5, "bias": 2.0, "total": 0.3 + 1.5 + 2.0}
    )


def test_score_parts_add_up_to_the_keras_score(run: Path) -> None:
    from attnrec_tf.explain import score_parts
    from attnrec_tf.run_dir import load_model

    model = load_model(run / "model.keras")
    window = np.zeros(model.max_len, np.int32)
    window[-4:] = [3, 9, 1, 6]
    parts = score_parts(model, window)
    scores = np.asarray(model.score(window[None]))[0]
    for item in range(1, model.vocab_size):
        assert parts.terms(item)["total"] == pytest.approx(float(scores[item]), abs=1e-4)
    np.testing.assert_allclose(parts.attention[-4:].sum(), 1.0, atol=1e-5)
    assert np.all(parts.attention[:-4] == 0)


# -- the command --------------------------------------------------------------------------------


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from attnrec_tf import recommend

    status = recommend.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], run: Path, *argv: str) -> dict:
    status, out, err = _main(capsys, "--output-dir", str(run), "--json", *argv)
    assert status == 0, err
    return json.loads(out)


def test_history_titles_text_output(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _main(
        capsys, "--output-dir", str(run), "--history", "The Matrix", "Hamlet (1996)", "toy story",
        "--explain", "additive",
    )  # fmt: skip
    assert status == 0, err
    assert "Matrix, The (1999)" in out and "Hamlet (1996)" in out and "Toy Story (1995)" in out
    assert out.count("because you watched") + out.count("not driven by the history") == 10
    assert "Top 10" in out


def test_json_document(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(
        capsys,
        run,
        "--history",
        "The Matrix",
        "Hamlet (1996)",
        "toy story",
        "--explain",
        "additive",
    )
    assert doc["runtime"] == "saved_model" and doc["explanation"] == "additive"
    assert [h["title"] for h in doc["history"]] == [
        "Matrix, The (1999)",
        "Hamlet (1996)",
        "Toy Story (1995)",
    ]
    assert sum(h["attention"] for h in doc["history"]) == pytest.approx(1.0, abs=1e-4)
    recs = doc["recommendations"]
    assert [r["rank"] for r in recs] == list(range(1, 11))
    history_ids = {h["id"] for h in doc["history"]}
    assert not history_ids & {r["id"] for r in recs}
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    for rec in recs:
        # the SavedModel's score is the Keras score, which the three terms add up to
        assert rec["terms"]["total"] == pytest.approx(rec["score"], abs=1e-3)
        contributions_ = [b["contribution"] for b in rec["because"]]
        assert contributions_ == sorted(contributions_, reverse=True)
        assert all(c > 0 for c in contributions_) and len(contributions_) <= 3
        assert {b["id"] for b in rec["because"]} <= history_ids
        for reason in rec["because"]:
            assert reason["contribution"] == pytest.approx(
                reason["attention"] * reason["similarity"], abs=1e-5
            )


def test_ids_and_tflite_agree_with_saved_model(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ["5", "12", "30"]  # raw ids of movies.dat (index order may differ)
    saved = _json(capsys, run, "--ids", *ids)
    lite = _json(capsys, run, "--ids", *ids, "--runtime", "tflite", "--kind", "float32")
    assert [h["id"] for h in saved["history"]] == [5, 12, 30]
    assert lite["artifact"].endswith("attnrec_float32.tflite")
    assert [r["id"] for r in lite["recommendations"]] == [r["id"] for r in saved["recommendations"]]
    np.testing.assert_allclose(
        [r["score"] for r in lite["recommendations"]],
        [r["score"] for r in saved["recommendations"]],
        atol=1e-4,
    )


def test_tflite_excludes_history_beyond_the_models_window(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user with more items than max_len: the .tflite (input of history_length items)
    leaves them all out, as the SavedModel does, and attends over the last max_len only."""
    from attnrec_tf.run_dir import load_split

    report = json.loads((run / "report.json").read_text())
    max_len, width = report["export"]["max_len"], report["export"]["history_length"]
    split = load_split(run / "split.npz")
    lengths = [len(t) + 2 for t in split.train]  # the whole sequence, as --user gives it
    row = next(r for r, n in enumerate(lengths) if max_len < n <= width)
    user = str(split.users[row])
    saved = _json(capsys, run, "--user", user)
    lite = _json(capsys, run, "--user", user, "--runtime", "tflite")
    assert [r["id"] for r in lite["recommendations"]] == [r["id"] for r in saved["recommendations"]]
    assert not {h["id"] for h in lite["history"]} & {r["id"] for r in lite["recommendations"]}
    outside = [h for h in lite["history"] if h["attention"] is None]
    assert len(outside) == lengths[row] - max_len


def test_user_history_is_the_full_sequence(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from attnrec_tf.run_dir import load_split

    split = load_split(run / "split.npz")
    row = 3
    user = str(split.users[row])
    doc = _json(capsys, run, "--user", user, "--top-k", "5")
    assert len(doc["history"]) == len(split.train[row]) + 2
    assert len(doc["recommendations"]) == 5


def test_top_k_beyond_the_export_ranks_the_catalog(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    default = _json(capsys, run, "--ids", "1", "2")
    wide = _json(capsys, run, "--ids", "1", "2", "--top-k", "15")
    assert len(wide["recommendations"]) == 15
    assert [r["id"] for r in wide["recommendations"][:10]] == [
        r["id"] for r in default["recommendations"]
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--history", "Hamlet"], "--history: 'Hamlet' is ambiguous: 'Hamlet (1990)'"),
        (["--history", "The Matrix", "Zebra Quantum Pillow"], "no title matches"),
        (["--ids", "1", "999999"], "--ids: unknown item id(s) 999999"),
        (["--ids", "one"], "--ids: 'one' is not an integer item id"),
        (["--user", "no-such-user"], "--user: no user 'no-such-user'"),
        (["--ids", "1", "--top-k", "0"], "--top-k must be a positive integer"),
        (["--ids", "1", "--runtime", "tflite", "--top-k", "11"], "returns 10 items"),
        (["--ids", "1", "--runtime", "tflite", "--kind", "int4"], "--kind: unknown TFLite kind"),
        (["--ids", "1", "--runtime", "tflite", "--kind", "int8"], "not found; export it first"),
    ],
)
def test_user_errors_are_one_line(
    run: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = _main(capsys, "--output-dir", str(run), *argv)
    assert status == 2
    assert out == ""
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_missing_exports_and_folders(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model.keras", "vocabulary.json", "items.json", "split.npz", "report.json"):
        shutil.copy2(run / name, bare / name)
    status, _, err = _main(capsys, "--output-dir", str(bare), "--ids", "1")
    assert status == 2 and "no SavedModel version under" in err
    status, _, err = _main(capsys, "--output-dir", str(tmp_path / "nope"), "--ids", "1")
    assert status == 2 and "no such folder" in err
    (bare / "items.json").unlink()
    status, _, err = _main(capsys, "--output-dir", str(bare), "--ids", "1")
    assert status == 2 and "items.json: not found" in err


def test_the_command_line(run: Path) -> None:
    """The acceptance command, as a user runs it (in-process tests cover the error paths)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "attnrec_tf.recommend", "--output-dir", str(run)]
        + ["--history", "godfather", "se7en", "Distant River"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Top 10" in done.stdout and "because you watched" in done.stdout
    assert "Traceback" not in done.stderr


def test_reasons_leave_out_negligible_items() -> None:
    parts = ScoreParts(
        window=np.array([4, 5, 6]),
        attention=np.array([0.5, 0.3, 0.2]),
        projected=np.array([[4.0], [1.0], [0.1]]),
        recent=np.zeros(1),
        bias=np.zeros(1),
        items=np.array([[0.0], [1.0]]),
    )
    # contributions 2.0, 0.3, 0.02: the last is under a tenth of the first
    assert [r.item for r in reasons(parts, item=1)] == [4, 5]
    assert [r.item for r in reasons(parts, item=1, min_share=0.0)] == [4, 5, 6]
    assert [r.item for r in reasons(parts, item=1, top=1)] == [4]


@pytest.mark.parametrize(
    ("variant", "concat_last"),
    [
        ("pooling", True),
        ("pooling", False),
        ("self-attention", True),
        ("mean", True),
        ("last", True),
    ],
)
def test_score_parts_are_exact_for_every_variant(variant: str, concat_last: bool) -> None:
    from attnrec_tf.explain import score_parts
    from attnrec_tf.model import AttentionRecommender

    model = AttentionRecommender(
        vocab_size=20,
        max_len=6,
        embedding_dim=8,
        attention_units=8,
        variant=variant,
        concat_last=concat_last,
        num_item_features=3,
    )
    model.build((None, 6))
    model.set_item_features(np.random.default_rng(0).integers(0, 2, (20, 3)))
    window = np.array([0, 4, 9, 2, 2, 17], np.int32)
    parts = score_parts(model, window)
    scores = np.asarray(model.score(window[None]))[0]
    totals = [parts.terms(j)["total"] for j in range(1, 20)]
    np.testing.assert_allclose(totals, scores[1:], atol=1e-5)


def test_counterfactual_text_output(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _main(
        capsys, "--output-dir", str(run), "--history", "The Matrix", "Hamlet (1996)", "toy story"
    )
    assert status == 0, err
    reasons = out.count("because you watched")
    assert reasons + out.count("no single history item raises it") == 10
    assert reasons >= 1 and re.search(r"because you watched .+ \(#\d+ -> #\d+\)", out)


def test_counterfactual_reasons_are_what_removal_does_in_the_saved_model(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each shown reason, removed from the history and scored again through the SavedModel's
    `rerank` (not the Keras path the explanation used), lowers the score by `score_drop` and
    leaves the item at `rank_without`."""
    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.export.saved_model import SavedModelClient, versions
    from attnrec_tf.metrics import rank_of_targets
    from attnrec_tf.run_dir import RunDir

    doc = _json(capsys, run, "--history", "The Matrix", "Hamlet (1996)", "toy story")
    assert doc["explanation"] == "counterfactual"
    output = RunDir(run)
    vocabulary = Vocabulary.load(output.vocabulary)
    base = output.saved_model_base("attnrec")
    client = SavedModelClient(base / str(versions(base)[-1]), vocabulary)
    history = vocabulary.encode(np.asarray([h["id"] for h in doc["history"]])).astype(np.int64)
    checked = 0
    for rec in doc["recommendations"]:
        drops = [b["score_drop"] for b in rec["because"]]
        assert drops == sorted(drops, reverse=True) and all(d > 0 for d in drops)
        item = int(vocabulary.encode(np.asarray([rec["id"]]))[0])
        for reason in rec["because"]:
            removed = int(vocabulary.encode(np.asarray([reason["id"]]))[0])
            without = history[history != removed]
            scores = client.scores([without])
            assert rec["score"] - scores[0, item] == pytest.approx(reason["score_drop"], abs=1e-3)
            rank = rank_of_targets(scores, np.array([item]), [history])[0] + 1
            # The rank the CLI shows is the SavedModel's. A removal that lowers the score can
            # still lower others more, so the rank need not fall (seen on the sasrec demo).
            assert rank == reason["rank_without"]
            checked += 1
    assert checked >= 1

"""The Python API (`attnrec_tf.fit`, `attnrec_tf.load`) and batch recommendations to a file."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

import attnrec_tf
from attnrec_tf import recommend
from attnrec_tf.errors import AttnRecError, ConfigError
from attnrec_tf.recommend_all import recommend_all, select_users, user_histories
from attnrec_tf.run_dir import RunDir, load_histories
from tests.demo_run import demo_run as build_or_reuse_demo_run

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_or_reuse_demo_run(tmp_path_factory)


def _serving_top_k(run: Path, history: np.ndarray, k: int) -> list:
    """The SavedModel's `serving_default` answer for one whole history of indices."""
    from attnrec_tf.data.vocabulary import Vocabulary
    from attnrec_tf.export.saved_model import SavedModelClient, versions

    output = RunDir(run)
    base = output.saved_model_base("attnrec")
    vocabulary = Vocabulary.load(output.vocabulary)
    client = SavedModelClient(base / str(versions(base)[-1]), vocabulary)
    out = client.recommend(client.raw_batch([history]))
    return out["item_ids"][0][:k].tolist()


def test_all_users_jsonl_has_every_user_and_the_saved_models_top_k(run, tmp_path, capsys):
    out = tmp_path / "recs.jsonl"
    status = recommend.main(["--output-dir", str(run), "--all-users", "--out", str(out),
                             "--batch-size", "7"])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert re.search(r"wrote the top 10 of [\d,]+ users .* users/s", printed)
    users, histories = load_histories(RunDir(run).histories)
    vocabulary = attnrec_tf.load(run).catalog.vocabulary
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["user"] for row in rows] == users.tolist()
    for row_number in (0, 3, len(rows) // 2, len(rows) - 1):
        row, history = rows[row_number], histories[row_number]
        assert row["item_ids"] == _serving_top_k(run, history, 10)
        assert len(row["scores"]) == 10 and row["scores"] == sorted(row["scores"], reverse=True)
        recommended = vocabulary.encode(np.asarray(row["item_ids"])).tolist()
        assert not set(history.tolist()) & set(recommended)  # the history is excluded


def test_parquet_equals_jsonl_and_users_file_keeps_its_order(run, tmp_path):
    pytest.importorskip("pyarrow.parquet", reason="pip install pyarrow")
    import pyarrow.parquet as pq

    recommender = attnrec_tf.load(run)
    users, histories, _ = user_histories(recommender)
    chosen = tmp_path / "users.txt"
    chosen.write_text(f"{users[5]}\n\n{users[2]}\n")
    picked_users, picked = select_users(users, histories, chosen)
    assert picked_users.tolist() == [users[5], users[2]]
    jsonl, parquet = tmp_path / "r.jsonl", tmp_path / "r.parquet"
    for out in (jsonl, parquet):
        recommend_all(recommender, picked_users, picked, out, k=5, batch_size=1, progress=None)
    table = pq.read_table(parquet).to_pylist()
    assert table == [json.loads(line) for line in jsonl.read_text().splitlines()]


def test_batch_errors_name_the_flag_file_and_line(run, tmp_path, capsys):
    users_file = tmp_path / "users.txt"
    users_file.write_text("not-a-user\n")
    cases = [
        (["--all-users"], "give --out"),
        (["--all-users", "--out", str(tmp_path / "r.csv")], "must end in .jsonl or .parquet"),
        (["--users-file", str(users_file), "--out", str(tmp_path / "r.jsonl")],
         f"{users_file}:1: no user 'not-a-user'"),
        (["--ids", "1", "--out", str(tmp_path / "r.jsonl")], "--out needs --all-users"),
    ]  # fmt: skip
    for argv, message in cases:
        assert recommend.main(["--output-dir", str(run), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "r.jsonl").exists()


def test_progress_line_counts_users_and_rate(run, tmp_path):
    recommender = attnrec_tf.load(run)
    users, histories, _ = user_histories(recommender)
    stream = io.StringIO()
    result = recommend_all(
        recommender, users[:20], histories[:20], tmp_path / "r.jsonl", k=3, batch_size=4,
        progress=stream,
    )  # fmt: skip
    assert "\r" not in stream.getvalue()  # not a terminal: plain lines, for logs
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("recommend: 100%|") and "| 20/20 [" in lines[-1]
    assert lines[-1].endswith(" users/s]")
    assert result["users"] == 20 and result["users_per_second"] > 0


def test_recommender_loads_once_and_takes_ids_or_titles(run):
    recommender = attnrec_tf.load(run)
    records = recommender.catalog.records
    ids = [records[0]["id"], records[3]["id"], records[7]["id"]]
    by_ids = recommender.recommend(ids, k=4)
    by_titles = recommender.recommend([records[i]["title"] for i in (0, 3, 7)], k=4)
    assert by_ids == by_titles
    assert [item["rank"] for item in by_ids] == [1, 2, 3, 4]
    assert {"id", "title", "score", "because"} <= set(by_ids[0])
    batch = recommender.recommend_batch([ids, ids[:2]], k=4)
    assert [item["id"] for item in batch[0]] == [item["id"] for item in by_ids]
    assert batch[0][0]["score"] == pytest.approx(by_ids[0]["score"], abs=1e-5)
    engine = recommender.engine
    recommender.recommend(ids[:1], k=2)
    assert recommender.engine is engine  # nothing loaded again
    with pytest.raises(ConfigError, match="history: unknown item id"):
        recommender.recommend([10**9], k=3)
    with pytest.raises(AttnRecError, match="history: it is empty"):
        recommender.recommend([], k=3)


def _readme_python_example() -> str:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    return block


def test_the_readme_python_example_runs_end_to_end(tmp_path, monkeypatch):
    """The README's example as written, on the synthetic data, with a shorter training."""
    code = _readme_python_example()
    assert "attnrec_tf.fit(" in code and "attnrec_tf.load(" in code
    monkeypatch.chdir(tmp_path)
    code = code.replace("epochs=3", "epochs=1, max_len=20")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    run, recommendations = namespace["run"], namespace["recommendations"]
    assert run.metrics["keras"]["ndcg@10"] > run.metrics["popularity"]["ndcg@10"]
    assert len(recommendations) == 5 and all("because" in r for r in recommendations)
    assert Path(namespace["run"].saved_model).is_dir()
    assert set(run.tflite) == {"float32", "dynamic_int8"}  # the explain file is not a kind
    assert run.tflite_explain.name == "attnrec_explain_float32.tflite"
    assert run.tflite_explain.is_file()

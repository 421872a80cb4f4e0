"""The noise suite: tied blocks are permuted only inside themselves; seeds group by settings."""

import json

import numpy as np

from attnrec_tf.config import preset
from benchmarks import common, noise


def _write(folder, rows):
    folder.mkdir()
    (folder / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    (folder / "u.item").write_text("1|A|\n")


def test_shuffled_ties_permute_inside_each_tied_block_only(tmp_path):
    # user 1: items 10, 11 tied at t=5, then 12 alone; user 2: 20, 21, 22 all tied at t=7
    rows = [
        (2, 20, 4, 7),
        (1, 10, 3, 5),
        (1, 12, 3, 9),
        (2, 21, 4, 7),
        (1, 11, 3, 5),
        (2, 22, 4, 7),
    ]
    _write(tmp_path / "src", rows)
    stats = noise.shuffled_ties(tmp_path / "src", tmp_path / "kept", 0)
    assert stats == {
        "rows": 6, "rows_in_ties": 5, "users": 2, "test_target_tied": 1,
        "validation_target_tied": 2,
    }  # fmt: skip
    kept = np.loadtxt(tmp_path / "kept" / "u.data", dtype=int)
    assert kept[:, 1].tolist() == [10, 11, 12, 20, 21, 22]  # the file's order among ties
    assert (tmp_path / "kept" / "u.item").read_text() == "1|A|\n"
    orders = set()
    for seed in range(1, 30):
        noise.shuffled_ties(tmp_path / "src", tmp_path / f"s{seed}", seed)
        items = np.loadtxt(tmp_path / f"s{seed}" / "u.data", dtype=int)[:, 1].tolist()
        assert (
            sorted(items[:2]) == [10, 11] and items[2] == 12 and sorted(items[3:]) == [20, 21, 22]
        )
        orders.add(tuple(items))
    assert len(orders) == 12  # 2! x 3! orders, all reached


def _report(
    run,
    seed,
    ndcg,
    drawn=None,
    loss_reason="--loss auto: 3,416 items",
    end=None,
    history=(),
    **config,
):
    run.mkdir(parents=True)
    report = {
        "history": list(history),
        "loss_choice": {"reason": loss_reason},
        "training": {"context_crops_drawn": drawn, **({"cosine_end": end} if end else {})},
        "config": {**preset("ml-1m").to_dict(), "preset": "ml-1m", "seed": seed, **config},
        "dataset": {"name": "movielens-1m"},
        "metrics": {"keras": {"ndcg@10": ndcg, "hr@10": 2 * ndcg}},
        "epochs_run": 50,
        "train_seconds": 1790.0,
    }
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_seed_rows_group_by_everything_but_the_seed(tmp_path):
    rows = {
        str(p): noise.seed_row(p)
        for p in (
            _report(tmp_path / "a0", 0, 0.17, relative_position_bias=False),
            _report(tmp_path / "a1", 1, 0.18, relative_position_bias=False),
            _report(tmp_path / "b0", 0, 0.20),
            _report(tmp_path / "c0", 0, 0.21, drawn="every epoch"),
            _report(tmp_path / "d0", 0, 0.15, loss="sampled", loss_reason="--loss sampled (given)"),
            _report(tmp_path / "e0", 0, 0.19, drawn="every epoch", end="epochs or time budget"),
        )
    }
    text = noise.markdown(rows, {})
    table = [line for line in text.splitlines() if line.startswith("| movielens-1m")]
    assert len(table) == 5
    fitted = [row for row in table if "0.1900" in row]  # a cosine fitted to the budget
    assert "`--preset ml-1m (crops drawn every epoch; cosine ends within the budget)`" in fitted[0]
    table.remove(fitted[0])
    given = [row for row in table if "0.1500" in row]  # a given --loss is a flag of the row
    assert given == [row for row in table if "`--preset ml-1m --loss sampled (crops" in row]
    table.remove(given[0])
    assert "| movielens-1m | `--preset ml-1m (crops drawn every epoch)` | 0 | 0.2100 |" in table[0]
    assert "| movielens-1m | `--preset ml-1m (crops drawn once)` | 0 | 0.2000 |" in table[1]
    assert "`--preset ml-1m --relative-position-bias False (crops drawn once)`" in table[2]
    assert "| 0, 1 | 0.1750 ± 0.0071 | 0.3500 ± 0.0141 | 0.1700, 0.1800 |" in table[2]


def test_the_same_setting_on_two_machines_is_two_rows(tmp_path):
    old = noise.seed_row(_report(tmp_path / "a0", 0, 0.17))  # recorded before rows named a CPU
    rows = {"a0": old, "a1": noise.seed_row(_report(tmp_path / "a1", 1, 0.19))}
    rows["a1"]["cpu"] = "Intel Xeon"
    noise.fill_machine(rows, "AMD EPYC")  # the section's machine when `old` was tabled
    assert [rows["a0"]["cpu"], rows["a1"]["cpu"]] == ["AMD EPYC", "Intel Xeon"]
    table = [line for line in noise.markdown(rows, {}).splitlines() if "movielens-1m" in line]
    assert len(table) == 2  # not one mean over two machines' seconds
    assert table[0].endswith("| 0 | 0.1700 | 0.3400 | 0.1700 | 50 | 1790 | AMD EPYC |")
    assert table[1].endswith("| 1 | 0.1900 | 0.3800 | 0.1900 | 50 | 1790 | Intel Xeon |")


def test_a_run_older_than_the_cosine_end_field_is_read_from_its_model(tmp_path):
    import zipfile

    def model_with(schedule):
        run = _report(tmp_path / schedule, 0, 0.18, drawn="every epoch")
        optimizer = {"config": {"learning_rate": {"class_name": schedule, "config": {}}}}
        with zipfile.ZipFile(run / "model.keras", "w") as archive:
            archive.writestr(
                "config.json", json.dumps({"compile_config": {"optimizer": optimizer}})
            )
        return noise.seed_row(run)["label"]

    assert model_with("BudgetCosineDecay").endswith(
        "(crops drawn every epoch; cosine ends within the budget)"
    )
    assert model_with("CosineDecay").endswith("(crops drawn every epoch)")


def test_the_sasrec_file_check_counts_users_whose_sequence_and_targets_agree(tmp_path):
    from benchmarks.noise import sasrec_file_agreement

    assert sasrec_file_agreement(tmp_path) is None  # no SASRec file: nothing to say
    movies = [10, 20, 30, 40, 50, 60]
    orders = {u: movies[u - 1 :] + movies[: u - 1] for u in range(1, 7)}  # each rates all six
    lines = [f"{u}::{m}::4::{1000 + t}\n" for u, seq in orders.items() for t, m in enumerate(seq)]
    (tmp_path / "ratings.dat").write_text("".join(lines))
    (tmp_path / "movies.dat").write_text("".join(f"{m}::Film {m} (2000)::Drama\n" for m in movies))
    ids = {m: i + 1 for i, m in enumerate(movies)}  # SASRec's own item ids
    theirs = dict(orders)
    theirs[2] = orders[2][:-2] + orders[2][-2:][::-1]  # the last two swapped: test and validation
    theirs[3] = orders[3][:1] + orders[3][1:3][::-1] + orders[3][3:]  # an early swap only
    (tmp_path / "sasrec_ml-1m.txt").write_text(
        "".join(f"{u} {ids[m]}\n" for u, seq in theirs.items() for m in seq)
    )
    (tmp_path / "sasrec_ml-1m_itemmap.tsv").write_text(
        "sasrec_item_id\tmovie_id\n" + "".join(f"{i}\t{m}\n" for m, i in ids.items())
    )
    counts = sasrec_file_agreement(tmp_path)
    assert counts == {"users": 6, "sasrec_users": 6, "rows": 36, "sequence": 4, "test": 5,
                      "validation": 5}  # fmt: skip


def test_a_run_with_the_planned_budget_stop_is_a_row_of_its_own(tmp_path):
    args = {"drawn": "every epoch", "end": "epochs or time budget"}
    old = noise.seed_row(_report(tmp_path / "old", 0, 0.18, history=[{"seconds": 30.0}], **args))
    new = noise.seed_row(
        _report(tmp_path / "new", 0, 0.18, history=[{"seconds": 30.0, "batches": 189}], **args)
    )
    assert new["setting"] != old["setting"]
    assert new["label"].endswith(
        "(crops drawn every epoch; cosine ends within the budget; budget stop planned per batch)"
    )
    assert old["label"].endswith("(crops drawn every epoch; cosine ends within the budget)")


def test_the_tried_plot_ranks_settings_and_names_machines_only_when_they_differ(tmp_path):
    rows = {str(p): noise.seed_row(p) for p in (_report(tmp_path / "a", 0, 0.17),)}
    assert noise.plot_tried(rows, tmp_path / "none.png", dataset="movielens-100k") is None
    path = noise.plot_tried(rows, tmp_path / "tried.png")
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")
    row = {"cpu": "Intel(R) Xeon(R) Processor"}
    assert noise._suffix([row, row], name_machine=True) == " (2 seeds, Intel)"
    assert noise._suffix([row], name_machine=False) == " (1 seed)"
    assert noise._short("--preset ml-1m --dropout 0.2 (crops)") == "--dropout 0.2 (crops)"
    assert noise._short("--preset ml-1m (crops)") == "the preset (crops)"
    text = noise.markdown(rows, {}, plot="benchmarks/noise-ml-1m.png")
    assert "![test NDCG@10 of each setting against the target](benchmarks/noise-ml-1m.png)" in text


def test_mean_sd_cell_by_hand() -> None:
    # mean of 0.1, 0.2, 0.3 is 0.2; sample sd sqrt((0.01 + 0 + 0.01) / 2) = 0.1
    assert common.mean_sd([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"
    assert common.mean_sd([0.17654]) == "0.1765"

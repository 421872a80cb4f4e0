"""The RecBole side of `python -m benchmarks --suite peers`: RecBole's SASRec on our split.

This file runs in the peer's own virtual environment (torch and recbole, no TensorFlow), started
by `benchmarks.peers` as `<peer-venv>/bin/python -m benchmarks.peer_recbole
JOB.json` with the repository on PYTHONPATH. It imports nothing of attnrec_tf but
`benchmarks.peer_common` and `attnrec_tf.metrics` (plain numpy), so validation is ranked
by our code.

Contract (the job file is written by `benchmarks.peers.write_peer_job`):

* Input, in the job's `workdir`: `data/attnrec/attnrec.inter` (every user's whole sequence,
  `user_id:token item_id:token timestamp:float`, the timestamp being the position in the
  sequence, so RecBole's own time-ordered leave-one-out is our split) and `split.npz` (our split,
  in the `run_dir.save_split` layout).
* RecBole's `SASRec` with `loss_type: CE` and `train_neg_sample_args: None`, RecBole's defaults
  otherwise, `MAX_ITEM_LIST_LENGTH` = our `max_len`, `options` on top. Before training, the
  script checks that RecBole's train, validation and test sets are our split (same users,
  targets and history windows) and stops with exit status 3 when they are not.
* Training: RecBole's own `Trainer._train_epoch`, `threads` torch threads, until the wall-clock
  budget runs out (checked before every batch), RecBole's `stopping_step` epochs pass without a
  better validation NDCG@10, or RecBole's `epochs` are done. After each epoch (also a partial
  last one) the validation users are ranked by `attnrec_tf.metrics` (full ranking, history
  excluded, ties pessimistic); with `probe_seconds` > 0 also between batches whenever that many
  training seconds have passed since the last point, on a paused clock. The weights of the best
  point are kept in memory.
* Output, in `workdir`: `history.json` (one row per validation point: `epoch`, fractional for a
  point inside an epoch, `seconds` of training clock, `loss` (the epoch's mean; None for a
  probe), validation `hr@10`, `ndcg@10`, `mrr`, `partial`), `test_scores.npy` (float32
  `(users, vocab_size)`: the best model's scores of the test users, rows in our user order,
  columns in our vocabulary order, column 0 = -inf) and `result.json` (timings, why training
  stopped, versions, RecBole's effective settings and RecBole's own test metrics, labelled).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peer_common import EVAL_BATCH, Clock, SplitArrays, load_split, rank_metrics

DATASET = "attnrec"
SPLIT_MISMATCH_STATUS = 3


def main(argv: list[str]) -> int:
    """Runs the job named by `argv[0]`; returns the exit status."""
    job = json.loads(Path(argv[0]).read_text())
    sys.argv = sys.argv[:1]  # RecBole's Config reads `--key=value` from the command line
    sys.path.insert(0, job["repo_root"])
    workdir = Path(job["workdir"])

    import torch

    torch.set_num_threads(int(job["threads"]))
    started = time.perf_counter()
    config, dataset, loaders = prepare(job, workdir)
    split = load_split(workdir / "split.npz")
    try:
        mapping = IdMapping.of(dataset, int(job["vocab_size"]))
        problem = split_mismatch(loaders, mapping, split, int(job["max_len"]))
    except SplitMismatch as error:
        problem = str(error)
    if problem:
        print(f"peer: RecBole's split is not ours: {problem}", file=sys.stderr, flush=True)
        return SPLIT_MISMATCH_STATUS
    prepare_seconds = time.perf_counter() - started
    print(f"peer: data ready in {prepare_seconds:.1f}s; split checked", flush=True)

    model, trainer = build(config, loaders[0])
    outcome = train(trainer, model, loaders[0], split, mapping, job)
    model.load_state_dict(outcome["best_state"])
    scores = score_users(model, split.histories("test"), mapping, int(job["max_len"]))
    np.save(workdir / "test_scores.npy", scores)
    (workdir / "history.json").write_text(json.dumps(outcome["history"], indent=1))
    result = {
        "prepare_seconds": prepare_seconds,
        "train_seconds": outcome["train_seconds"],
        "probe_seconds": outcome["probe_seconds"],
        "epochs_run": outcome["epochs_run"],
        "best_epoch": outcome["best_epoch"],
        "stopped_by": outcome["stopped_by"],
        "train_examples": len(loaders[0]._dataset),
        "batches_per_epoch": len(loaders[0]),
        "versions": versions(),
        "settings": settings(config),
        "recbole_test": recbole_test_metrics(trainer, loaders[2]),
    }
    (workdir / "result.json").write_text(json.dumps(result, indent=1))
    print(f"peer: done; {json.dumps({k: result[k] for k in ('epochs_run', 'stopped_by')})}")
    return 0


def recbole_config(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """RecBole settings: its SASRec defaults, CE over the catalog, our split and window."""
    return {
        "data_path": str(workdir / "data"),
        "dataset": DATASET,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": int(job["max_len"]),
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "use_gpu": False,
        "worker": 0,
        "seed": int(job["seed"]),
        "reproducibility": True,
        "show_progress": False,
        "checkpoint_dir": str(workdir / "saved"),
        "log_wandb": False,
        **job.get("options", {}),
    }


def prepare(job: dict[str, Any], workdir: Path) -> tuple[Any, Any, tuple[Any, Any, Any]]:
    """RecBole's Config, Dataset and (train, valid, test) loaders for the job."""
    import os

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    os.chdir(workdir)  # RecBole writes log/ and log_tensorboard/ into the working directory
    config = Config(model="SASRec", dataset=DATASET, config_dict=recbole_config(job, workdir))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    loaders = data_preparation(config, dataset)
    return config, dataset, loaders


def build(config: Any, train_data: Any) -> tuple[Any, Any]:
    """RecBole's SASRec on the training set and its Trainer."""
    from recbole.model.sequential_recommender import SASRec
    from recbole.utils import get_trainer, init_seed

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return model, trainer


class SplitMismatch(Exception):
    """RecBole's dataset cannot be mapped onto our split (the message says why)."""


class IdMapping:
    """RecBole's internal user and item ids <-> our user rows and vocabulary indices."""

    def __init__(self, user_of_rid: np.ndarray, ours_of_rid: np.ndarray, rid_of_ours: np.ndarray):
        self.user_of_rid = user_of_rid  # RecBole user id -> our row (-1 for padding)
        self.ours_of_rid = ours_of_rid  # RecBole item id -> our index (0 for padding)
        self.rid_of_ours = rid_of_ours  # our index -> RecBole item id (0 for padding)

    @classmethod
    def of(cls, dataset: Any, vocab_size: int) -> IdMapping:
        """Reads the token tables of a RecBole Dataset whose tokens are our indices.

        Raises:
            SplitMismatch: RecBole's items are not exactly our vocabulary's 1..vocab_size-1.
        """
        users = dataset.field2id_token["user_id"]
        items = dataset.field2id_token["item_id"]
        user_of_rid = np.array([-1] + [int(t) for t in users[1:]], dtype=np.int64)
        ours_of_rid = np.array([0] + [int(t) for t in items[1:]], dtype=np.int64)
        if sorted(ours_of_rid[1:].tolist()) != list(range(1, vocab_size)):
            raise SplitMismatch(
                f"RecBole has {len(items) - 1} items, our vocabulary {vocab_size - 1}"
            )
        rid_of_ours = np.zeros(vocab_size, dtype=np.int64)
        rid_of_ours[ours_of_rid] = np.arange(len(ours_of_rid))
        return cls(user_of_rid, ours_of_rid, rid_of_ours)


def windows(
    histories: list[np.ndarray], mapping: IdMapping, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """RecBole's model input: the last `max_len` items, RecBole ids, right-padded; lengths."""
    lengths = np.array([min(len(h), max_len) for h in histories], dtype=np.int64)
    items = np.zeros((len(histories), max_len), dtype=np.int64)
    for row, (history, length) in enumerate(zip(histories, lengths, strict=True)):
        items[row, :length] = mapping.rid_of_ours[history[len(history) - length :]]
    return items, lengths


def split_mismatch(
    loaders: tuple[Any, Any, Any], mapping: IdMapping, split: SplitArrays, max_len: int
) -> str | None:
    """Why RecBole's train/valid/test sets differ from our split, or None when they agree."""
    for stage, loader in (("valid", loaders[1]), ("test", loaders[2])):
        feat = loader._dataset.inter_feat
        rows = mapping.user_of_rid[feat["user_id"].numpy()]
        if sorted(rows.tolist()) != list(range(len(split.train))):
            return f"{stage}: {len(rows)} rows for {len(split.train)} users"
        targets = mapping.ours_of_rid[feat["item_id"].numpy()]
        if not np.array_equal(targets, split.targets(stage)[rows]):
            return f"{stage}: targets differ"
        items, lengths = windows([split.histories(stage)[r] for r in rows], mapping, max_len)
        if not (
            np.array_equal(feat["item_length"].numpy(), lengths)
            and np.array_equal(feat["item_id_list"].numpy(), items)
        ):
            return f"{stage}: history windows differ"
    feat = loaders[0]._dataset.inter_feat
    got = np.sort(
        mapping.user_of_rid[feat["user_id"].numpy()] * (len(mapping.rid_of_ours))
        + mapping.ours_of_rid[feat["item_id"].numpy()]
    )
    want = np.sort(
        np.concatenate(
            [
                np.full(len(h) - 1, u) * len(mapping.rid_of_ours) + h[1:]
                for u, h in enumerate(split.train)
            ]
            or [np.zeros(0, np.int64)]
        )
    )
    if not np.array_equal(got, want):
        return f"train: {len(got)} (user, next item) examples, ours {len(want)}"
    return None


def score_users(
    model: Any, histories: list[np.ndarray], mapping: IdMapping, max_len: int
) -> np.ndarray:
    """The model's scores `(len(histories), vocab_size)` in our column order (0 = -inf)."""
    import torch
    from recbole.data.interaction import Interaction

    vocab_size = len(mapping.rid_of_ours)
    out = np.full((len(histories), vocab_size), -np.inf, dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(histories), EVAL_BATCH):
            items, lengths = windows(histories[start : start + EVAL_BATCH], mapping, max_len)
            batch = Interaction(
                {
                    model.ITEM_SEQ: torch.from_numpy(items),
                    model.ITEM_SEQ_LEN: torch.from_numpy(lengths),
                }
            )
            scores = model.full_sort_predict(batch).numpy()  # (B, RecBole items)
            out[start : start + len(items), mapping.ours_of_rid[1:]] = scores[:, 1:]
    return out


def validate(model: Any, split: SplitArrays, mapping: IdMapping, max_len: int) -> dict[str, float]:
    """Validation HR@10, NDCG@10, MRR by attnrec_tf.metrics (full ranking, history excluded)."""
    return rank_metrics(
        lambda batch: score_users(model, batch, mapping, max_len),
        split.histories("valid"),
        split.targets("valid"),
    )


class Tracker:
    """Validation points of the run, the best one's weights and when the next probe is due."""

    def __init__(self, model: Any, evaluate: Callable[[], dict[str, float]], probe_seconds: float):
        self.model, self.evaluate, self.probe_seconds = model, evaluate, probe_seconds
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"ndcg@10": -1.0, "epoch": 0.0, "state": None}
        self.next_probe = probe_seconds

    def record(
        self, clock: Clock, epoch: float, loss: float | None, *, probe_at: float | None = None
    ) -> None:
        """Ranks the validation users and keeps the weights when NDCG@10 is the best yet.

        An epoch-end point is placed at the clock after validating (validation is charged, as
        in our runs); a probe at `probe_at`, the clock before it paused.
        """
        valid = self.evaluate()
        seconds = clock() if probe_at is None else probe_at
        row = {"epoch": round(epoch, 4), "seconds": seconds, "loss": loss, **valid}
        row["partial"] = probe_at is not None or epoch != int(epoch)
        self.history.append(row)
        print(f"peer: validation {json.dumps(row)}", flush=True)
        if valid["ndcg@10"] > self.best["ndcg@10"]:
            state = copy.deepcopy(self.model.state_dict())
            self.best = {"ndcg@10": valid["ndcg@10"], "epoch": row["epoch"], "state": state}
        self.next_probe = seconds + self.probe_seconds

    def probe_due(self, clock: Clock) -> bool:
        """Whether a mid-epoch validation is due (never when probes are off)."""
        return self.probe_seconds > 0 and clock() >= self.next_probe


class Budgeted:
    """A loader's batches while the clock is under budget, with mid-epoch validation probes.

    A probe runs on the paused clock (it is not charged to the budget and does not move the
    x-axis), then puts the model back into training mode.
    """

    def __init__(
        self, loader: Any, clock: Clock, budget: float, tracker: Tracker, epoch: int
    ) -> None:
        self.loader, self.clock, self.budget = loader, clock, budget
        self.tracker, self.epoch = tracker, epoch
        self.batches = 0
        self.cut = False

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if self.clock() >= self.budget:
                self.cut = True
                return
            if self.batches and self.tracker.probe_due(self.clock):
                done = self.epoch - 1 + self.batches / max(len(self.loader), 1)
                probe_at = self.clock()
                with self.clock.pause():
                    self.tracker.record(self.clock, done, None, probe_at=probe_at)
                    self.tracker.model.train()
            self.batches += 1
            yield batch


def train(
    trainer: Any,
    model: Any,
    train_data: Any,
    split: SplitArrays,
    mapping: IdMapping,
    job: dict[str, Any],
) -> dict[str, Any]:
    """RecBole epochs within the budget; validation by our metrics after each (and probes)."""
    config = trainer.config
    budget = float(job["budget_seconds"])
    tracker = Tracker(
        model,
        lambda: validate(model, split, mapping, int(job["max_len"])),
        float(job.get("probe_seconds", 0.0)),
    )
    clock = Clock()
    stopped_by = "epochs"
    for epoch in range(1, int(config["epochs"]) + 1):
        batches = Budgeted(train_data, clock, budget, tracker, epoch)
        total = trainer._train_epoch(batches, epoch - 1, show_progress=False)
        if batches.batches == 0:
            stopped_by = "budget"
            break
        done = epoch - 1 + batches.batches / max(len(train_data), 1) if batches.cut else epoch
        tracker.record(clock, done, float(total) / batches.batches)
        if batches.cut or clock() >= budget:
            stopped_by = "budget"
            break
        if epoch - tracker.best["epoch"] >= int(config["stopping_step"]):
            stopped_by = "early stopping"
            break
    return {
        "history": tracker.history,
        "train_seconds": clock(),
        "probe_seconds": clock.paused,
        "epochs_run": tracker.history[-1]["epoch"] if tracker.history else 0.0,
        "best_epoch": tracker.best["epoch"],
        "best_state": tracker.best["state"] or model.state_dict(),
        "stopped_by": stopped_by,
    }


def recbole_test_metrics(trainer: Any, test_data: Any) -> dict[str, Any]:
    """RecBole's own evaluator on its test set (no history exclusion for sequential models)."""
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    return {
        "note": "RecBole's evaluator; sequential models rank without excluding history",
        **{key: float(value) for key, value in dict(result).items()},
    }


def settings(config: Any) -> dict[str, Any]:
    """RecBole's effective values of the settings that shape the comparison."""
    keys = (
        "n_layers",
        "n_heads",
        "hidden_size",
        "inner_size",
        "hidden_dropout_prob",
        "attn_dropout_prob",
        "hidden_act",
        "loss_type",
        "MAX_ITEM_LIST_LENGTH",
        "train_batch_size",
        "learner",
        "learning_rate",
        "weight_decay",
        "epochs",
        "stopping_step",
        "train_neg_sample_args",
        "eval_args",
        "seed",
    )
    return {key: _plain(config[key]) for key in keys}


def versions() -> dict[str, str]:
    """torch, recbole and numpy versions of the peer's environment."""
    import recbole
    import torch

    return {
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": str(torch.get_num_threads()),
    }


def _plain(value: Any) -> Any:
    """A JSON-able copy of a RecBole config value."""
    return json.loads(json.dumps(value, default=str))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

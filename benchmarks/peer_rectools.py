"""The RecTools side of `python -m benchmarks --suite peers`: RecTools' SASRec on our split.

This module runs in the peer's own virtual environment (torch, pytorch-lightning and rectools, no
TensorFlow), started by `benchmarks.peers` as `<peer-venv>/bin/python -m
benchmarks.peer_rectools JOB.json` with the repository on PYTHONPATH. Of attnrec_tf it
imports `benchmarks.peer_common` and `attnrec_tf.metrics` (plain numpy), so validation is
ranked by our code.

Contract (the job file is written by `benchmarks.peers.write_peer_job`):

* Input, in the job's `workdir`: `split.npz` (our split, the `run_dir.save_split` layout).
* The model: `rectools.models.SASRecModel` with `loss="softmax"` (full softmax over the
  catalog at every position of a user's sequence, SASRec's shifted-sequence objective),
  `n_factors`, `n_blocks`, `n_heads`, `dropout_rate`, `session_max_len`, `lr`, `batch_size`
  from the job (the SASRec+ recipe by default: 64, 2, 1, 0.1, our `max_len`, 1e-3, 128), item
  embeddings from ids only, `deterministic=True` after `pytorch_lightning.seed_everything(seed)`,
  `threads` torch threads, and `options` (more SASRecModel keyword arguments) on top.
* Training interactions: our training sequences (`s[:-2]` per user), one row per item, the
  position in the sequence as the timestamp. RecTools keeps each user's latest
  `session_max_len + 1` items and trains on all their positions at once.
* Training: a Lightning `Trainer` (CPU, no checkpointing, no logger) with `ValidationBudget`
  as a callback, assigned as the model's `_trainer` (RecTools' documented way to pass a custom
  trainer). After every epoch the callback ranks our validation users (history `s[:-2]`, target
  `s[-2]`) with `attnrec_tf.metrics` (full ranking, history excluded, ties pessimistic) and
  keeps the best weights; it stops training by the rule our `--time-budget` had until
  2026-12-06 (no epoch is started that would end past the budget, judged by the last epoch's
  length; ours now plans the batches that fit and may cut the last epoch), after `patience`
  epochs without a better validation NDCG@10 (our `--patience`), or at `max_epochs`. As a
  backstop, an epoch that is still running when the budget is spent stops after its current
  batch (a partial epoch, validated and marked so).
* Scores: the best weights' user embeddings (the last position of the encoded history window,
  the session tower) dotted with every item embedding (the item tower), through the model's own
  similarity module, which is what `SASRecModel.recommend` ranks. History windows hold the
  latest `session_max_len` items the model knows, as in RecTools' own `recommend`. Once, at the
  end, `SASRecModel.recommend(k=whole catalog, filter_viewed=False)` on the test histories of
  up to `check_users` users must give the same scores (`recommend_check` in result.json;
  exit status 4 when it does not).
* Items that never occur in the training interactions are unknown to RecTools (it builds its
  catalog from them): they score -inf (ranked last) and are counted in result.json.
* Output, in `workdir`: `history.json` (one row per validation: `epoch`, `seconds` of training
  clock after validating, `validation_seconds`, `loss` (the epoch's mean training loss),
  validation `hr@10`, `ndcg@10`, `mrr`, `partial`), `test_scores.npy` (float32
  `(users, vocab_size)`, the best weights' scores of the test users, rows in our user order,
  columns in our vocabulary order, column 0 and unknown items -inf) and `result.json`.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peer_common import EVAL_BATCH, Clock, SplitArrays, load_split, rank_metrics

RECOMMEND_MISMATCH_STATUS = 4
# RecTools' SASRecModel settings of the SASRec+ recipe (our `--preset sasrec`); the job's
# `max_len` becomes `session_max_len`, `options` go on top.
DEFAULT_SETTINGS: dict[str, Any] = {
    "n_factors": 64,
    "n_blocks": 2,
    "n_heads": 1,
    "dropout_rate": 0.1,
    "lr": 1e-3,
    "batch_size": 128,
    "loss": "softmax",
}
COMPARED_SETTINGS = (
    "n_factors",
    "n_blocks",
    "n_heads",
    "dropout_rate",
    "session_max_len",
    "loss",
    "lr",
    "batch_size",
)
"""The SASRecModel settings that shape the comparison: first in result.json's `settings`, and
the ones BENCHMARKS.md names (`peers.RECTOOLS_SETTINGS`)."""


def main(argv: list[str]) -> int:
    """Runs the job named by `argv[0]`; returns the exit status."""
    job = json.loads(Path(argv[0]).read_text())
    workdir = Path(job["workdir"])

    import pytorch_lightning as pl
    import torch

    started = time.perf_counter()

    torch.set_num_threads(int(job["threads"]))
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    pl.seed_everything(int(job["seed"]), workers=True, verbose=False)

    split = load_split(workdir / "split.npz")
    vocab_size = int(job["vocab_size"])
    model = build_model(job)
    tracker = Tracker(
        budget=float(job["budget_seconds"]), patience=int(job.get("patience", 10)), started=started
    )
    model._trainer = trainer(lightning_callback(tracker, split, vocab_size), job)
    model.fit(train_dataset(split))
    # fit() deep-copies the trainer, so the tracker that saw the run is the copy's
    tracker = next(c.tracker for c in model.fit_trainer.callbacks if hasattr(c, "tracker"))

    if tracker.best_state is not None:
        model.torch_model.load_state_dict(tracker.best_state)
    mapping = ItemMapping.of(model.data_preparator, vocab_size)
    scores = score_all(model.torch_model, model.session_max_len, split.histories("test"), mapping)
    check = recommend_check(model, split, scores, int(job.get("check_users", 200)))
    np.save(workdir / "test_scores.npy", scores)
    (workdir / "history.json").write_text(json.dumps(tracker.history, indent=1))
    result = {
        "prepare_seconds": tracker.prepare_seconds,
        "train_seconds": tracker.train_seconds,
        "epochs_run": tracker.history[-1]["epoch"] if tracker.history else 0.0,
        "best_epoch": tracker.best_epoch,
        "stopped_by": tracker.stopped_by,
        "train_users": tracker.train_users,
        "batches_per_epoch": tracker.batches_per_epoch,
        "unknown_items": mapping.unknown_items(),
        "unknown_targets": {
            stage: int((~mapping.known[split.targets(stage)]).sum()) for stage in ("valid", "test")
        },
        "recommend_check": check,
        "versions": versions(),
        "settings": settings(model, job),
    }
    (workdir / "result.json").write_text(json.dumps(result, indent=1))
    print(f"peer: done; {json.dumps({k: result[k] for k in ('epochs_run', 'stopped_by')})}")
    if not check["ok"]:
        print(f"peer: recommend() disagrees with the score matrix: {check}", file=sys.stderr)
        return RECOMMEND_MISMATCH_STATUS
    return 0


def model_settings(job: dict[str, Any]) -> dict[str, Any]:
    """SASRecModel keyword arguments of the job (without the class-valued ones)."""
    return {
        **DEFAULT_SETTINGS,
        "session_max_len": int(job["max_len"]),
        "deterministic": True,
        "recommend_torch_device": "cpu",
        "recommend_batch_size": EVAL_BATCH,
        **job.get("options", {}),
    }


def build_model(job: dict[str, Any]) -> Any:
    """RecTools' SASRecModel with the job's settings and item embeddings from ids only."""
    from rectools.models import SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet

    return SASRecModel(item_net_block_types=(IdEmbeddingsItemNet,), **model_settings(job))


def trainer(callback: Any, job: dict[str, Any]) -> Any:
    """The Lightning Trainer of the run: CPU, quiet, our validation and budget as a callback."""
    import pytorch_lightning as pl

    return pl.Trainer(
        max_epochs=int(job.get("max_epochs", 1000)),
        min_epochs=0,
        deterministic=True,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
    )


def interaction_columns(histories: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The columns of RecTools' interactions table of `histories`, as numpy arrays: `user` =
    our row, `item` = our index, `position` = the place in the sequence (0, 1, ...)."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    empty = np.zeros(0, np.int64)
    return {
        "user": np.repeat(np.arange(len(histories), dtype=np.int64), lengths),
        "item": np.concatenate([np.asarray(h, np.int64) for h in histories] or [empty]),
        "position": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths] or [empty]),
    }


def interactions_frame(histories: list[np.ndarray]) -> Any:
    """RecTools' interactions table of `histories` (`interaction_columns`, weight 1, the
    position as the datetime in seconds since 1970, so RecTools' time order is ours)."""
    import pandas as pd
    from rectools import Columns

    columns = interaction_columns(histories)
    return pd.DataFrame(
        {
            Columns.User: columns["user"],
            Columns.Item: columns["item"],
            Columns.Weight: np.ones(len(columns["item"]), dtype=np.float32),
            Columns.Datetime: pd.to_datetime(columns["position"], unit="s"),
        }
    )


def train_dataset(split: SplitArrays) -> Any:
    """RecTools' Dataset of our training sequences."""
    from rectools.dataset import Dataset

    return Dataset.construct(interactions_frame(split.histories("valid")))


class ItemMapping:
    """Our vocabulary indices -> the model's internal item ids (0 is RecTools' padding)."""

    def __init__(self, internal_of_ours: np.ndarray) -> None:
        self.internal_of_ours = internal_of_ours  # -1: unknown to the model (and our padding)
        self.known = internal_of_ours >= 0

    @classmethod
    def from_external(
        cls, external_ids: np.ndarray, extra_tokens: int, vocab_size: int
    ) -> ItemMapping:
        """From an item map's external ids in internal order (`extra_tokens` padding first)."""
        external = np.asarray(external_ids[extra_tokens:], dtype=np.int64)
        internal_of_ours = np.full(vocab_size, -1, dtype=np.int64)
        internal_of_ours[external] = np.arange(extra_tokens, extra_tokens + len(external))
        internal_of_ours[0] = -1
        return cls(internal_of_ours)

    @classmethod
    def of(cls, data_preparator: Any, vocab_size: int) -> ItemMapping:
        """Reads the item map a RecTools data preparator built from the training interactions."""
        return cls.from_external(
            data_preparator.item_id_map.external_ids,
            data_preparator.n_item_extra_tokens,
            vocab_size,
        )

    def windows(self, histories: list[np.ndarray], max_len: int) -> np.ndarray:
        """The latest `max_len` known items of each history, internal ids, left-padded with 0."""
        out = np.zeros((len(histories), max_len), dtype=np.int64)
        for row, history in enumerate(histories):
            ids = self.internal_of_ours[np.asarray(history, dtype=np.int64)]
            ids = ids[ids >= 0][-max_len:]
            if len(ids):
                out[row, -len(ids) :] = ids
        return out

    def to_ours(self, logits: np.ndarray) -> np.ndarray:
        """Scores over internal ids `(B, n_internal)` -> `(B, vocab_size)` in our column order,
        -inf for our padding and the items the model does not know."""
        out = np.full((len(logits), len(self.internal_of_ours)), -np.inf, dtype=np.float32)
        columns = np.flatnonzero(self.known)
        out[:, columns] = logits[:, self.internal_of_ours[columns]]
        return out

    def unknown_items(self) -> int:
        """Items of our vocabulary (1..V-1) that the model never saw in training."""
        return int((~self.known[1:]).sum())


def score_batch(
    net: Any, session_max_len: int, histories: list[np.ndarray], mapping: ItemMapping
) -> np.ndarray:
    """Scores `(len(histories), vocab_size)` in our column order (padding, unknown items -inf).

    `net` is the model's torch backbone. The user embedding is the encoded history's last
    position through the session tower, scored against every item through the item tower by
    the backbone's similarity module: what `SASRecModel.recommend` ranks.
    """
    import torch

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            x = torch.from_numpy(mapping.windows(histories, session_max_len))
            item_embs = net.item_model.get_all_embeddings()
            sessions = net.encode_sessions({"x": x}, item_embs)[:, -1, :]
            sessions = net.similarity_module.session_tower_forward(sessions)
            items = net.similarity_module.item_tower_forward(item_embs)
            logits = net.similarity_module(sessions, items).numpy()
    finally:
        net.train(was_training)
    return mapping.to_ours(logits)


def score_all(
    net: Any, session_max_len: int, histories: list[np.ndarray], mapping: ItemMapping
) -> np.ndarray:
    """`score_batch` over all `histories`, EVAL_BATCH at a time."""
    parts = [
        score_batch(net, session_max_len, histories[start : start + EVAL_BATCH], mapping)
        for start in range(0, len(histories), EVAL_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(mapping.known)), np.float32)


class Tracker:
    """The run's validation points, best weights and stopping rule, apart from Lightning.

    `epoch_end` is called after each epoch with its validation metrics: it keeps the point,
    notes whether it is the best yet, and says whether to stop: by our `--time-budget`'s rule
    until 2026-12-06 (another epoch as long as the last one would end past the budget), after
    `patience` epochs without a better validation NDCG@10, or at once after a partial (cut)
    epoch.
    """

    def __init__(self, *, budget: float, patience: int, started: float | None = None) -> None:
        self.budget, self.patience = float(budget), int(patience)
        self.started = time.perf_counter() if started is None else started
        self.clock = Clock()
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, Any] | None = None
        self.best_ndcg, self.best_epoch = -1.0, 0.0
        self.stopped_by = "max_epochs"
        self.prepare_seconds = 0.0
        self.train_seconds = 0.0
        self.train_users = 0
        self.batches_per_epoch = 0

    def train_start(self, train_users: int, batches_per_epoch: int) -> None:
        """Training begins: data preparation is over and the clock starts."""
        self.prepare_seconds = time.perf_counter() - self.started
        self.train_users, self.batches_per_epoch = int(train_users), int(batches_per_epoch)
        self.clock.start()

    def over_budget(self) -> bool:
        """Whether the budget is spent (checked after every batch: the backstop)."""
        return self.clock() >= self.budget

    def epoch_end(
        self,
        epoch: float,
        valid: dict[str, float],
        *,
        loss: float | None,
        validation_seconds: float,
        partial: bool,
        state: Any = None,
    ) -> bool:
        """Records an epoch's validation point; returns whether training should stop.

        `state` (a callable returning the weights to keep, or None) is called when the point is
        the best so far.
        """
        seconds = self.clock()
        row: dict[str, Any] = {
            "epoch": round(float(epoch), 4),
            "seconds": seconds,
            "validation_seconds": validation_seconds,
            "loss": loss,
            **valid,
            "partial": partial,
        }
        self.history.append(row)
        self.train_seconds = seconds
        print(f"peer: validation {json.dumps(row)}", flush=True)
        if valid["ndcg@10"] > self.best_ndcg:
            self.best_ndcg, self.best_epoch = valid["ndcg@10"], row["epoch"]
            self.best_state = state() if state is not None else None
        if partial:
            self.stopped_by = "budget (epoch cut)"
            return True
        last = seconds - (self.history[-2]["seconds"] if len(self.history) > 1 else 0.0)
        if seconds + last > self.budget:
            self.stopped_by = "budget"
            return True
        if row["epoch"] - self.best_epoch >= self.patience:
            self.stopped_by = "early stopping"
            return True
        return False


def lightning_callback(tracker: Tracker, split: SplitArrays, vocab_size: int) -> Any:
    """A `pytorch_lightning.Callback` that drives `tracker` with our validation after epochs."""
    import pytorch_lightning as pl

    class ValidationBudget(pl.Callback):
        def __init__(self) -> None:
            self.tracker = tracker
            self.mapping: ItemMapping | None = None
            self.batches = 0
            self.cut = False

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.mapping = ItemMapping.of(pl_module.data_preparator, vocab_size)
            loader = trainer.train_dataloader
            self.tracker.train_start(len(loader.dataset), len(loader))

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.batches = 0

        def on_train_batch_end(
            self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            self.batches += 1
            if self.batches < self.tracker.batches_per_epoch and self.tracker.over_budget():
                self.cut = True
                trainer.should_stop = True

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            assert self.mapping is not None
            mapping, net = self.mapping, pl_module.torch_model
            max_len = int(pl_module.data_preparator.session_max_len)
            done = self.batches / max(self.tracker.batches_per_epoch, 1) if self.cut else 1
            loss = trainer.callback_metrics.get("train_loss")
            began = time.perf_counter()
            valid = rank_metrics(
                lambda batch: score_batch(net, max_len, batch, mapping),
                split.histories("valid"),
                split.targets("valid"),
            )
            stop = self.tracker.epoch_end(
                trainer.current_epoch + done,
                valid,
                loss=None if loss is None else float(loss),
                validation_seconds=time.perf_counter() - began,
                partial=self.cut,
                state=lambda: copy.deepcopy(net.state_dict()),
            )
            if stop:
                trainer.should_stop = True

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.tracker.train_seconds = self.tracker.clock()

    return ValidationBudget()


def recommend_check(
    model: Any, split: SplitArrays, scores: np.ndarray, max_users: int
) -> dict[str, Any]:
    """Compares `scores` with `SASRecModel.recommend(k=whole catalog, filter_viewed=False)` on
    the test histories of the first `max_users` users: every known item's score must agree."""
    users = np.arange(min(max_users, len(split.train)))
    if not len(users):
        return {"users": 0, "ok": True, "max_abs_diff": 0.0}
    from rectools import Columns
    from rectools.dataset import Dataset

    histories = split.histories("test")
    dataset = Dataset.construct(interactions_frame([histories[u] for u in users]))
    known = np.flatnonzero(np.isfinite(scores[0]))
    reco = model.recommend(
        users=users, dataset=dataset, k=len(known), filter_viewed=False, add_rank_col=False
    )
    got = np.full((len(users), scores.shape[1]), np.nan, dtype=np.float64)
    got[reco[Columns.User].to_numpy(), reco[Columns.Item].to_numpy()] = reco[Columns.Score]
    mine = scores[users][:, known].astype(np.float64)
    theirs = got[:, known]
    complete = bool(np.isfinite(theirs).all())
    diff = float(np.nanmax(np.abs(mine - theirs))) if complete else float("inf")
    scale = float(np.abs(mine).max()) if mine.size else 1.0
    return {
        "users": int(len(users)),
        "items": int(len(known)),
        "complete": complete,
        "max_abs_diff": diff,
        "ok": complete and diff <= 1e-4 * max(scale, 1.0),
    }


def versions() -> dict[str, str]:
    """rectools, torch, pytorch-lightning and numpy versions of the peer's environment."""
    import pytorch_lightning
    import rectools
    import torch

    return {
        "rectools": rectools.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "numpy": np.__version__,
        "torch_threads": str(torch.get_num_threads()),
    }


def settings(model: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The model's effective SASRecModel settings that shape the comparison, and the run's."""
    keys = (
        *COMPARED_SETTINGS,
        "deterministic",
        "use_pos_emb",
        "use_causal_attn",
        "use_key_padding_mask",
        "train_min_user_interactions",
    )
    out: dict[str, Any] = {key: _plain(getattr(model, key)) for key in keys}
    out["item_net_block_types"] = [t.__name__ for t in model.item_net_block_types]
    out["pos_encoding_type"] = model.pos_encoding_type.__name__
    out["optimizer"] = "Adam(betas=(0.9, 0.98))"  # RecTools' TransformerLightningModule
    out["patience"] = int(job.get("patience", 10))
    out["max_epochs"] = int(job.get("max_epochs", 1000))
    out["seed"] = int(job["seed"])
    return out


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Hyperparameters in one dataclass, and named presets.

Every field is a command-line flag of `python -m attnrec_tf.train` (underscores become dashes),
so the dataclass is the single source of truth for names and defaults.

Example:

>>> from attnrec_tf.config import Config, preset
>>> config = preset("default")
>>> config.max_len
50
>>> config.replace(epochs=3).epochs
3
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from attnrec_tf.errors import ConfigError

VARIANTS = ("pooling", "self-attention", "sasrec", "mean", "last")
LOSSES = ("auto", "softmax", "sampled")
SOFTMAX_MAX_ITEMS = 20_000
"""`--loss auto` trains with the full softmax up to this many items, above it with
`LARGE_CATALOG_LOSS`: about where the full softmax's step grows to twice the sampled one's
(its cost grows with the catalog, the sampled step's hardly), while the sampled loss gives up
a few percent of NDCG@10 (BENCHMARKS.md, "Catalog size", has the measurements)."""
LARGE_CATALOG_LOSS = "sampled"


@dataclass(frozen=True)
class Config:
    """Everything that decides a training run.

    Attributes:
        max_len: Length of the history window fed to the model (most recent items).
        min_user_interactions: Users with fewer raw interactions are dropped (SASRec's rule).
        min_item_interactions: Items with fewer raw interactions are dropped.
        variant: `pooling` (AttentionPooling over position-aware item embeddings),
            `self-attention` (causal self-attention blocks under the AttentionPooling head),
            `sasrec` (the blocks alone: the output at each position is the user vector, as in
            SASRec),
            `mean` (mean pooling) or `last` (last item) for the ablation baselines.
        embedding_dim: Size of item embeddings and of the user vector.
        attention_units: Hidden size of the AttentionPooling scorer (`W`, `v`).
        num_blocks: Causal self-attention blocks (variants `self-attention`, `sasrec`).
        num_heads: Attention heads per block.
        dropout: Dropout on embeddings and inside blocks.
        attention_dropout: Dropout on the pooling attention weights.
        position_embedding: Add a learned position embedding to the history.
        item_features: Add item side features (MovieLens genres) to the item representation.
        embedding_init_std: Standard deviation of the truncated-normal item embedding initialiser.
        embedding_scale: Multiply the history's item embeddings by `sqrt(embedding_dim)` before
            adding positions (SASRec).
        absolute_positions: Number positions from the oldest item of the window (SASRec's
            right padding) instead of from the latest.
        dense_init_std: Std of the truncated-normal initializer of the causal blocks' output
            and feed-forward kernels (0 = Keras's glorot_uniform; SASRec+ uses 0.02); the
            query/key/value kernel stays glorot_uniform, as in PyTorch.
        block_norm: `pre` (pre-norm blocks) or `sasrec` (the residual layout of the SASRec
            reference code, `layers.causal_self_attention.CausalSelfAttentionBlock`).
        concat_last: Give the user projection the state at the current position beside the
            pooled vector (STAMP-style short-term + long-term interest).
        loss: `auto` (the default: `softmax` up to `SOFTMAX_MAX_ITEMS` items, `sampled`
            above, see `resolved`), `softmax` (full softmax over the catalog: every step
            scores every item, so its cost grows with the catalog) or `sampled` (sampled
            softmax with logQ correction, whose step cost barely depends on the catalog).
        num_negatives: Shared negatives per batch for `--loss sampled` (BENCHMARKS.md,
            "Catalog size": fewer learn less per epoch).
        lazy_adam: With `--loss sampled`, update only the item rows each step saw
            (`training.optimizer.LazyAdam`) instead of Adam's (fused) update of the whole
            table, whose cost grows with the catalog; rows then stop moving between the steps
            that see them (BENCHMARKS.md, "Catalog size", compares the two).
        epochs: Maximum number of epochs.
        batch_size: Users per training batch.
        learning_rate: Adam learning rate.
        lr_schedule: `constant`, or `cosine` (one epoch of linear warm-up, then cosine decay
            to 1% of `learning_rate` at the last epoch).
        weight_decay: Decoupled weight decay (AdamW); 0 disables.
        patience: Early stopping patience in epochs, on validation NDCG@10.
        time_budget: Wall-clock seconds of training (validation included): no epoch is started
            that would end past it (0 = no budget). For comparisons at equal compute; the
            number of epochs then depends on the machine's speed.
        seed: Seed for data generation, shuffling and initialisation.
        exclude_history: Exclude items already in the history when ranking.
        top_k: K of the exported top-K and of the Android demo.
        jit_compile: Compile the train step with XLA.
        all_windows: Train on every `max_len` window of long sequences, not only the latest.
        length_buckets: Batch windows of similar length together and cut each batch to its
            longest window, so no step computes on columns that are padding in every row
            (`data.pipeline.training_dataset`); the model's numbers per batch are the same as
            at full width.
    """

    max_len: int = 50
    min_user_interactions: int = 5
    min_item_interactions: int = 5
    variant: str = "pooling"
    embedding_dim: int = 64
    attention_units: int = 64
    num_blocks: int = 2
    num_heads: int = 1
    dropout: float = 0.2
    attention_dropout: float = 0.0
    position_embedding: bool = True
    item_features: bool = True
    embedding_init_std: float = 0.05
    embedding_scale: bool = False
    absolute_positions: bool = False
    dense_init_std: float = 0.0
    block_norm: str = "pre"
    concat_last: bool = True
    loss: str = "auto"
    num_negatives: int = 4096
    lazy_adam: bool = False
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 3e-3
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    patience: int = 5
    time_budget: float = 0.0
    seed: int = 0
    exclude_history: bool = True
    top_k: int = 10
    jit_compile: bool = False
    all_windows: bool = False
    length_buckets: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Config:
        """Returns a copy with `changes` applied and validated."""
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> Config:
        """Checks every value; raises `ConfigError` naming the flag."""
        positive_ints = (
            "max_len",
            "embedding_dim",
            "attention_units",
            "num_heads",
            "epochs",
            "batch_size",
            "patience",
            "top_k",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{flag(name)} must be a positive integer, got {value!r}")
        for name in ("min_user_interactions", "min_item_interactions", "num_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{flag(name)} must be a non-negative integer, got {value!r}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{flag(name)} must be in [0, 1), got {value!r}")
        for name in ("learning_rate", "embedding_init_std"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{flag(name)} must be positive, got {getattr(self, name)!r}")
        if self.block_norm not in ("pre", "sasrec"):
            raise ConfigError(f"--block-norm must be 'pre' or 'sasrec', got {self.block_norm!r}")
        if self.time_budget < 0:
            raise ConfigError(f"--time-budget must be >= 0 seconds, got {self.time_budget!r}")
        if self.dense_init_std < 0:
            raise ConfigError(f"--dense-init-std must be >= 0, got {self.dense_init_std!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.num_negatives <= 0:
            raise ConfigError(
                f"--num-negatives must be a positive integer, got {self.num_negatives!r}"
            )
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(
                f"--lr-schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if self.variant not in VARIANTS:
            raise ConfigError(
                f"--variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
            )
        if self.embedding_dim % self.num_heads:
            raise ConfigError(
                f"--embedding-dim ({self.embedding_dim}) must be divisible by --num-heads "
                f"({self.num_heads})"
            )
        return self

    def resolved(self, num_items: int) -> tuple[Config, str]:
        """This config with `loss="auto"` replaced by the loss for `num_items`, and why.

        Returns:
            `(config, reason)`; an explicit `--loss` is kept (the reason says so).

        >>> config, reason = Config().resolved(60_000)
        >>> config.loss, reason
        ('sampled', '--loss auto: 60,000 items > 20,000, so sampled')
        """
        if self.loss != "auto":
            return self, f"--loss {self.loss} (given)"
        if num_items <= SOFTMAX_MAX_ITEMS:
            used, relation = "softmax", "<="
        else:
            used, relation = LARGE_CATALOG_LOSS, ">"
        reason = f"--loss auto: {num_items:,} items {relation} {SOFTMAX_MAX_ITEMS:,}, so {used}"
        return self.replace(loss=used), reason

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able values (for report.json)."""
        return dataclasses.asdict(self)


def flag(name: str) -> str:
    """The command-line flag of a `Config` field: `max_len` -> `--max-len`."""
    return "--" + name.replace("_", "-")


PRESETS: dict[str, dict[str, Any]] = {
    # The embedded synthetic default: finishes (with export) in about two minutes on 2 cores.
    "default": {},
}

# The SASRec+ recipe (Klenitskiy & Vasilev, RecSys 2023): SASRec trained with the full softmax
# over the catalog, its reference hyperparameters, and the latest window of each user per epoch.
PRESETS["sasrec"] = {
    "variant": "sasrec",
    "max_len": 200,
    "num_blocks": 2,
    "num_heads": 1,
    "dropout": 0.1,
    "learning_rate": 1e-3,
    "batch_size": 128,
    "epochs": 100,
    "patience": 10,
    "item_features": False,
    "embedding_scale": True,
    "embedding_init_std": 0.02,
    "dense_init_std": 0.02,
    "absolute_positions": True,
    "block_norm": "sasrec",
}

# MovieLens-1M in 30 minutes on 2 CPU cores: the `sasrec` recipe (it beat the pooling heads at
# equal budget, BENCHMARKS.md) with twice the learning rate, annealed by a cosine schedule over
# the epochs that fit in the budget; `time_budget` stops it at 1,800 s on a slower machine.
PRESETS["ml-1m"] = {
    **PRESETS["sasrec"],
    "learning_rate": 2e-3,
    "lr_schedule": "cosine",
    "epochs": 80,
    "time_budget": 1800.0,
}

# The `ml-1m` preset before issue 10 (blocks + attention pooling over every window): the
# step benchmark's reference math (the repository's `benchmarks/`, `--suite step`).
PRESETS["ml-1m-pooling"] = {
    "max_len": 200,
    "variant": "self-attention",
    "all_windows": True,
    "lr_schedule": "cosine",
    "epochs": 25,
    "patience": 8,
}


def preset(name: str) -> Config:
    """Returns the named preset as a validated `Config`."""
    if name not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return Config(**PRESETS[name]).validated()

"""Hyperparameters in one dataclass, and named presets.

Every field of `Config` (and of `run_options.RunOptions`, the data and run options) is declared
once, with `option`: its type, default, help text, choices and check. The flags of
`python -m attnrec_tf.train` (underscores become dashes) and the keywords of `attnrec_tf.fit`
are generated from those fields and validated by the same code (`check_fields`), so a bad value
reads the same from both: `--max-len must be a positive integer, got 0`.

Example:

>>> import dataclasses
>>> from attnrec_tf.config import Config, preset
>>> config = preset("default")
>>> config.max_len
50
>>> config.replace(epochs=3).epochs
3
>>> [f.metadata["help"] for f in dataclasses.fields(Config) if f.name == "max_len"]
['Length of the history window fed to the model (most recent items).']
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from attnrec_tf.errors import ConfigError

VARIANTS = ("pooling", "self-attention", "sasrec", "mean", "last")
BLOCKS = ("sasrec", "ligr")
LOSSES = ("auto", "softmax", "sampled")
SOFTMAX_MAX_ITEMS = 20_000
"""`--loss auto` trains with the full softmax up to this many items, above it with
`LARGE_CATALOG_LOSS`: about where the full softmax's step grows to twice the sampled one's
(its cost grows with the catalog, the sampled step's hardly), while the sampled loss gives up
a few percent of NDCG@10 (the repository's BENCHMARKS.md, "Catalog size", has the
measurements)."""
LARGE_CATALOG_LOSS = "sampled"
LAZY_ADAM_FROM_ITEMS = 100_000
"""With the sampled loss and no `--lazy-adam` / `--no-lazy-adam`, catalogs above this many
items update only the item rows a step saw (`training.optimizer.LazyAdam`): Adam's update of the
whole table and its two moments grows with the catalog, the rows' update hardly (side by side on
this project's 2-core machine, one update of 10,240 rows: dense 5 / 16 / 106 ms against sparse
8 / 9 / 11 ms at 50,000 / 200,000 / 1,000,000 items)."""


@dataclass(frozen=True)
class Check:
    """A rule a field's value must satisfy; `must` ends the error message."""

    must: str
    holds: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


POSITIVE_INT = Check("a positive integer", lambda v: _is_int(v) and v > 0)
NON_NEGATIVE_INT = Check("a non-negative integer", lambda v: _is_int(v) and v >= 0)
POSITIVE = Check("positive", lambda v: v > 0)
AT_LEAST_ZERO = Check(">= 0", lambda v: v >= 0)
SECONDS = Check(">= 0 seconds", lambda v: v >= 0)
FRACTION = Check("in [0, 1)", lambda v: 0.0 <= v < 1.0)


def option(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    choices: Sequence[Any] | None = None,
    show_choices: bool = False,
    group: str = "model and training (override the preset)",
) -> Any:
    """A dataclass field that is also a flag of the train CLI and a keyword of `fit`.

    Args:
        default: The value when the option is not given.
        help: What it does (the flag's `--help` text).
        check: The rule its value must satisfy. Defaults to `None` (none).
        choices: The values it may take. Defaults to `None` (any).
        show_choices: Also let argparse check the choices and list them in the usage line
            (else they are checked with the other rules: one line naming the flag).
        group: The `--help` section of the flag.

    Returns:
        A `dataclasses.field`, its metadata holding the rest.
    """
    metadata = {"help": help, "check": check, "choices": choices, "show_choices": show_choices,
                "group": group}  # fmt: skip
    return dataclasses.field(default=default, metadata=metadata)


def flag(name: str) -> str:
    """The command-line flag of a field: `max_len` -> `--max-len`."""
    return "--" + name.replace("_", "-")


def option_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of `cls` declared with `option` (the flags and keywords), in order."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def option_type(cls: type, name: str) -> type:
    """The value type of field `name` of `cls`, None left out: `int | None` -> `int`.

    A union of several types gives its first (`str | float | None` -> `str`: the command line's
    form); `tuple[str, ...]` gives `tuple` (a comma-separated flag).
    """
    hint = typing.get_type_hints(cls)[name]
    members = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    if typing.get_origin(hint) is tuple:
        return tuple
    return typing.get_origin(members[0]) or members[0]


def check_fields(instance: Any) -> None:
    """Checks every `option` field of a dataclass instance against its rule and choices.

    A field whose default is None may be None. Raises `ConfigError` naming the flag.
    """
    for field in option_fields(type(instance)):
        value = getattr(instance, field.name)
        if value is None and field.default is None:
            continue
        choices, check = field.metadata["choices"], field.metadata["check"]
        if choices is not None and value not in choices:
            allowed = ", ".join(str(choice) for choice in choices)
            raise ConfigError(f"{flag(field.name)} must be one of {allowed}, got {value!r}")
        if check is not None and not _holds(check, value):
            raise ConfigError(f"{flag(field.name)} must be {check.must}, got {value!r}")


def _holds(check: Check, value: Any) -> bool:
    try:
        return bool(check.holds(value))
    except TypeError:  # e.g. a string where a number belongs
        return False


@dataclass(frozen=True)
class Config:
    """Everything that decides a training run: the hyperparameters a preset names.

    Each field is declared with `option`: `python -m attnrec_tf.train --help` prints its help
    text, and `preset(name)` gives the named values the given options override.
    """

    max_len: int = option(
        50,
        "Length of the history window fed to the model (most recent items).",
        check=POSITIVE_INT,
    )
    min_user_interactions: int = option(
        5,
        "Users with fewer raw interactions are dropped (SASRec's rule).",
        check=NON_NEGATIVE_INT,
    )
    min_item_interactions: int = option(
        5, "Items with fewer raw interactions are dropped.", check=NON_NEGATIVE_INT
    )
    variant: str = option(
        "sasrec",
        "sasrec (causal self-attention blocks; the output at each position is the user vector, "
        "as in SASRec), pooling (AttentionPooling over position-aware item embeddings), "
        "self-attention (the blocks under the AttentionPooling head), mean (mean pooling) or "
        "last (last item) for the ablation baselines.",
        choices=VARIANTS,
    )
    embedding_dim: int = option(
        64, "Size of item embeddings and of the user vector.", check=POSITIVE_INT
    )
    attention_units: int = option(
        64, "Hidden size of the AttentionPooling scorer (W, v).", check=POSITIVE_INT
    )
    num_blocks: int = option(
        2,
        "Causal self-attention blocks (variants self-attention, sasrec).",
        check=NON_NEGATIVE_INT,
    )
    num_heads: int = option(1, "Attention heads per block.", check=POSITIVE_INT)
    dropout: float = option(0.2, "Dropout on embeddings and inside blocks.", check=FRACTION)
    attention_dropout: float = option(
        0.0, "Dropout on the pooling attention weights.", check=FRACTION
    )
    position_embedding: bool = option(True, "Add a learned position embedding to the history.")
    item_features: bool = option(
        True, "Add item side features (MovieLens genres) to the item representation."
    )
    embedding_init_std: float = option(
        0.05,
        "Standard deviation of the truncated-normal item embedding initialiser.",
        check=POSITIVE,
    )
    embedding_scale: bool = option(
        False,
        "Multiply the history's item embeddings by sqrt(embedding_dim) before adding "
        "positions (SASRec).",
    )
    absolute_positions: bool = option(
        False,
        "Number positions from the oldest item of the window (SASRec's right padding) instead "
        "of from the latest.",
    )
    dense_init_std: float = option(
        0.0,
        "Std of the truncated-normal initializer of the causal blocks' output and "
        "feed-forward kernels (0 = Keras's glorot_uniform; SASRec+ uses 0.02); the "
        "query/key/value kernel stays glorot_uniform, as in PyTorch.",
        check=AT_LEAST_ZERO,
    )
    block_norm: str = option(
        "pre",
        "pre (pre-norm blocks) or sasrec (the residual layout of the SASRec reference code, "
        "layers.causal_self_attention.CausalSelfAttentionBlock).",
        choices=("pre", "sasrec"),
    )
    block: str = option(
        "sasrec",
        "The causal blocks: sasrec (attention and feed-forward residuals, laid out by "
        "--block-norm) or ligr (LiGR/eSASRec style: pre-norm, sigmoid-gated residuals, SwiGLU "
        "feed-forward; layers.gated_causal_block.GatedCausalBlock, ignores --block-norm).",
        choices=BLOCKS,
    )
    relative_position_bias: bool = option(
        False,
        "Add a learned bias by query-key distance to every block's attention scores (T5/HSTU "
        "log-spaced distance buckets, one scalar per bucket and head: "
        "layers.relative_position_bias). Independent of the window's start, unlike "
        "--absolute-positions.",
    )
    concat_last: bool = option(
        True,
        "Give the user projection the state at the current position beside the pooled vector "
        "(STAMP-style short-term + long-term interest).",
    )
    loss: str = option(
        "auto",
        f"auto (softmax up to {SOFTMAX_MAX_ITEMS:,} items, sampled above; report.json's "
        "loss_choice says which), softmax (full softmax over the catalog: every step scores "
        "every item, so its cost grows with the catalog) or sampled (sampled softmax with logQ "
        "correction, whose step cost barely depends on the catalog).",
        choices=LOSSES,
    )
    num_negatives: int = option(
        4096,
        "Shared negatives per batch for --loss sampled (fewer learn less per epoch: the "
        "repository's BENCHMARKS.md, 'Catalog size').",
        check=POSITIVE_INT,
    )
    lazy_adam: bool | None = option(
        None,
        "With --loss sampled, update only the item rows each step saw "
        "(training.optimizer.LazyAdam) instead of Adam's (fused) update of the whole table, "
        "whose cost grows with the catalog; rows then stop moving between the steps that see "
        "them (the repository's BENCHMARKS.md, 'Catalog size', compares the two). Unset: on "
        f"above {LAZY_ADAM_FROM_ITEMS:,} items.",
    )
    epochs: int = option(20, "Maximum number of epochs.", check=POSITIVE_INT)
    steps_per_epoch: int = option(
        0,
        "Batches per epoch (0 = every training window once). Fewer: an epoch is the first "
        "this many batches of the epoch's order; more (from a prepared --data folder only): the "
        "stream goes round again. For timing a fixed number of steps on a large log.",
        check=NON_NEGATIVE_INT,
    )
    batch_size: int = option(128, "Users per training batch.", check=POSITIVE_INT)
    learning_rate: float = option(3e-3, "Adam learning rate.", check=POSITIVE)
    lr_schedule: str = option(
        "constant",
        "constant, or cosine (one epoch of linear warm-up, then cosine decay to 1% of "
        "--learning-rate at the last epoch; with --time-budget, at the step where the budget "
        "will stop training when that comes first, estimated anew every epoch).",
        choices=("constant", "cosine"),
    )
    weight_decay: float = option(
        0.0, "Decoupled weight decay (AdamW); 0 disables.", check=AT_LEAST_ZERO
    )
    patience: int = option(
        5, "Early stopping patience in epochs, on validation NDCG@10.", check=POSITIVE_INT
    )
    time_budget: float = option(
        0.0,
        "Wall-clock seconds of training (validation included): training stops at the batch "
        "after which one more batch and a validation would not fit, the last epoch then cut "
        "short (0 = no budget). For comparisons at equal compute; the number of epochs then "
        "depends on the machine's speed.",
        check=SECONDS,
    )
    seed: int = option(0, "Seed for data generation, shuffling and initialisation.")
    exclude_history: bool = option(True, "Exclude items already in the history when ranking.")
    top_k: int = option(10, "K of the exported top-K and of the Android demo.", check=POSITIVE_INT)
    jit_compile: bool = option(False, "Compile the train step with XLA.")
    all_windows: bool = option(
        False, "Train on every --max-len window of long sequences, not only the latest."
    )
    context_crops: int = option(
        0,
        "Also train on this many random crops of each user's training sequence, drawn afresh "
        "every epoch (k consecutive items ending anywhere, k log-uniform from 1 to 50): "
        "windows that teach the model to "
        "recommend from a few recent picks, as a short or truncated history asks it "
        "(report.json metrics.by_history_length measures it). 0 = off.",
        check=NON_NEGATIVE_INT,
    )
    skip_first_picks: int = option(
        0,
        "Leave out the loss of predicting a user's 2nd ... (N+1)-th item from their first N "
        "picks: in MovieLens these are sign-up ratings, which teach a short context to mean "
        "'a new user' rather than 'these are my latest picks'; --context-crops trains short "
        "contexts instead. 0 = off.",
        check=NON_NEGATIVE_INT,
    )
    length_buckets: bool = option(
        True,
        "Batch windows of similar length together and cut each batch to its longest window, "
        "so no step computes on columns that are padding in every row "
        "(data.pipeline.training_dataset); the model's numbers per batch are the same as at "
        "full width.",
    )

    def replace(self, **changes: Any) -> Config:
        """Returns a copy with `changes` applied and validated."""
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> Config:
        """Checks every value (`check_fields`); raises `ConfigError` naming the flag."""
        check_fields(self)
        if self.embedding_dim % self.num_heads:
            raise ConfigError(
                f"--embedding-dim ({self.embedding_dim}) must be divisible by --num-heads "
                f"({self.num_heads})"
            )
        return self

    def resolved(self, num_items: int) -> tuple[Config, str]:
        """This config with `loss="auto"` replaced by the loss for `num_items`, and why.

        An unset `lazy_adam` becomes `num_items > LAZY_ADAM_FROM_ITEMS`.

        Returns:
            `(config, reason)`; an explicit `--loss` is kept (the reason says so).

        >>> config, reason = Config().resolved(60_000)
        >>> config.loss, reason
        ('sampled', '--loss auto: 60,000 items > 20,000, so sampled')
        """
        config = self
        if self.lazy_adam is None:
            config = config.replace(lazy_adam=num_items > LAZY_ADAM_FROM_ITEMS)
        if self.loss != "auto":
            return config, f"--loss {self.loss} (given)"
        if num_items <= SOFTMAX_MAX_ITEMS:
            used, relation = "softmax", "<="
        else:
            used, relation = LARGE_CATALOG_LOSS, ">"
        reason = f"--loss auto: {num_items:,} items {relation} {SOFTMAX_MAX_ITEMS:,}, so {used}"
        return config.replace(loss=used), reason

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able values (for report.json)."""
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # The embedded synthetic default: finishes (with export) in about a minute on 2 cores.
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
# equal budget, BENCHMARKS.md) with twice the learning rate and a cosine schedule that ends
# where the 1,800-s `time_budget` will stop training (about 60 epochs on this project's
# machine) or at epoch 80 if that comes first. Over three seeds it scores as the 80-epoch
# cosine that the budget used to cut after about 53 epochs (+0.3%, BENCHMARKS.md "Noise"),
# with less spread between seeds.
# Three random context crops per user teach it to recommend from a few recent picks (a short or
# truncated history), at the same full-history accuracy, and leaving out the loss of each user's
# first five picks (sign-up ratings) keeps a short context meaning "my latest picks"
# (BENCHMARKS.md, "NDCG@10 by history length"). A learned relative-position attention bias
# lifts test NDCG@10 at equal time (BENCHMARKS.md, "Noise": three seeds each on ML-1M and
# ML-100K).
PRESETS["ml-1m"] = {
    **PRESETS["sasrec"],
    "learning_rate": 2e-3,
    "lr_schedule": "cosine",
    "epochs": 80,
    "time_budget": 1800.0,
    "context_crops": 3,
    "skip_first_picks": 5,
    "relative_position_bias": True,
}

# Blocks + attention pooling over every window (the former `ml-1m` recipe): the step
# benchmark's reference math (the repository's `benchmarks/`, `--suite step`).
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

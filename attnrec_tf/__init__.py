"""attnrec_tf: an attention-based next-item recommender in TensorFlow / Keras 3.

The public API (loaded lazily, so `attnrec_tf.data` stays free of TensorFlow):

- `AttentionPooling`: the reusable Keras layer, e_i = v^T tanh(W h_i + b), a = softmax(e).
- `CausalSelfAttentionBlock`: the SASRec-style encoder block.
- `AttentionRecommender`, `build_model`: the recommender.
- `Config`, `preset`: hyperparameters; `RunOptions`: the data and run options.
- `fit(data=..., output_dir=..., preset=..., **options) -> Run`: a training run from Python
  (`attnrec_tf.api`), the keywords being the flags of `python -m attnrec_tf.train`.
- `load(run_dir, runtime=..., kind=...) -> Recommender`: an exported run loaded once;
  `Recommender.recommend(history, k)` and `recommend_batch(histories, k)`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AttentionPooling": "attnrec_tf.layers.attention_pooling",
    "CausalSelfAttentionBlock": "attnrec_tf.layers.causal_self_attention",
    "AttentionRecommender": "attnrec_tf.model",
    "build_model": "attnrec_tf.model",
    "Config": "attnrec_tf.config",
    "preset": "attnrec_tf.config",
    "RunOptions": "attnrec_tf.run_options",
    "fit": "attnrec_tf.api",
    "Run": "attnrec_tf.api",
    "load": "attnrec_tf.recommender",
    "Recommender": "attnrec_tf.recommender",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    hint = _RENAMED.get(name)
    raise AttributeError(f"module 'attnrec_tf' has no attribute {name!r}{hint or ''}")


_RENAMED = {
    "train": "; the Python API is attnrec_tf.fit(...) (attnrec_tf.train is the command line: "
    "python -m attnrec_tf.train)"
}

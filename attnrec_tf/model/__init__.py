"""The recommender model: encoder (`encoder.py`) -> head (`heads.py`) -> scores.

`AttentionRecommender` (`attention_recommender.py`) puts the pieces together; `build_model`
builds it from a `Config`.
"""

from __future__ import annotations

from attnrec_tf.model.attention_recommender import AttentionRecommender, build_model

__all__ = ["AttentionRecommender", "build_model"]

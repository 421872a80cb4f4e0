"""Custom Keras layers of attnrec_tf, one public class per module."""

from __future__ import annotations

from attnrec_tf.layers.attention_pooling import AttentionPooling
from attnrec_tf.layers.causal_self_attention import CausalSelfAttentionBlock

__all__ = ["AttentionPooling", "CausalSelfAttentionBlock"]

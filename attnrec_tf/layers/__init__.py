"""Custom Keras layers of attnrec_tf, one public class per module, and their masking helpers."""

from __future__ import annotations

from attnrec_tf.layers.attention_pooling import AttentionPooling
from attnrec_tf.layers.causal_self_attention import CausalSelfAttentionBlock
from attnrec_tf.layers.gated_causal_block import GatedCausalBlock
from attnrec_tf.layers.masking import causal_mask, masked_softmax
from attnrec_tf.layers.relative_position_bias import RelativePositionBias

__all__ = [
    "AttentionPooling",
    "CausalSelfAttentionBlock",
    "GatedCausalBlock",
    "RelativePositionBias",
    "causal_mask",
    "masked_softmax",
]

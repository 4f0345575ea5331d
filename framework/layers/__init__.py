"""Shared Linen layers: attention, MLP, encoder, embeddings, pooling, stochastic depth."""

from framework.layers.attention import MultiHeadDotProductAttention
from framework.layers.embeddings import PatchEmbedding, posemb_sincos_2d, position_embedding
from framework.layers.encoder import (
    REMAT_POLICIES,
    Encoder,
    EncoderBlock,
    block_class,
    remat_policy,
)
from framework.layers.mlp import MlpBlock
from framework.layers.normalization import layer_norm
from framework.layers.pooling import POOL_TYPES, MAPHead, pool_tokens
from framework.layers.stochastic_depth import StochasticDepth

__all__ = [
    "POOL_TYPES",
    "REMAT_POLICIES",
    "Encoder",
    "EncoderBlock",
    "MAPHead",
    "MlpBlock",
    "MultiHeadDotProductAttention",
    "PatchEmbedding",
    "StochasticDepth",
    "block_class",
    "layer_norm",
    "pool_tokens",
    "posemb_sincos_2d",
    "position_embedding",
    "remat_policy",
]

"""timm VisionTransformer state dicts <-> Tessera's plain ViT.

timm keys: `patch_embed.proj`, `cls_token` (1, 1, D) and `pos_embed` (1, 1 + N, D) over
[cls, patches] (or (1, N, D) without a class token), `blocks.{i}.norm1 / attn.qkv (fused) /
attn.proj / norm2 / mlp.fc1 / mlp.fc2`, `norm`, `attn_pool` (MAP pooling, as in the SigLIP
models) and `head`. Layer scale, fc_norm and register tokens have no place in our ViT: such
a checkpoint fails for its missing `norm` or is reported with those keys unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from framework.interop import mapping
from framework.interop.mapping import (
    Rule,
    conv,
    copy,
    fused_linear,
    linear,
    norm,
    posemb_with_cls,
)

MAP = "MAPHead_0"

BLOCK_NAMES = {"norm1": "norm1", "qkv": ("attn.qkv.weight", "attn.qkv.bias"),
               "out": "attn.proj", "norm2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}


def _map_head() -> list[Rule]:
    attention = f"{MAP}/MultiHeadDotProductAttention_0"
    return [
        copy(f"{MAP}/probe", "attn_pool.latent"),
        *linear(f"{attention}/query", "attn_pool.q"),
        *fused_linear([f"{attention}/key", f"{attention}/value"], "attn_pool.kv.weight",
                      "attn_pool.kv.bias"),
        *linear(f"{attention}/out", "attn_pool.proj"),
        *norm(f"{MAP}/LayerNorm_0", "attn_pool.norm"),
        *linear(f"{MAP}/MlpBlock_0/Dense_0", "attn_pool.mlp.fc1"),
        *linear(f"{MAP}/MlpBlock_0/Dense_1", "attn_pool.mlp.fc2"),
    ]


def rules(depth: int, cls: bool, map_head: bool, head: bool) -> list[Rule]:
    """Rules of a timm ViT with `depth` blocks, a class token or not, MAP pooling or not and
    a classifier head or not."""
    out = [*conv("embedding", "patch_embed.proj"), *norm("Transformer/encoder_norm", "norm")]
    out.append(posemb_with_cls("cls", "pos_embedding", "cls_token", "pos_embed") if cls
               else copy("pos_embedding", "pos_embed"))
    for i in range(depth):
        out += mapping.encoder_block(f"Transformer/encoderblock_{i}", f"blocks.{i}",
                                     BLOCK_NAMES)
    return out + (_map_head() if map_head else []) + (linear("head", "head") if head else [])


def import_rules(keys: Sequence[str], source: str) -> list[Rule]:
    """Rules for a timm state dict holding `keys`; raises MappingError when it is none."""
    depth = mapping.count_layers(keys, r"^blocks\.(\d+)\.")
    if not depth or "patch_embed.proj.weight" not in keys:
        hint = (" (transformers names: pass the directory with its config.json)"
                if any(k.startswith(("vit.", "vision_model.")) for k in keys) else "")
        raise mapping.MappingError(f"{source}: not a timm ViT state dict: no 'blocks.N.' / "
                                   f"'patch_embed.proj.weight' keys{hint}.")
    return rules(depth, "cls_token" in keys, "attn_pool.latent" in keys, "head.weight" in keys)


def export_rules(flat: Mapping[str, np.ndarray]) -> list[Rule]:
    """Rules for our ViT params `flat` (scanned or not)."""
    depth = mapping.count_layers(list(mapping.unstack_scanned(flat)),
                                 r"^Transformer/encoderblock_(\d+)/")
    return rules(depth, "cls" in flat, f"{MAP}/probe" in flat, "head/kernel" in flat)

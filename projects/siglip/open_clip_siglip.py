"""open_clip SigLIP state dicts (`open_clip_model.safetensors`, e.g. ViT-B-16-SigLIP) ->
Tessera's SigLIP two-tower model.

Their image tower is a timm ViT with MAP pooling under `visual.trunk.` (framework.interop
.timm_vit's rules, prefixed); the text tower is open_clip's TextTransformer
(`text.transformer.resblocks.{i}` with torch's fused `attn.in_proj_weight`, `ln_final`,
`text_projection` with a bias); `logit_scale` / `logit_bias` are scalars (ours (1,)).
The other direction needs no code here: open_clip's own `load_big_vision_weights` reads our
big_vision `.npz` (tools/interop_check.py checks both).
"""

from __future__ import annotations

from collections.abc import Sequence

from framework.interop import hub, mapping, timm_vit
from framework.interop.mapping import Rule, copy, linear, norm, posemb_table

VISUAL, TEXT = "visual.trunk.", "text."


TEXT_BLOCK_NAMES = {"norm1": "ln_1", "qkv": ("attn.in_proj_weight", "attn.in_proj_bias"),
                    "out": "attn.out_proj", "norm2": "ln_2", "fc1": "mlp.c_fc",
                    "fc2": "mlp.c_proj"}


def import_rules(keys: Sequence[str], source: str) -> list[Rule]:
    """Rules for an open_clip SigLIP state dict holding `keys` (depths from the keys)."""
    image_depth = mapping.count_layers(keys, r"^visual\.trunk\.blocks\.(\d+)\.")
    text_depth = mapping.count_layers(keys, r"^text\.transformer\.resblocks\.(\d+)\.")
    if "visual.trunk.attn_pool.latent" not in keys or not text_depth:
        raise mapping.MappingError(f"{source}: not an open_clip SigLIP state dict (no "
                                   "visual.trunk.attn_pool / text.transformer.resblocks).")
    image = timm_vit.rules(image_depth, cls=False, map_head=True, head=False)
    text = [copy("txt/Embed_0/embedding", f"{TEXT}token_embedding.weight"),
            posemb_table("txt/pos_embedding", f"{TEXT}positional_embedding"),
            *norm("txt/Encoder_0/encoder_norm", f"{TEXT}ln_final"),
            *linear("txt/head", f"{TEXT}text_projection")]
    for i in range(text_depth):
        text += mapping.encoder_block(f"txt/Encoder_0/encoderblock_{i}",
                                      f"{TEXT}transformer.resblocks.{i}", TEXT_BLOCK_NAMES)
    return [*mapping.prefixed(image, "img/", VISUAL), *text,
            mapping.scalar("t", "logit_scale"), mapping.scalar("b", "logit_bias")]


hub.register_state_dict(VISUAL, import_rules)

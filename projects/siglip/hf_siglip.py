"""Hugging Face `transformers` SigLIP <-> Tessera's SigLIP two-tower model.

model_type "siglip" (SiglipModel: both towers, `logit_scale` = our `t`, `logit_bias` = our
`b`) maps onto the "two_tower" tree (`img/...`, `txt/...`, `t`, `b`); "siglip_vision_model"
onto a ViT with MAP pooling and no class token or head (our image tower alone) and
"siglip_text_model" onto a TextTransformer with 'last' pooling and a head (the text tower
alone), both without a prefix (load them into a two-tower model with
config.init_from.target_prefix='img' / 'txt').

Their layers (CLIP-style names: `layer_norm1`, `self_attn.q_proj`, `mlp.fc1`, ...) hold the
same computation as our pre-LN blocks; the vision position embedding is a table without a
class token, the MAP head's attention is torch's fused `in_proj_weight`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from framework.interop import hf_vit, hub, mapping
from framework.interop.mapping import (
    Rule,
    conv,
    copy,
    fused_linear,
    linear,
    norm,
    posemb_table,
)

VISION, TEXT = "vision_model", "text_model"


BLOCK_NAMES = {"norm1": "layer_norm1", "query": "self_attn.q_proj", "key": "self_attn.k_proj",
               "value": "self_attn.v_proj", "out": "self_attn.out_proj",
               "norm2": "layer_norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}


def _encoder(ours: str, theirs: str, depth: int) -> list[Rule]:
    return [rule for i in range(depth) for rule in mapping.encoder_block(
        f"{ours}/encoderblock_{i}", f"{theirs}.encoder.layers.{i}", BLOCK_NAMES)]


def vision_rules(ours: str, depth: int) -> list[Rule]:
    """Rules of the vision tower: ours under `ours` ("img/" or ""), theirs `vision_model.`."""
    head, attention = f"{ours}MAPHead_0", f"{ours}MAPHead_0/MultiHeadDotProductAttention_0"
    return [
        *conv(f"{ours}embedding", f"{VISION}.embeddings.patch_embedding"),
        posemb_table(f"{ours}pos_embedding", f"{VISION}.embeddings.position_embedding.weight"),
        *_encoder(f"{ours}Transformer", VISION, depth),
        *norm(f"{ours}Transformer/encoder_norm", f"{VISION}.post_layernorm"),
        copy(f"{head}/probe", f"{VISION}.head.probe"),
        *fused_linear([f"{attention}/{n}" for n in ("query", "key", "value")],
                      f"{VISION}.head.attention.in_proj_weight",
                      f"{VISION}.head.attention.in_proj_bias"),
        *linear(f"{attention}/out", f"{VISION}.head.attention.out_proj"),
        *norm(f"{head}/LayerNorm_0", f"{VISION}.head.layernorm"),
        *linear(f"{head}/MlpBlock_0/Dense_0", f"{VISION}.head.mlp.fc1"),
        *linear(f"{head}/MlpBlock_0/Dense_1", f"{VISION}.head.mlp.fc2"),
    ]


def text_rules(ours: str, depth: int) -> list[Rule]:
    """Rules of the text tower: ours under `ours` ("txt/" or ""), theirs `text_model.`."""
    return [
        copy(f"{ours}Embed_0/embedding", f"{TEXT}.embeddings.token_embedding.weight"),
        posemb_table(f"{ours}pos_embedding", f"{TEXT}.embeddings.position_embedding.weight"),
        *_encoder(f"{ours}Encoder_0", TEXT, depth),
        *norm(f"{ours}Encoder_0/encoder_norm", f"{TEXT}.final_layer_norm"),
        *linear(f"{ours}head", f"{TEXT}.head"),
    ]


def _depth(keys, tower: str) -> int:
    return mapping.count_layers(keys, rf"^{tower}\.encoder\.layers\.(\d+)\.")


def vision_config(flat: Mapping[str, np.ndarray], ours: str,
                  **hints) -> dict:
    """transformers' SiglipVisionConfig fields for our image tower under `ours`."""
    kernel = flat[f"{ours}embedding/kernel"]
    side = hf_vit.square_side(flat[f"{ours}pos_embedding"].shape[1], f"{ours}pos_embedding")
    if kernel.shape[0] != kernel.shape[1]:
        raise mapping.MappingError(f"{ours}embedding/kernel {kernel.shape}: transformers' "
                                   "SigLIP takes square patches only.")
    return {"model_type": "siglip_vision_model",
            **hf_vit.encoder_config(flat, ours, **hints),
            "image_size": side * int(kernel.shape[0]), "patch_size": int(kernel.shape[0]),
            "num_channels": int(kernel.shape[2]), "vision_use_head": True}


def text_config(flat: Mapping[str, np.ndarray], ours: str,
                **hints) -> dict:
    """transformers' SiglipTextConfig fields for our text tower under `ours`."""
    return {"model_type": "siglip_text_model",
            **hf_vit.encoder_config(flat, ours, **hints),
            "vocab_size": int(flat[f"{ours}Embed_0/embedding"].shape[0]),
            "max_position_embeddings": int(flat[f"{ours}pos_embedding"].shape[1]),
            "projection_size": int(flat[f"{ours}head/kernel"].shape[1])}


def _is_vision(flat, ours: str) -> bool:
    kernel = flat.get(f"{ours}embedding/kernel")
    return (kernel is not None and kernel.ndim == 4 and f"{ours}MAPHead_0/probe" in flat
            and f"{ours}cls" not in flat and f"{ours}pos_embedding" in flat)


class HFSiglip(hub.HubModel):
    """model_type "siglip" (SiglipModel): both towers, logit scale and bias."""

    model_types = ("siglip",)
    description = "SigLIP two-tower (MAP image tower, text tower, t and b)"

    def import_rules(self, config, keys):
        """Rules for SiglipModel `keys` (depths from the keys)."""
        return [*vision_rules("img/", _depth(keys, VISION)), *text_rules("txt/", _depth(
            keys, TEXT)), copy("t", "logit_scale"), copy("b", "logit_bias")]

    def matches(self, flat):
        """True for our two-tower model with SigLIP's MAP image tower and bias `b`."""
        return _is_vision(flat, "img/") and "txt/Embed_0/embedding" in flat and "b" in flat

    def export(self, flat, **hints):
        """Returns (their tensors, config.json dict) of a SiglipModel."""
        depths = {t: hf_vit.encoder_config(flat, p)["num_hidden_layers"]
                  for t, p in ((VISION, "img/"), (TEXT, "txt/"))}
        rules = [*vision_rules("img/", depths[VISION]), *text_rules("txt/", depths[TEXT]),
                 copy("t", "logit_scale"), copy("b", "logit_bias")]
        config = {"architectures": ["SiglipModel"], "model_type": "siglip",
                  "vision_config": vision_config(flat, "img/", **hints),
                  "text_config": text_config(flat, "txt/", **hints)}
        return mapping.export_params(flat, rules, "a transformers SigLIP"), config


class HFSiglipTower(hub.HubModel):
    """One tower alone: model_type "siglip_vision_model" (our ViT with MAP pooling and no
    class token or head) or "siglip_text_model" (our TextTransformer with a head)."""

    def __init__(self, tower: str):
        """`tower`: VISION or TEXT."""
        vision = tower == VISION
        self.tower = tower
        self.model_types = ("siglip_vision_model" if vision else "siglip_text_model",)
        self.architecture = "SiglipVisionModel" if vision else "SiglipTextModel"
        self.description = f"SigLIP {'image' if vision else 'text'} tower"
        self.rules, self.config = ((vision_rules, vision_config) if vision
                                   else (text_rules, text_config))

    def import_rules(self, config, keys):
        """Rules for the tower's `keys`."""
        return self.rules("", _depth(keys, self.tower))

    def matches(self, flat):
        """True for our ViT with MAP pooling, no class token or head (vision), or our
        TextTransformer with a head (text)."""
        if self.tower == VISION:
            return _is_vision(flat, "") and "head/kernel" not in flat
        return "Embed_0/embedding" in flat and "head/kernel" in flat

    def export(self, flat, **hints):
        """Returns (their tensors, config.json dict) of the tower's transformers model."""
        config = {"architectures": [self.architecture], **self.config(flat, "", **hints)}
        rules = self.rules("", config["num_hidden_layers"])
        return mapping.export_params(flat, rules, f"a transformers {self.architecture}"), config


for _model in (HFSiglip(), HFSiglipTower(VISION), HFSiglipTower(TEXT)):
    hub.register(_model)

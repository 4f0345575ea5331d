"""Hugging Face `transformers` ViT (model_type "vit", ViTForImageClassification / ViTModel)
<-> Tessera's plain ViT (class token, learned position embedding, optional head).

Their layer names (the Hub's `encoder.layer.{i}.attention.attention.query`, or transformers
5's `layers.{i}.attention.q_proj`; both are read, the Hub's are written) are shared by
ViViT's port, which builds on `vit_rules` with its own prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from framework.interop import hub, mapping
from framework.interop.mapping import Rule, conv, linear, norm, posemb_with_cls

# Our MLP's activations (framework.layers.mlp.ACTIVATIONS) in transformers' names.
HIDDEN_ACT = {"gelu_tanh": "gelu_pytorch_tanh", "gelu_exact": "gelu"}


# Layer names: the Hub's checkpoints (and transformers 4) and transformers 5's own.
_NORMS = {"norm1": "layernorm_before", "norm2": "layernorm_after"}
HUB_NAMES = {**_NORMS, "layers": "encoder.layer", "query": "attention.attention.query",
             "key": "attention.attention.key", "value": "attention.attention.value",
             "out": "attention.output.dense", "fc1": "intermediate.dense",
             "fc2": "output.dense"}
V5_NAMES = {**_NORMS, "layers": "layers", "query": "attention.q_proj",
            "key": "attention.k_proj", "value": "attention.v_proj", "out": "attention.o_proj",
            "fc1": "mlp.fc1", "fc2": "mlp.fc2"}


def vit_rules(prefix: str, depth: int, head: bool, keys: Sequence[str] = ()) -> list[Rule]:
    """Rules of a class-token ViT in transformers' layout under `prefix` ("vit" / "vivit"):
    patch (or tubelet) embedding, class token and position embedding, `depth` blocks, final
    LayerNorm and, when `head`, the `classifier`. Layer names are transformers 5's when
    `keys` (a checkpoint's) use them, else the Hub's (what export writes)."""
    names = V5_NAMES if any(k.startswith(f"{prefix}.layers.") for k in keys) else HUB_NAMES
    rules = [*conv("embedding", f"{prefix}.embeddings.patch_embeddings.projection"),
             posemb_with_cls("cls", "pos_embedding", f"{prefix}.embeddings.cls_token",
                             f"{prefix}.embeddings.position_embeddings"),
             *norm("Transformer/encoder_norm", f"{prefix}.layernorm")]
    for i in range(depth):
        rules += mapping.encoder_block(f"Transformer/encoderblock_{i}",
                                       f"{prefix}.{names['layers']}.{i}", names)
    return rules + (linear("head", "classifier") if head else [])


def encoder_config(flat: Mapping[str, np.ndarray], prefix: str = "",
                   mlp_activation: str = "gelu_tanh", layer_norm_eps: float = 1e-6,
                   **other_hints: Any) -> dict[str, Any]:
    """Returns transformers' encoder fields (hidden_size, num_hidden_layers,
    num_attention_heads, intermediate_size, hidden_act, layer_norm_eps) read off our flat
    params' encoder under `prefix` ("" or "img/"); the param shapes say all but the model's
    `mlp_activation` and `layer_norm_eps` (export hints; `other_hints` are not ours)."""
    if mlp_activation not in HIDDEN_ACT:
        raise mapping.MappingError(f"mlp_activation={mlp_activation!r}: use one of "
                                   f"{', '.join(HIDDEN_ACT)}.")
    flat = mapping.unstack_scanned(flat)
    depth = mapping.count_layers(list(flat), rf"^{prefix}[^/]*/encoderblock_(\d+)/")
    block = next(k for k in flat if k.startswith(prefix) and "/encoderblock_0/" in k)
    block = block[:block.index("/encoderblock_0/") + len("/encoderblock_0/")]
    query = flat[block + "MultiHeadDotProductAttention_0/query/kernel"]
    return {"hidden_size": int(query.shape[0]), "num_hidden_layers": depth,
            "num_attention_heads": int(query.shape[1]),
            "intermediate_size": int(flat[block + "MlpBlock_0/Dense_0/kernel"].shape[1]),
            "hidden_act": HIDDEN_ACT[mlp_activation], "layer_norm_eps": float(layer_norm_eps)}


def square_side(tokens: int, what: str) -> int:
    """Returns s with s * s == tokens; raises MappingError naming `what` otherwise."""
    side = int(round(np.sqrt(tokens)))
    if side * side != tokens:
        raise mapping.MappingError(f"{what}: {tokens} patch tokens are not a square grid; the "
                                   "format describes square images only.")
    return side


def labels(num_classes: int) -> dict[str, dict]:
    """transformers' id2label / label2id fields for `num_classes` unnamed classes."""
    names = {str(i): f"LABEL_{i}" for i in range(num_classes)}
    return {"id2label": names, "label2id": {v: int(k) for k, v in names.items()}}


class HFViT(hub.HubModel):
    """model_type "vit": ViTForImageClassification (with `classifier`) or ViTModel."""

    model_types = ("vit",)
    description = "ViT (class token, learned position embedding)"

    def import_rules(self, config, keys):
        """Rules for a checkpoint with transformers `config` (dict) and tensor `keys`."""
        prefix = "vit" if any(k.startswith("vit.") for k in keys) else ""
        if not prefix:
            raise mapping.MappingError("no 'vit.' parameters in the checkpoint")
        return vit_rules(prefix, int(config["num_hidden_layers"]), "classifier.weight" in keys,
                         keys)

    def matches(self, flat):
        """True for our plain ViT with a class token and a learned position embedding."""
        kernel = flat.get("embedding/kernel")
        return (kernel is not None and kernel.ndim == 4 and "cls" in flat
                and "pos_embedding" in flat)

    def export(self, flat, **hints):
        """Returns (their tensors, config.json dict) for our ViT `flat` (hints: its
        mlp_activation and layer_norm_eps)."""
        kernel = flat["embedding/kernel"]
        side = square_side(flat["pos_embedding"].shape[1], "pos_embedding")
        head = "head/kernel" in flat
        config = {"architectures": ["ViTForImageClassification" if head else "ViTModel"],
                  "model_type": "vit", **encoder_config(flat, "", **hints),
                  "image_size": side * int(kernel.shape[0]), "patch_size": int(kernel.shape[0]),
                  "num_channels": int(kernel.shape[2]), "qkv_bias": True,
                  "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                  **(labels(int(flat["head/kernel"].shape[1])) if head else {})}
        if kernel.shape[0] != kernel.shape[1]:
            raise mapping.MappingError(f"embedding/kernel {kernel.shape}: transformers' ViT "
                                       "takes square patches only.")
        rules = vit_rules("vit", config["num_hidden_layers"], head)
        return mapping.export_params(flat, rules, "a transformers ViT"), config


hub.register(HFViT())

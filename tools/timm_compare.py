"""The same ViT train step in timm/PyTorch, for `tools.benchmark --compare` (tools.twin).

Needs the optional extra `compare` (torch, timm; timm imports torchvision). The timm model
mirrors the config's `vit_classification` model: width, depth, heads, MLP width, patch,
image size, pooling ('token' -> class token, 'gap' -> average, 'map' -> attention pool),
learned position embedding over the patches only (no_embed_class, as big_vision), dropout and
stochastic depth, the config's AdamW settings and gradient clipping. Tessera's GELU is the
tanh approximation, timm's the exact one; both cost the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_POOLS = {"token": ("token", True), "gap": ("avg", False), "map": ("map", False)}


def timm_vit_kwargs(model_config: Any, image_shape: tuple[int, ...]) -> dict:
    """Returns timm VisionTransformer kwargs for a `vit_classification` model config.

    `image_shape` is one image (H, W, C). Raises ValueError naming the config key that timm's
    ViT cannot mirror.
    """
    model = dict(model_config)
    if model.get("name") != "vit_classification":
        raise ValueError(f"--compare: config.model.name={model.get('name')!r}; only "
                         "'vit_classification' has a timm twin.")
    pool = model.get("pool_type", "token")
    if pool not in _POOLS:
        raise ValueError(f"--compare: config.model.pool_type={pool!r} has no timm twin "
                         f"(use one of {', '.join(_POOLS)}).")
    if model.get("representation_size"):
        raise ValueError("--compare: config.model.representation_size has no timm twin.")
    if str(model.get("dtype", "float32")) not in ("float32", "bfloat16"):
        raise ValueError(f"--compare: config.model.dtype={model['dtype']!r}: float32 or "
                         "bfloat16 only.")
    hidden = int(model.get("hidden_size", 768))
    global_pool, class_token = _POOLS[pool]
    return dict(
        img_size=tuple(image_shape[:2]), patch_size=tuple(model.get("patch_size", (16, 16))),
        in_chans=int(image_shape[2]), num_classes=int(model.get("num_classes") or 0),
        embed_dim=hidden, depth=int(model.get("depth", 12)),
        num_heads=int(model.get("num_heads", 12)),
        mlp_ratio=(model.get("mlp_dim") or 4 * hidden) / hidden,
        global_pool=global_pool, class_token=class_token, no_embed_class=True,
        drop_rate=float(model.get("dropout", 0.0)),
        attn_drop_rate=float(model.get("attention_dropout", 0.0)),
        drop_path_rate=float(model.get("stochastic_depth", 0.0)),
    )


def prepare(config: Any, batch: dict) -> tuple[dict, dict]:
    """Builds timm's twin of `config.model` on `batch` (numpy, "image" (B, H, W, C) and
    "label" (B,) or (B, C)); returns tools.twin.torch_runners' (runners, info) with the
    timm version, the loss softmax cross-entropy with the config's label smoothing."""
    import timm
    import torch
    from timm.models.vision_transformer import VisionTransformer

    from tools import twin

    torch.manual_seed(config.seed)
    net = VisionTransformer(**timm_vit_kwargs(config.model.to_dict(), batch["image"].shape[1:]))
    images = torch.from_numpy(np.ascontiguousarray(
        np.transpose(np.asarray(batch["image"], np.float32), (0, 3, 1, 2))))
    labels = np.asarray(batch["label"])
    targets = torch.from_numpy(labels.argmax(-1) if labels.ndim == 2 else labels).long()
    smoothing = float(config.loss.get("label_smoothing", 0.0) or 0.0)

    def loss_of(logits):
        return torch.nn.functional.cross_entropy(logits.float(), targets,
                                                 label_smoothing=smoothing)

    runners, info = twin.torch_runners(net, lambda: net(images), loss_of, config)
    return runners, {**info, "timm": timm.__version__}

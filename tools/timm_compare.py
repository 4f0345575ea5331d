"""The same ViT train step in timm/PyTorch, for `tools.benchmark --compare`.

Needs the optional extra `compare` (torch, timm; timm imports torchvision). The timm model
mirrors the config's `vit_classification` model: width, depth, heads, MLP width, patch,
image size, pooling ('token' -> class token, 'gap' -> average, 'map' -> attention pool),
learned position embedding over the patches only (no_embed_class, as big_vision), dropout and
stochastic depth, the config's AdamW settings and gradient clipping. Tessera's GELU is the
tanh approximation, timm's the exact one; both cost the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def prepare_timm_train_step(config: Any, batch: dict) -> tuple[Callable[[], float], dict]:
    """Builds timm's twin of `config.model` and its AdamW train step on `batch` (numpy,
    "image" (B, H, W, C) and "label" (B,) or (B, C)).

    Returns (run_step, info): run_step() trains one step and returns the loss; info holds
    params, torch and timm versions, threads and cpu_count.
    """
    import timm
    import torch
    from timm.models.vision_transformer import VisionTransformer

    if config.optimizer.name != "adamw":
        raise ValueError(f"--compare: config.optimizer.name={config.optimizer.name!r}; the "
                         "timm twin is trained with AdamW only.")
    torch.manual_seed(config.seed)
    net = VisionTransformer(**timm_vit_kwargs(config.model.to_dict(), batch["image"].shape[1:]))
    net.train()
    opt = config.optimizer
    optimizer = torch.optim.AdamW(net.parameters(), lr=float(opt.lr),
                                  weight_decay=float(opt.weight_decay),
                                  betas=(float(opt.get("b1", 0.9)), float(opt.get("b2", 0.999))))
    images = torch.from_numpy(np.ascontiguousarray(
        np.transpose(np.asarray(batch["image"], np.float32), (0, 3, 1, 2))))
    labels = np.asarray(batch["label"])
    targets = torch.from_numpy(labels.argmax(-1) if labels.ndim == 2 else labels).long()
    smoothing = float(config.loss.get("label_smoothing", 0.0) or 0.0)
    clip = opt.get("grad_clip_norm")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16,
                              enabled=str(config.model.get("dtype")) == "bfloat16")

    def run_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = net(images)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets,
                                                 label_smoothing=smoothing)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(clip))
        optimizer.step()
        return float(loss.detach())

    return run_step, {
        "params": int(sum(p.numel() for p in net.parameters())),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }

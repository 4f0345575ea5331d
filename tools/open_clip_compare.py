"""The SigLIP train step in open_clip/PyTorch, for `tools.benchmark --compare` (tools.twin).

Needs the optional extra `compare` (torch, open_clip, timm). The twin of an
`image_text.two_tower` SigLIP config (MAP-pooled image tower without head, 'last'-pooled text
tower with a head to the image width, learned temperature and bias) trained with open_clip's
own `SigLipLoss` and the config's AdamW. At B/16, 224 px, vocabulary 32000 and 64 text tokens
it is open_clip's `ViT-B-16-SigLIP` as the library builds it; other sizes (the tests' tiny
towers) are the same classes with the config's widths and depths. open_clip's towers use the
exact GELU, ours by default the tanh approximation; both cost the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tools import timm_compare

# open_clip's ViT-B-16-SigLIP: (image size, width, depth, heads, mlp, patch, vocab, text len).
_B16 = (224, 768, 12, 12, 3072, (16, 16), 32000, 64)


def check_mirrorable(model: dict) -> None:
    """Raises ValueError naming the key of an `image_text.two_tower` config (a dict) that
    open_clip's SigLIP cannot mirror."""
    image, text = dict(model.get("image", {})), dict(model.get("text", {}))
    if model.get("bias_init") is None:
        raise ValueError("--compare: config.model.bias_init is None (a CLIP / LiT model); "
                         "the open_clip twin is SigLIP's (learned bias).")
    if image.get("pool_type") != "map" or text.get("pool_type") != "last":
        raise ValueError("--compare: the open_clip SigLIP twin needs config.model.image."
                         "pool_type='map' and config.model.text.pool_type='last'.")
    out = model.get("out_dim")
    if not isinstance(out, (list, tuple)) or out[0] or out[1] != image.get("hidden_size", 768):
        raise ValueError("--compare: the open_clip SigLIP twin needs config.model.out_dim="
                         "(None, image width): no image head, a text head to the image width.")


def _sizes(tower: dict) -> tuple[int, int, int, int]:
    width = int(tower.get("hidden_size", 768))
    return (width, int(tower.get("depth", 12)), int(tower.get("num_heads", 12)),
            int(tower.get("mlp_dim") or 4 * width))


def build_siglip(model: dict, image_size: int, text_len: int) -> Any:
    """Returns open_clip's SigLIP model for an `image_text.two_tower` config (a dict) on
    images of `image_size` and texts of `text_len` tokens."""
    import open_clip
    from timm.models.vision_transformer import VisionTransformer

    check_mirrorable(model)
    image, text = dict(model["image"]), dict(model["text"])
    patch = tuple(image.get("patch_size", (16, 16)))
    vocab = int(text["vocab_size"])
    key = (image_size, *_sizes(image), patch, vocab, text_len)
    if key == _B16 and _sizes(text) == _B16[1:5]:
        return open_clip.create_model("ViT-B-16-SigLIP", pretrained=None)
    width, depth, heads, mlp = _sizes(text)
    net = open_clip.model.CustomTextCLIP(
        embed_dim=_sizes(image)[0], init_logit_bias=float(model["bias_init"]),
        vision_cfg={"image_size": image_size, "timm_model_name": "vit_tiny_patch16_224",
                    "timm_model_pretrained": False, "timm_pool": "map", "timm_proj": "none"},
        text_cfg={"context_length": text_len, "vocab_size": vocab, "width": width,
                  "heads": heads, "layers": depth, "mlp_ratio": mlp / width,
                  "no_causal_mask": True, "proj_bias": True, "pool_type": "last",
                  "norm_kwargs": {"eps": 1e-6}})
    kwargs = timm_compare.timm_vit_kwargs(
        {**image, "name": "vit_classification", "num_classes": 0},
        (image_size, image_size, 3))
    net.visual.trunk = VisionTransformer(**kwargs)
    return net


def prepare(config: Any, batch: dict) -> tuple[dict, dict]:
    """Builds open_clip's twin of `config.model` on `batch` (numpy, "image" (B, H, W, C),
    "text" (B, L) int); returns tools.twin.torch_runners' (runners, info) with the open_clip
    version, the loss open_clip's SigLipLoss."""
    import open_clip
    import torch

    from tools import twin

    torch.manual_seed(config.seed)
    net = build_siglip(config.model.to_dict(), batch["image"].shape[1], batch["text"].shape[1])
    images = torch.from_numpy(np.ascontiguousarray(
        np.transpose(np.asarray(batch["image"], np.float32), (0, 3, 1, 2))))
    texts = torch.from_numpy(np.asarray(batch["text"])).long()
    loss_fn = open_clip.loss.SigLipLoss()

    def loss_of(outputs):
        image, text, scale, bias = outputs
        return loss_fn(image, text, scale, bias)

    runners, info = twin.torch_runners(net, lambda: net(images, texts), loss_of, config)
    return runners, {**info, "open_clip": open_clip.__version__}

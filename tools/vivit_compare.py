"""The ViViT model 1 train step in transformers/PyTorch, for `tools.benchmark --compare`
(tools.twin).

Needs the optional extra `compare` (torch, transformers). The twin of a `vivit.classifier`
config with variant 'spatio_temporal' (model 1: one encoder over all tubelet tokens, class
token) is `transformers.VivitForVideoClassification` at the config's sizes, with the
library's default attention implementation (PyTorch's scaled_dot_product_attention), trained
with softmax cross-entropy and the config's AdamW. Both use the tanh GELU and LayerNorm
epsilon 1e-6.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def vivit_config_kwargs(model: dict, video_shape: tuple[int, ...]) -> dict:
    """Returns transformers.VivitConfig kwargs for a `vivit.classifier` config (a dict) on
    one video of `video_shape` (T, H, W, C). Raises ValueError naming the key that
    transformers' ViViT cannot mirror."""
    if model.get("variant") != "spatio_temporal":
        raise ValueError(f"--compare: config.model.variant={model.get('variant')!r}; "
                         "transformers' ViViT is model 1 ('spatio_temporal') only.")
    if model.get("pool_type", "token") != "token":
        raise ValueError("--compare: transformers' ViViT pools with the class token; set "
                         "config.model.pool_type='token'.")
    frames, height, width, channels = video_shape
    if model.get("num_sampled_frames") not in (None, frames) or height != width:
        raise ValueError("--compare: transformers' ViViT needs square frames and every frame "
                         "of the clip (config.model.num_sampled_frames=None).")
    hidden = int(model.get("hidden_size", 768))
    return dict(
        image_size=height, num_frames=frames, tubelet_size=list(model["patch_size"]),
        num_channels=channels, hidden_size=hidden,
        num_hidden_layers=int(model.get("depth", 12)),
        num_attention_heads=int(model.get("num_heads", 12)),
        intermediate_size=int(model.get("mlp_dim") or 4 * hidden),
        num_labels=int(model["num_classes"]),
        hidden_dropout_prob=float(model.get("dropout", 0.0)),
        attention_probs_dropout_prob=float(model.get("attention_dropout", 0.0)))


def prepare(config: Any, batch: dict) -> tuple[dict, dict]:
    """Builds transformers' twin of `config.model` on `batch` (numpy, "video"
    (B, T, H, W, C), "label" (B,) or (B, C)); returns tools.twin.torch_runners' (runners,
    info) with the transformers version and attention implementation."""
    import torch
    import transformers

    from tools import twin

    torch.manual_seed(config.seed)
    video = np.asarray(batch["video"], np.float32)
    net = transformers.VivitForVideoClassification(
        transformers.VivitConfig(**vivit_config_kwargs(config.model.to_dict(), video.shape[1:])))
    pixels = torch.from_numpy(np.ascontiguousarray(np.transpose(video, (0, 1, 4, 2, 3))))
    labels = np.asarray(batch["label"])
    targets = torch.from_numpy(labels.argmax(-1) if labels.ndim == 2 else labels).long()
    smoothing = float(config.loss.get("label_smoothing", 0.0) or 0.0)

    def loss_of(outputs):
        return torch.nn.functional.cross_entropy(outputs.logits.float(), targets,
                                                 label_smoothing=smoothing)

    runners, info = twin.torch_runners(net, lambda: net(pixel_values=pixels), loss_of, config)
    return runners, {**info, "transformers": transformers.__version__,
                     "attention": net.config._attn_implementation}

"""Hugging Face `transformers` ViViT (model_type "vivit", VivitForVideoClassification) <->
Tessera's ViViT model 1 (spatio-temporal attention, class token, one position embedding over
all tubelets).

transformers' ViViT is ViT's layout under `vivit.` with a 3D tubelet convolution
(D, C, pt, ph, pw) and its input as (B, T, C, H, W); tokens are time-major in both. Models
2-4 have no transformers counterpart.
"""

from __future__ import annotations

from framework.interop import hf_vit, hub, mapping


class HFVivit(hub.HubModel):
    """model_type "vivit": VivitForVideoClassification / VivitModel."""

    model_types = ("vivit",)
    description = "ViViT model 1 (spatio-temporal, class token)"

    def import_rules(self, config, keys):
        """Rules for a ViViT checkpoint with transformers `config` and tensor `keys`."""
        return hf_vit.vit_rules("vivit", int(config["num_hidden_layers"]),
                                "classifier.weight" in keys, keys)

    def matches(self, flat):
        """True for our ViViT model 1: a tubelet kernel, one joint `Transformer`, `cls`."""
        kernel = flat.get("embedding/kernel")
        return (kernel is not None and kernel.ndim == 5 and "cls" in flat
                and "pos_embedding" in flat
                and not any(k.startswith(("SpatialTransformer/", "temporal_")) for k in flat)
                and not any("_time/" in k or "_space/" in k for k in flat))

    def export(self, flat, num_frames: int | None = None, **hints):
        """Returns (their tensors, config.json dict). `num_frames`: the clip length in
        frames, which the params cannot tell apart from the image size."""
        kernel = flat["embedding/kernel"]
        pt, ph, pw, channels = (int(d) for d in kernel.shape[:4])
        if not num_frames:
            raise mapping.MappingError("exporting a ViViT needs the clip length: pass "
                                       "--num_frames (the model's input frames).")
        tokens = flat["pos_embedding"].shape[1]
        frames = num_frames // pt
        if num_frames % pt or tokens % frames:
            raise mapping.MappingError(
                f"--num_frames {num_frames}: does not fit the tubelet ({pt} frames) and the "
                f"{tokens} position embeddings.")
        side = hf_vit.square_side(tokens // frames, "pos_embedding (per frame)")
        if ph != pw:
            raise mapping.MappingError(f"embedding/kernel {kernel.shape}: transformers' ViViT "
                                       "takes square tubelets only.")
        head = "head/kernel" in flat
        config = {"architectures": ["VivitForVideoClassification" if head else "VivitModel"],
                  "model_type": "vivit", **hf_vit.encoder_config(flat, "", **hints),
                  "image_size": side * ph, "num_frames": num_frames,
                  "tubelet_size": [pt, ph, pw], "num_channels": channels, "qkv_bias": True,
                  "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                  **(hf_vit.labels(int(flat["head/kernel"].shape[1])) if head else {})}
        rules = hf_vit.vit_rules("vivit", config["num_hidden_layers"], head)
        return mapping.export_params(flat, rules, "a transformers ViViT"), config


hub.register(HFVivit())

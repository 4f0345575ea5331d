"""SigLIP models as released with "Sigmoid Loss for Language Image Pre-Training" (Zhai et al.,
ICCV 2023, arXiv 2303.15343) in big_vision.

Architecture (big_vision's SigLIP demo colab, which lists every released English checkpoint
with its image variant, resolution, text variant, embedding width, text length and
vocabulary): a ViT image tower with MAP pooling and no head, a text transformer of the same
size name ("B", "L", "So400m") with 'last' pooling and a head to the image width,
vocabulary 32k (the c4_en SentencePiece model), learnable temperature t' = log 10 and bias
b = -10 (paper Sec. 3.2). Text length 64, except So400m/14 at 224 (16). The image position
embedding is one learned table of (resolution / patch)^2 entries, so each resolution is its
own model.

Variants: "B/16" (224), "L/16" (256) and "So400m/14" (224), and the released checkpoints at
other resolutions, written "VARIANT@RESOLUTION": "B/16@256", "B/16@384", "B/16@512",
"L/16@384", "So400m/14@384" (text length 64).

Training recipe (paper Sec. 4: batch 32k, sigmoid loss, Adafactor with beta2 = 0.95 for
stability, lr 1e-3, weight decay 1e-4; big_vision's decoupled wd 1e-4 is written here as
weight_decay = wd / lr = 0.1). Schedule: cosine with 20k warmup steps over 40B examples, the
recipe restated in the SigLIP 2 paper (arXiv 2502.14786, Sec. 2). The data is WebLI
(English), which is not public: config.data.train reads image-text pairs prepared with
`python -m tools.prepare_dataset image_text` into data_dir/webli_en (decoded, resized and
tokenized by its preprocess string); zero-shot evaluation reads ImageNet from TFDS.

Reference numbers: `params` is the parameter count of big_vision's own two-tower model
(`big_vision.models.proj.image_text.two_towers.Model`, big_vision commit 0127fb6) built with
the colab's settings for that checkpoint and counted with jax.eval_shape. ImageNet
zero-shot top-1 is given for B/16, L/16 and So400m/14 only, and is unverified here
(`reference.note`); none is quoted for the other resolutions. No GFLOPs are published.
The towers are not scanned (`scan=False`) so that XLA's cost analysis counts every layer
for the GFLOPs; set `--config.model.image.scan=True --config.model.text.scan=True` to
train with faster compiles.
"""

import ml_collections

from configs import image_text_data, model_sizes, trainer_defaults

VARIANTS = ("B/16", "L/16", "So400m/14", "B/16@256", "B/16@384", "B/16@512", "L/16@384",
            "So400m/14@384")

# variant: (text size, resolution, text length, embedding width, params of big_vision's model,
# zero-shot top-1 or None)
_RELEASED = {
    "B/16": ("B", 224, 64, 768, 203_155_970, 76.2),
    "L/16": ("L", 256, 64, 1024, 652_150_786, 80.5),
    "So400m/14": ("So400m", 224, 16, 1152, 877_360_306, 82.2),
    "B/16@256": ("B", 256, 64, 768, 203_202_050, None),
    "B/16@384": ("B", 384, 64, 768, 203_447_810, None),
    "B/16@512": ("B", 512, 64, 768, 203_791_874, None),
    "L/16@384": ("L", 384, 64, 1024, 652_478_466, None),
    "So400m/14@384": ("So400m", 384, 64, 1152, 877_960_498, None),
}
VOCAB_SIZE = 32_000
UNVERIFIED = ("big_vision's SigLIP_demo colab gives each released checkpoint's resolution, text "
              "tower, text length and embedding width (checked; params counted on big_vision's "
              "model built with them); neither it nor big_vision's READMEs state the zero-shot "
              "top-1 quoted for B/16, L/16 and So400m/14, which could not be checked against a "
              "reachable source.")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config of one released SigLIP model; `arg` is one of VARIANTS."""
    arg = arg or "B/16"
    if arg not in _RELEASED:
        raise ValueError(f"webli_siglip: unknown variant {arg!r}; use one of {VARIANTS}.")
    text_size, res, text_len, width, params, top1 = _RELEASED[arg]
    image_variant = arg.partition("@")[0]
    c = trainer_defaults.get_config()
    c.batch_size = 32_768
    c.total_steps = 40_000_000_000 // c.batch_size
    c.log_every = 100
    c.eval_every = 10_000
    c.checkpoint_every = 10_000
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    image = dict(model_sizes.vit_config(image_variant), pool_type="map", posemb="learn",
                 scan=False, remat=True, dtype="bfloat16")
    text = dict(model_sizes.vit_config(text_size), vocab_size=VOCAB_SIZE, pool_type="last",
                scan=False, remat=True, dtype="bfloat16")
    c.model = ml_collections.ConfigDict(dict(
        name="image_text.two_tower", image=image, text=text, out_dim=(None, width),
        temperature_init=10.0, bias_init=-10.0))
    c.model_input = ml_collections.ConfigDict(
        {"image": f"float32[{res},{res},3]", "text": f"int32[{text_len}]"})
    c.loss = ml_collections.ConfigDict({"name": "image_text.sigmoid_pairwise", "chunked": True})
    c.optimizer.update(dict(name="adafactor", lr=1e-3, weight_decay=0.1, grad_clip_norm=1.0))
    c.optimizer.beta2_cap = 0.95
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 20_000})

    tokenizer = "c4_en.model"  # big_vision's SentencePiece model (gs://t5-data/vocabs/...).
    image_text_data.set_image_text_data(c, "webli_en", res, text_len, tokenizer)

    c.reference = ml_collections.ConfigDict({
        "source": "SigLIP (arXiv 2303.15343) released checkpoints, big_vision SigLIP colab",
        "note": UNVERIFIED,
        "params": params,
        "params_source": "big_vision two_towers.Model with the colab's settings, eval_shape",
        "resolution": res,
        "text_length": text_len,
    })
    if top1 is not None:
        c.reference.zeroshot_top1 = top1
    return c

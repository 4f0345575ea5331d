"""SigLIP models as released with "Sigmoid Loss for Language Image Pre-Training" (Zhai et al.,
ICCV 2023, arXiv 2303.15343) in big_vision.

Architecture (big_vision's SigLIP model configs): a ViT image tower with MAP pooling and no
head, a text transformer of the same size name ("B", "L", "So400m") with 'last' pooling and
a head to the image width, vocabulary 32k (the c4_en SentencePiece model), learnable
temperature t' = log 10 and bias b = -10 (paper Sec. 3.2). Text length 64, except
So400m/14 at 224 (16). Variants: B/16 at 224, L/16 at 256, So400m/14 at 224.

Training recipe (paper Sec. 4: batch 32k, sigmoid loss, Adafactor with beta2 = 0.95 for
stability, lr 1e-3, weight decay 1e-4; big_vision's decoupled wd 1e-4 is written here as
weight_decay = wd / lr = 0.1). Schedule: cosine with 20k warmup steps over 40B examples, the
recipe restated in the SigLIP 2 paper (arXiv 2502.14786, Sec. 2). The data is WebLI
(English), which is not public: config.data.train reads image-text pairs prepared with
`python -m tools.prepare_dataset image_text` into data_dir/webli_en (decoded, resized and
tokenized by its preprocess string); zero-shot evaluation reads ImageNet from TFDS.

Reference numbers: ImageNet zero-shot top-1 of the released checkpoints and their parameter
counts (B/16 224: 203M, L/16 256: 652M, So400m/14 224: 877M, as the model cards of their
Hugging Face ports give them); neither is stated by big_vision's colab or READMEs, and both
are unverified here (`reference.note`).
The towers are not scanned (`scan=False`) so that XLA's cost analysis counts every layer
for the GFLOPs; set `--config.model.image.scan=True --config.model.text.scan=True` to
train with faster compiles.
"""

import ml_collections

from configs import image_text_data, model_sizes, trainer_defaults

VARIANTS = ("B/16", "L/16", "So400m/14")

# variant: (text size, resolution, text length, embedding width, params, zero-shot top-1)
_RELEASED = {
    "B/16": ("B", 224, 64, 768, 203e6, 76.2),
    "L/16": ("L", 256, 64, 1024, 652e6, 80.5),
    "So400m/14": ("So400m", 224, 16, 1152, 877e6, 82.2),
}
VOCAB_SIZE = 32_000
UNVERIFIED = ("big_vision's SigLIP_demo colab gives each released checkpoint's resolution, text "
              "tower, text length and embedding width (checked); neither it nor big_vision's "
              "READMEs state the zero-shot top-1 or the parameter counts quoted here, which "
              "could not be checked against a reachable source.")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config of one released SigLIP model; `arg` is one of VARIANTS."""
    arg = arg or "B/16"
    if arg not in _RELEASED:
        raise ValueError(f"webli_siglip: unknown variant {arg!r}; use one of {VARIANTS}.")
    text_size, res, text_len, width, params, top1 = _RELEASED[arg]
    c = trainer_defaults.get_config()
    c.batch_size = 32_768
    c.total_steps = 40_000_000_000 // c.batch_size
    c.log_every = 100
    c.eval_every = 10_000
    c.checkpoint_every = 10_000
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    image = dict(model_sizes.vit_config(arg), pool_type="map", posemb="learn", scan=False,
                 remat=True, dtype="bfloat16")
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
        "zeroshot_top1": top1,
        "resolution": res,
    })
    return c

"""SigLIP B/16 at 224x224 (both towers of the released B/16: 203M params) on
`synthetic_captions` rendered at 224 px: the image-text train-step benchmark.

Not a training recipe: `tools/benchmark.py` times its train step with the pairwise sigmoid
loss (batch 8 on a CPU, float32; `tools.benchmark --compare` trains open_clip's
`ViT-B-16-SigLIP` with its `SigLipLoss` on the same batch; benchmarks/gpu.sh raises the
batch and uses bfloat16 and cuDNN attention). The towers are those of
projects/siglip/configs/webli_siglip.py:B/16 (MAP-pooled image tower, 'last'-pooled text
tower with a head to 768, vocabulary 32000, 64 text tokens), with AdamW instead of the
paper's Adafactor so that the PyTorch twin runs the same update. The loss is the chunked
(device-ring) form, equal to the dense one on one device.
"""

import ml_collections

from configs import model_sizes, synthetic_image_text

TEXT_LENGTH = 64
VOCAB_SIZE = 32_000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the benchmark config (`arg` is unused)."""
    del arg
    c = synthetic_image_text.get_config()
    c.project = "image_text"
    c.total_steps = 100
    c.batch_size = 8
    image = dict(model_sizes.vit_config("B/16"), pool_type="map", posemb="learn",
                 dtype="float32")
    text = dict(model_sizes.vit_config("B"), vocab_size=VOCAB_SIZE, pool_type="last",
                dtype="float32")
    c.model = ml_collections.ConfigDict(dict(
        name="image_text.two_tower", image=image, text=text, out_dim=(None, 768),
        temperature_init=10.0, bias_init=-10.0))
    c.loss = ml_collections.ConfigDict({"name": "image_text.sigmoid_pairwise", "chunked": True})
    c.optimizer.update(dict(name="adamw", lr=1e-3, weight_decay=1e-4, grad_clip_norm=1.0))
    c.schedule = ml_collections.ConfigDict({"name": "cosine", "warmup_steps": 10})
    for split in (c.data.train, c.data.eval):
        split.update(dict(image_size=224, max_len=TEXT_LENGTH, num_train=64, num_eval=16))
    c.evaluators = ml_collections.ConfigDict()
    c.model_input = ml_collections.ConfigDict(
        {"image": "float32[224,224,3]", "text": f"int32[{TEXT_LENGTH}]"})
    return c

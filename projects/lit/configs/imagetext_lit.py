"""LiT models of "LiT: Zero-Shot Transfer with Locked-image text Tuning" (Zhai et al., CVPR
2022, arXiv 2111.07991).

Setting "Lu" (the paper's LiT): the image tower is a pretrained ViT, locked; the text tower
(big_vision's text transformer, 'last' pooling, a head to the embedding width) is trained
from scratch with the symmetric softmax contrastive loss and a learned temperature
(initialised at 10). The image side has no head: its pooled features are the embedding (the
better variant of big_vision's LiT-B16B_2, README_lit changelog).

Variants: `B/16-B` and `L/16-L` (image / text tower sizes, as big_vision's public LiT
models), `g/14-L` (the paper's ViT-g/14 locked tower; the text tower size is our choice, the
paper's is not reproduced here), and the paper's other settings for B/16-B: `B/16-B_unlocked`
("Uu": the pretrained image tower is fine-tuned) and `B/16-B_scratch` ("uu": both towers from
scratch, as CLIP).

Optimizer, schedule and train augmentation: big_vision's configs/proj/image_text/lit_coco.py
(Adam for a B text tower and big_vision's Adafactor for an L one, lr 1e-3, decoupled wd 0.01
written here as weight_decay = wd / lr = 10, grad clip 1.0, cosine decay with 3% warmup,
text length 16; train images resized to 224, flipped and RandAugment(2, 10)). The image
tower is loaded with `config.init_from` into `img/`: set --config.init_from.path to a
big_vision / AugReg ViT `.npz` of the right size (e.g. ImageNet-21k ViT-B/16); its
classification head stays unused. The text tower here starts from scratch; big_vision's
public LiT models start theirs from BERT (big_vision proj.flaxformer.bert), which this text
transformer does not map (their `img/` towers load).

References: ImageNet zero-shot top-1 of big_vision's public LiT models (README_lit: mixed
B16B_2 73.9, mixed L16L 75.7, trained on CC12M + YFCC100M), which belong to BERT-initialised
text towers (`reference.text_init`), not to this config's from-scratch text tower; and the
paper's ViT-g/14 LiT (85.2 in the abstract of arXiv v3; the CVPR 2022 version and arXiv v1
state 84.5 for it).
"""

import ml_collections

from configs import image_text_data, model_sizes, trainer_defaults

VARIANTS = ("B/16-B", "L/16-L", "g/14-L", "B/16-B_unlocked", "B/16-B_scratch")
TEXT_LENGTH = 16
VOCAB_SIZE = 32_000

# image/text: (embedding width, zero-shot top-1 reference, source of the reference, the
# text-tower initialisation the reference belongs to)
_MODELS = {
    "B/16-B": (768, 73.9, "big_vision README_lit, mixed_B16B_2", "BERT-Base"),
    "L/16-L": (1024, 75.7, "big_vision README_lit, mixed_L16L", "BERT-Large"),
    "g/14-L": (1408, 85.2, "LiT arXiv 2111.07991v3 abstract, ViT-g/14 (CVPR 2022 / v1: 84.5)",
               "paper's text tower"),
}
# lit_coco.py's train augmentation after the resize.
TRAIN_AUGMENT = "flip_lr|randaugment(2, 10)"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the config of one LiT model; `arg` is one of VARIANTS."""
    arg = arg or "B/16-B"
    if arg not in VARIANTS:
        raise ValueError(f"imagetext_lit: unknown variant {arg!r}; use one of {VARIANTS}.")
    towers, _, mode = arg.partition("_")
    image_variant, text_size = towers.split("-")
    width, top1, source, text_init = _MODELS[towers]
    res = 224

    c = trainer_defaults.get_config()
    c.batch_size = 4096
    c.total_steps = 60_000
    c.log_every = 100
    c.eval_every = 5000
    c.checkpoint_every = 5000
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
    c.sharding.rules = "fsdp"

    image = dict(model_sizes.vit_config(image_variant), pool_type="token", posemb="learn",
                 remat=True, dtype="bfloat16")
    text = dict(model_sizes.vit_config(text_size), vocab_size=VOCAB_SIZE, pool_type="last",
                remat=True, dtype="bfloat16")
    c.model = ml_collections.ConfigDict(dict(
        name="image_text.two_tower", image=image, text=text, out_dim=(None, width),
        temperature_init=10.0, lock_image=mode == ""))
    c.model_input = ml_collections.ConfigDict(
        {"image": f"float32[{res},{res},3]", "text": f"int32[{TEXT_LENGTH}]"})
    c.loss = ml_collections.ConfigDict({"name": "image_text.softmax_contrastive"})
    # lit_coco.py: Adam for a BERT-Base text tower, big_vision's Adafactor otherwise.
    c.optimizer.update(dict(name="adamw" if text_size == "B" else "adafactor", lr=1e-3,
                            weight_decay=10.0, grad_clip_norm=1.0,
                            freeze=("^img/",) if mode == "" else ()))
    c.schedule = ml_collections.ConfigDict(
        {"name": "cosine", "warmup_steps": int(0.03 * c.total_steps)})
    if mode != "scratch":
        # The path of the pretrained image tower (.npz) is given on the command line.
        c.init_from.update(dict(target_prefix="img", dont_load=("^head/",)))

    tokenizer = "c4_en.model"  # A SentencePiece model with VOCAB_SIZE pieces.
    image_text_data.set_image_text_data(c, "cc12m_yfcc100m", res, TEXT_LENGTH, tokenizer,
                                        train_augment=TRAIN_AUGMENT)
    c.reference = ml_collections.ConfigDict(
        {"source": source, "zeroshot_top1": top1, "text_init": text_init})
    return c

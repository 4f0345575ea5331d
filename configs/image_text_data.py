"""Shared by the paper image-text configs (projects/siglip, projects/lit): their data.

`set_image_text_data` points config.data.train at image-text pairs prepared with
`python -m tools.prepare_dataset image_text` (records with image bytes and a "caption"),
decoded, resized and tokenized by a preprocess string, and config.data.eval at ImageNet
from TFDS for the zero-shot evaluator, which builds its prompts from CLIP's ImageNet class
names and CLIP's 80 prompt templates (configs/clip_prompts.py).
"""

import ml_collections

from configs import clip_prompts


def set_image_text_data(c: ml_collections.ConfigDict, path: str, resolution: int,
                        text_length: int, tokenizer: str, train_augment: str = "") -> None:
    """Sets c.data.train / c.data.eval and the zero-shot evaluator of config `c`.

    `path`: the prepared dataset (relative to config.data.data_dir); `tokenizer`: a
    SentencePiece `.model` path, used for captions and zero-shot prompts alike;
    `train_augment`: ops after the train resize (e.g. "flip_lr|randaugment(2, 10)").
    The TFDS eval split keeps the image encoded (skip_decoding) for its decode_image op;
    its `tfds_data_dir` ("" = TFDS's default) is there to be set on the command line.
    """
    augment = f"{train_augment}|" if train_augment else ""
    c.data.train = ml_collections.ConfigDict({
        "name": "array_record", "path": path, "split": "train",
        "preprocess": f"decode_image|resize({resolution})|{augment}value_range(-1, 1)|"
                      f"tokenize(max_len={text_length}, model='{tokenizer}', inkey='caption', "
                      "eos='sticky')"})
    c.data.eval = ml_collections.ConfigDict({
        "name": "tfds", "tfds_name": "imagenet2012", "tfds_data_dir": "",
        "split": "validation", "skip_decoding": ("image",),
        "preprocess": f"decode_image|resize({resolution})|value_range(-1, 1)"})
    c.evaluators = ml_collections.ConfigDict({
        "zero_shot": {"name": "image_text.zero_shot", "data": "eval", "batch_size": 0,
                      "tokenizer": tokenizer, "eos": "sticky",
                      "class_names": clip_prompts.imagenet_class_names(),
                      "templates": clip_prompts.prompt_templates()}})

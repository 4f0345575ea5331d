"""`synthetic_captions`: synthetic_shapes images paired with captions naming shape and colour.

The images are those of `synthetic_shapes` (same generator, same cache: 12 classes of one
coloured shape on a noisy grey background; "eval" holds held-out images drawn with another
seed). Each record gets a caption built from its class name ("red circle"), where the shape
sits ("at the top left", ..., "in the center": the centroid of its saturated pixels on a
3 x 3 grid) and one of CAPTION_TEMPLATES, picked by a hash of the record so it is fixed per
image. The position makes captions specific enough for retrieval (108 descriptions rather
than 12). The caption is tokenized in the decoder (no preprocess string needed) with
`tokenizer` ("bytes", or a SentencePiece `.model` path) to `max_len` ids.

Examples: {'image': float32 (S, S, 3) in [-1, 1], 'label': int32 () (the class, for
zero-shot evaluation), 'text': int32 (max_len,)}; `info['class_names']` lists the classes.
A zero-shot evaluator uses its own prompt templates, not these, so the text tower must
generalise across phrasings.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from framework import registry
from framework.data import records, synthetic
from framework.data.spec import DatasetSpec
from framework.data.tokenizers import make_tokenizer, tokenize_fixed

CAPTIONS_VERSION = "v1"  # Bump when a change here changes the captions.
ROWS = ("top", "", "bottom")
COLUMNS = ("left", "", "right")
CAPTION_TEMPLATES = (
    "a {}",
    "{} on grey",
    "a picture of a {}",
    "there is a {}",
    "this is a {}",
    "look, a {}!",
    "an image of a {}",
    "{}",
)


@dataclasses.dataclass(frozen=True)
class CaptionDecoder:
    """Decodes a synthetic_shapes record and adds its tokenized caption as 'text'.

    Picklable (grain workers). The template is chosen by the CRC32 of the record bytes.
    """

    pixels: records.PixelDecoder
    class_names: tuple[str, ...]
    templates: tuple[str, ...]
    tokenizer: str
    max_len: int
    eos: str

    def caption(self, record: bytes, label: int, image: np.ndarray) -> str:
        """Returns the caption of a record of class `label` with pixels (S, S, 3) in [-1, 1]."""
        template = self.templates[zlib.crc32(bytes(record)) % len(self.templates)]
        return template.format(f"{self.class_names[label]} {position_phrase(image)}")

    def __call__(self, record: bytes) -> dict[str, np.ndarray]:
        example = self.pixels(record)
        text = self.caption(record, int(example["label"]), example["image"])
        example["text"] = tokenize_fixed(make_tokenizer(self.tokenizer), text, self.max_len,
                                         self.eos)
        return example


def position_phrase(image: np.ndarray) -> str:
    """Returns where the coloured shape sits in `image` (S, S, 3), e.g. "at the top left".

    The shape's pixels are the saturated ones (the background is grey); their centroid is
    placed on a 3 x 3 grid over the range that shape centres take (the middle half).
    """
    pooled = image.reshape(image.shape[0] // 2, 2, image.shape[1] // 2, 2, 3).mean((1, 3))
    saturation = pooled.max(-1) - pooled.min(-1)
    ys, xs = np.nonzero(saturation > 0.6)
    if not len(ys):
        return "in the center"
    size = pooled.shape[0]

    def third(value: float) -> int:
        return int(np.clip((value + 0.5 - size / 4) / (size / 2) * 3, 0, 2))

    row, column = ROWS[third(ys.mean())], COLUMNS[third(xs.mean())]
    if not row and not column:
        return "in the center"
    return "at the " + " ".join(p for p in (row, column) if p)


@registry.DATASETS.register("synthetic_captions")
def synthetic_captions(split: str, data_dir: str | None, image_size: int = 32,
                       num_train: int = 10000, num_eval: int = 1000, noise: float = 0.08,
                       max_len: int = 56, tokenizer: str = "bytes",
                       eos: str = "sticky") -> DatasetSpec:
    """Returns the DatasetSpec of synthetic_captions' `split` (see the module docstring).

    `image_size`, `num_train`, `num_eval`, `noise` are synthetic_shapes' (and share its
    cache); `max_len`, `tokenizer` and `eos` set the caption tokens (framework.data.tokenizers).
    """
    if not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"synthetic_captions: max_len={max_len!r} must be an int >= 2.")
    make_tokenizer(tokenizer)  # A bad tokenizer path fails here, before any compute.
    shapes = synthetic.synthetic_shapes(split, data_dir, image_size=image_size,
                                        num_train=num_train, num_eval=num_eval, noise=noise)
    class_names = tuple(shapes.info["class_names"])
    decode = CaptionDecoder(shapes.decode, class_names, CAPTION_TEMPLATES, tokenizer,
                            max_len, eos)
    info = dict(shapes.info)
    info["features"] = {**info["features"], "text": {"shape": [max_len], "dtype": "int32"}}
    templates_crc = zlib.crc32(repr(CAPTION_TEMPLATES).encode())
    caption_key = f"captions-{CAPTIONS_VERSION}:{tokenizer}:{max_len}:{eos}:{templates_crc}"
    info["fingerprint"] = f"{info.get('fingerprint', '')}|{caption_key}"
    info["caption_templates"] = CAPTION_TEMPLATES
    return dataclasses.replace(shapes, name="synthetic_captions", decode=decode, info=info)

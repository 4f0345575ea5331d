"""The `tfds` dataset: any prepared TFDS dataset, read with `tfds.data_source` (random
access over its ArrayRecord files; no TensorFlow).

Config: `config.data.train = {"name": "tfds", "tfds_name": "imagenet2012", "split": "train",
"preprocess": "decode_image|inception_crop(224)|flip_lr|value_range(-1, 1)",
"skip_decoding": ("image",)}`. The dataset must have been prepared in the array_record file
format (`tfds build --file_format=array_record`) under `tfds_data_dir` (None: TFDS's default,
~/tensorflow_datasets or $TFDS_DATA_DIR). Features named in `skip_decoding` stay encoded
bytes, to be decoded by an op in the grain workers (faster than decoding in TFDS).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from framework import registry
from framework.data.spec import DatasetSpec


@dataclasses.dataclass(frozen=True)
class TfdsExampleDecoder:
    """A TFDS example dict -> dict of numpy arrays (bytes kept), `label_key` as int32 ()."""

    label_key: str = "label"

    def __call__(self, example: dict) -> dict:
        out = {k: (v if isinstance(v, bytes | str) else np.asarray(v))
               for k, v in example.items()}
        if self.label_key in out:
            out[self.label_key] = np.asarray(out[self.label_key], np.int32)
        return out


@registry.DATASETS.register("tfds")
def tfds_dataset(split: str, data_dir: str | None, tfds_name: str = "",
                 tfds_data_dir: str | None = None, skip_decoding: tuple[str, ...] = (),
                 label_key: str = "label") -> DatasetSpec:
    """Returns the DatasetSpec of `split` (TFDS split syntax, e.g. "train[:90%]") of the
    prepared TFDS dataset `tfds_name` ("name" or "name/config:version").

    num_classes comes from the ClassLabel feature `label_key` (0 without one). `data_dir`
    (config.data.data_dir) is not used: TFDS datasets live under `tfds_data_dir` (None or
    "": TFDS's default).
    """
    del data_dir
    tfds_data_dir = tfds_data_dir or None
    if not tfds_name:
        raise registry.ConfigError("config.data.<split>.tfds_name: required for the tfds "
                                   "dataset (e.g. 'imagenet2012').")
    import tensorflow_datasets as tfds  # Slow to import; only when used.

    decoders = {key: tfds.decode.SkipDecoding() for key in skip_decoding} or None
    try:
        builder = tfds.builder(tfds_name, data_dir=tfds_data_dir)
        source = tfds.data_source(tfds_name, split=split, data_dir=tfds_data_dir,
                                  decoders=decoders)
    except Exception as e:  # noqa: BLE001 - TFDS raises many types; re-raised with advice.
        raise ValueError(
            f"tfds dataset {tfds_name!r} split {split!r} in "
            f"{tfds_data_dir or 'the default TFDS data_dir'} cannot be read ({type(e).__name__}: "
            f"{e}). Prepare it with `tfds build {tfds_name} --file_format=array_record`.") from e
    features = builder.info.features
    label = features[label_key] if label_key in features.keys() else None
    return DatasetSpec(
        source=source, decode=TfdsExampleDecoder(label_key), num_examples=len(source),
        num_classes=int(getattr(label, "num_classes", 0) or 0),
        info={"class_names": list(getattr(label, "names", []) or []),
              "fingerprint": f"{builder.info.full_name}:{split}", "tfds_name": tfds_name})

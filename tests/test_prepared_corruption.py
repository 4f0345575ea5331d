"""A flipped bit in an ArrayRecord shard written by tools.prepare_dataset is caught (Riegeli
hashes every chunk) and the error names the shard file and the fix."""

import os

import numpy as np
import pytest

from framework.data import pipeline
from framework.data import synthetic_media as media
from framework.data.array_record_source import array_record
from framework.data.spec import CorruptRecordError
from tools import prepare_dataset


def test_flipped_bit_in_a_shard_names_the_file_and_the_fix(tmp_path):
    root = tmp_path / "images"
    for c, name in enumerate(("cat", "dog")):
        os.makedirs(root / name)
        for i in range(4):
            pixels = media.frame_pixels(i, 48, 64, seed=c * 4 + i)
            (root / name / f"{i}.jpg").write_bytes(media.jpeg_bytes(pixels))
    out = tmp_path / "prepared"
    assert prepare_dataset.main(["images", "--input", str(root), "--split", "train",
                                 "--output", str(out), "--num_shards", "2",
                                 "--workers", "1"]) == 0
    shard = out / "train.array_record-00001-of-00002"
    data = bytearray(shard.read_bytes())
    data[200] ^= 0x01  # Inside the first chunk of records of the second shard.
    shard.write_bytes(data)

    spec = array_record("train", None, str(out))
    failures = []
    for index in range(spec.num_examples):
        try:
            spec.source[index]
        except OSError as e:
            failures.append((index, str(e)))
    assert failures and all(index >= 4 for index, _ in failures)  # Only the damaged shard.
    message = failures[0][1]
    assert str(shard) in message and "hash mismatch" in message, message
    assert "prepare split 'train' again" in message and "--overwrite" in message

    # Through the train pipeline (default on_corrupt="error"): the same names, one error.
    config = {"train": {"name": "array_record", "path": str(out), "split": "train",
                        "preprocess": "decode_image|resize(32)|value_range(-1,1)"},
              "worker_count": 0}
    import ml_collections

    loader = pipeline.make_train_loader(ml_collections.ConfigDict(config), 8, 0)
    with pytest.raises(CorruptRecordError, match=r"record \d+ is corrupt") as caught:
        for batch in loader:
            assert np.isfinite(batch["image"]).all()
    assert str(shard) in str(caught.value)

"""Sources: the extended record format, the tfds source (a tiny TFDS dataset built here
without TensorFlow) and two real JAX processes sharding an array_record split."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

import framework.data  # noqa: F401  (registers datasets and ops)
from framework.data import pipeline, records
from framework.data import synthetic_media as media
from tools import prepare_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A record written by the first version of the format (numeric arrays only).
V1_RECORD = (b'TSR1H\x00\x00\x00{"crc32":1095795077,"arrays":[["label","<i4",[],4],'
             b'["x","|u1",[2,2],4]]}\x03\x00\x00\x00\x00\x01\x02\x03')


def test_records_hold_bytes_str_and_frame_lists_and_read_v1_records():
    example = {"frames": [b"\xff\xd8one", b"", b"three"], "image": b"\x89PNG",
               "caption": "a caf\u00e9 \u2615", "label": np.asarray(2, np.int32),
               "timestamps": np.linspace(0, 1, 3, dtype=np.float32)}
    data = records.encode_example(example)
    out = records.decode_example(data)
    assert out["frames"] == example["frames"] and out["image"] == example["image"]
    assert out["caption"] == example["caption"]
    np.testing.assert_array_equal(out["timestamps"], example["timestamps"])
    with pytest.raises(ValueError, match="checksum"):
        records.decode_example(data[:-1] + bytes([data[-1] ^ 1]))
    old = records.decode_example(V1_RECORD)
    assert int(old["label"]) == 3 and old["x"].tolist() == [[0, 1], [2, 3]]
    with pytest.raises(TypeError, match="unsupported dtype"):
        records.encode_example({"x": [1, "a"]})


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    """A 10 + 4 example TFDS image dataset in array_record format, built without TF."""
    import tensorflow_datasets as tfds
    from PIL import Image

    tmp = tmp_path_factory.mktemp("tfds")

    class TesseraTinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "label": tfds.features.ClassLabel(names=["a", "b", "c"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(10), "test": self._generate_examples(4)}

        def _generate_examples(self, count):
            for i in range(count):
                # Image features take encoded files here: encoding arrays would need TF.
                path = tmp / f"{count}_{i}.png"
                Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(path)
                yield i, {"image": str(path), "label": i % 3}

    TesseraTinyImages(data_dir=str(tmp / "data"), file_format="array_record"
                      ).download_and_prepare()
    return str(tmp / "data")


def test_tfds_source_feeds_the_pipelines(tiny_tfds, tmp_path):
    c = ml_collections.ConfigDict({"data_dir": str(tmp_path), "worker_count": 0})
    common = dict(name="tfds", tfds_name="tessera_tiny_images", tfds_data_dir=tiny_tfds,
                  skip_decoding=("image",), preprocess="decode_image|value_range(0, 255)")
    c.train = dict(common, split="train")
    c.eval = dict(common, split="test")
    spec = pipeline.build_dataset(c, "train")
    assert spec.num_examples == 10 and spec.num_classes == 3
    assert spec.info["class_names"] == ["a", "b", "c"]
    batch = next(iter(pipeline.make_train_loader(c, 10, 0)))
    assert batch["image"].shape == (10, 8, 8, 3) and batch["image"].dtype == np.float32
    levels = batch["image"][:, 0, 0, 0] / 20
    np.testing.assert_array_equal(np.sort(levels), np.arange(10))
    np.testing.assert_array_equal(batch["label"], levels.astype(int) % 3)
    eval_batches = list(pipeline.make_eval_batches(c, 8)())
    assert sum(int(b["mask"].sum()) for b in eval_batches) == 4


def test_tfds_source_names_the_fix_for_a_missing_dataset(tmp_path):
    c = ml_collections.ConfigDict({"data_dir": None, "train": {
        "name": "tfds", "tfds_name": "tessera_no_such_set", "tfds_data_dir": str(tmp_path)}})
    with pytest.raises(ValueError, match="tfds build tessera_no_such_set"):
        pipeline.build_dataset(c, "train")


_DRIVER = """
import hashlib, json, sys
import jax
pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                           process_id=pid)
import grain, ml_collections
import framework.data
from framework.data import pipeline
assert grain.sharding.ShardByJaxProcess().shard_index == jax.process_index() == pid
c = ml_collections.ConfigDict({"data_dir": None, "worker_count": 0})
c.train = dict(name="array_record", path=out, split="train",
               preprocess="decode_image|value_range(0, 255)")
c.eval = dict(c.train)
digest = lambda x: hashlib.sha1(x.tobytes()).hexdigest()
it = iter(pipeline.make_train_loader(c, 4, 7))  # Process index/count from JAX.
train = [digest(x) for _ in range(3) for x in next(it)["image"]]  # One epoch: 3 x 2.
evals = [digest(x) for b in pipeline.make_eval_batches(c, 4)()
         for x, m in zip(b["image"], b["mask"]) if m]
print(json.dumps({"train": train, "eval": evals}))
"""


def test_two_jax_processes_read_disjoint_parts_that_cover_the_split(tmp_path):
    for i in range(13):
        label = f"c{i % 2}"
        os.makedirs(tmp_path / "in" / label, exist_ok=True)
        pixels = media.frame_pixels(i % 16, 16, 16, seed=i)
        (tmp_path / "in" / label / f"{i}.jpg").write_bytes(media.jpeg_bytes(pixels))
    out = str(tmp_path / "prepared")
    assert prepare_dataset.main(["images", "--input", str(tmp_path / "in"), "--split",
                                 "train", "--output", out, "--workers", "1"]) == 0
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", _DRIVER, str(p), port, out], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for p in range(2)]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    spec = pipeline.build_dataset(ml_collections.ConfigDict({"data_dir": None, "train": {
        "name": "array_record", "path": out, "split": "train"}}), "train")
    from framework.data.ops.video import decode_rgb

    everything = {hashlib.sha1(decode_rgb(spec.decode(spec.source[i])["image"])
                               .astype(np.float32).tobytes()).hexdigest()
                  for i in range(spec.num_examples)}
    assert len(everything) == 13
    train = [set(r["train"]) for r in results]
    assert len(train[0]) == len(train[1]) == 6 and not train[0] & train[1]
    assert train[0] | train[1] <= everything  # 12 of 13: the remainder is dropped.
    evals = [r["eval"] for r in results]
    assert not set(evals[0]) & set(evals[1])
    assert sorted(evals[0] + evals[1]) == sorted(everything)  # Eval covers the whole split.

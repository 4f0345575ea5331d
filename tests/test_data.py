"""Tests for framework.data: record format, synthetic datasets, caching, grain pipelines."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import glob
import hashlib
import json
import os

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

import framework.data  # noqa: F401  (registers the datasets)
from framework import registry
from framework.data import cache, pipeline, records, synthetic, transforms
from framework.data.spec import CorruptRecordError, resolve_data_dir
from framework.registry import ConfigError

SHAPES_KW = {"num_train": 192, "num_eval": 50}
MOTION_KW = {"num_train": 64, "num_eval": 20, "num_frames": 4, "image_size": 16}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("datasets"))


def make_config(data_dir, worker_count=0, train=None, eval_=None, **extra):
    """Returns a config.data ConfigDict over small synthetic_shapes splits."""
    c = ml_collections.ConfigDict()
    c.data_dir = str(data_dir)
    c.worker_count = worker_count
    c.train = train or {"name": "synthetic_shapes", "split": "train", **SHAPES_KW}
    c.eval = eval_ or {"name": "synthetic_shapes", "split": "eval", **SHAPES_KW}
    for key, value in extra.items():
        c[key] = value
    return c


def example_keys(images: np.ndarray) -> list[bytes]:
    """Identifies examples by their pixels (the noise makes every image unique)."""
    return [x.tobytes() for x in np.asarray(images)]


def decode_all(spec) -> tuple[np.ndarray, np.ndarray]:
    """Returns (pixels, labels) of every record of a spec, in record order."""
    key = "video" if "video" in spec.info["features"] else "image"
    examples = [spec.decode(spec.source[i]) for i in range(spec.num_examples)]
    return (np.stack([e[key] for e in examples]),
            np.array([e["label"] for e in examples]))


# Record format -------------------------------------------------------------------------------

def test_record_roundtrip_keeps_dtypes_and_shapes():
    example = {"image": np.arange(24, dtype=np.uint8).reshape(2, 4, 3),
               "label": np.asarray(7, np.int32), "weights": np.linspace(0, 1, 5)}
    data = records.encode_example(example)
    assert data == records.encode_example(dict(reversed(example.items())))  # deterministic
    out = records.decode_example(data)
    assert set(out) == set(example)
    for key, value in example.items():
        assert out[key].dtype == value.dtype and out[key].shape == value.shape
        np.testing.assert_array_equal(out[key], value)


@pytest.mark.parametrize("damage", ["magic", "truncate", "flip"])
def test_damaged_record_is_rejected(damage):
    data = bytearray(records.encode_example({"label": np.asarray(1, np.int32),
                                             "image": np.ones((4, 4, 3), np.uint8)}))
    if damage == "magic":
        data[:4] = b"XXXX"
    elif damage == "truncate":
        data = data[:-5]
    else:
        data[-3] ^= 0xFF
    with pytest.raises(ValueError):
        records.decode_example(bytes(data))


# Synthetic datasets --------------------------------------------------------------------------

def test_datasets_are_registered():
    assert "synthetic_shapes" in registry.DATASETS
    assert "synthetic_motion" in registry.DATASETS


def test_generation_is_deterministic_and_splits_differ():
    a, la = synthetic.generate_shapes("train", 40, 32, 0.08)
    b, lb = synthetic.generate_shapes("train", 40, 32, 0.08)
    c, _ = synthetic.generate_shapes("eval", 40, 32, 0.08)
    assert a.tobytes() == b.tobytes() and la.tobytes() == lb.tobytes()
    assert a.tobytes() != c.tobytes()
    v1, _ = synthetic.generate_motion("train", 8, 4, 16, 4, 0.08)
    v2, _ = synthetic.generate_motion("train", 8, 4, 16, 4, 0.08)
    assert v1.tobytes() == v2.tobytes()


def test_generated_data_matches_its_version():
    """Fails when the generators change: then bump SHAPES_VERSION / MOTION_VERSION (the
    cache key, so stale caches are not reused) and update the hashes here."""
    x, y = synthetic.generate_shapes("train", 24, 32, 0.08)
    v, yv = synthetic.generate_motion("train", 8, 4, 16, 4, 0.08)
    shapes = hashlib.sha1(x.tobytes() + y.tobytes()).hexdigest()
    motion = hashlib.sha1(v.tobytes() + yv.tobytes()).hexdigest()
    assert (synthetic.SHAPES_VERSION, shapes) == (
        "v2", "f0c79658463475c7628d9f946bf93a599936ae07")
    assert (synthetic.MOTION_VERSION, motion) == (
        "v2", "bbbf77fedf802bec1c481740488b84c0c7be8dec")


def test_cached_files_are_identical_across_directories(tmp_path):
    paths = [synthetic.synthetic_shapes("eval", str(tmp_path / d), **SHAPES_KW).info["path"]
             for d in ("a", "b")]
    with open(paths[0], "rb") as f0, open(paths[1], "rb") as f1:
        assert f0.read() == f1.read()


def test_cache_is_reused_and_keyed_by_params(tmp_path, monkeypatch):
    spec = synthetic.synthetic_shapes("eval", str(tmp_path), **SHAPES_KW)
    path = spec.info["path"]
    assert path == os.path.join(str(tmp_path), "synthetic_shapes", spec.info["fingerprint"],
                                "eval.array_record")
    sidecar = json.load(open(path[:-len(".array_record")] + ".json"))
    assert sidecar["num_examples"] == 50 and sidecar["params"]["num_eval"] == 50
    assert sidecar["class_names"] == spec.info["class_names"]

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a cached split")

    monkeypatch.setattr(synthetic, "generate_shapes", fail)
    again = synthetic.synthetic_shapes("eval", str(tmp_path), **SHAPES_KW)
    assert again.info["path"] == path and again.num_examples == 50
    monkeypatch.undo()

    other = synthetic.synthetic_shapes("eval", str(tmp_path), num_train=192, num_eval=30)
    assert other.info["path"] != path and other.num_examples == 30
    assert not glob.glob(os.path.join(str(tmp_path), "**", "*.tmp-*"), recursive=True)


def test_damaged_cache_is_regenerated(tmp_path):
    spec = synthetic.synthetic_shapes("eval", str(tmp_path), **SHAPES_KW)
    with open(spec.info["path"], "ab") as f:
        f.write(b"junk")
    spec = synthetic.synthetic_shapes("eval", str(tmp_path), **SHAPES_KW)
    assert len(spec.source) == 50
    decode_all(spec)


def test_concurrent_generation_is_safe(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        specs = list(pool.map(
            lambda _: synthetic.synthetic_shapes("eval", str(tmp_path), **SHAPES_KW), range(4)))
    assert len({s.info["path"] for s in specs}) == 1
    assert all(len(s.source) == 50 for s in specs)
    assert not glob.glob(os.path.join(str(tmp_path), "**", "*.tmp-*"), recursive=True)
    decode_all(specs[0])


def test_shapes_examples_balance_and_ranges(data_dir):
    spec = synthetic.synthetic_shapes("train", data_dir, **SHAPES_KW)
    assert spec.num_classes == 12 and len(spec.info["class_names"]) == 12
    assert spec.info["class_names"][0] == "red circle"
    images, labels = decode_all(spec)
    assert images.shape == (192, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and labels.shape == (192,)
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() < -0.9 and images.max() > 0.9
    counts = np.bincount(labels, minlength=12)
    assert counts.max() - counts.min() <= 1 and counts.tolist() == spec.info["class_counts"]


def test_motion_examples_balance_and_ranges(data_dir):
    spec = synthetic.synthetic_motion("eval", data_dir, **MOTION_KW)
    assert spec.num_classes == 4 and spec.info["class_names"] == ["right", "up", "left", "down"]
    videos, labels = decode_all(spec)
    assert videos.shape == (20, 4, 16, 16, 3) and videos.dtype == np.float32
    assert videos.min() >= -1 and videos.max() <= 1
    assert np.bincount(labels, minlength=4).tolist() == [5, 5, 5, 5]
    assert spec.decode(spec.source[0])["label"].shape == ()


def test_test_split_is_an_alias_of_eval(data_dir):
    a = synthetic.synthetic_shapes("test", data_dir, **SHAPES_KW)
    b = synthetic.synthetic_shapes("eval", data_dir, **SHAPES_KW)
    assert a.info["path"] == b.info["path"]
    with pytest.raises(ValueError, match="split"):
        synthetic.synthetic_shapes("dev", data_dir, **SHAPES_KW)


def _nearest_mean_accuracy(x, y, x_test, y_test, num_classes):
    means = np.stack([x[y == c].mean(0) for c in range(num_classes)])
    dist = ((x_test[:, None, :] - means[None]) ** 2).sum(-1)
    return float((dist.argmin(1) == y_test).mean())


def test_shapes_are_learnable_by_nearest_class_mean():
    x, y = synthetic.generate_shapes("train", 1200, 32, 0.08)
    xt, yt = synthetic.generate_shapes("eval", 300, 32, 0.08)
    flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / 255  # noqa: E731
    accuracy = _nearest_mean_accuracy(flat(x), y, flat(xt), yt, 12)
    assert accuracy > 3 / 12, accuracy  # chance is 1/12


def _displacement(videos, t=4):
    """Returns float (N, 2): the circular shift between frames 0 and t (cross-correlation)."""
    a, b = (videos[:, i].astype(np.float32).mean(-1) for i in (0, t))
    a -= a.mean((1, 2), keepdims=True)
    b -= b.mean((1, 2), keepdims=True)
    corr = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
    size = videos.shape[2]
    dy, dx = np.divmod(corr.reshape(len(videos), -1).argmax(1), size)
    return np.stack([(dy + size // 2) % size - size // 2,
                     (dx + size // 2) % size - size // 2], 1).astype(np.float32)


def test_motion_needs_more_than_one_frame():
    v, y = synthetic.generate_motion("train", 600, 8, 32, 4, 0.08)
    vt, yt = synthetic.generate_motion("eval", 300, 8, 32, 4, 0.08)
    frame = lambda a: a[:, 0].reshape(len(a), -1).astype(np.float32) / 255  # noqa: E731
    single = _nearest_mean_accuracy(frame(v), y, frame(vt), yt, 4)
    motion = _nearest_mean_accuracy(_displacement(v), y, _displacement(vt), yt, 4)
    assert single < 0.4, single  # chance is 0.25
    assert motion > 0.6, motion


def test_data_dir_resolution(monkeypatch):
    monkeypatch.setenv("TESSERA_DATA_DIR", "/some/where")
    assert resolve_data_dir(None) == "/some/where"
    assert resolve_data_dir("/x/y") == "/x/y"
    monkeypatch.delenv("TESSERA_DATA_DIR")
    assert resolve_data_dir(None).endswith(os.path.join(".cache", "tessera", "datasets"))


def test_fingerprint_depends_on_params():
    a = cache.params_fingerprint("v1", {"a": 1, "b": 2})
    assert a == cache.params_fingerprint("v1", {"b": 2, "a": 1})
    assert a != cache.params_fingerprint("v1", {"a": 1, "b": 3})
    assert a != cache.params_fingerprint("v2", {"a": 1, "b": 2})


# Train pipeline ------------------------------------------------------------------------------

def take(iterator, n):
    """Returns n batches as plain numpy copies (frees grain's shared memory promptly)."""
    return [{k: np.array(v) for k, v in next(iterator).items()} for _ in range(n)]


def test_train_batches_have_per_process_shapes(data_dir):
    it = iter(pipeline.make_train_loader(make_config(data_dir), 16, 0))
    batch = next(it)
    assert set(batch) == {"image", "label"}
    assert batch["image"].shape == (16, 32, 32, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (16,) and batch["label"].dtype == np.int32
    it = iter(pipeline.make_train_loader(make_config(data_dir), 16, 0,
                                         process_index=1, process_count=2))
    assert next(it)["image"].shape == (8, 32, 32, 3)


def test_motion_train_batches(data_dir):
    config = make_config(data_dir, train={"name": "synthetic_motion", "split": "train",
                                          **MOTION_KW})
    batch = next(iter(pipeline.make_train_loader(config, 8, 0)))
    assert batch["video"].shape == (8, 4, 16, 16, 3) and batch["label"].shape == (8,)


def test_train_epochs_cover_each_example_once_and_reshuffle(data_dir):
    it = iter(pipeline.make_train_loader(make_config(data_dir), 16, 3))
    epochs = [[k for b in take(it, 12) for k in example_keys(b["image"])] for _ in range(2)]
    assert len(set(epochs[0])) == 192 and set(epochs[0]) == set(epochs[1])
    assert epochs[0] != epochs[1]


def test_train_shuffle_follows_the_seed(data_dir):
    def first(seed):
        return np.concatenate([b["label"] for b in take(
            iter(pipeline.make_train_loader(make_config(data_dir), 16, seed)), 3)])

    a, b, c = first(1), first(1), first(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_train_processes_get_disjoint_shards(data_dir):
    seen = []
    for index in range(2):
        it = iter(pipeline.make_train_loader(make_config(data_dir), 32, 0,
                                             process_index=index, process_count=2))
        seen.append({k for b in take(it, 6) for k in example_keys(b["image"])})
    assert len(seen[0]) == len(seen[1]) == 96 and not seen[0] & seen[1]


@pytest.mark.parametrize("worker_count", [0, 2])
def test_train_iterator_resumes_exactly(data_dir, worker_count):
    config = make_config(data_dir, worker_count=worker_count)
    it = iter(pipeline.make_train_loader(config, 16, 5))
    take(it, 10)
    state = it.get_state()
    expected = take(it, 5)  # Crosses the epoch boundary after batch 12.
    del it
    resumed = iter(pipeline.make_train_loader(config, 16, 5))
    take(resumed, 1)  # The trainer reads a batch before restoring.
    resumed.set_state(state)
    for want, got in zip(expected, take(resumed, 5)):
        np.testing.assert_array_equal(want["label"], got["label"])
        np.testing.assert_array_equal(want["image"], got["image"])


def test_train_iterator_checkpoints_with_orbax(data_dir, tmp_path):
    config = make_config(data_dir)
    it = iter(pipeline.make_train_loader(config, 16, 0))
    take(it, 3)
    manager = ocp.CheckpointManager(
        str(tmp_path / "checkpoints"), item_names=("state", "data", "meta"),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                             enable_async_checkpointing=True))
    state = {"w": np.arange(4.0, dtype=np.float32)}
    manager.save(3, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(it),
        meta=ocp.args.JsonSave({"step": 3})))
    expected = take(it, 4)
    manager.wait_until_finished()
    manager.close()

    manager = ocp.CheckpointManager(str(tmp_path / "checkpoints"),
                                    item_names=("state", "data", "meta"))
    resumed = iter(pipeline.make_train_loader(config, 16, 0))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), data=grain.checkpoint.CheckpointRestore(resumed),
        meta=ocp.args.JsonRestore()))
    manager.close()
    assert restored["meta"] == {"step": 3}
    for want, got in zip(expected, take(resumed, 4)):
        np.testing.assert_array_equal(want["image"], got["image"])


# Eval pipeline -------------------------------------------------------------------------------

@pytest.mark.parametrize("process_count,global_batch", [(1, 16), (2, 16), (3, 12), (2, 128)])
def test_eval_pass_sees_every_example_once(data_dir, process_count, global_batch):
    config = make_config(data_dir)
    spec = pipeline.build_dataset(config, "eval")
    all_keys = example_keys(decode_all(spec)[0])
    local = global_batch // process_count
    expected_batches = -(-spec.num_examples // global_batch)
    seen = []
    for index in range(process_count):
        batches = pipeline.make_eval_batches(config, global_batch, process_index=index,
                                             process_count=process_count)
        first = list(batches())
        assert len(first) == expected_batches
        for batch in first:
            assert batch["image"].shape == (local, 32, 32, 3)
            assert batch["mask"].shape == (local,) and batch["mask"].dtype == bool
            assert np.all(batch["image"][~batch["mask"]] == 0)
            seen += example_keys(batch["image"][batch["mask"]])
        again = list(batches())  # Each call starts a fresh pass.
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a["image"], b["image"])
    assert sorted(seen) == sorted(all_keys)


def test_eval_is_in_record_order_and_works_with_workers(data_dir):
    config = make_config(data_dir, worker_count=2)
    spec = pipeline.build_dataset(config, "eval")
    images, labels = decode_all(spec)
    batches = list(pipeline.make_eval_batches(config, 16)())
    got = np.concatenate([np.asarray(b["image"])[np.asarray(b["mask"])] for b in batches])
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(
        np.concatenate([np.asarray(b["label"])[np.asarray(b["mask"])] for b in batches]),
        labels)


# Errors --------------------------------------------------------------------------------------

def test_unknown_dataset_name_is_a_config_error(data_dir):
    config = make_config(data_dir, train={"name": "synthetic_shape", "split": "train"})
    with pytest.raises(ConfigError, match=r"config\.data\.train\.name.*synthetic_shapes"):
        pipeline.make_train_loader(config, 16, 0)


def test_unknown_dataset_kwarg_is_a_config_error(data_dir):
    config = make_config(data_dir, eval_={"name": "synthetic_shapes", "split": "eval",
                                          "num_evals": 3})
    with pytest.raises(ConfigError, match=r"config\.data\.eval\.num_evals.*num_eval"):
        pipeline.make_eval_batches(config, 16)


def test_bad_batch_sizes_name_the_config_key(data_dir):
    config = make_config(data_dir)
    with pytest.raises(ConfigError, match=r"config\.batch_size=15.*multiple"):
        pipeline.make_train_loader(config, 15, 0, process_index=0, process_count=2)
    with pytest.raises(ConfigError, match=r"config\.batch_size=256.*only 192"):
        pipeline.make_train_loader(config, 256, 0)
    with pytest.raises(ConfigError, match="worker_count"):
        pipeline.make_train_loader(make_config(data_dir, worker_count=-1), 16, 0)


class _DamagedSource:
    """A source whose records `bad` are garbage."""

    def __init__(self, source, bad):
        self.source, self.bad = source, set(bad)

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        return b"garbage" if int(index) in self.bad else self.source[index]


@registry.DATASETS.register("test_damaged_shapes")
def _damaged_shapes(split, data_dir, bad=(3,), **kwargs):
    spec = synthetic.synthetic_shapes(split, data_dir, **kwargs)
    return dataclasses.replace(spec, name="test_damaged_shapes",
                               source=_DamagedSource(spec.source, bad))


def test_corrupt_record_error_names_dataset_and_index(data_dir):
    config = make_config(data_dir, eval_={"name": "test_damaged_shapes", "split": "eval",
                                          "bad": [3], **SHAPES_KW})
    with pytest.raises(CorruptRecordError, match=r"'test_damaged_shapes'.*'eval'.*record 3"):
        list(pipeline.make_eval_batches(config, 16)())
    decode = transforms.DecodeRecord(records.PixelDecoder("image"), "synthetic_shapes", "train")
    with pytest.raises(CorruptRecordError, match=r"'synthetic_shapes'.*record 7"):
        decode.map((7, b"TSR1\x00"))


def test_corrupt_records_can_be_skipped(data_dir):
    eval_ = {"name": "test_damaged_shapes", "split": "eval", "bad": [3, 40], **SHAPES_KW}
    config = make_config(data_dir, eval_=eval_, on_corrupt="skip")
    batches = list(pipeline.make_eval_batches(config, 16)())
    assert sum(int(b["mask"].sum()) for b in batches) == 48
    assert not batches[0]["mask"][3]
    train = dict(eval_, split="train")
    it = iter(pipeline.make_train_loader(make_config(data_dir, train=train,
                                                     on_corrupt="skip"), 16, 0))
    assert len({k for b in take(it, 24) for k in example_keys(b["image"])}) == 190

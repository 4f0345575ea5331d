"""Preprocess strings and ops: parsing and errors, video frame choice, spatial ops, RandAugment,
mixup / cutmix, and exact replay of augmentations when a train iterator resumes."""

from __future__ import annotations

import pickle

import ml_collections
import numpy as np
import pytest

import framework.data  # noqa: F401  (registers datasets and ops)
from framework.data import pipeline, preprocess
from framework.data import synthetic_media as media
from framework.registry import ConfigError

KEY = "config.data.train.preprocess"


def run(text, example, seed=0, **defaults):
    chain = preprocess.build_chain(text, KEY, defaults)
    return chain(dict(example), np.random.default_rng(seed))


def test_parse_positional_keyword_literals_and_nested_pipes():
    assert preprocess.parse("a|b(1, k=(2, 3))| c(s='x|y')", KEY) == [
        ("a", (), {}), ("b", (1,), {"k": (2, 3)}), ("c", (), {"s": "x|y"})]
    assert preprocess.build_chain("", KEY) is None
    chain = preprocess.build_chain("resize_small(8)|random_crop(size=(4, 6))", KEY)
    assert chain.ops[0].size == 8 and chain.ops[1].size == (4, 6)
    pickle.loads(pickle.dumps(chain))  # Runs in grain worker processes.


@pytest.mark.parametrize("text,match", [
    ("resize_smal(8)", r"config\.data\.train\.preprocess='resize_smal'.*resize_small"),
    ("random_crop(8, sise=3)", r"preprocess\[0\]\.sise: unknown key.*size"),
    ("flip_lr|center_crop(1, 2)", r"preprocess\[1\].*at most 1 positional"),
    ("center_crop(8", r"cannot parse op 'center_crop\(8'"),
    ("center_crop(x)", "cannot parse"),
    ("center_crop(-3)", r"preprocess\[0\].*size=-3"),
])
def test_bad_preprocess_strings_are_config_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        preprocess.build_chain(text, KEY)


def frames_example(count=10):
    return {"frames": [media.jpeg_bytes(media.frame_pixels(i, 24, 32)) for i in range(count)],
            "timestamps": np.arange(count, dtype=np.float32) / 8, "label": np.int32(1)}


def decoded_numbers(video):
    return [media.frame_number(frame) for frame in video]


def test_sample_frames_random_window_and_loop():
    example = frames_example(10)
    starts = set()
    for seed in range(30):
        out = run("sample_frames(3, stride=2)|decode_frames", example, seed)
        numbers = decoded_numbers(out["video"])
        assert numbers[1] - numbers[0] == numbers[2] - numbers[1] == 2
        np.testing.assert_allclose(out["timestamps"] * 8, numbers)
        starts.add(numbers[0])
    assert starts == set(range(6))  # every start whose window fits
    looped = run("sample_frames(4, stride=3)|decode_frames", frames_example(5))
    assert decoded_numbers(looped["video"]) == [0, 3, 1, 4]  # 5 frames loop
    assert set(looped) == {"video", "timestamps", "label"}  # frames list decoded and dropped


def test_sample_clips_are_evenly_spread_and_chosen_by_view():
    example = frames_example(10)
    chain = preprocess.build_chain("sample_clips(2, stride=2, num_clips=3)|decode_frames", KEY)
    assert chain.num_views == 3
    firsts = [decoded_numbers(chain(dict(example, view_index=np.int32(v)), None)["video"])
              for v in range(3)]
    assert firsts == [[0, 2], [4, 6], [7, 9]]  # room 10 - 3 = 7: starts 0, 3.5 -> 4, 7
    centred = run("sample_clips(2, stride=2)|decode_frames", example)
    assert decoded_numbers(centred["video"]) == [3, 5]


def test_multiview_digits_are_clip_major():
    chain = preprocess.build_chain(
        "sample_clips(1, num_clips=2, key='video')|three_crop(2, key='video')", KEY)
    video = np.arange(2 * 2 * 6 * 1, dtype=np.float32).reshape(2, 2, 6, 1)  # T=2, H=2, W=6
    views = [chain({"video": video, "view_index": np.int32(v)}, None)["video"]
             for v in range(chain.num_views)]
    assert chain.num_views == 6
    for v, got in enumerate(views):
        clip, crop = divmod(v, 3)
        np.testing.assert_array_equal(got, video[[clip * 1], :, 2 * crop:2 * crop + 2])


def test_spatial_ops_on_images_and_videos():
    image = media.frame_pixels(3, 48, 64)
    out = run("resize_small(24)|center_crop(20)", {"image": image})
    assert out["image"].shape == (20, 20, 3) and out["image"].dtype == np.uint8
    video = np.stack([media.frame_pixels(i, 48, 64) for i in range(4)])
    train = "resize_small(24)|scale_jitter(1.0, 1.5)|random_crop(24)|flip_lr"
    out = run(train, {"video": video}, seed=5)
    assert out["video"].shape == (4, 24, 24, 3)
    for i in range(4):  # Every frame gets the same draws as one image with that seed.
        np.testing.assert_array_equal(out["video"][i],
                                      run(train, {"image": video[i]}, seed=5)["image"])
    flipped = run("flip_lr(p=1.0)", {"image": image})["image"]
    np.testing.assert_array_equal(flipped, image[:, ::-1])
    crops = [run("inception_crop(16, area_min=0.2)", {"image": image}, s)["image"]
             for s in range(5)]
    assert all(c.shape == (16, 16, 3) for c in crops)
    assert len({c.tobytes() for c in crops}) == 5
    with pytest.raises(preprocess.PreprocessError, match="random_crop.*resize first"):
        run("random_crop(100)", {"image": image})


def test_scale_jitter_crop_matches_scale_jitter_then_random_crop():
    video = np.stack([media.frame_pixels(i, 48, 64, texture=20) for i in range(3)])
    for seed in range(4):
        two_steps = run("scale_jitter(0.9, 1.33)|random_crop(40)", {"video": video}, seed)
        fused = run("scale_jitter_crop(40, 0.9, 1.33)", {"video": video}, seed)
        assert fused["video"].shape == (3, 40, 40, 3)
        difference = np.abs(two_steps["video"].astype(float) - fused["video"])
        assert difference.mean() < 0.5, difference.mean()
    floats = run("scale_jitter_crop(40)", {"image": video[0].astype(np.float32)})["image"]
    assert floats.shape == (40, 40, 3) and floats.dtype == np.float32


def test_keep_and_drop():
    example = {"image": np.zeros((2, 2, 3)), "label": np.int32(1), "extra": np.ones(3),
               "view_index": np.int32(0)}
    assert set(run("keep(('image', 'label'))", example)) == {"image", "label", "view_index"}
    assert set(run("drop(('extra',))", example)) == {"image", "label", "view_index"}


def test_value_range_and_normalize():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(run("value_range(-1, 1)", {"image": pixels})["image"],
                               [[[-1, 128 / 127.5 - 1, 1]]], atol=1e-6)
    out = run("normalize(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))", {"image": pixels})
    np.testing.assert_allclose(out["image"], (pixels / 255 - 0.5) / 0.25, rtol=1e-5)
    assert out["image"].dtype == np.float32


def test_randaugment_keeps_shape_and_replays_with_the_same_rng():
    image = media.frame_pixels(2, 32, 32)
    a = run("randaugment(2, 9)", {"image": image}, seed=3)["image"]
    b = run("randaugment(2, 9)", {"image": image}, seed=3)["image"]
    assert a.shape == image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    outs = {run("randaugment(2, 9)", {"image": image}, seed=s)["image"].tobytes()
            for s in range(8)}
    assert len(outs) > 4
    with pytest.raises(preprocess.PreprocessError, match="uint8"):
        run("value_range|randaugment", {"image": image})


def test_mixup_and_cutmix_give_matching_soft_labels():
    batch = {"image": np.stack([np.full((8, 8, 3), v, np.float32) for v in (0.0, 1.0, 2.0)]),
             "label": np.array([0, 1, 2], np.int32)}
    chain = preprocess.build_chain("mixup(0.4)", "config.data.train.batch_preprocess",
                                   {"num_classes": 4})
    out = chain(dict(batch), np.random.default_rng(0))
    lam = 1 - out["label"][0, 1]  # example 0 mixed with example 1
    assert out["label"].shape == (3, 4)
    np.testing.assert_allclose(out["label"].sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(out["image"][:, 0, 0, 0], lam * np.array([0, 1, 2]) +
                               (1 - lam) * np.array([1, 2, 0]), rtol=1e-5)
    out = preprocess.build_chain("cutmix", "b", {"num_classes": 4})(dict(batch),
                                                                    np.random.default_rng(1))
    pasted = (out["image"][0] == 1.0).mean()  # example 0 (zeros) gets a box of example 1
    np.testing.assert_allclose(out["label"][0], [1 - pasted, pasted, 0, 0], rtol=1e-6)


def test_train_preprocess_and_mixup_replay_exactly_after_resume(tmp_path):
    c = ml_collections.ConfigDict({"data_dir": str(tmp_path), "worker_count": 0})
    c.train = dict(name="synthetic_shapes", split="train", num_train=64, num_eval=8,
                   preprocess="inception_crop(24, area_min=0.3)|flip_lr|scale_jitter(1, 1.3)|"
                              "center_crop(20)",
                   batch_preprocess="mixup(0.5)")
    it = iter(pipeline.make_train_loader(c, 8, 3))
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]  # Crosses the epoch boundary at batch 8.
    resumed = iter(pipeline.make_train_loader(c, 8, 3))
    next(resumed)
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        assert got["image"].shape == (8, 20, 20, 3) and got["label"].shape == (8, 12)
        np.testing.assert_array_equal(want["image"], got["image"])
        np.testing.assert_array_equal(want["label"], got["label"])
    other_seed = next(iter(pipeline.make_train_loader(c, 8, 4)))
    assert not np.array_equal(other_seed["image"], expected[0]["image"])


def test_eval_batch_preprocess_is_rejected(tmp_path):
    c = ml_collections.ConfigDict({"data_dir": str(tmp_path), "worker_count": 0})
    c.eval = dict(name="synthetic_shapes", split="eval", num_train=64, num_eval=8,
                  batch_preprocess="mixup")
    with pytest.raises(ConfigError, match=r"config\.data\.eval\.batch_preprocess.*training"):
        pipeline.make_eval_batches(c, 8)

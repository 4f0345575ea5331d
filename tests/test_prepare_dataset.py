"""tools/prepare_dataset on tiny real media made at test time: MP4s (PyAV) and JPEGs (PIL).

Decoded frames must match the source frames (within compression tolerance) at the stored
timestamps; corrupt inputs are skipped, counted and reported; runs resume; existing output is
not replaced silently; the result trains and evaluates through the grain pipelines.
"""

from __future__ import annotations

import csv
import json
import os
import tarfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

import framework.data  # noqa: F401  (registers datasets and ops)
from framework.data import converter, pipeline, prepared
from framework.data import synthetic_media as media
from framework.data.array_record_source import array_record
from framework.data.ops.spatial import resize_pixels, short_side_size
from framework.data.ops.video import decode_rgb
from framework.registry import ConfigError
from tools import prepare_dataset

SOURCE_FPS = 8
# Mean absolute pixel error allowed after H.264 (crf 12) + JPEG (q 90) + resizing.
TOLERANCE = 6.0


def prepare(*args) -> int:
    return prepare_dataset.main([str(a) for a in args])


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    """root/<class>/*.mp4: 2 classes x 2 videos (16 or 12 frames at 8 fps) + a corrupt one."""
    root = tmp_path_factory.mktemp("videos")
    sources = {}
    for c, name in enumerate(("jumping", "running")):
        os.makedirs(root / name)
        for v in range(2):
            path = root / name / f"clip{v}.mp4"
            sources[f"{name}/clip{v}.mp4"] = media.write_video(
                str(path), num_frames=16 - 4 * v, fps=SOURCE_FPS, seed=2 * c + v)
    valid = (root / "jumping" / "clip0.mp4").read_bytes()
    (root / "running" / "broken.mp4").write_bytes(valid[: len(valid) // 3])
    return root, sources


@pytest.fixture(scope="module")
def prepared_videos(video_dir, tmp_path_factory):
    root, _ = video_dir
    out = tmp_path_factory.mktemp("prepared") / "videos"
    assert prepare("videos", "--input", root, "--split", "train", "--output", out,
                   "--short_side", 32, "--num_shards", 2, "--workers", 2) == 0
    return out


def stored_examples(out, split="train") -> list[dict]:
    spec = array_record(split, None, str(out))
    return [spec.decode(spec.source[i]) for i in range(spec.num_examples)]


def test_video_frames_match_the_source_at_their_timestamps(video_dir, prepared_videos):
    _, sources = video_dir
    info = prepared.read_info(str(prepared_videos))
    assert info["class_names"] == ["jumping", "running"]
    assert info["splits"]["train"]["num_examples"] == 4
    assert info["splits"]["train"]["class_counts"] == [2, 2]
    examples = {e["key"]: e for e in stored_examples(prepared_videos)}
    assert sorted(examples) == sorted(sources)
    for key, source in sources.items():
        example = examples[key]
        assert int(example["label"]) == (key.startswith("running"))
        assert len(example["frames"]) == len(source) and example["fps"] == SOURCE_FPS
        for jpeg, time in zip(example["frames"], example["timestamps"]):
            pixels = decode_rgb(jpeg)
            index = int(round(time * SOURCE_FPS))
            assert pixels.shape == (32, 43, 3)  # 48x64 with the short side at 32
            assert media.frame_number(pixels) == index
            expected = resize_pixels(source[index], *short_side_size(48, 64, 32))
            assert np.abs(pixels.astype(float) - expected).mean() < TOLERANCE


def test_corrupt_video_is_reported_skipped_and_counted(prepared_videos):
    report = json.loads((prepared_videos / "train_report.json").read_text())
    assert report["num_inputs"] == 5 and report["num_converted"] == 4
    assert report["num_skipped"] == 1
    assert report["skipped"][0]["input"] == os.path.join("running", "broken.mp4")
    assert "cannot decode video" in report["skipped"][0]["reason"]
    info = prepared.read_info(str(prepared_videos))
    assert info["splits"]["train"]["num_skipped"] == 1


def test_frame_rate_resampling_keeps_the_nearest_frames(video_dir, tmp_path):
    root, sources = video_dir
    assert prepare("videos", "--input", root, "--split", "train", "--output", tmp_path,
                   "--short_side", 0, "--fps", 4, "--workers", 1) == 0
    example = {e["key"]: e for e in stored_examples(tmp_path)}["jumping/clip0.mp4"]
    np.testing.assert_allclose(example["timestamps"], np.arange(8) / 4)
    numbers = [media.frame_number(decode_rgb(f)) for f in example["frames"]]
    assert numbers == list(range(0, 16, 2))
    source = sources["jumping/clip0.mp4"]
    assert np.abs(decode_rgb(example["frames"][3]).astype(float) - source[6]).mean() < TOLERANCE


def test_kinetics_csv_trimmed_untrimmed_and_missing_clips(tmp_path):
    clips = tmp_path / "clips"
    os.makedirs(clips / "nested")
    media.write_video(str(clips / "nested" / "abc_000001_000002.mp4"), num_frames=8, seed=1)
    media.write_video(str(clips / "untrimmed.mp4"), num_frames=16, seed=2)  # 2 s at 8 fps
    rows = [("pour", "abc", 1, 2, "train"), ("stir", "untrimmed", 1, 2, "train"),
            ("stir", "gone", 0, 10, "train"), ("pour", "other", 0, 10, "validate")]
    with open(tmp_path / "k.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        writer.writerows(rows)
    out = tmp_path / "out"
    assert prepare("videos", "--input", tmp_path / "k.csv", "--video_root", clips, "--split",
                   "train", "--output", out, "--short_side", 0, "--workers", 1) == 0
    examples = {e["key"]: e for e in stored_examples(out)}
    assert sorted(examples) == ["abc_000001_000002", "untrimmed_000001_000002"]
    trimmed, untrimmed = examples["abc_000001_000002"], examples["untrimmed_000001_000002"]
    assert int(trimmed["label"]) == 0 and int(untrimmed["label"]) == 1  # pour, stir
    assert len(trimmed["frames"]) == 8
    # The untrimmed video is cut to [1 s, 2 s): source frames 8..15, timestamps from 0.
    np.testing.assert_allclose(untrimmed["timestamps"], np.arange(8) / 8)
    assert [media.frame_number(decode_rgb(f)) for f in untrimmed["frames"]] == list(range(8, 16))
    report = json.loads((out / "train_report.json").read_text())
    assert [s["input"] for s in report["skipped"]] == ["gone_000000_000010"]
    assert "no file" in report["skipped"][0]["reason"]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """root/<class>/*.jpg: 3 classes x 3 images (64x48) and one truncated JPEG."""
    root = tmp_path_factory.mktemp("images")
    sources = {}
    for c, name in enumerate(("cat", "dog", "owl")):
        os.makedirs(root / name)
        for i in range(3):
            pixels = media.frame_pixels(i, 48, 64, seed=c * 3 + i)
            (root / name / f"{i}.jpg").write_bytes(media.jpeg_bytes(pixels))
            sources[f"{name}/{i}.jpg"] = pixels
    whole = media.jpeg_bytes(media.frame_pixels(0, 48, 64, seed=9))
    (root / "dog" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return root, sources


def test_images_truncated_jpeg_is_skipped_and_the_rest_converted(image_dir, tmp_path):
    root, sources = image_dir
    assert prepare("images", "--input", root, "--split", "train", "--output", tmp_path,
                   "--workers", 1) == 0
    examples = {e["key"]: e for e in stored_examples(tmp_path)}
    assert sorted(examples) == sorted(sources)
    for key, pixels in sources.items():
        decoded = decode_rgb(examples[key]["image"])
        assert np.abs(decoded.astype(float) - pixels).mean() < TOLERANCE
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert report["num_skipped"] == 1 and report["num_converted"] == 9
    assert report["skipped"][0]["input"] == os.path.join("dog", "truncated.jpg")
    assert "truncated" in report["skipped"][0]["reason"]


def test_image_text_from_csv_jsonl_and_tar_with_sentencepiece(tmp_path):
    words = ["red", "green", "blue", "circle", "square", "small", "large", "a", "the"]
    rng = np.random.default_rng(0)
    captions = [" ".join(rng.choice(words, 5)) for _ in range(12)]
    os.makedirs(tmp_path / "img")
    for i in range(12):
        Image.fromarray(media.frame_pixels(i, 24, 32)).save(tmp_path / "img" / f"{i}.jpg")
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        writer.writerows([(f"img/{i}.jpg", captions[i]) for i in range(4)])
    with open(tmp_path / "pairs.jsonl", "w") as f:
        for i in range(4, 8):
            f.write(json.dumps({"image": f"img/{i}.jpg", "caption": captions[i]}) + "\n")
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        for i in range(8, 12):
            tar.add(tmp_path / "img" / f"{i}.jpg", arcname=f"k{i}.jpg")
            (tmp_path / f"k{i}.txt").write_text(captions[i])
            if i != 11:  # k11 has no caption: reported.
                tar.add(tmp_path / f"k{i}.txt", arcname=f"k{i}.txt")
    out = tmp_path / "out"
    assert prepare("image_text", "--input", tmp_path / "pairs.csv", tmp_path / "pairs.jsonl",
                   tmp_path / "shard.tar", "--split", "train", "--output", out,
                   "--workers", 1, "--train_sentencepiece", 24) == 0
    examples = stored_examples(out)
    assert len(examples) == 11
    by_caption = {e["caption"]: e for e in examples}
    for i in range(11):
        decoded = decode_rgb(by_caption[captions[i]]["image"])
        assert np.abs(decoded.astype(float) - media.frame_pixels(i, 24, 32)).mean() < TOLERANCE
    report = json.loads((out / "train_report.json").read_text())
    assert report["skipped"] == [{"input": "shard.tar:k11", "reason":
                                  "MediaError: caption missing in the tar"}]
    import sentencepiece

    model_path = str(out / "sentencepiece_24.model")
    model = sentencepiece.SentencePieceProcessor(model_file=model_path)
    assert model.decode(model.encode(captions[0])) == captions[0]
    # Through the pipeline with the image-text helper's tokenize op and the trained model.
    c = ml_collections.ConfigDict({"data_dir": None, "worker_count": 0, "train": {
        "name": "array_record", "path": str(out), "split": "train",
        "preprocess": "decode_image|resize(16)|value_range(-1, 1)|"
                      f"tokenize(12, model={model_path!r}, inkey='caption')"}})
    batch = next(iter(pipeline.make_train_loader(c, 4, 0)))
    assert set(batch) == {"image", "text"}  # caption and key (str) are dropped
    assert batch["image"].shape == (4, 16, 16, 3) and batch["text"].shape == (4, 12)
    assert batch["text"].dtype == np.int32 and (batch["text"] > 0).any()


def test_sentencepiece_larger_than_the_captions_allow_is_refused(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    with open(pairs, "w") as f:
        for i in range(4):
            (tmp_path / f"{i}.jpg").write_bytes(media.jpeg_bytes(media.frame_pixels(i, 8, 8)))
            f.write(json.dumps({"image": f"{i}.jpg", "caption": f"a red square {i}"}) + "\n")
    out = tmp_path / "out"
    assert prepare("image_text", "--input", pairs, "--split", "train", "--output", out,
                   "--workers", 1, "--train_sentencepiece", 32000) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    pieces = int(error.split("allow only ")[1].split()[0])
    assert error.startswith("Error: --train_sentencepiece 32000: the 4 captions allow only")
    assert f"run again with --train_sentencepiece {pieces} or fewer" in error
    assert not any("sentencepiece" in name for name in os.listdir(out))
    assert prepare("image_text", "--input", pairs, "--split", "train", "--output", out,
                   "--workers", 1, "--train_sentencepiece", pieces) == 0
    assert sorted(n for n in os.listdir(out) if "sentencepiece" in n) == [
        f"sentencepiece_{pieces}.model", f"sentencepiece_{pieces}.vocab"]


def test_existing_output_is_never_replaced_silently(image_dir, tmp_path, capsys):
    root, _ = image_dir
    args = ["images", "--input", root, "--split", "train", "--output", tmp_path, "--workers", 1]
    assert prepare(*args) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert prepare(*args, "--short_side", 16) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert prepare(*args, "--short_side", 16, "--overwrite") == 0
    assert decode_rgb(stored_examples(tmp_path)[0]["image"]).shape == (16, 21, 3)


def test_short_side_never_upscales_unless_asked(image_dir, tmp_path):
    root, _ = image_dir
    for flags, shape in (((), (48, 64, 3)), (("--upscale",), (96, 128, 3))):
        out = tmp_path / "-".join(("out",) + flags)
        assert prepare("images", "--input", root, "--split", "train", "--output", out,
                       "--workers", 1, "--short_side", 96, *flags) == 0
        assert {decode_rgb(e["image"]).shape for e in stored_examples(out)} == {shape}


def test_interrupted_run_says_where_it_stopped_and_resumes(image_dir, tmp_path, monkeypatch,
                                                          capsys):
    root, _ = image_dir
    args = ["images", "--input", root, "--split", "train", "--output", tmp_path,
            "--workers", 1, "--num_shards", 5]
    calls, interrupted = [], []
    real = converter.convert_one

    def flaky(task):
        calls.append(task[1]["name"])
        if len(calls) == 5 and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt  # As if the user pressed Ctrl-C in the 5th input.
        return real(task)

    monkeypatch.setattr(converter, "convert_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        prepare(*args)
    err = capsys.readouterr().err
    assert "stopped in shard 2 of 5 (inputs 4..5); 2 finished shards are kept" in err
    finished = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("train.array_record-*")}
    assert len(finished) == 2
    calls.clear()
    assert prepare(*args) == 0
    assert "resuming; 2 of 5 shards (4 inputs)" in capsys.readouterr().err
    assert len(calls) == 6  # Only the 10 - 4 inputs of the unfinished shards.
    for name, mtime in finished.items():
        assert (tmp_path / name).stat().st_mtime_ns == mtime
    assert len(stored_examples(tmp_path)) == 9


def test_missing_preprocess_for_encoded_records_is_a_config_error(prepared_videos):
    c = ml_collections.ConfigDict({"data_dir": None, "worker_count": 0, "train": {
        "name": "array_record", "path": str(prepared_videos), "split": "train"}})
    with pytest.raises(ConfigError, match=r"config\.data\.train\.preprocess: required"):
        pipeline.make_train_loader(c, 2, 0)
    c.train.split = "eval"
    with pytest.raises(ValueError, match="no split 'eval'; prepared splits: train"):
        pipeline.make_train_loader(c, 2, 0)

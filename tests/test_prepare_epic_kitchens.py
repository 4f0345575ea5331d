"""tools/prepare_dataset on an Epic-Kitchens-100 annotation CSV and small real videos: each
action segment becomes a record of its frames between start and stop time with its verb and
noun class; bad rows and missing videos are skipped and reported; a CSV without labels is a
one-line error. (The Epic-Kitchens configs train and evaluate on this set in
tests/test_paper_configs_run.py, through tests/paper_fixtures_epic.py.)"""

from __future__ import annotations

import json
import os

import numpy as np
import paper_fixtures_epic as epic
import pytest

import framework.data  # noqa: F401  (registers datasets and ops)
from framework.data import prepared
from framework.data import synthetic_media as media
from framework.data.array_record_source import array_record
from framework.data.epic_kitchens_inputs import parse_timestamp
from framework.data.ops.video import decode_rgb
from tools import prepare_dataset


def prepare(*args) -> int:
    return prepare_dataset.main([str(a) for a in args])


def examples_of(out, split: str) -> dict[str, dict]:
    spec = array_record(split, None, str(out))
    examples = [spec.decode(spec.source[i]) for i in range(spec.num_examples)]
    return {e["key"]: e for e in examples}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The fixture's videos and CSVs, plus a train CSV with bad rows appended."""
    root = epic.write_sources(str(tmp_path_factory.mktemp("epic") / "sources"))
    rows = [epic.segment_row("train", i, s) for i, s in enumerate(epic.SEGMENTS["train"])]
    bad = [epic.segment_row("train", 90, ("P09_01", 0.0, 1.0, "open", 3, "door", 3)),
           epic.segment_row("train", 91, ("P01_01", 2.0, 1.0, "open", 3, "door", 3)),
           epic.segment_row("train", 92, ("P01_01", 0.0, 1.0, "open", 97, "door", 3))]
    bad[1][4] = "00:00:02.00"
    bad.append(epic.segment_row("train", 93, ("P01_01", 0.0, 1.0, "open", 3, "door", 3)))
    bad[3][4] = "2 seconds"
    epic.write_csv(os.path.join(root, "with_bad_rows.csv"), rows + bad)
    return root


def test_segments_become_clips_with_verb_and_noun_labels(sources, tmp_path, capsys):
    out = tmp_path / "ek"
    assert prepare("videos", "--input", os.path.join(sources, "with_bad_rows.csv"), "--split",
                   "train", "--output", out, "--short_side", 0, "--workers", 1) == 0
    assert prepare("videos", "--input", os.path.join(sources, "EPIC_100_validation.csv"),
                   "--split", "validation", "--output", out, "--short_side", 0,
                   "--workers", 1) == 0
    assert "4 inputs skipped" in capsys.readouterr().err
    info = prepared.read_info(str(out))
    assert info["kind"] == "video_verb_noun"
    names = info["class_names"]
    assert len(names) == 97 + 300 and names[0] == "verb:0" and names[97] == "noun:0"
    assert {"verb_label", "noun_label"} <= set(info["features"]) and "label" not in info[
        "features"]
    counts = info["splits"]["train"]["class_counts"]
    assert counts[3] == 3 and counts[0] == 3 and counts[97 + 12] == 2 and sum(counts) == 16

    train = examples_of(out, "train")
    assert sorted(train) == sorted(f"{v}_train_{i}" for i, (v, *_) in
                                   enumerate(epic.SEGMENTS["train"]))
    for i, (video, start, stop, _, verb, _, noun) in enumerate(epic.SEGMENTS["train"]):
        example = train[f"{video}_train_{i}"]
        assert (int(example["verb_label"]), int(example["noun_label"])) == (verb, noun)
        count = round((stop - start) * epic.FPS)
        np.testing.assert_allclose(example["timestamps"], np.arange(count) / epic.FPS)
        first = round(start * epic.FPS)
        assert [media.frame_number(decode_rgb(f)) for f in example["frames"]] == [
            n % 16 for n in range(first, first + count)]
    assert len(examples_of(out, "validation")) == 2

    report = json.loads((out / "train_report.json").read_text())
    reasons = {s["input"]: s["reason"] for s in report["skipped"]}
    assert sorted(reasons) == sorted(["P09_01_train_90", "P01_01_train_91", "P01_01_train_92",
                                      "P01_01_train_93"])
    assert "no video P09/videos/P09_01.MP4" in reasons["P09_01_train_90"]
    assert "not after start_timestamp" in reasons["P01_01_train_91"]
    assert "verb_class '97' is not an id in 0..96" in reasons["P01_01_train_92"]
    assert "'2 seconds' is not HH:MM:SS.ff" in reasons["P01_01_train_93"]
    assert "line 13" in reasons["P01_01_train_93"]


def test_released_class_files_name_the_classes(sources, tmp_path):
    root = tmp_path / "with_classes"
    os.makedirs(root)
    epic.write_csv(str(root / "EPIC_100_validation.csv"),
                   [epic.segment_row("validation", i, s)
                    for i, s in enumerate(epic.SEGMENTS["validation"])])
    for part, keys in (("verb", ["take", "put", "wash", "open"]),
                       ("noun", [f"n{i}" for i in range(13)])):
        with open(root / f"EPIC_100_{part}_classes.csv", "w") as f:
            f.write("id,key,instances,category\n")
            f.writelines(f"{i},{key},[],x\n" for i, key in enumerate(keys))
    out = tmp_path / "out"
    assert prepare("videos", "--input", root / "EPIC_100_validation.csv", "--video_root",
                   sources, "--split", "validation", "--output", out, "--short_side", 0,
                   "--workers", 1) == 0
    names = prepared.read_info(str(out))["class_names"]
    assert names[:4] == ["verb:take", "verb:put", "verb:wash", "verb:open"]
    assert names[4:] == [f"noun:n{i}" for i in range(13)]


def test_a_csv_without_labels_or_videos_is_a_one_line_error(sources, tmp_path, capsys):
    test_csv = tmp_path / "EPIC_100_test_timestamps.csv"
    test_csv.write_text("narration_id,participant_id,video_id,narration_timestamp,"
                        "start_timestamp,stop_timestamp,start_frame,stop_frame\n"
                        "P01_101_0,P01,P01_101,00:00:01.00,00:00:00.50,00:00:02.00,25,100\n")
    assert prepare("videos", "--input", test_csv, "--video_root", sources, "--split", "test",
                   "--output", tmp_path / "out", "--workers", 1) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ")
    assert "no column(s) verb_class, noun_class" in err[0]
    assert prepare("videos", "--input", os.path.join(sources, "EPIC_100_train.csv"),
                   "--video_root", tmp_path / "nowhere", "--split", "train", "--output",
                   tmp_path / "out", "--workers", 1) == 2
    assert "not a directory" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_timestamps_parse_to_seconds():
    assert parse_timestamp("00:00:01.089") == pytest.approx(1.089)
    assert parse_timestamp("01:02:03.5") == pytest.approx(3723.5)
    assert parse_timestamp("00:10:00") == 600
    with pytest.raises(ValueError, match="not HH:MM:SS.ff"):
        parse_timestamp("1.5")

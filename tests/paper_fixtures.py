"""Tiny datasets in the paper configs' real formats, for tests/test_paper_configs_run.py.

- Video sets (Kinetics, Moments in Time, SSv2): `tools.prepare_dataset videos` output from
  small real MP4s, one directory per name the configs use. Epic-Kitchens: `tools.prepare_dataset
  videos` on an annotation CSV in the released format (tests/paper_fixtures_epic.py), records
  with `verb_label` / `noun_label`.
- Image-text pairs: `tools.prepare_dataset image_text` output from JPEGs and a CSV, with the
  SentencePiece model it trains.
- ImageNet: a TFDS `imagenet2012` data directory (the real builder's features and version,
  a few JPEGs per split) written without TensorFlow.

A new config whose data path is one of these names needs nothing here. For another prepared
video or image-text set, add its name (and class count) to VIDEO_SETS or IMAGE_TEXT_SETS;
for a set in another released format, write its sources and prepare them as
tests/paper_fixtures_epic.py does; for
another TFDS name, add a `write_<name>_tfds` like `write_imagenet_tfds` and call it from the
`paper_runs` fixture in tests/test_paper_configs_run.py (configs read TFDS from
`tfds_data_dir`, which the test points at the fixture's directory).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil

import numpy as np
import paper_fixtures_epic

from framework.data import prepared
from framework.data import synthetic_media as media
from tools import prepare_dataset

# name: the dataset's number of classes (the records use the first two).
VIDEO_SETS = {"kinetics400": 400, "kinetics600": 600, "kinetics700": 700,
              "moments_in_time": 339, "ssv2": 174}
EPIC = "epic_kitchens"
IMAGE_TEXT_SETS = ("webli_en", "cc12m_yfcc100m")
EVAL_SPLIT = "validation"


def _prepare(*args) -> None:
    status = prepare_dataset.main([str(a) for a in args])
    if status != 0:
        raise RuntimeError(f"tools.prepare_dataset {' '.join(map(str, args))} failed.")


def write_video_sets(root: str) -> None:
    """Writes root/<name> for every VIDEO_SETS name and EPIC: 8 train and 2 validation
    videos of 2 classes (12 frames of 48x64 at 8 fps, stored with short side 48)."""
    sources = os.path.join(root, "_videos")
    for split, count in (("train", 4), (EVAL_SPLIT, 1)):
        for label, name in enumerate(("left", "right")):
            os.makedirs(os.path.join(sources, split, name))
            for v in range(count):
                media.write_video(os.path.join(sources, split, name, f"{v}.mp4"),
                                  num_frames=12, seed=10 * label + v)
    first = os.path.join(root, "_prepared")
    for split in ("train", EVAL_SPLIT):
        _prepare("videos", "--input", os.path.join(sources, split), "--split", split,
                 "--output", first, "--short_side", 48, "--workers", 1)
    for name, num_classes in VIDEO_SETS.items():
        shutil.copytree(first, os.path.join(root, name))
        _set_class_count(os.path.join(root, name), num_classes)
    paper_fixtures_epic.write_epic_kitchens(root, EPIC)


def _set_class_count(directory: str, num_classes: int) -> None:
    """Lists `num_classes` class names in the sidecar of the prepared set in `directory`, as
    the full dataset's would (ops such as mixup size their one-hot labels by it)."""
    info_path = os.path.join(directory, prepared.INFO_FILE)
    with open(info_path) as f:
        info = json.load(f)
    names = info["class_names"]
    info["class_names"] = names + [f"class_{i}" for i in range(len(names), num_classes)]
    for split in info["splits"].values():
        split["class_counts"] += [0] * (num_classes - len(split["class_counts"]))
    with open(info_path, "w") as f:
        json.dump(info, f)


def write_image_text_sets(root: str) -> str:
    """Writes root/<name> for every IMAGE_TEXT_SETS name (8 JPEG + caption pairs) and
    returns the path of the SentencePiece model trained on the captions."""
    words = ["red", "green", "blue", "circle", "square", "small", "large", "a", "the", "of"]
    rng = np.random.default_rng(0)
    sources = os.path.join(root, "_pairs")
    os.makedirs(sources)
    with open(os.path.join(sources, "pairs.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        for i in range(8):
            (open(os.path.join(sources, f"{i}.jpg"), "wb")
             .write(media.jpeg_bytes(media.frame_pixels(i, 40, 48, seed=i))))
            writer.writerow([f"{i}.jpg", " ".join(rng.choice(words, 6))])
    first = os.path.join(root, IMAGE_TEXT_SETS[0])
    _prepare("image_text", "--input", os.path.join(sources, "pairs.csv"), "--split", "train",
             "--output", first, "--workers", 1, "--train_sentencepiece", 30)
    for name in IMAGE_TEXT_SETS[1:]:
        shutil.copytree(first, os.path.join(root, name))
    (model,) = glob.glob(os.path.join(first, "*.model"))
    return model


def write_imagenet_tfds(data_dir: str, tmp: str) -> None:
    """Writes a TFDS `imagenet2012` (the registered builder's version and features) with 8
    train and 4 validation JPEGs under `data_dir`, in the array_record file format."""
    import tensorflow_datasets as tfds

    features = tfds.builder("imagenet2012", data_dir=tmp).info.features
    version = tfds.builder_cls("imagenet2012").VERSION

    class TinyImagenet(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "imagenet2012"
        VERSION = version

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(8), EVAL_SPLIT: self._generate_examples(4)}

        def _generate_examples(self, count):
            for i in range(count):
                # Image features take encoded files here: encoding arrays would need TF.
                path = os.path.join(tmp, f"{count}_{i}.jpg")
                with open(path, "wb") as f:
                    f.write(media.jpeg_bytes(media.frame_pixels(i, 40, 56, seed=i)))
                yield i, {"image": path, "label": 3 * i, "file_name": f"{i}.JPEG"}

    TinyImagenet(data_dir=data_dir, file_format="array_record").download_and_prepare()

"""What `tools/prepare_dataset.py` converts: listing the inputs (video or image folders, a
Kinetics CSV, image-text CSV / JSONL / tar shards) as items, and turning one item into a
record (in a worker process).

An item is a plain dict: "name" (what reports call it), "path" (the media file) or "tar",
"offset", "size" (a member of a tar shard), "label" (int), "caption" (str) or "verb" /
"noun" (ints; Epic-Kitchens, framework.data.epic_kitchens_inputs), and for clips cut from
longer videos "start" / "end" in seconds. An item with "error" is reported as
skipped with that reason (e.g. a clip listed in the CSV but missing on disk).
"""

from __future__ import annotations

import csv
import json
import os
import tarfile
from collections.abc import Iterable

import numpy as np

from framework.data.media import MediaError, decode_video, read_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _files(root: str, extensions: tuple[str, ...]) -> list[str]:
    found = []
    for directory, _, names in os.walk(root):
        found += [os.path.join(directory, n) for n in names if n.lower().endswith(extensions)]
    return sorted(found)


def class_folder_items(root: str, extensions: tuple[str, ...],
                       class_names: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """Lists `root/<class>/<file>` (files anywhere below the class folder).

    Returns (items sorted by path, class names). Labels index `class_names` (default: the
    sorted class folder names); raises ValueError for a folder not in a given list.
    """
    if not os.path.isdir(root):
        raise ValueError(f"{root}: not a directory (expected root/<class>/<file>).")
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    names = list(class_names) if class_names else folders
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise ValueError(f"{root}: class folders {unknown[:5]} are not among the dataset's "
                         f"{len(names)} classes (from the splits prepared before).")
    items = []
    for folder in folders:
        for path in _files(os.path.join(root, folder), extensions):
            items.append({"name": os.path.relpath(path, root), "path": path,
                          "label": names.index(folder)})
    if not items:
        raise ValueError(f"{root}: no files ending in {', '.join(extensions)} under "
                         "root/<class>/.")
    return items, names


def kinetics_items(csv_path: str, video_root: str, split: str | None
                   ) -> tuple[list[dict], list[str]]:
    """Lists the clips of a Kinetics CSV (columns label, youtube_id, time_start, time_end and
    optionally split) found under `video_root`, keeping rows of `split` (None: all rows).

    A clip is the file `<youtube_id>_<start:06d>_<end:06d>.<ext>` (trimmed: decoded whole) or
    `<youtube_id>.<ext>` (untrimmed: decoded from time_start to time_end) anywhere below
    video_root; a row without either becomes an item with "error". Class names are the sorted
    labels of the whole CSV, so every split gets the same label numbers.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"label", "youtube_id", "time_start", "time_end"}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(f"{csv_path}: expected a header with {', '.join(sorted(needed))} "
                         "(and optionally split).")
    class_names = sorted({r["label"] for r in rows})
    files = {}
    for path in _files(video_root, VIDEO_EXTENSIONS):
        files.setdefault(os.path.splitext(os.path.basename(path))[0], path)
    items = []
    for row in rows:
        if split is not None and row.get("split", split) != split:
            continue
        start, end = float(row["time_start"]), float(row["time_end"])
        trimmed = f"{row['youtube_id']}_{int(start):06d}_{int(end):06d}"
        item = {"name": trimmed, "label": class_names.index(row["label"])}
        if trimmed in files:
            item["path"] = files[trimmed]
        elif row["youtube_id"] in files:
            item.update(path=files[row["youtube_id"]], start=start, end=end)
        else:
            item["error"] = f"no file {trimmed}.* or {row['youtube_id']}.* under {video_root}"
        items.append(item)
    if not items:
        raise ValueError(f"{csv_path}: no rows with split {split!r}.")
    return items, class_names


def image_text_items(paths: Iterable[str]) -> list[dict]:
    """Lists image-caption pairs from CSV or JSONL files (fields "image": a path relative to
    the file, "caption") and webdataset-style tar shards (members KEY.jpg + KEY.txt)."""
    items = []
    for path in paths:
        if path.endswith(".tar"):
            items += _tar_items(path)
            continue
        base = os.path.dirname(os.path.abspath(path))
        with open(path, newline="") as f:
            if path.endswith(".jsonl"):
                rows = [json.loads(line) for line in f if line.strip()]
            elif path.endswith(".csv"):
                rows = list(csv.DictReader(f))
            else:
                raise ValueError(f"{path}: expected a .csv, .jsonl or .tar file.")
        for number, row in enumerate(rows):
            if "image" not in row or "caption" not in row:
                raise ValueError(f"{path}: row {number} lacks 'image' or 'caption'.")
            items.append({"name": f"{os.path.basename(path)}:{row['image']}",
                          "path": os.path.join(base, row["image"]), "caption": row["caption"]})
    return items


def _tar_items(path: str) -> list[dict]:
    images, captions = {}, {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = os.path.splitext(member.name)
            if ext.lower() in IMAGE_EXTENSIONS:
                images[key] = member
            elif ext.lower() == ".txt":
                captions[key] = tar.extractfile(member).read().decode("utf-8").strip()
    items = []
    for key in sorted(images.keys() | captions.keys()):
        item = {"name": f"{os.path.basename(path)}:{key}", "caption": captions.get(key, "")}
        if key not in images or key not in captions:
            item["error"] = f"{'image' if key not in images else 'caption'} missing in the tar"
        else:
            item.update(tar=path, offset=images[key].offset_data, size=images[key].size)
        items.append(item)
    return items


def _read_media(item: dict) -> bytes:
    if "tar" in item:
        with open(item["tar"], "rb") as f:
            f.seek(item["offset"])
            return f.read(item["size"])
    try:
        with open(item["path"], "rb") as f:
            return f.read()
    except OSError as e:
        raise MediaError(f"{item['path']}: {e.strerror}.") from None


def counted_classes(item: dict) -> list[int]:
    """Returns the dataset classes a converted `item` counts towards (split class_counts):
    its "classes" (Epic-Kitchens: verb and num_verbs + noun), else [label], else []."""
    if "classes" in item:
        return [int(c) for c in item["classes"]]
    return [int(item["label"])] if "label" in item else []


def convert_item(kind: str, item: dict, params: dict) -> dict:
    """Returns the record of one item: video {"frames": [JPEG bytes], "timestamps" float32
    (T,), "fps" float32, "label" int32, "key" str}; video_verb_noun the same with int32
    "verb_label" and "noun_label" instead of "label"; image {"image": bytes, "label",
    "key"}; image_text {"image": bytes, "caption": str, "key"}. Raises MediaError when the
    item's media are unusable."""
    if "error" in item:
        raise MediaError(item["error"])
    record = {"key": item["name"]}
    if kind in ("video", "video_verb_noun"):
        clip = decode_video(item["path"], fps=params["fps"], short_side=params["short_side"],
                            quality=params["jpeg_quality"], start=item.get("start", 0.0),
                            end=item.get("end"), upscale=params.get("upscale", False))
        record.update(frames=clip.frames, timestamps=clip.timestamps,
                      fps=np.float32(clip.fps))
    else:
        record["image"] = read_image(_read_media(item), item["name"],
                                     short_side=params["short_side"],
                                     quality=params["jpeg_quality"],
                                     upscale=params.get("upscale", False))
    if kind == "image_text":
        record["caption"] = item["caption"]
    elif kind == "video_verb_noun":
        record.update(verb_label=np.int32(item["verb"]), noun_label=np.int32(item["noun"]))
    else:
        record["label"] = np.int32(item["label"])
    return record


_VIDEO = {"frames": {"dtype": "bytes[]", "shape": [None]},
          "timestamps": {"dtype": "float32", "shape": [None]},
          "fps": {"dtype": "float32", "shape": []}, "key": {"dtype": "str", "shape": []}}
FEATURES = {
    "video": {**_VIDEO, "label": {"dtype": "int32", "shape": []}},
    "video_verb_noun": {**_VIDEO, "verb_label": {"dtype": "int32", "shape": []},
                        "noun_label": {"dtype": "int32", "shape": []}},
    "image": {"image": {"dtype": "bytes", "shape": []}, "label": {"dtype": "int32", "shape": []},
              "key": {"dtype": "str", "shape": []}},
    "image_text": {"image": {"dtype": "bytes", "shape": []},
                   "caption": {"dtype": "str", "shape": []}, "key": {"dtype": "str", "shape": []}},
}

"""A tiny Epic-Kitchens-100 set in the released format: annotation CSVs with the release's
columns and two small real videos (one in the release layout `P01/videos/P01_01.MP4`, one as
a plain `<video_id>.mp4`), prepared by `tools.prepare_dataset videos` into records with
verb_label / noun_label (what the Epic-Kitchens configs read).
"""

from __future__ import annotations

import csv
import os

from framework.data import synthetic_media as media
from tools import prepare_dataset

FPS = 8
HEADER = ["narration_id", "participant_id", "video_id", "narration_timestamp",
          "start_timestamp", "stop_timestamp", "start_frame", "stop_frame", "narration",
          "verb", "verb_class", "noun", "noun_class", "all_nouns", "all_noun_classes"]
# (video id, start s, stop s, verb, verb class, noun, noun class) of each split's segments.
SEGMENTS = {
    "train": [("P01_01", 0.0, 1.5, "open", 3, "door", 3),
              ("P01_01", 1.5, 2.5, "take", 0, "cup", 12),
              ("P01_01", 2.0, 3.25, "open", 3, "drawer", 8),
              ("P01_01", 3.0, 4.5, "wash", 2, "cup", 12),
              ("P02_01", 0.0, 1.0, "take", 0, "plate", 2),
              ("P02_01", 1.0, 2.125, "wash", 2, "plate", 2),
              ("P02_01", 2.0, 3.0, "open", 3, "door", 3),
              ("P02_01", 3.0, 4.0, "take", 0, "drawer", 8)],
    "validation": [("P01_01", 0.5, 1.75, "take", 0, "cup", 12),
                   ("P02_01", 1.5, 2.75, "open", 3, "door", 3)],
}


def timestamp(seconds: float) -> str:
    """Returns `seconds` as an Epic-Kitchens timestamp HH:MM:SS.ff."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}:{rest:05.2f}"


def segment_row(split: str, index: int, segment: tuple) -> list:
    """Returns the CSV row (HEADER's columns) of one (video, start, stop, verb, verb class,
    noun, noun class) segment."""
    video, start, stop, verb, verb_class, noun, noun_class = segment
    return [f"{video}_{split}_{index}", video.split("_")[0], video, timestamp(start),
            timestamp(start), timestamp(stop), round(start * FPS) + 1, round(stop * FPS),
            f"{verb} {noun}", verb, verb_class, noun, noun_class, f"['{noun}']",
            f"[{noun_class}]"]


def write_csv(path: str, rows: list[list]) -> str:
    """Writes an annotation CSV with the release's header; returns `path`."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def write_sources(root: str) -> str:
    """Writes the videos (5 s at FPS each) and `EPIC_100_<split>.csv` for every split of
    SEGMENTS under `root`; returns root (the CSVs' folder and the video root)."""
    os.makedirs(os.path.join(root, "P01", "videos"), exist_ok=True)
    media.write_video(os.path.join(root, "P01", "videos", "P01_01.MP4"), num_frames=5 * FPS,
                      fps=FPS, seed=1)
    media.write_video(os.path.join(root, "P02_01.mp4"), num_frames=5 * FPS, fps=FPS, seed=2)
    for split, segments in SEGMENTS.items():
        write_csv(os.path.join(root, f"EPIC_100_{split}.csv"),
                  [segment_row(split, i, s) for i, s in enumerate(segments)])
    return root


def write_epic_kitchens(root: str, name: str = "epic_kitchens", short_side: int = 48) -> str:
    """Writes the sources under root/_epic_sources and prepares every split of SEGMENTS into
    root/<name> (train and validation); returns that directory."""
    sources = write_sources(os.path.join(root, "_epic_sources"))
    out = os.path.join(root, name)
    for split in SEGMENTS:
        args = ["videos", "--input", os.path.join(sources, f"EPIC_100_{split}.csv"),
                "--split", split, "--output", out, "--short_side", str(short_side),
                "--workers", "1"]
        if prepare_dataset.main(args) != 0:
            raise RuntimeError(f"tools.prepare_dataset {' '.join(args)} failed.")
    return out

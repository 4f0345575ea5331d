"""Listing an Epic-Kitchens-100 annotation CSV as video items with verb and noun labels, for
`tools/prepare_dataset.py` (the `video_verb_noun` record kind).

The CSV is one of the released `EPIC_100_train.csv` / `EPIC_100_validation.csv` (columns
narration_id, participant_id, video_id, narration_timestamp, start_timestamp, stop_timestamp,
start_frame, stop_frame, narration, verb, verb_class, noun, noun_class, all_nouns,
all_noun_classes; timestamps HH:MM:SS.ff). Each row is one action segment: the clip of
`video_id` from start_timestamp to stop_timestamp, labelled verb_class and noun_class.

Videos are found under the video root in the release's layout
`<participant_id>/videos/<video_id>.MP4`, or as `<video_id>.<ext>` anywhere below it (any
case of a video extension). Rows whose video is missing, or whose timestamps or classes do
not parse, become items with "error" (skipped and listed in the split report).

Class names: `verb:<key>` for each verb class, then `noun:<key>` for each noun class, so that
the dataset's classes line up with a model head of num_verbs + num_nouns logits (verbs
first). Keys come from the release's `EPIC_100_verb_classes.csv` / `EPIC_100_noun_classes.csv`
(columns id, key) when they are beside the annotation CSV; otherwise they are the class ids
of Epic-Kitchens-100's 97 verbs and 300 nouns. A row whose class id is outside the list is
skipped (and reported).
"""

from __future__ import annotations

import csv
import os
import re

EK100_COUNTS = {"verb": 97, "noun": 300}
COLUMNS = ("narration_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp",
           "verb_class", "noun_class")
CLASS_FILES = {"verb": "EPIC_100_verb_classes.csv", "noun": "EPIC_100_noun_classes.csv"}
_TIMESTAMP = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d*)?)$")


def is_epic_kitchens_csv(csv_path: str) -> bool:
    """Returns whether the header of `csv_path` has the Epic-Kitchens annotation columns."""
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f), [])
    return {"narration_id", "video_id", "start_timestamp"} <= set(header)


def parse_timestamp(text: str) -> float:
    """Returns seconds from an Epic-Kitchens timestamp "HH:MM:SS.ff" (any number of
    fraction digits). Raises ValueError naming the text when it has another form."""
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise ValueError(f"timestamp {text!r} is not HH:MM:SS.ff")
    hours, minutes, seconds = match.groups()
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)


def class_names(csv_path: str) -> tuple[list[str], int]:
    """Returns (class names: `verb:<key>` x num_verbs then `noun:<key>` x num_nouns,
    num_verbs) for the annotation CSV `csv_path` (module docstring)."""
    names = {}
    for part in ("verb", "noun"):
        keys = _class_keys(os.path.join(os.path.dirname(os.path.abspath(csv_path)),
                                        CLASS_FILES[part]))
        if keys is None:
            keys = [str(i) for i in range(EK100_COUNTS[part])]
        names[part] = [f"{part}:{key}" for key in keys]
    return names["verb"] + names["noun"], len(names["verb"])


def _class_keys(path: str) -> list[str] | None:
    """Returns the keys of a released class file (columns id, key) ordered by id, or None
    when there is no such file. Raises ValueError when ids are not 0..n-1."""
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"id", "key"} <= set(rows[0]):
        raise ValueError(f"{path}: expected the columns id and key of the released class file.")
    keys = {int(r["id"]): r["key"] for r in rows}
    if sorted(keys) != list(range(len(keys))):
        raise ValueError(f"{path}: class ids are not 0..{len(keys) - 1}.")
    return [keys[i] for i in range(len(keys))]


def video_files(video_root: str, extensions: tuple[str, ...]) -> dict[str, str]:
    """Returns {video id (file name without extension): path} of the videos below
    `video_root`, preferring the release layout `<participant>/videos/<id>.<ext>`."""
    found = {}
    for directory, _, files in os.walk(video_root):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in extensions:
                continue
            path = os.path.join(directory, name)
            if stem not in found or os.path.basename(directory) == "videos":
                found[stem] = path
    return found


def epic_kitchens_items(csv_path: str, video_root: str, extensions: tuple[str, ...],
                        known_names: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """Lists the action segments of an Epic-Kitchens annotation CSV.

    Returns (items, class names). An item: "name" (narration_id), "path", "start" / "end"
    (seconds), "verb" / "noun" (class ids) and "classes" ([verb, num_verbs + noun]: the
    dataset classes it counts towards), or "error" naming the row and the problem.
    `known_names`: the class names of splits prepared before (kept, so every split numbers
    classes alike). Raises ValueError when the CSV lacks the needed columns (e.g. the
    test-timestamps CSV, which has no labels).
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise ValueError(f"{csv_path}: no column(s) {', '.join(missing)}; expected an "
                         "Epic-Kitchens-100 annotation CSV with labels (EPIC_100_train.csv or "
                         "EPIC_100_validation.csv; the test-timestamps CSV has no labels).")
    names, num_verbs = class_names(csv_path)
    if known_names:
        if not all(n.startswith(("verb:", "noun:")) for n in known_names):
            raise ValueError("the --output directory holds splits of another dataset (its "
                             "classes are not Epic-Kitchens verbs and nouns); choose another "
                             "--output directory.")
        names = list(known_names)
        num_verbs = sum(n.startswith("verb:") for n in names)
    counts = {"verb": num_verbs, "noun": len(names) - num_verbs}
    files = video_files(video_root, extensions)
    items = []
    for number, row in enumerate(rows, start=2):  # Line 1 is the header.
        item = {"name": row["narration_id"] or f"{os.path.basename(csv_path)}:{number}"}
        try:
            start = parse_timestamp(row["start_timestamp"])
            end = parse_timestamp(row["stop_timestamp"])
            if end <= start:
                raise ValueError(f"stop_timestamp {row['stop_timestamp']} is not after "
                                 f"start_timestamp {row['start_timestamp']}")
            labels = {}
            for part in ("verb", "noun"):
                text = str(row[f"{part}_class"]).strip()
                if not text.isdigit() or int(text) >= counts[part]:
                    raise ValueError(f"{part}_class {text!r} is not an id in "
                                     f"0..{counts[part] - 1} (other class lists: put "
                                     f"{CLASS_FILES[part]} beside the CSV)")
                labels[part] = int(text)
        except ValueError as e:
            item["error"] = f"{csv_path} line {number}: {e}"
            items.append(item)
            continue
        item.update(start=start, end=end, verb=labels["verb"], noun=labels["noun"],
                    classes=[labels["verb"], num_verbs + labels["noun"]])
        path = files.get(row["video_id"])
        if path is None:
            item["error"] = (f"no video {row['participant_id']}/videos/{row['video_id']}.MP4 "
                             f"or {row['video_id']}.* under {video_root}")
        else:
            item["path"] = path
        items.append(item)
    if not items:
        raise ValueError(f"{csv_path}: no rows.")
    return items, names

"""Layout of a dataset written by `tools/prepare_dataset.py`, shared by the writer and the
`array_record` source.

    <dir>/dataset_info.json                  one JSON sidecar for all splits (below)
    <dir>/<split>.array_record-00000-of-00008 ...   the shards of each split
    <dir>/<split>_report.json                what was converted and what was skipped (why)

dataset_info.json: {"format": FORMAT, "kind": "video" | "video_verb_noun" (Epic-Kitchens:
int verb_label / noun_label instead of label) | "image" | "image_text", "class_names": [...]
(empty without labels; video_verb_noun: the "verb:<key>"s then the "noun:<key>"s),
"features": {key: {"dtype", "shape"}} of a stored record, "splits": {split: {"num_examples",
"shards": [file names], "class_counts", "num_skipped", "fingerprint", "params"}}}.
"""

from __future__ import annotations

import json
import os

from framework.data import cache

FORMAT = "tessera-array-record-v1"
INFO_FILE = "dataset_info.json"


def shard_name(split: str, index: int, count: int) -> str:
    """Returns the file name of shard `index` of `count` of `split`."""
    return f"{split}.array_record-{index:05d}-of-{count:05d}"


def report_name(split: str) -> str:
    """Returns the file name of the conversion report of `split`."""
    return f"{split}_report.json"


def read_info(directory: str) -> dict | None:
    """Returns the parsed dataset_info.json of `directory`, or None when there is none.

    Raises ValueError when the file exists but is not a Tessera prepared-dataset sidecar.
    """
    path = os.path.join(directory, INFO_FILE)
    if not os.path.exists(path):
        return None
    info = cache.read_sidecar(path)
    if info is None or info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} sidecar (unreadable or another format).")
    return info


def update_info(directory: str, split: str, split_info: dict, common: dict) -> dict:
    """Adds or replaces `split` in `directory`'s dataset_info.json (created if missing), with
    `common` (kind, class_names, features) checked against the other splits. Returns the
    new info. Safe against concurrent writers on one machine (file lock, atomic replace)."""
    with cache.file_lock(os.path.join(directory, ".dataset_info.lock")):
        info = read_info(directory) or {"format": FORMAT, "splits": {}, **common}
        for key, value in common.items():
            if info.get(key) != value and info["splits"].keys() - {split}:
                raise ValueError(
                    f"{os.path.join(directory, INFO_FILE)}: {key} of split {split!r} differs "
                    f"from the other splits ({sorted(info['splits'])}); prepare it into "
                    "another --output directory (or pass the same classes).")
            info[key] = value
        info["splits"][split] = split_info
        cache.write_text_atomically(os.path.join(directory, INFO_FILE),
                                    json.dumps(info, indent=2, sort_keys=True))
    return info

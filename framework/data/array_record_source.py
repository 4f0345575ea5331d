"""The `array_record` dataset: a split written by `tools/prepare_dataset.py` (ArrayRecord
shards plus dataset_info.json, see framework.data.prepared).

Config: `config.data.train = {"name": "array_record", "path": "kinetics400", "split":
"train", "preprocess": "..."}`; a relative `path` is under config.data.data_dir. Records
hold encoded media (JPEG frames, image bytes, captions), so a preprocess string that decodes
them is required (see the examples in framework.data.ops).
"""

from __future__ import annotations

import dataclasses
import os

import grain
import numpy as np

from framework import registry
from framework.data import prepared, records
from framework.data.spec import DatasetSpec


@dataclasses.dataclass(frozen=True)
class StoredRecordDecoder:
    """Record bytes -> the stored example dict (encoded media as bytes / list of bytes,
    captions and keys as str, 'label' int32 ()). Picklable for grain workers."""

    def __call__(self, record: bytes) -> dict:
        example = records.decode_example(record)
        if "label" in example:
            example["label"] = np.asarray(example["label"], np.int32)
        return example


class ShardSource:
    """grain's ArrayRecordDataSource over a split's shards, whose read errors name the shard
    file and the fix. ArrayRecord (Riegeli) keeps a hash of every chunk and block header, so
    a flipped bit fails the read of the records it touches; this says where. Picklable."""

    def __init__(self, shards: list[str], split: str):
        self.shards = shards
        self.split = split
        self._source = grain.sources.ArrayRecordDataSource(shards)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> bytes:
        try:
            return self._source[index]
        except Exception as e:  # noqa: BLE001 - reraised naming the shard.
            raise OSError(f"{self._shard_of(int(index))}: {e}. The shard file is damaged: "
                          f"prepare split {self.split!r} again (tools.prepare_dataset "
                          "... --overwrite) or restore the file from a copy.") from e

    def _shard_of(self, index: int) -> str:
        from array_record.python import array_record_module

        for shard in self.shards:
            reader = array_record_module.ArrayRecordReader(shard)
            try:
                count = reader.num_records()
            finally:
                reader.close()
            if index < count:
                return shard
            index -= count
        return ", ".join(self.shards)

    def __repr__(self) -> str:
        return f"ShardSource({len(self.shards)} shards of {self.split!r})"


def dataset_directory(path: str, data_dir: str | None) -> str:
    """Returns the prepared dataset's directory: `path` if absolute, else under data_dir."""
    if not path:
        raise registry.ConfigError("config.data.<split>.path: required for the array_record "
                                   "dataset (the --output of tools/prepare_dataset.py).")
    return os.path.join(data_dir or "", os.path.expanduser(path))


@registry.DATASETS.register("array_record")
def array_record(split: str, data_dir: str | None, path: str = "") -> DatasetSpec:
    """Returns the DatasetSpec of `split` of the prepared dataset in `path`.

    info holds 'class_names', 'kind' (video, video_verb_noun, image, image_text),
    'stored_features' (what a record holds), 'fingerprint' and 'requires_preprocess'.
    Raises ValueError naming the directory when it holds no prepared dataset, the split or
    one of its shards.
    """
    if not path:
        raise ValueError("array_record: path='' names no prepared dataset; set "
                         "config.data.train.path and config.data.eval.path to the folder that "
                         "`python -m tools.prepare_dataset ... --output DIR` wrote (relative "
                         "paths are under config.data.data_dir).")
    directory = dataset_directory(path, data_dir)
    info = prepared.read_info(directory)
    if info is None:
        where = ("" if os.path.isabs(os.path.expanduser(path)) else
                 f" (path={path!r} is relative, so it is under config.data.data_dir, else "
                 "$TESSERA_DATA_DIR, else ~/.cache/tessera/datasets; give an absolute path "
                 "for a folder elsewhere)")
        raise ValueError(f"{directory}: no {prepared.INFO_FILE}{where}; prepare the data "
                         "with `python -m tools.prepare_dataset ... --output DIR` first.")
    if split not in info["splits"]:
        raise ValueError(f"{directory}: no split {split!r}; prepared splits: "
                         f"{', '.join(sorted(info['splits']))}.")
    split_info = info["splits"][split]
    shards = [os.path.join(directory, name) for name in split_info["shards"]]
    missing = [s for s in shards if not os.path.exists(s)]
    if missing:
        raise ValueError(f"{directory}: split {split!r} is missing shard files "
                         f"{[os.path.basename(m) for m in missing[:3]]}; prepare it again.")
    return DatasetSpec(
        source=ShardSource(shards, split), decode=StoredRecordDecoder(),
        num_examples=int(split_info["num_examples"]), num_classes=len(info["class_names"]),
        info={"class_names": info["class_names"], "kind": info["kind"],
              "stored_features": info["features"], "fingerprint": split_info["fingerprint"],
              "class_counts": split_info["class_counts"], "path": directory,
              "requires_preprocess": True})

"""What a dataset factory returns, where datasets live, and the corrupt-record error."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

DATA_DIR_ENV = "TESSERA_DATA_DIR"
# Keys of config.data.<split> that every dataset takes besides its own arguments.
PREPROCESS_KEYS = ("preprocess", "batch_preprocess")
DEFAULT_DATA_DIR = os.path.join("~", ".cache", "tessera", "datasets")


class CorruptRecordError(ValueError):
    """A stored record could not be read or decoded; the message names dataset and index."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One split of a dataset, as the pipelines consume it.

    Attributes:
      source: a grain RandomAccessDataSource: `len(source)` records, `source[i]` -> bytes.
      decode: picklable callable, record bytes -> dict of numpy arrays for one example
        (images: {'image': float32 (H, W, 3) in [-1, 1], 'label': int32 ()}; videos:
        {'video': float32 (T, H, W, 3) in [-1, 1], 'label': int32 ()}).
      num_examples: number of records in `source`.
      num_classes: number of label values (labels are 0..num_classes-1).
      info: free-form metadata: 'features' ({key: {'shape', 'dtype'}} of a decoded example,
        used to build eval padding), 'class_names', 'fingerprint' (a string that changes
        when the data changes; part of the iterator state's identity), ...
      name: registry name of the dataset (the pipeline fills it in when left empty).
      split: the split this spec reads (the pipeline fills it in when left empty).
    """

    source: Any
    decode: Callable[[bytes], dict]
    num_examples: int
    num_classes: int
    info: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    split: str = ""


def resolve_data_dir(data_dir: str | None) -> str:
    """Returns the absolute dataset root: `data_dir`, else $TESSERA_DATA_DIR, else
    ~/.cache/tessera/datasets."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return os.path.abspath(os.path.expanduser(chosen))

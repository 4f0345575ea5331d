"""Picklable pipeline pieces shared by the train and eval pipelines (no jax import, so grain
worker processes start quickly).

A source is wrapped in `IndexedSource`, whose elements are (record index, record bytes); the
`DecodeRecord` transform turns them into example dicts and names the dataset and the record
index when a record cannot be decoded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import grain
import numpy as np

from framework.data import orphan_guard
from framework.data.preprocess import Chain, view_rng
from framework.data.spec import CorruptRecordError

log = logging.getLogger(__name__)

ON_CORRUPT = ("error", "skip")


@dataclasses.dataclass(frozen=True)
class UnreadableRecord:
    """Stands in for record bytes that the source failed to read; `message` says why."""

    message: str


class IndexedSource:
    """A RandomAccessDataSource whose element i is (i, bytes of record i).

    Takes the dataset's `source`, its registry `name`, `split` and a `fingerprint` of its
    content. Its repr (which grain stores with the iterator state and checks on restore)
    names the dataset, not the files, so a checkpoint still resumes when the data directory
    moves. A failed read yields (i, UnreadableRecord) for `DecodeRecord` to report.
    """

    def __init__(self, source: Any, name: str, split: str, fingerprint: str = ""):
        self.source = source
        self.name = name
        self.split = split
        self.fingerprint = fingerprint
        self._len = len(source)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index) -> tuple[int, bytes | UnreadableRecord]:
        index = int(index)
        try:
            return index, self.source[index]
        except Exception as e:  # noqa: BLE001 - reported with the index by DecodeRecord.
            return index, UnreadableRecord(f"{type(e).__name__}: {e}")

    def __setstate__(self, state: dict) -> None:
        # Unpickled only in a grain worker process: it must not outlive the trainer.
        self.__dict__.update(state)
        orphan_guard.exit_with_parent()

    def __repr__(self) -> str:
        return (f"IndexedSource(name={self.name!r}, split={self.split!r}, "
                f"num_records={self._len}, fingerprint={self.fingerprint!r})")


@dataclasses.dataclass
class DecodeRecord(grain.transforms.Map):
    """grain Map: (index, record bytes) -> example dict from the dataset's `decode`.

    With on_corrupt="error" a record that cannot be read or decoded raises
    CorruptRecordError naming the dataset, split and record index; with "skip" it is logged
    and replaced by None (the train pipeline filters it out, the eval pipeline masks it).
    """

    decode: Callable[[bytes], dict]
    name: str
    split: str
    on_corrupt: str = "error"

    def map(self, element: tuple[int, Any]) -> dict[str, np.ndarray] | None:
        """Takes (record index, record bytes); returns the decoded example dict (or None)."""
        index, record = element
        try:
            if isinstance(record, UnreadableRecord):
                raise OSError(record.message)
            return self.decode(record)
        except Exception as e:  # noqa: BLE001 - any failure is a corrupt record.
            return self.fail(index, e)

    def fail(self, index: int, error: Exception) -> None:
        """Handles record `index` that failed with `error`: returns None (on_corrupt="skip",
        logged) or raises CorruptRecordError naming dataset, split, index and the error."""
        message = (f"dataset {self.name!r} split {self.split!r}: record {index} is corrupt "
                   f"({type(error).__name__}: {error}).")
        if self.on_corrupt == "skip":
            log.warning("%s Skipping it (on_corrupt='skip').", message)
            return None
        raise CorruptRecordError(
            message + " Regenerate the dataset, or set config.data.on_corrupt='skip'."
        ) from error


@dataclasses.dataclass
class DecodeAndPreprocess(grain.transforms.RandomMap):
    """grain RandomMap: (index, record bytes) -> decoded example -> `chain(example, rng)`.

    The rng is the record's own (from the sampler: seed and position), so augmentations are
    reproduced exactly on resume. A record whose decoding ops fail (a truncated JPEG) is
    handled like a corrupt record (see DecodeRecord.on_corrupt).
    """

    decode: DecodeRecord
    chain: Chain

    def random_map(self, element: tuple[int, Any], rng: np.random.Generator) -> dict | None:
        """Takes (record index, record bytes) and the record's rng; returns the example."""
        example = self.decode.map(element)
        if example is None:
            return None
        try:
            return self.chain(example, rng)
        except Exception as e:  # noqa: BLE001 - reported with the record index.
            return self.decode.fail(element[0], e)


@dataclasses.dataclass
class BatchPreprocess(grain.transforms.RandomMap):
    """grain RandomMap: batch dict -> `chain(batch, rng)` (mixup, cutmix)."""

    chain: Chain

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        """Takes a batch dict of numpy arrays; returns the transformed batch."""
        return self.chain(element, rng)


class DropNone(grain.transforms.Filter):
    """grain Filter that drops the None left by DecodeRecord(on_corrupt="skip")."""

    def filter(self, element: Any) -> bool:
        """Returns False for None (a skipped corrupt record), True otherwise."""
        return element is not None


@dataclasses.dataclass
class EvalSlot:
    """Slot i of one process's eval stream -> example dict with 'mask' bool (), int32
    'video_index' (the record) and 'view_index' (which of its `views` copies).

    Slots [0, (stop - start) * views) hold views 0..views-1 of records start..stop-1 in
    order (mask True), each run through `chain` (None: as decoded); later slots, and records
    skipped as corrupt, hold `template` (zeros shaped like an example) with mask False and
    video_index -1.
    """

    source: IndexedSource
    decode: DecodeRecord
    start: int
    stop: int
    template: dict
    chain: Chain | None = None
    views: int = 1

    def __call__(self, slot: int) -> dict[str, np.ndarray]:
        index, view = divmod(int(slot), self.views)
        index += self.start
        example = None
        if index < self.stop:
            example = self.decode.map(self.source[index])
        if example is not None:
            example = dict(example, video_index=np.int32(index), view_index=np.int32(view))
            if self.chain is not None:
                try:
                    example = self.chain(example, view_rng(0, index, view))
                except Exception as e:  # noqa: BLE001 - reported with the record index.
                    example = self.decode.fail(index, e)
        if example is None:
            return dict(self.template, mask=np.asarray(False), video_index=np.int32(-1),
                        view_index=np.int32(0))
        return dict(example, mask=np.asarray(True))

"""A grain sampler whose global batches do not depend on the number of processes.

All records are shuffled once per epoch into one global order (grain's index shuffle with the
run's seed); global batch s is positions [s * G, (s + 1) * G) of that order, and process p of
c loads its part [s * G + p * G / c, s * G + (p + 1) * G / c). A run on 2 hosts therefore
trains on exactly the batches of a run on 1 host, and a job restarted on another host count
still sees the same examples per step.
"""

from __future__ import annotations

import sys

import grain
import numpy as np


class GlobalOrderSampler:
    """grain Sampler for process `process_index` of `process_count` (see the module doc).

    grain's DataLoader with ShardOptions(shard_index=p, shard_count=c) reads sampler indices
    p, p + c, p + 2c, ...; the k-th index it reads is mapped to global position
    (k // B) * G + p * B + k % B with B = G / c, and `record_key` is the record at that
    position of the global order. With one process this is grain's IndexSampler(shuffle=True,
    num_epochs=None) exactly (same record order, same per-record rng).
    """

    def __init__(self, num_records: int, global_batch_size: int, process_index: int,
                 process_count: int, seed: int):
        if global_batch_size % process_count:
            raise ValueError(f"global_batch_size={global_batch_size} is not a multiple of "
                             f"process_count={process_count}.")
        self._num_records = int(num_records)
        self._global_batch = int(global_batch_size)
        self._process_index = int(process_index)
        self._process_count = int(process_count)
        self._seed = int(seed)
        self._order = grain.MapDataset.range(self._num_records).shuffle(seed=self._seed)

    def __len__(self) -> int:
        return sys.maxsize

    def global_position(self, index: int) -> int:
        """Returns the position in the global order of the record read at sampler `index`."""
        local = self._global_batch // self._process_count
        process, k = index % self._process_count, index // self._process_count
        if process != self._process_index:
            raise IndexError(f"sampler index {index} belongs to process {process}, not "
                             f"{self._process_index}.")
        return (k // local) * self._global_batch + process * local + k % local

    def __getitem__(self, index: int) -> grain.RecordMetadata:
        position = self.global_position(int(index))
        return grain.RecordMetadata(
            index=int(index), record_key=int(self._order[position]),
            rng=np.random.Generator(np.random.Philox(key=self._seed + position)))

    def __repr__(self) -> str:
        # grain compares this repr with the one saved in the iterator state on restore.
        return (f"GlobalOrderSampler(num_records={self._num_records}, "
                f"global_batch_size={self._global_batch}, process_index={self._process_index}, "
                f"process_count={self._process_count}, seed={self._seed})")

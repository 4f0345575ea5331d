"""Input-pipeline throughput: examples per second of a config's train loader alone (reading,
decoding, preprocessing and batching; no model), as tools/benchmark_data.py and
tools/benchmark.py report it.
"""

from __future__ import annotations

import time
from typing import Any

import ml_collections
import numpy as np

from framework.data import pipeline


def measure_input_pipeline(data_config: Any, global_batch_size: int, *, num_batches: int = 20,
                           warmup_batches: int = 2, seed: int = 0,
                           worker_count: int | None = None) -> dict:
    """Times `num_batches` batches of the train loader of `data_config` (config.data) after
    `warmup_batches` (worker start-up, first reads). `worker_count` overrides
    config.data.worker_count. Returns {"examples_per_sec", "batches_per_sec", "seconds",
    "num_batches", "batch_size" (per process), "worker_count",
    "main_process_cpu_seconds_per_example" (CPU time of this process, all threads: with
    worker_count=0 the whole cost of an example, whatever else loads the machine), "shapes"
    ({key: [dims]} of a batch), "dtypes"}.

    Like any loader with workers, call it under `if __name__ == "__main__":` in scripts.
    """
    if num_batches < 1 or warmup_batches < 0:
        raise ValueError(f"num_batches={num_batches} must be >= 1 and warmup_batches="
                         f"{warmup_batches} >= 0.")
    data_config = ml_collections.ConfigDict(
        data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config))
    if worker_count is not None:
        data_config.worker_count = int(worker_count)
    loader = pipeline.make_train_loader(data_config, global_batch_size, seed)
    iterator = iter(loader)
    batch = None
    for _ in range(warmup_batches):
        batch = next(iterator)
    start, cpu_start = time.perf_counter(), time.process_time()
    examples = 0
    for _ in range(num_batches):
        batch = next(iterator)
        examples += len(next(iter(batch.values())))
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    del iterator, loader  # Stops the worker processes.
    return {"examples_per_sec": examples / seconds, "batches_per_sec": num_batches / seconds,
            "seconds": seconds, "num_batches": num_batches,
            "batch_size": examples // num_batches,
            "worker_count": int(data_config.get("worker_count", 0) or 0),
            "main_process_cpu_seconds_per_example": cpu_seconds / examples,
            "shapes": {k: list(np.shape(v)) for k, v in batch.items()},
            "dtypes": {k: str(np.asarray(v).dtype) for k, v in batch.items()}}

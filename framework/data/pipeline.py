"""grain input pipelines: an infinite, shuffled, per-process train loader with checkpointable
state, and padded, masked, per-process eval passes.

Both read `data_config` (config.data): `train` / `eval` ({name, split, ...dataset kwargs}),
`data_dir` (None: $TESSERA_DATA_DIR, else ~/.cache/tessera/datasets), `worker_count` (grain
worker processes; 0 = decode in the calling process) and optionally `on_corrupt` ("error",
the default, or "skip"). Process index and count default to JAX's; tests pass them in to
simulate several hosts.

`config.data.<split>.preprocess` (a string of PREPROCESS_OPS ops, see framework.data.ops) is
applied to each decoded example, in the worker processes; "" keeps the decoded example as is.
`config.data.train.batch_preprocess` (mixup / cutmix) is applied to each batch. The eval pass
makes `num_views` copies of each record when the eval preprocess has multi-view ops
(sample_clips, three_crop): consecutive examples with int32 `video_index` (the record) and
`view_index` (clip * num_crops + crop), which every eval example carries.

grain worker processes are started with "spawn": a script that builds a loader with
worker_count > 0 must do so under `if __name__ == "__main__":` (absl's app.run is fine).
grain also reads absl flags then; when nobody has parsed them (pytest, notebooks) the
pipeline marks them parsed, i.e. grain's flags take their defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import numpy as np
from absl import flags

from framework import registry
from framework.data import global_order, preprocess, transforms
from framework.data.spec import PREPROCESS_KEYS, DatasetSpec, resolve_data_dir
from framework.registry import ConfigError


def build_dataset(data_config: Any, which: str) -> DatasetSpec:
    """Builds the dataset named by `data_config.<which>` ("train" or "eval").

    Returns its DatasetSpec. Raises ConfigError naming `config.data.<which>.<key>` for an
    unknown dataset name or keyword argument.
    """
    node = data_config.get(which)
    if node is None:
        raise ConfigError(f"config.data.{which}: missing (a group with the dataset's name, "
                          "split and keyword arguments).")
    kwargs = dict(node.to_dict() if hasattr(node, "to_dict") else node)
    for key in PREPROCESS_KEYS:
        kwargs.pop(key, None)
    name = kwargs.pop("name", None)
    if not name:
        raise ConfigError(f"config.data.{which}.name: required (the dataset's registry name; "
                          f"known: {', '.join(registry.DATASETS.names())}).")
    split = kwargs.pop("split", which)
    if "data_dir" in kwargs:
        raise ConfigError(f"config.data.{which}.data_dir: set config.data.data_dir instead.")
    try:
        spec = registry.DATASETS.build(
            name, kwargs, config_key=f"config.data.{which}", split=split,
            data_dir=resolve_data_dir(data_config.get("data_dir")))
    except ConfigError:
        raise
    except (ValueError, OSError) as e:  # A missing folder, split or file: the user's to fix.
        raise ConfigError(f"config.data.{which} ({name}, split {split!r}): {e}") from e
    if not spec.name or not spec.split:
        spec = dataclasses.replace(spec, name=spec.name or name, split=spec.split or split)
    if len(spec.source) != spec.num_examples:
        raise ValueError(f"dataset {name!r} split {split!r}: the source holds "
                         f"{len(spec.source)} records but the spec says {spec.num_examples}.")
    return spec


def local_batch_size(global_batch_size: int, process_count: int,
                     batch_key: str = "config.batch_size") -> int:
    """Returns the per-process batch global_batch_size // process_count.

    Raises ConfigError naming `batch_key` unless it is a positive multiple of process_count.
    """
    if not isinstance(global_batch_size, int | np.integer) or global_batch_size < 1:
        raise ConfigError(f"{batch_key}={global_batch_size!r}: must be a positive int.")
    if global_batch_size % process_count:
        raise ConfigError(f"{batch_key}={global_batch_size}: must be a multiple of the number "
                          f"of processes ({process_count}); each loads an equal part.")
    return int(global_batch_size) // process_count


def eval_shard(num_examples: int, global_batch_size: int, process_index: int,
               process_count: int) -> tuple[int, int, int]:
    """Returns (start, stop, num_batches): this process's records [start, stop) of the eval
    split and the number of batches every process yields (ceil(num_examples / global batch)).

    Shards are contiguous and differ in size by at most one record.
    """
    start = num_examples * process_index // process_count
    stop = num_examples * (process_index + 1) // process_count
    return start, stop, math.ceil(num_examples / global_batch_size)


def make_train_loader(data_config: Any, global_batch_size: int, seed: int, *,
                      process_index: int | None = None,
                      process_count: int | None = None) -> grain.DataLoader:
    """Returns an infinite grain DataLoader over `data_config.train`.

    Records are globally shuffled with `seed` each epoch and cut into global batches, of which
    each process loads its own equal part (global_order.GlobalOrderSampler: the global batches
    do not depend on `process_count`), decoded in `worker_count`
    worker processes and batched. `next(iter(loader))` is a dict of numpy arrays with a
    leading per-process batch dim global_batch_size // process_count, e.g. {'image':
    float32 (B, H, W, 3), 'label': int32 (B,)}. The iterator has get_state()/set_state() and
    is saved in checkpoints with grain.checkpoint.CheckpointSave / CheckpointRestore.
    """
    process_index, process_count = _process(process_index, process_count)
    batch = local_batch_size(global_batch_size, process_count)
    if not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ConfigError(f"config.seed={seed!r}: the data pipeline needs an int in "
                          "[0, 2**32).")
    spec = build_dataset(data_config, "train")
    per_process = spec.num_examples // process_count
    if per_process < batch:
        raise ConfigError(
            f"config.batch_size={global_batch_size}: each of the {process_count} processes "
            f"needs {batch} examples per batch, but its part of {spec.name}/{spec.split} "
            f"holds only {per_process} of {spec.num_examples}.")
    on_corrupt = _on_corrupt(data_config)
    shard = grain.sharding.ShardOptions(shard_index=process_index, shard_count=process_count,
                                        drop_remainder=True)
    sampler = global_order.GlobalOrderSampler(spec.num_examples, global_batch_size,
                                              process_index, process_count, int(seed))
    chain, batch_chain = build_preprocess(data_config, "train", spec)
    if chain is not None and chain.num_views > 1:
        raise ConfigError(f"config.data.train.preprocess={chain.text!r}: makes {chain.num_views} "
                          "views per example (sample_clips / three_crop are for eval); use "
                          "sample_frames and random_crop for training.")
    decode = transforms.DecodeRecord(spec.decode, spec.name, spec.split, on_corrupt)
    operations = [transforms.DecodeAndPreprocess(decode, chain) if chain else decode]
    if on_corrupt == "skip":
        operations.append(transforms.DropNone())
    operations.append(grain.transforms.Batch(batch_size=batch, drop_remainder=True))
    if batch_chain is not None:
        operations.append(transforms.BatchPreprocess(batch_chain))
    # grain's default read-ahead (500 records per process, 16 threads) holds gigabytes when
    # a record is a video; two batches ahead keep the workers busy.
    read = grain.ReadOptions(num_threads=4, prefetch_buffer_size=2 * batch)
    return grain.DataLoader(
        data_source=_indexed_source(spec), sampler=sampler, operations=operations,
        worker_count=_worker_count(data_config), shard_options=shard, read_options=read)


def make_eval_batches(data_config: Any, global_batch_size: int, *,
                      process_index: int | None = None, process_count: int | None = None,
                      batch_key: str = "config.batch_size") -> Callable[[], Iterator[dict]]:
    """Returns a function that starts one full, unshuffled pass over `data_config.eval`.

    Each call returns a fresh iterator of dicts of numpy arrays with leading dim
    B = global_batch_size // process_count, plus 'mask' bool (B,) that is False on padding,
    and int32 'video_index' (the record; -1 on padding) and 'view_index'. Every record is
    yielded exactly once over all processes, as V consecutive views when the eval preprocess
    makes V views (V = 1 otherwise); every process yields
    ceil(ceil(num_examples / process_count) * V / B) batches, so collectives stay in step
    (for V = 1 that is ceil(num_examples / global_batch_size)).
    """
    process_index, process_count = _process(process_index, process_count)
    batch = local_batch_size(global_batch_size, process_count, batch_key)
    spec = build_dataset(data_config, "eval")
    chain, batch_chain = build_preprocess(data_config, "eval", spec)
    if batch_chain is not None:
        raise ConfigError(f"config.data.eval.batch_preprocess={batch_chain.text!r}: batch "
                          "ops (mixup, cutmix) are for training; set it to ''.")
    views = chain.num_views if chain is not None else 1
    start, stop, _ = eval_shard(spec.num_examples, batch * process_count,
                                process_index, process_count)
    # The largest part decides the batch count, so that every process yields as many.
    largest = math.ceil(spec.num_examples / process_count)
    num_batches = math.ceil(largest * views / batch)
    source = _indexed_source(spec)
    decode = transforms.DecodeRecord(spec.decode, spec.name, spec.split,
                                      _on_corrupt(data_config))
    slot = transforms.EvalSlot(source, decode, start, stop,
                               _eval_template(spec, source, decode, chain), chain, views)
    dataset = grain.MapDataset.range(num_batches * batch).map(slot).batch(batch)
    workers = _worker_count(data_config)
    iter_dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=4,
                                                             prefetch_buffer_size=2 * batch))
    if workers > 0:
        iter_dataset = iter_dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=workers))

    def batches() -> Iterator[dict]:
        return iter(iter_dataset)

    return batches


def build_preprocess(data_config: Any, which: str, spec: DatasetSpec
                     ) -> tuple[preprocess.Chain | None, preprocess.Chain | None]:
    """Returns the (per-example, per-batch) preprocess Chains of `data_config.<which>` (None
    where the string is empty). Ops that take `num_classes` get the dataset's."""
    node = data_config.get(which)
    chains = []
    for key in PREPROCESS_KEYS:
        text = node.get(key, "") or ""
        if not isinstance(text, str):
            raise ConfigError(f"config.data.{which}.{key}={text!r}: must be a string like "
                              "'op1(k=v)|op2'.")
        chains.append(preprocess.build_chain(text, f"config.data.{which}.{key}",
                                             defaults={"num_classes": spec.num_classes}))
    if chains[0] is None and spec.info.get("requires_preprocess"):
        raise ConfigError(
            f"config.data.{which}.preprocess: required for {spec.name}/{spec.split}, whose "
            "records hold encoded media; e.g. 'sample_frames(32, stride=2)|decode_frames|"
            "resize_small(256)|random_crop(224)|value_range(-1, 1)' or 'decode_image|"
            "inception_crop(224)|value_range(-1, 1)' (ops: framework/data/ops).")
    return chains[0], chains[1]


def _eval_template(spec: DatasetSpec, source: transforms.IndexedSource,
                   decode: transforms.DecodeRecord, chain: preprocess.Chain | None) -> dict:
    """Returns the eval padding: zeros shaped like a (preprocessed) example."""
    if chain is None:
        return _zeros_like_example(spec, source)
    lenient = transforms.DecodeRecord(spec.decode, spec.name, spec.split, "skip")
    for index in range(len(source)):
        example = lenient.map(source[index])
        if example is not None:
            example = chain(dict(example, view_index=np.int32(0), video_index=np.int32(0)),
                            preprocess.view_rng(0, index, 0))
            return {k: np.zeros_like(v) for k, v in example.items()}
    return {}


def _process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    index = jax.process_index() if process_index is None else int(process_index)
    count = jax.process_count() if process_count is None else int(process_count)
    if not 0 <= index < count:
        raise ValueError(f"process_index={index} is not in [0, process_count={count}).")
    return index, count


def _worker_count(data_config: Any) -> int:
    workers = data_config.get("worker_count", 0) or 0
    if not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"config.data.worker_count={workers!r}: must be an int >= 0.")
    if workers > 0 and not flags.FLAGS.is_parsed():
        # grain reads its absl flags when it starts workers; outside absl.app (pytest,
        # notebooks, plain scripts) nobody parsed them, so take their defaults.
        flags.FLAGS.mark_as_parsed()
    return workers


def _on_corrupt(data_config: Any) -> str:
    value = data_config.get("on_corrupt", "error") or "error"
    if value not in transforms.ON_CORRUPT:
        raise ConfigError(f"config.data.on_corrupt={value!r}: must be one of "
                          f"{', '.join(transforms.ON_CORRUPT)}.")
    return value


def _indexed_source(spec: DatasetSpec) -> transforms.IndexedSource:
    return transforms.IndexedSource(spec.source, spec.name, spec.split,
                                    str(spec.info.get("fingerprint", "")))


def _zeros_like_example(spec: DatasetSpec, source: transforms.IndexedSource) -> dict:
    """Returns a zero example (the padding) shaped like the dataset's decoded examples."""
    features = spec.info.get("features")
    if features:
        return {k: np.zeros(f["shape"], f["dtype"]) for k, f in features.items()}
    lenient = transforms.DecodeRecord(spec.decode, spec.name, spec.split, "skip")
    for index in range(len(source)):
        example = lenient.map(source[index])
        if example is not None:
            return {k: np.zeros_like(v) for k, v in example.items()}
    return {}

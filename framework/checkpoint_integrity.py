"""Our own checksums for everything a checkpoint holds, recorded at save and verified on read.

The storage checksums some of its files (OCDBT b-tree nodes carry a CRC-32C) but not all: a
large array's chunk, the data-iterator JSON and the metadata JSON are read back without any
check, so a flipped bit there would silently change the run. At save, `record` computes:

- per array of the state: a 64-bit digest of its bits, on the device, independent of the
  sharding and the process count (a sum of the array's 32-bit words times odd weights, mod
  2**32, twice with different weights: any change of one element changes the digest);
- per process: the CRC-32 of its data-iterator state;
- the CRC-32 of the metadata itself (the JSON without this record).

The record is stored in the checkpoint's `meta` item under "integrity"; `verify_*` raise
CheckpointCorruptError naming the checkpoint, the array or file and the fix.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from framework import trees
from framework.registry import ConfigError

KEY = "integrity"


class CheckpointCorruptError(ConfigError):
    """A checkpoint's bytes differ from what was saved (the message names where)."""


def _words(x: jax.Array) -> jax.Array:
    """Returns the bits of `x` as a flat uint32 vector (one word per element)."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32).ravel()
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize]
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).ravel()


def _digest(x: jax.Array) -> jax.Array:
    words = _words(x)
    index = jnp.arange(words.size, dtype=jnp.uint32)
    first = jnp.sum(words * (2 * index + 1), dtype=jnp.uint32)
    second = jnp.sum((words ^ jnp.uint32(0x5BD1E995)) * ((index * jnp.uint32(0x9E3779B1))
                                                          | jnp.uint32(1)), dtype=jnp.uint32)
    return jnp.stack([first, second])


_digests = jax.jit(lambda tree: jax.tree.map(_digest, tree))


def array_digests(tree: Any) -> dict[str, str]:
    """Returns {tree path: 16 hex digits} for every array leaf of `tree` (jax or NumPy arrays,
    any sharding); equal for equal values whatever the sharding or process count."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    names = [trees.path_name(p) for p, _ in flat]
    values = jax.device_get(_digests([leaf for _, leaf in flat]))
    return {name: f"{int(v[0]):08x}{int(v[1]):08x}" for name, v in zip(names, values)}


def _meta_crc(meta: dict) -> str:
    """CRC-32 of `meta` with its integrity record but without the record's own "meta" CRC."""
    body = dict(meta)
    if isinstance(body.get(KEY), dict):
        body[KEY] = {k: v for k, v in body[KEY].items() if k != "meta"}
    return f"{zlib.crc32(json.dumps(body, sort_keys=True).encode()):08x}"


def data_state_crc(data_iterator: Any) -> str:
    """Returns the CRC-32 (8 hex digits) of a grain iterator's state, as saved."""
    return f"{zlib.crc32(data_iterator.get_state()):08x}"


def record(meta: dict, state: Any, data_iterator: Any) -> dict:
    """Returns `meta` with the integrity record of `state` and `data_iterator` (see the module
    docstring); every process must call it (the data CRCs are gathered from all)."""
    data = None
    if data_iterator is not None:
        crc = int(data_state_crc(data_iterator), 16)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            crcs = multihost_utils.process_allgather(np.uint32(crc))
            data = [f"{int(c):08x}" for c in np.ravel(crcs)]
        else:
            data = [f"{crc:08x}"]
    meta = {k: v for k, v in meta.items() if k != KEY}
    shapes = {trees.path_name(p): list(np.shape(leaf))
              for p, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}
    meta[KEY] = {"version": 1, "arrays": array_digests(state), "shapes": shapes,
                 "data": data}
    meta[KEY]["meta"] = _meta_crc(meta)
    return meta


def verify_meta(meta: dict, where: str) -> dict | None:
    """Checks `meta`'s own CRC; returns its integrity record (None for a checkpoint written
    before records existed). Raises CheckpointCorruptError naming `where` (the meta file)."""
    if KEY not in meta:
        return None
    integrity = meta[KEY]
    if not isinstance(integrity, dict) or integrity.get("meta") != _meta_crc(meta):
        raise CheckpointCorruptError(
            f"{where}: CRC mismatch: the checkpoint's metadata changed after it was saved "
            "(a corrupt file).")
    return integrity


def verify_arrays(tree: Any, integrity: dict | None, where: str, prefix: str = "") -> None:
    """Checks every array of `tree` (named `prefix` + its tree path) against the digests in
    `integrity`. Raises CheckpointCorruptError naming `where` and the arrays that differ."""
    if integrity is None:
        return
    saved = integrity["arrays"]
    bad = [prefix + name for name, digest in array_digests(tree).items()
           if saved.get(prefix + name) != digest]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointCorruptError(
            f"{where}: checksum mismatch in {len(bad)} array(s) ({shown}): the stored bytes "
            "changed after the save (a corrupt file).")


def verify_data_state(step_dir: str, integrity: dict | None) -> None:
    """Checks each `data/process_<i>-of-<n>.json` of the checkpoint in `step_dir` against its
    saved CRC-32. Raises CheckpointCorruptError naming the file."""
    if integrity is None or not integrity.get("data"):
        return
    crcs = integrity["data"]
    for index, crc in enumerate(crcs):
        path = os.path.join(step_dir, "data", f"process_{index}-of-{len(crcs)}.json")
        if not os.path.exists(path):
            raise CheckpointCorruptError(f"{path}: missing (the data-iterator state of "
                                         f"process {index}).")
        with open(path, "rb") as f:
            actual = f"{zlib.crc32(f.read()):08x}"
        if actual != crc:
            raise CheckpointCorruptError(
                f"{path}: CRC-32 mismatch (saved {crc}, now {actual}): the data-iterator "
                "state changed after the save (a corrupt file).")


def storage_error(error: BaseException) -> str:
    """Returns `error` as one readable line: its type and message without the storage's
    spec dump (tensorstore appends its whole JSON spec to each message)."""
    text = re.sub(r"\s*\[tensorstore_spec=.*$", "", str(error), flags=re.S)
    return f"{type(error).__name__}: {text}"


def read_meta(step_dir: str) -> tuple[dict, dict | None]:
    """Reads and checks `step_dir/meta/metadata`; returns (meta, its integrity record or None).
    Raises CheckpointCorruptError when the file is unreadable or fails its CRC."""
    path = os.path.join(step_dir, "meta", "metadata")
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read().decode())
    except (OSError, ValueError) as e:
        raise CheckpointCorruptError(f"{path}: unreadable ({type(e).__name__}: {e}).") from e
    return meta, verify_meta(meta, path)

"""Shared by the zero-shot and retrieval evaluators: text lengths, sharded embedding passes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jax
import ml_collections
import numpy as np
from flax import linen as nn
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from framework import flops, sharding
from framework.registry import ConfigError


def text_length(config: ml_collections.ConfigDict, max_len: int, key: str) -> int:
    """Returns `max_len` if set, else the length of config.model_input.text ("int32[L]").

    The text tower's position embedding fixes the length, so prompts must match it. Raises
    ConfigError naming `key` when neither gives a length.
    """
    if max_len:
        return int(max_len)
    spec = config.get("model_input", {}).get("text") if config.get("model_input") else None
    if not spec:
        raise ConfigError(f"{key}.max_len: required (the text length of the model), or set "
                          "config.model_input.text, e.g. 'int32[64]'.")
    return int(flops.parse_input_spec(spec, "text").shape[0])


def global_batch_array(local: np.ndarray, mesh: Mesh) -> jax.Array:
    """Places a host array (B, ...) that every process holds in full as a batch-sharded
    global array."""
    spec = sharding.batch_sharding(mesh)
    return jax.make_array_from_callback(local.shape, spec, lambda index: local[index])


def gather(x: jax.Array) -> np.ndarray:
    """Returns the whole of a (possibly multi-process) global array on every host."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def embed_texts(model: nn.Module, variables, tokens: np.ndarray, mesh: Mesh, batch_size: int,
                text_key: str = "text") -> np.ndarray:
    """Returns the text embeddings (N, E) float32 of token ids (N, L), in sharded batches.

    N is padded up to a multiple of `batch_size` (a multiple of the batch shards).
    """
    apply = _text_apply(model, text_key)
    count = len(tokens)
    padded = -(-count // batch_size) * batch_size
    tokens = np.concatenate([tokens, np.repeat(tokens[-1:], padded - count, axis=0)])
    out = [gather(apply(variables, global_batch_array(tokens[i:i + batch_size], mesh)))
           for i in range(0, padded, batch_size)]
    return np.concatenate(out)[:count]


def _text_apply(model: nn.Module, text_key: str) -> Callable:
    return jax.jit(lambda v, t: model.apply(v, {text_key: t}, train=False)["ztxt"])


def embed_split(model: nn.Module, variables, batches: Callable[[], Iterator[dict]], mesh: Mesh,
                keys: tuple[str, ...], extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """One pass over eval `batches`; returns the model's outputs and batch fields, unpadded.

    `keys` are the batch keys given to the model (e.g. ("image", "text")); the result holds
    "zimg" / "ztxt" (N, E) for the towers that ran and the batch fields named in `extra`
    (e.g. "label"), with the padding examples (mask False) dropped.
    """
    step = jax.jit(lambda v, b: model.apply(v, b, train=False))
    parts: dict[str, list[np.ndarray]] = {}
    for local in batches():
        batch = sharding.shard_batch(local, mesh)
        outputs = step(variables, {k: batch[k] for k in keys})
        mask = gather(batch["mask"]).astype(bool)
        fields = {k: outputs[k] for k in ("zimg", "ztxt") if k in outputs}
        fields.update({k: batch[k] for k in extra})
        for name, value in fields.items():
            parts.setdefault(name, []).append(gather(value)[mask])
    if not parts:
        raise ValueError("image-text evaluator: the eval split yielded no batches.")
    return {name: np.concatenate(values) for name, values in parts.items()}

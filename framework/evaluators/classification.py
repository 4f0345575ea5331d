"""Classification evaluator: top-k accuracy and cross-entropy over a full eval split."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh

from framework import registry, sharding
from framework.data import pipeline
from framework.losses import as_targets, logits_of, softmax_cross_entropy
from framework.registry import ConfigError


def eval_data_config(config: ml_collections.ConfigDict, data: str) -> ml_collections.ConfigDict:
    """Returns a copy of `config.data` whose `eval` entry is `config.data.<data>`."""
    if data not in config.data or not isinstance(config.data[data], ml_collections.ConfigDict):
        raise ConfigError(f"evaluator data={data!r}: config.data.{data} does not exist; "
                          "name a split config under config.data (e.g. 'eval').")
    if not config.data[data].get("name"):
        raise ConfigError(f"config.data.{data}.name: required by the evaluator (the registry "
                          "name of the dataset to evaluate on).")
    data_config = ml_collections.ConfigDict(config.data.to_dict())
    data_config.eval = ml_collections.ConfigDict(config.data[data].to_dict())
    return data_config


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """Returns float (B,): 1 where the label (int (B,) or targets (B, C)) is in the top k."""
    if labels.ndim == 2:
        labels = jnp.argmax(labels, axis=-1)
    _, top = jax.lax.top_k(logits, k)
    return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


@registry.EVALUATORS.register("classification")
class ClassificationEvaluator:
    """Top-k accuracy (`top1`, `top5`, ...) and `loss` (softmax cross-entropy) of a classifier.

    Runs one full pass over `config.data.<data>`, every example counted once (padding masked).
    """

    def __init__(self, *, model: nn.Module, config: ml_collections.ConfigDict, mesh: Mesh,
                 data: str = "eval", batch_size: int = 0, topk: Sequence[int] = (1, 5),
                 label_key: str = "label"):
        """Takes the model, the full config and mesh, plus the evaluator's config keys:
        `data` (which config.data entry), `batch_size` (global; 0 = config.batch_size),
        `topk` and `label_key`."""
        self.model = model
        self.mesh = mesh
        self.topk = tuple(int(k) for k in topk)
        self.label_key = label_key
        self.batch_size = batch_size or config.batch_size
        sharding.check_batch_size(self.batch_size, mesh, key="config.evaluators.*.batch_size")
        self.batches = pipeline.make_eval_batches(eval_data_config(config, data), self.batch_size)
        self._step = jax.jit(self._sums)

    def _sums(self, variables, batch: dict) -> dict[str, jax.Array]:
        logits = logits_of(self.model.apply(variables, batch, train=False))
        labels = batch[self.label_key]
        mask = batch["mask"].astype(jnp.float32)
        loss = softmax_cross_entropy(logits, as_targets(labels, logits.shape[-1]))
        sums = {"loss": jnp.sum(loss * mask), "count": jnp.sum(mask)}
        for k in self.topk:
            sums[f"top{k}"] = jnp.sum(topk_correct(logits, labels, min(k, logits.shape[-1])) * mask)
        return sums

    def run(self, variables) -> dict[str, float]:
        """Evaluates the model variables {"params": ..., and its collections such as
        "batch_stats"} (see TrainState.eval_variables); returns {"top1": ..., "top5": ...,
        "loss": ..., "count": n}."""
        totals: dict[str, float] = {}
        for local in self.batches():
            sums = jax.device_get(self._step(variables, sharding.shard_batch(local, self.mesh)))
            for name, value in sums.items():
                totals[name] = totals.get(name, 0.0) + float(np.asarray(value))
        count = totals.pop("count", 0.0)
        if not count:
            raise ValueError("classification evaluator: the eval split yielded no examples.")
        out = {name: value / count for name, value in totals.items()}
        out["count"] = count
        return out

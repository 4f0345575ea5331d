"""Image-to-text and text-to-image retrieval: recall@k over the pairs of an eval split."""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh

from framework import registry, sharding
from framework.data import pipeline
from framework.evaluators.classification import eval_data_config
from projects.image_text.embed import embed_split


def correct_ranks(queries: np.ndarray, keys: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Returns int (N,): for query i (N, E), how many keys j != i (N, E) score at least as
    high as key i (its pair). Rank 0 = retrieved first; ties count against the query."""
    ranks = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ keys.T
        rows = np.arange(len(scores))
        own = scores[rows, start + rows]
        ranks[start:start + len(scores)] = np.sum(scores >= own[:, None], axis=1) - 1
    return ranks


def recall_at(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Returns {k: fraction of queries whose pair is among the first k}."""
    return {int(k): float(np.mean(ranks < k)) for k in ks}


@registry.EVALUATORS.register("image_text.retrieval", formerly=("retrieval",))
class RetrievalEvaluator:
    """Recall@k for image->text and text->image retrieval over an eval split of pairs.

    Example i's image and text are each other's only match (one caption per image); every
    other text (image) of the split is a distractor. Embeddings are computed in batches
    sharded over the mesh's batch axes. Metrics: `i2t_recall@k`, `t2i_recall@k`, `count`.
    """

    def __init__(self, *, model: nn.Module, config: ml_collections.ConfigDict, mesh: Mesh,
                 data: str = "eval", batch_size: int = 0, ks: Sequence[int] = (1, 5, 10),
                 image_key: str = "image", text_key: str = "text"):
        """Takes the model, config and mesh, and the evaluator's config keys: `data` (a
        config.data entry with image and text), `batch_size` (global; 0 =
        config.batch_size), `ks` and the two batch keys."""
        self.model, self.mesh = model, mesh
        self.batch_size = batch_size or config.batch_size
        sharding.check_batch_size(self.batch_size, mesh,
                                  key="config.evaluators.retrieval.batch_size")
        self.ks = tuple(int(k) for k in ks)
        self.keys = (image_key, text_key)
        self.batches = pipeline.make_eval_batches(eval_data_config(config, data),
                                                  self.batch_size)

    def run(self, variables) -> dict[str, float]:
        """Returns {"i2t_recall@1": ..., "t2i_recall@1": ..., ..., "count": N}."""
        split = embed_split(self.model, variables, self.batches, self.mesh, self.keys)
        zimg, ztxt = split["zimg"], split["ztxt"]
        out = {}
        for name, ranks in (("i2t", correct_ranks(zimg, ztxt)),
                            ("t2i", correct_ranks(ztxt, zimg))):
            for k, value in recall_at(ranks, self.ks).items():
                out[f"{name}_recall@{k}"] = value
        out["count"] = float(len(zimg))
        return out

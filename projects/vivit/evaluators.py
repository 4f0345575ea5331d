"""Epic-Kitchens multi-view evaluator "vivit.epic_kitchens_multiview": verb, noun and action
accuracy per video, each head's logits (or, with average="softmax", softmax scores)
averaged over the video's views."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from framework import registry, sharding
from framework.evaluators.multiview import (
    MultiViewClassificationEvaluator,
    ViewAverager,
    view_scores,
)
from framework.losses import logits_of
from projects.vivit.epic_kitchens import split_heads


@registry.EVALUATORS.register("vivit.epic_kitchens_multiview",
                              formerly=("epic_kitchens_multiview",))
class EpicKitchensMultiViewEvaluator(MultiViewClassificationEvaluator):
    """Verb / noun top-k and action top-1 (both heads right) over whole videos.

    Config keys: those of "multiview_classification" (`data`, `batch_size`, `topk`,
    `average`) plus
    `num_verbs` (the first num_verbs logits are the verb head, the rest the noun head).
    The eval examples carry int `verb_label` and `noun_label`.
    """

    def __init__(self, *, num_verbs: int = 97, **kwargs):
        """Takes `num_verbs` and the keyword arguments of MultiViewClassificationEvaluator."""
        self.num_verbs = int(num_verbs)
        super().__init__(**kwargs)

    def _scores(self, variables, batch: dict) -> dict[str, jax.Array]:
        logits = logits_of(self.model.apply(variables, batch, train=False))
        verbs, nouns = split_heads(logits.astype(jnp.float32), self.num_verbs)
        return {"verb_scores": view_scores(verbs, self.average),
                "noun_scores": view_scores(nouns, self.average),
                "video_index": batch["video_index"], "verb_label": batch["verb_label"],
                "noun_label": batch["noun_label"], "mask": batch["mask"]}

    def run(self, variables) -> dict[str, float]:
        """Returns {"verb_top1", "verb_top5", "noun_top1", "noun_top5", "action_top1",
        "count" (videos), "views_per_video"}."""
        heads = {"verb": ViewAverager(), "noun": ViewAverager()}
        for local in self.batches():
            out = self._step(variables, sharding.shard_batch(local, self.mesh))
            out = multihost_utils.process_allgather(out, tiled=True)
            mask = np.asarray(out["mask"], bool)
            for name, averager in heads.items():
                averager.add(out["video_index"], out[f"{name}_scores"], out[f"{name}_label"],
                             mask)
        return action_metrics(heads["verb"], heads["noun"], self.topk)


def action_metrics(verbs: ViewAverager, nouns: ViewAverager,
                   topk: Sequence[int]) -> dict[str, float]:
    """Returns verb_/noun_ top-k, action_top1 (verb and noun top-1 both right), count and
    views_per_video from the two heads' per-video averages."""
    out = {}
    for name, averager in (("verb", verbs), ("noun", nouns)):
        num_classes = next(iter(averager.scores.values())).shape[-1] if averager.scores else 1
        for key, value in averager.result([min(k, num_classes) for k in topk]).items():
            out[key if key in ("count", "views_per_video") else f"{name}_{key}"] = value
    _, verb_scores, verb_labels = verbs.mean_scores()
    _, noun_scores, noun_labels = nouns.mean_scores()
    right = (verb_scores.argmax(-1) == verb_labels) & (noun_scores.argmax(-1) == noun_labels)
    out["action_top1"] = float(np.mean(right))
    return out

"""Epic-Kitchens verb / noun / action classification pieces for ViViT.

The model has one head of num_verbs + num_nouns logits: columns [0, num_verbs) are the verb
head, the rest the noun head (Scenic's `class_splits`). An action (verb, noun) is right when
both heads' top-1 are right (the arg-max of the product of the two softmaxes, as in Scenic).

- preprocess op "vivit.verb_noun_targets(num_verbs, num_nouns)": int `verb_label` / `noun_label`
  -> `label` float32 (num_verbs + num_nouns,), a two-hot target that mixup can blend.
- loss "vivit.epic_kitchens_xent": softmax cross-entropy of each head, the two averaged as in
  Scenic's multi-head model (each head's mean logged as a metric).
- `split_heads` / `head_targets`: shared by the loss and the evaluator.
- `config_pieces`: the loss, evaluator and label op of an Epic-Kitchens config (ViViT, MTV).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from framework import registry
from framework.losses import LossFn, logits_of, masked_mean, smooth, softmax_cross_entropy

EPIC_KITCHENS_100 = {"num_verbs": 97, "num_nouns": 300}


def config_pieces(label_smoothing: float, average: str = "logits") -> dict:
    """Returns the parts of an Epic-Kitchens-100 config whose model has one head of
    97 verb + 300 noun logits (verbs first): {"num_classes": 397, "label_ops": the train
    label op (two-hot targets), "loss": ConfigDict of "vivit.epic_kitchens_xent" with
    `label_smoothing`, "evaluators": ConfigDict of "vivit.epic_kitchens_multiview" on the
    eval split, views averaged by `average`}."""
    verbs, nouns = EPIC_KITCHENS_100["num_verbs"], EPIC_KITCHENS_100["num_nouns"]
    return {
        "num_classes": verbs + nouns,
        "label_ops": f"vivit.verb_noun_targets({verbs}, {nouns})",
        "loss": ml_collections.ConfigDict(dict(
            name="vivit.epic_kitchens_xent", num_verbs=verbs, num_nouns=nouns,
            label_smoothing=label_smoothing)),
        "evaluators": ml_collections.ConfigDict({"epic_kitchens_multiview": {
            "name": "vivit.epic_kitchens_multiview", "data": "eval", "num_verbs": verbs,
            "average": average}}),
    }


def split_heads(logits: jax.Array, num_verbs: int) -> tuple[jax.Array, jax.Array]:
    """Returns (verb logits (B, num_verbs), noun logits (B, rest)) of logits (B, V + N)."""
    return logits[:, :num_verbs], logits[:, num_verbs:]


def head_targets(batch: dict, num_verbs: int, num_nouns: int, label_key: str = "label"
                 ) -> tuple[jax.Array, jax.Array]:
    """Returns float targets (verb (B, V), noun (B, N)).

    Read from `batch[label_key]` (B, V + N) (two-hot or mixed, each part renormalised to
    sum 1) when present, else from int `verb_label` / `noun_label` (B,).
    """
    if label_key in batch and batch[label_key].ndim == 2:
        verbs, nouns = split_heads(batch[label_key].astype(jnp.float32), num_verbs)
        norm = lambda t: t / jnp.maximum(jnp.sum(t, -1, keepdims=True), 1e-9)  # noqa: E731
        return norm(verbs), norm(nouns)
    return (jax.nn.one_hot(batch["verb_label"], num_verbs, dtype=jnp.float32),
            jax.nn.one_hot(batch["noun_label"], num_nouns, dtype=jnp.float32))


@registry.LOSSES.register("vivit.epic_kitchens_xent", formerly=("epic_kitchens_xent",))
def epic_kitchens_xent(num_verbs: int = 97, num_nouns: int = 300,
                       label_smoothing: float = 0.0, label_key: str = "label") -> LossFn:
    """Returns loss(logits (B, V + N), batch) -> (the mean of the verb and the noun head's
    mean softmax cross-entropy, {"verb_loss", "noun_loss"}), each head's targets smoothed by
    `label_smoothing`. The heads are averaged, not summed, as Scenic's
    ViViTMultiHeadClassificationModel does: with SGD a sum would double the step size."""

    def loss(outputs, batch: dict) -> tuple[jax.Array, dict]:
        logits = logits_of(outputs)
        if logits.shape[-1] != num_verbs + num_nouns:
            raise ValueError(f"vivit.epic_kitchens_xent: logits have {logits.shape[-1]} classes, "
                             f"expected num_verbs + num_nouns = {num_verbs + num_nouns} "
                             "(config.model.num_classes).")
        verb_logits, noun_logits = split_heads(logits, num_verbs)
        verbs, nouns = head_targets(batch, num_verbs, num_nouns, label_key)
        verb = masked_mean(softmax_cross_entropy(verb_logits, smooth(verbs, label_smoothing)),
                           batch)
        noun = masked_mean(softmax_cross_entropy(noun_logits, smooth(nouns, label_smoothing)),
                           batch)
        return (verb + noun) / 2, {"verb_loss": verb, "noun_loss": noun}

    return loss


@registry.PREPROCESS_OPS.register("vivit.verb_noun_targets", formerly=("verb_noun_targets",))
@dataclasses.dataclass
class VerbNounTargets:
    """Sets `label` float32 (num_verbs + num_nouns,) to the two-hot of the example's int
    `verb_label` and `noun_label` (kept), so batch mixup blends both heads' targets."""

    num_verbs: int = 97
    num_nouns: int = 300

    def __call__(self, example: dict, rng: np.random.Generator) -> dict:
        verb, noun = int(example["verb_label"]), int(example["noun_label"])
        if not (0 <= verb < self.num_verbs and 0 <= noun < self.num_nouns):
            raise ValueError(f"verb_label={verb} / noun_label={noun} out of range "
                             f"({self.num_verbs} verbs, {self.num_nouns} nouns).")
        label = np.zeros(self.num_verbs + self.num_nouns, np.float32)
        label[verb] = label[self.num_verbs + noun] = 1.0
        return {**example, "label": label}

"""Zero-shot classification: class names x prompt templates -> text classifier -> top-k."""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh

from framework import registry, sharding
from framework.data import pipeline
from framework.data.tokenizers import make_tokenizer, tokenize_fixed
from framework.evaluators.classification import eval_data_config
from framework.registry import ConfigError
from projects.image_text.embed import embed_split, embed_texts, text_length

# A few of CLIP's ImageNet prompts; configs for real data pass the full list.
DEFAULT_TEMPLATES = ("a photo of a {}.", "itap of a {}.", "a good photo of the {}.",
                     "a drawing of a {}.")


def class_embeddings(text_embeddings: np.ndarray, num_classes: int,
                     num_templates: int) -> np.ndarray:
    """Averages L2-normalised prompt embeddings (C * T, E) (class-major) per class and
    re-normalises them; returns (C, E)."""
    per_class = text_embeddings.reshape(num_classes, num_templates, -1).mean(axis=1)
    return per_class / (np.linalg.norm(per_class, axis=-1, keepdims=True) + 1e-8)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Returns the fraction of rows of scores (N, C) whose label (N,) is among the top k."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


@registry.EVALUATORS.register("image_text.zero_shot", formerly=("zero_shot",))
class ZeroShotEvaluator:
    """Zero-shot top-k accuracy of a two-tower model on a labelled image split.

    Every class name is put into every prompt template, tokenized and embedded by the text
    tower; a class's embedding is the normalised mean over its prompts. Each image is
    assigned the class whose embedding has the largest cosine similarity with its own.
    Both towers run in batches sharded over the mesh's batch axes.
    """

    def __init__(self, *, model: nn.Module, config: ml_collections.ConfigDict, mesh: Mesh,
                 data: str = "eval", batch_size: int = 0, class_names: Sequence[str] = (),
                 templates: Sequence[str] = DEFAULT_TEMPLATES, tokenizer: str = "bytes",
                 max_len: int = 0, eos: str = "sticky", topk: Sequence[int] = (1, 5),
                 label_key: str = "label", image_key: str = "image", text_key: str = "text"):
        """Takes the model, config and mesh, and the evaluator's config keys: `data` (a
        config.data entry with images and labels), `batch_size` (global; 0 =
        config.batch_size), `class_names` (() = the dataset's info['class_names']),
        `templates` (with one '{}'), `tokenizer` ("bytes" or a SentencePiece path), `max_len`
        (0 = config.model_input.text's length), `eos`, `topk` and the batch keys."""
        key = "config.evaluators.zero_shot"
        self.model, self.mesh = model, mesh
        self.batch_size = batch_size or config.batch_size
        sharding.check_batch_size(self.batch_size, mesh, key=f"{key}.batch_size")
        data_config = eval_data_config(config, data)
        if not class_names:
            class_names = pipeline.build_dataset(data_config, "eval").info.get("class_names")
            if not class_names:
                raise ConfigError(f"{key}.class_names: required (config.data.{data} names "
                                  "no classes in its info).")
        bad = [t for t in templates if t.count("{}") != 1]
        if not templates or bad:
            raise ConfigError(f"{key}.templates: each template needs exactly one '{{}}' for "
                              f"the class name; got {bad or 'none'}.")
        self.class_names, self.templates = tuple(class_names), tuple(templates)
        self.topk = tuple(int(k) for k in topk)
        self.label_key, self.image_key, self.text_key = label_key, image_key, text_key
        length = text_length(config, max_len, key)
        tok = make_tokenizer(tokenizer)
        self.prompt_tokens = np.stack([tokenize_fixed(tok, t.format(name), length, eos)
                                       for name in self.class_names for t in self.templates])
        self.batches = pipeline.make_eval_batches(data_config, self.batch_size)

    def classifier(self, variables) -> np.ndarray:
        """Returns the zero-shot classifier (C, E): one normalised text embedding per class."""
        text = embed_texts(self.model, variables, self.prompt_tokens, self.mesh, self.batch_size,
                           self.text_key)
        return class_embeddings(text, len(self.class_names), len(self.templates))

    def run(self, variables) -> dict[str, float]:
        """Returns {"top1": ..., "top5": ..., "count": N} over the whole eval split."""
        classes = self.classifier(variables)
        split = embed_split(self.model, variables, self.batches, self.mesh, (self.image_key,),
                            extra=(self.label_key,))
        scores = split["zimg"] @ classes.T
        labels = split[self.label_key].astype(np.int64)
        out = {f"top{k}": topk_accuracy(scores, labels, min(k, len(self.class_names)))
               for k in self.topk}
        out["count"] = float(len(labels))
        return out

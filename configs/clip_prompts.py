"""CLIP's zero-shot ImageNet prompts (Radford et al. 2021), as big_vision evaluates them:
the 1000 ImageNet class names rewritten for prompting ("tench", "goldfish", ...) in
clip_imagenet_class_names.txt and the 80 prompt templates ("a bad photo of a {}.", ...)
in clip_prompt_templates.txt, one per line, in class-index / the paper's order."""

from __future__ import annotations

import functools
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def _lines(name: str) -> tuple[str, ...]:
    with open(os.path.join(_HERE, name), encoding="utf-8") as f:
        return tuple(line.rstrip("\n") for line in f if line.strip())


def imagenet_class_names() -> tuple[str, ...]:
    """Returns CLIP's 1000 ImageNet class names, indexed as TFDS imagenet2012's labels."""
    return _lines("clip_imagenet_class_names.txt")


def prompt_templates() -> tuple[str, ...]:
    """Returns CLIP's 80 ImageNet prompt templates, each with one '{}' for a class name."""
    return _lines("clip_prompt_templates.txt")

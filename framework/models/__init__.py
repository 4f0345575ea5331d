"""Backbones shared across projects; importing this package registers their models."""

from framework.models import two_tower, vit  # noqa: F401  (register their models)

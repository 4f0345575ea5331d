"""Backbones shared across projects; importing this package registers their models."""

from framework.models import vit  # noqa: F401  (registers its models)

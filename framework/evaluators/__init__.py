"""Evaluators, registered by name in `framework.registry.EVALUATORS`."""

from framework.evaluators import (
    classification,  # noqa: F401
    multiview,  # noqa: F401
)

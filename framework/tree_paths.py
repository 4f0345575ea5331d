"""Names of pytree key paths, shared by the optimizer (regex groups) and sharding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def key_names(path: Sequence[Any]) -> tuple[str, ...]:
    """Returns the names along a jax key path: dict keys, attribute names, sequence indices."""
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
        else:
            names.append(str(entry))
    return tuple(names)

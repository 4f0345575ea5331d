"""Pytree helpers every part of the trainer uses: unboxing Flax params and naming key paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from flax import linen as nn


def unbox(tree: Any) -> Any:
    """Returns `tree` with Flax boxed leaves (nn.LogicallyPartitioned, ...) replaced by values.

    Unlike `nn.meta.unbox`, applies no sharding constraint, so it works on abstract params
    (ShapeDtypeStructs) inside `jax.set_mesh` / `nn.logical_axis_rules` contexts too.
    """

    def one(x):
        if isinstance(x, nn.Partitioned):
            return x.unbox(apply_constraint=False)
        return x.unbox() if isinstance(x, nn.meta.AxisMetadata) else x

    return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))


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


def path_name(path: Sequence[Any]) -> str:
    """Returns the '/'-joined names of a jax key path, e.g. "params/head/kernel"."""
    return "/".join(key_names(path))

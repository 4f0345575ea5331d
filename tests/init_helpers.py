"""Shared by the layer and ViT tests: abstract init and cheap numpy-drawn variables."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

KEY = jax.random.key(0)
ALLOWED_AXES = {"embed", "heads", "kv", "mlp", "classes", "layers", None}


def abstract_init(module, *args, **kwargs):
    """Returns the boxed abstract variables of module.init (no computation)."""
    return jax.eval_shape(lambda: module.init(KEY, *args, **kwargs))


def init(module, *args, **kwargs):
    """Returns unboxed variables with module.init's shapes, drawn with numpy (no compiles)."""
    rng = np.random.default_rng(0)
    return jax.tree.map(
        lambda s: jnp.asarray(rng.normal(0.0, 0.3, s.shape), s.dtype),
        nn.unbox(abstract_init(module, *args, **kwargs)),
    )
